"""The ledger in the database: the pure rules of ``medpay.domain.ledger`` applied under row locks.

``LedgerStore`` works inside the caller's transaction and never commits: a settlement posts its transfers
together with its own rows, and a refused transfer raises ``LedgerError`` so the caller rolls all of it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from medpay.adapters.db.base import utcnow
from medpay.adapters.db.ledger_tables import LedgerAccountRow, LedgerTransferRow
from medpay.domain.ledger import (
    Account,
    AccountFlags,
    AccountResult,
    LedgerError,
    PendingState,
    Transfer,
    TransferKind,
    TransferResult,
    Violation,
    account_definition_result,
    accounts_for,
    apply_transfer,
    check_invariants,
    expiry_void,
    pending_state,
    validate_transfer,
)

accounts_table = LedgerAccountRow.__table__
transfers_table = LedgerTransferRow.__table__

STREAM_CHUNK = 1000


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        ledger=row.ledger,
        code=row.code,
        flags=AccountFlags(
            debits_must_not_exceed_credits=row.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=row.credits_must_not_exceed_debits,
        ),
        debits_pending=row.debits_pending,
        debits_posted=row.debits_posted,
        credits_pending=row.credits_pending,
        credits_posted=row.credits_posted,
    )


def _transfer(row: Any) -> Transfer:
    return Transfer(
        id=row.id,
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        amount=row.amount,
        kind=TransferKind(row.kind),
        pending_id=row.pending_id,
        timeout_s=row.timeout_s,
        code=row.code,
        ref=row.ref,
        created_at=row.created_at,
    )


def _transfer_values(t: Transfer) -> dict[str, Any]:
    return {
        "id": t.id,
        "debit_account_id": t.debit_account_id,
        "credit_account_id": t.credit_account_id,
        "amount": t.amount,
        "kind": t.kind.value,
        "pending_id": t.pending_id,
        "timeout_s": t.timeout_s,
        "code": t.code,
        "ref": t.ref,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
    }


class LedgerStore:
    def __init__(self, session: Session, clock: Callable[[], datetime] = utcnow):
        self.session = session
        self.clock = clock

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # --- accounts ------------------------------------------------------------------------------------------

    def open_account(self, id: str, ledger: str, code: str, flags: AccountFlags = AccountFlags()) -> AccountResult:
        """Create the account, or answer EXISTS if it exists with the same definition (a retry)."""
        wanted = Account(id=id, ledger=ledger, code=code, flags=flags)
        result = account_definition_result(wanted, None)
        if result is not AccountResult.OK:
            raise LedgerError(result, id)
        values = {
            "id": id,
            "ledger": ledger,
            "code": code,
            "debits_must_not_exceed_credits": flags.debits_must_not_exceed_credits,
            "credits_must_not_exceed_debits": flags.credits_must_not_exceed_debits,
            "debits_pending": 0,
            "debits_posted": 0,
            "credits_pending": 0,
            "credits_posted": 0,
            "created_at": self.clock(),
        }
        # ON CONFLICT DO NOTHING: two concurrent opens of one account both succeed without an abort.
        dialect_insert = postgresql_insert if self._dialect == "postgresql" else sqlite_insert
        statement = (
            dialect_insert(accounts_table)
            .values(values)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(accounts_table.c.id)
        )
        if self.session.execute(statement).scalar_one_or_none() is not None:
            return AccountResult.OK
        existing = self.account(id)
        result = account_definition_result(wanted, existing)
        if result is not AccountResult.EXISTS:
            raise LedgerError(result, id, f"stored as {existing}")
        return result

    def account(self, id: str) -> Account | None:
        row = self.session.execute(select(accounts_table).where(accounts_table.c.id == id)).one_or_none()
        return None if row is None else _account(row)

    def accounts(self, ids: Iterable[str]) -> dict[str, Account]:
        ids = sorted(set(ids))
        if not ids:
            return {}
        rows = self.session.execute(select(accounts_table).where(accounts_table.c.id.in_(ids)))
        return {row.id: _account(row) for row in rows}

    def lock_accounts(self, ids: Sequence[str]) -> dict[str, Account]:
        """Read and lock ``ids`` in sorted order, so concurrent batches can't deadlock.

        On SQLite the statement is a plain read: BEGIN IMMEDIATE already made this transaction the only writer.
        """
        if not ids:
            return {}
        query = (
            select(accounts_table)
            .where(accounts_table.c.id.in_(ids))
            .order_by(accounts_table.c.id)
            .with_for_update()
        )
        return {row.id: _account(row) for row in self.session.execute(query)}

    # --- transfers -----------------------------------------------------------------------------------------

    def transfer(self, id: str) -> Transfer | None:
        row = self.session.execute(select(transfers_table).where(transfers_table.c.id == id)).one_or_none()
        return None if row is None else _transfer(row)

    def resolution_of(self, pending_id: str) -> Transfer | None:
        """The post or void that resolved ``pending_id``, if any."""
        query = select(transfers_table).where(transfers_table.c.pending_id == pending_id)
        row = self.session.execute(query).one_or_none()
        return None if row is None else _transfer(row)

    def pending_state(self, pending_id: str, now: datetime | None = None) -> PendingState | None:
        pending = self.transfer(pending_id)
        if pending is None or pending.kind is not TransferKind.PENDING:
            return None
        return pending_state(pending, self.resolution_of(pending_id), now or self.clock())

    def transfers_by_ref(self, ref: str) -> list[Transfer]:
        query = (
            select(transfers_table)
            .where(transfers_table.c.ref == ref)
            .order_by(transfers_table.c.created_at, transfers_table.c.id)
        )
        return [_transfer(row) for row in self.session.execute(query)]

    def create_transfers(self, transfers: Sequence[Transfer]) -> list[tuple[str, TransferResult]]:
        """Record ``transfers`` in order, all or nothing.

        Returns ``(id, OK | EXISTS)`` per transfer; EXISTS means an identical transfer was already recorded
        and nothing moved. Raises ``LedgerError`` on the first refused transfer, leaving the caller's
        transaction to be rolled back.
        """
        if not transfers:
            return []
        now = self.clock()
        stamped = [t.stamped(now) for t in transfers]
        # A savepoint around the batch: if a transfer is refused, the ones before it are undone even when
        # the caller catches the error and carries on with its transaction.
        with self.session.begin_nested():
            accounts = self._read_for_transfer(accounts_for(stamped))
            before = dict(accounts)
            changed: set[str] = set()
            results: list[tuple[str, TransferResult]] = []
            for t in stamped:
                pending = self.transfer(t.pending_id) if t.kind.resolves_pending and t.pending_id else None
                resolution = self.resolution_of(t.pending_id) if pending is not None else None
                result = validate_transfer(
                    t,
                    debit=accounts.get(t.debit_account_id),
                    credit=accounts.get(t.credit_account_id),
                    existing=self.transfer(t.id),
                    pending=pending,
                    resolution=resolution,
                )
                if not result.succeeded:
                    raise LedgerError(result, t.id, _describe(t))
                if result is TransferResult.OK:
                    debit, credit = apply_transfer(
                        t, accounts[t.debit_account_id], accounts[t.credit_account_id], pending
                    )
                    accounts[debit.id], accounts[credit.id] = debit, credit
                    changed.update((debit.id, credit.id))
                    self._insert_transfer(t)
                results.append((t.id, result))
            for account_id in sorted(changed):
                self._write_totals(accounts[account_id], before[account_id])
        return results

    def _read_for_transfer(self, ids: Sequence[str]) -> dict[str, Account]:
        """The accounts a batch touches. Only those with a balance limit are locked: their checks need a
        stable balance. The others (funds, institutions, channels — touched by every settlement) are read
        without a lock and later moved by increments, so concurrent settlements don't queue on them."""
        accounts = self.accounts(ids)
        limited = [i for i, a in accounts.items()
                   if a.flags.debits_must_not_exceed_credits or a.flags.credits_must_not_exceed_debits]
        accounts.update(self.lock_accounts(limited))
        return accounts

    def _insert_transfer(self, t: Transfer) -> None:
        try:
            self.session.execute(insert(transfers_table).values(_transfer_values(t)))
        except IntegrityError as error:
            # Reachable only if a concurrent writer got past the account locks, e.g. the same transfer id
            # used on other accounts; the unique constraints are the last line of defence.
            if "pending_id" in str(error.orig):
                raise LedgerError(
                    TransferResult.PENDING_TRANSFER_ALREADY_POSTED
                    if t.kind is TransferKind.POST_PENDING
                    else TransferResult.PENDING_TRANSFER_ALREADY_VOIDED,
                    t.id,
                    "resolved by a concurrent transfer",
                ) from error
            code = TransferResult.EXISTS_WITH_DIFFERENT_FIELDS
            raise LedgerError(code, t.id, "recorded by a concurrent transfer") from error

    def _write_totals(self, a: Account, before: Account) -> None:
        """Locked (limited) accounts get their new totals; unlocked ones the increments, applied atomically
        on top of whatever concurrent batches committed meanwhile."""
        c = accounts_table.c
        if a.flags.debits_must_not_exceed_credits or a.flags.credits_must_not_exceed_debits:
            values = {"debits_pending": a.debits_pending, "debits_posted": a.debits_posted,
                      "credits_pending": a.credits_pending, "credits_posted": a.credits_posted}
        else:
            values = {name: getattr(c, name) + (getattr(a, name) - getattr(before, name))
                      for name in ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
                      if getattr(a, name) != getattr(before, name)}
        self.session.execute(update(accounts_table).where(c.id == a.id).values(**values))

    def expire_pending(self, now: datetime | None = None) -> list[Transfer]:
        """Void every pending transfer whose timeout has passed; returns the expiry voids recorded."""
        now = now or self.clock()
        resolution = aliased(transfers_table)
        query = (
            select(transfers_table)
            .outerjoin(resolution, resolution.c.pending_id == transfers_table.c.id)
            .where(
                and_(
                    transfers_table.c.kind == TransferKind.PENDING.value,
                    transfers_table.c.expires_at <= now,
                    resolution.c.id.is_(None),
                )
            )
            .order_by(transfers_table.c.id)
        )
        voids = [expiry_void(_transfer(row), now) for row in self.session.execute(query)]
        if voids:
            self.create_transfers(voids)
        return voids


def _describe(t: Transfer) -> str:
    pending = f", pending_id={t.pending_id}" if t.pending_id else ""
    return f"{t.kind.value} {t.amount} fen {t.debit_account_id} -> {t.credit_account_id}{pending}"


def _stream(session: Session, query: Any) -> Iterator[Any]:
    yield from session.execute(query.execution_options(yield_per=STREAM_CHUNK))


def check_ledger(session: Session, now: datetime | None = None) -> list[Violation]:
    """Run every ledger invariant over the stored data (transfers are streamed in chunks).

    On PostgreSQL, called at the start of a transaction, it reads one REPEATABLE READ snapshot so that
    concurrent writers can't make a healthy ledger look broken.
    """
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    accounts = [_account(row) for row in _stream(session, select(accounts_table))]
    transfers = (_transfer(row) for row in _stream(session, select(transfers_table)))
    return check_invariants(accounts, transfers, now)
