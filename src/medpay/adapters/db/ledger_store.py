"""The ledger in the database: the pure rules of ``medpay.domain.ledger`` applied under row locks.

``LedgerStore`` works inside the caller's transaction and never commits: a settlement posts its transfers
together with its own rows, and a refused transfer raises ``LedgerError`` so the caller rolls all of it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from medpay.adapters.db.base import utcnow
from medpay.adapters.db.ledger_tables import LedgerAccountRow, LedgerTransferRow
from medpay.adapters.db.statements import insert_ignore
from medpay.domain.posting import AccountSpec
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
    """The ledger inside the caller's transaction (a ``Connection``, or a ``Session`` whose connection is used)."""

    def __init__(self, db: Connection | Session, clock: Callable[[], datetime] = utcnow):
        self.conn = db.connection() if isinstance(db, Session) else db
        self.clock = clock
        self._locked: set[str] = set()  # accounts this transaction holds row locks on
        # accounts as this transaction last read or wrote them: a limited one is locked before its balance
        # counts, an unlimited one only needs to exist (it moves by increments), so neither is read twice
        self._known: dict[str, Account] = {}
        self._opened: set[str] = set()  # opened by this transaction: not yet known to other connections

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
        if insert_ignore(self.conn, accounts_table, values, accounts_table.c.id):
            self._opened.add(id)
            return AccountResult.OK
        existing = self.account(id)
        result = account_definition_result(wanted, existing)
        if result is not AccountResult.EXISTS:
            raise LedgerError(result, id, f"stored as {existing}")
        return result

    def ensure_accounts(self, specs: Iterable[AccountSpec]) -> None:
        """Open those of ``specs`` that don't exist yet (a fund, institution or channel used the first time)."""
        specs = list(specs)
        found = self._defined(s.id for s in specs)
        for spec in specs:
            if spec.id not in found:
                self.open_account(spec.id, spec.ledger, spec.code, spec.flags)

    def _defined(self, ids: Iterable[str]) -> dict[str, Account]:
        """The accounts among ``ids`` that exist, as this transaction knows them. Accounts without a balance
        limit are remembered per database connection once seen committed: an account is never deleted and
        its definition never changes, and such an account's totals are only ever moved by increments, so
        its stored totals are never needed to post to it."""
        remembered: dict[str, Account] = self.conn.info.setdefault(_UNLIMITED_ACCOUNTS, {})
        ids = set(ids)
        out = {i: self._known.get(i) or remembered[i] for i in ids if i in self._known or i in remembered}
        missing = ids - out.keys()
        if missing:
            found = self.accounts(missing)
            out.update(found)
            remembered.update((i, a) for i, a in found.items() if not _limited(a) and i not in self._opened)
        return out

    def account(self, id: str) -> Account | None:
        return self.accounts([id]).get(id)

    def accounts(self, ids: Iterable[str]) -> dict[str, Account]:
        ids = sorted(set(ids))
        if not ids:
            return {}
        found = {row.id: _account(row) for row in self.conn.execute(_ACCOUNTS, {"ids": ids})}
        self._known.update(found)
        return found

    def lock_accounts(self, ids: Sequence[str]) -> dict[str, Account]:
        """Read and lock ``ids`` in sorted order, so concurrent batches can't deadlock.

        On SQLite the statement is a plain read: BEGIN IMMEDIATE already made this transaction the only writer.
        """
        if not ids:
            return {}
        found = {row.id: _account(row) for row in self.conn.execute(_LOCK_ACCOUNTS, {"ids": sorted(set(ids))})}
        self._locked.update(found)
        self._known.update(found)
        return found

    # --- transfers -----------------------------------------------------------------------------------------

    def transfer(self, id: str) -> Transfer | None:
        return self._transfers([id]).get(id)

    def _transfers(self, ids: Iterable[str]) -> dict[str, Transfer]:
        ids = sorted(set(ids))
        if not ids:
            return {}
        return {row.id: _transfer(row) for row in self.conn.execute(_TRANSFERS, {"ids": ids})}

    def resolution_of(self, pending_id: str) -> Transfer | None:
        """The post or void that resolved ``pending_id``, if any."""
        row = self.conn.execute(select(transfers_table).where(transfers_table.c.pending_id == pending_id)).one_or_none()
        return None if row is None else _transfer(row)

    def pending_state(self, pending_id: str, now: datetime | None = None) -> PendingState | None:
        pending = self.transfer(pending_id)
        if pending is None or pending.kind is not TransferKind.PENDING:
            return None
        return pending_state(pending, self.resolution_of(pending_id), now or self.clock())

    def transfers_by_ref(self, ref: str) -> list[Transfer]:
        return [_transfer(row) for row in self.conn.execute(_TRANSFERS_BY_REF, {"ref": ref})]

    def create_transfers(self, transfers: Sequence[Transfer]) -> list[tuple[str, TransferResult]]:
        """Record ``transfers`` in order, all or nothing.

        Returns ``(id, OK | EXISTS)`` per transfer; EXISTS means an identical transfer was already recorded
        and nothing moved. Raises ``LedgerError`` on the first refused transfer. Every transfer is checked
        before anything is written, so a refused batch has written nothing, even for a caller that catches
        the error and commits. (A database error — a race lost to a writer that got past the locks — leaves
        the transaction to be rolled back.)
        """
        if not transfers:
            return []
        now = self.clock()
        stamped = [t.stamped(now) for t in transfers]
        accounts = self._read_for_transfer(accounts_for(stamped))
        before = dict(accounts)
        existing = self._transfers(t.id for t in stamped)
        pending_ids = [t.pending_id for t in stamped if t.kind.resolves_pending and t.pending_id]
        pendings = self._transfers(pending_ids)
        changed: set[str] = set()
        new: list[Transfer] = []
        results: list[tuple[str, TransferResult]] = []
        for t in stamped:
            pending = pendings.get(t.pending_id) if t.kind.resolves_pending and t.pending_id else None
            resolution = self.resolution_of(t.pending_id) if pending is not None else None
            if pending is not None and resolution is None:  # resolved earlier in this batch?
                resolution = next((n for n in new if n.pending_id == t.pending_id), None)
            result = validate_transfer(
                t,
                debit=accounts.get(t.debit_account_id),
                credit=accounts.get(t.credit_account_id),
                existing=existing.get(t.id),
                pending=pending,
                resolution=resolution,
            )
            if not result.succeeded:
                raise LedgerError(result, t.id, _describe(t))
            if result is TransferResult.OK:
                debit, credit = apply_transfer(t, accounts[t.debit_account_id], accounts[t.credit_account_id], pending)
                accounts[debit.id], accounts[credit.id] = debit, credit
                changed.update((debit.id, credit.id))
                new.append(t)
                existing[t.id] = t
                if t.kind is TransferKind.PENDING:
                    pendings[t.id] = t
            results.append((t.id, result))
        if new:
            self._insert_transfers(new)
            self._write_totals([(accounts[i], before[i]) for i in sorted(changed)])
            self._known.update((i, accounts[i]) for i in changed)
        return results

    def _read_for_transfer(self, ids: Sequence[str]) -> dict[str, Account]:
        """The accounts a batch touches. Only those with a balance limit are locked: their checks need a
        stable balance. The others (funds, institutions, channels — touched by every settlement) are read
        without a lock and later moved by increments, so concurrent settlements don't queue on them."""
        accounts = self._defined(ids)
        unlocked = [i for i, a in accounts.items() if _limited(a) and i not in self._locked]
        accounts.update(self.lock_accounts(unlocked))
        return accounts

    def _insert_transfers(self, new: list[Transfer]) -> None:
        try:
            self.conn.execute(insert(transfers_table), [_transfer_values(t) for t in new])
        except IntegrityError as error:
            # Reachable only if a concurrent writer got past the account locks, e.g. the same transfer id
            # used on other accounts; the unique constraints are the last line of defence.
            if "pending_id" in str(error.orig):
                kind = next((t.kind for t in new if t.kind.resolves_pending), TransferKind.POST_PENDING)
                raise LedgerError(
                    TransferResult.PENDING_TRANSFER_ALREADY_POSTED
                    if kind is TransferKind.POST_PENDING
                    else TransferResult.PENDING_TRANSFER_ALREADY_VOIDED,
                    new[0].id,
                    "resolved by a concurrent transfer",
                ) from error
            code = TransferResult.EXISTS_WITH_DIFFERENT_FIELDS
            raise LedgerError(code, new[0].id, "the database refused the batch: a transfer recorded by a concurrent "
                                               f"writer, or an account missing ({error.orig})") from error

    def _write_totals(self, changes: list[tuple[Account, Account]]) -> None:
        """Every account moves by its increments, applied atomically on top of whatever concurrent batches
        committed meanwhile (the unlocked ones) — for the locked ones that is their new totals."""
        self.conn.execute(_ADD_TOTALS, [{"account_id": a.id, **{n: getattr(a, n) - getattr(b, n) for n in _TOTALS}}
                                        for a, b in changes])

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
        voids = [expiry_void(_transfer(row), now) for row in self.conn.execute(query)]
        if voids:
            self.create_transfers(voids)
        return voids


_UNLIMITED_ACCOUNTS = "medpay.ledger.unlimited_accounts"  # Connection.info key (per database connection)
_TOTALS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
_ACCOUNTS = select(accounts_table).where(accounts_table.c.id.in_(bindparam("ids", expanding=True)))
_LOCK_ACCOUNTS = _ACCOUNTS.order_by(accounts_table.c.id).with_for_update()
_TRANSFERS = select(transfers_table).where(transfers_table.c.id.in_(bindparam("ids", expanding=True)))
_TRANSFERS_BY_REF = (select(transfers_table).where(transfers_table.c.ref == bindparam("ref"))
                     .order_by(transfers_table.c.created_at, transfers_table.c.id))
_ADD_TOTALS = (update(accounts_table).where(accounts_table.c.id == bindparam("account_id"))
               .values({name: getattr(accounts_table.c, name) + bindparam(name) for name in _TOTALS}))


def _limited(a: Account) -> bool:
    return a.flags.debits_must_not_exceed_credits or a.flags.credits_must_not_exceed_debits


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
