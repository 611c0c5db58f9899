"""Double-entry ledger after TigerBeetle's model: pure records and rules, no I/O.

Accounts keep four running totals (debits/credits, pending/posted). A transfer moves an integer amount of
fen from a debit account to a credit account, either at once (``single``) or in two phases: a ``pending``
transfer reserves the amount, and exactly one later ``post_pending`` (possibly for less) or
``void_pending`` resolves it. A pending transfer with a timeout that is neither posted nor voided in time
expires; the expiry is recorded as a void with code ``EXPIRY_CODE`` (see ``expiry_void``).

Transfer ids are chosen by the client, so a retry with the same id and fields answers ``exists`` and
moves nothing, while the same id with different fields is refused.

Storage adapters call ``validate_transfer`` then ``apply_transfer`` under their own locks; ``InMemoryLedger``
does the same in memory and serves as the reference model and as a fake for service tests.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum

MAX_TOTAL = 2**63 - 1  # totals are stored as signed 64-bit integers
MAX_ID_LENGTH = 100
EXPIRY_CODE = "expire"
EXPIRY_ID_PREFIX = "expire:"
# A pending id must leave room for the id of its expiry void.
MAX_PENDING_ID_LENGTH = MAX_ID_LENGTH - len(EXPIRY_ID_PREFIX)
MAX_CODE_LENGTH = 32
MAX_REF_LENGTH = 64


class TransferKind(str, Enum):
    SINGLE = "single"
    PENDING = "pending"
    POST_PENDING = "post_pending"
    VOID_PENDING = "void_pending"

    @property
    def resolves_pending(self) -> bool:
        return self in (TransferKind.POST_PENDING, TransferKind.VOID_PENDING)


class TransferResult(str, Enum):
    """Outcome of one transfer, named like TigerBeetle's CreateTransferResult."""

    OK = "ok"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    ID_MUST_NOT_BE_EMPTY = "id_must_not_be_empty"
    ID_TOO_LONG = "id_too_long"
    CODE_TOO_LONG = "code_too_long"
    REF_TOO_LONG = "ref_too_long"
    AMOUNT_MUST_NOT_BE_ZERO = "amount_must_not_be_zero"
    AMOUNT_MUST_NOT_BE_NEGATIVE = "amount_must_not_be_negative"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    PENDING_ID_MUST_NOT_BE_SET = "pending_id_must_not_be_set"
    PENDING_ID_REQUIRED = "pending_id_required"
    PENDING_ID_MUST_BE_DIFFERENT = "pending_id_must_be_different"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    TIMEOUT_MUST_NOT_BE_NEGATIVE = "timeout_must_not_be_negative"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = "accounts_must_have_the_same_ledger"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = "pending_transfer_has_different_debit_account_id"
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = "pending_transfer_has_different_credit_account_id"
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"
    OVERFLOWS_DEBITS = "overflows_debits"
    OVERFLOWS_CREDITS = "overflows_credits"

    @property
    def succeeded(self) -> bool:
        return self in (TransferResult.OK, TransferResult.EXISTS)


class AccountResult(str, Enum):
    OK = "ok"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_FIELDS = "account_exists_with_different_fields"
    ID_MUST_NOT_BE_EMPTY = "account_id_must_not_be_empty"
    ID_TOO_LONG = "account_id_too_long"
    LEDGER_MUST_NOT_BE_EMPTY = "ledger_must_not_be_empty"
    LEDGER_TOO_LONG = "ledger_too_long"
    CODE_TOO_LONG = "account_code_too_long"


class PendingState(str, Enum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


class LedgerError(ValueError):
    """A refused transfer or account. ``code`` is the result; ``subject`` the transfer or account id."""

    def __init__(self, code: TransferResult | AccountResult, subject: str, detail: str = ""):
        message = f"{code.value}: {subject!r}" + (f" ({detail})" if detail else "")
        super().__init__(message)
        self.code = code
        self.subject = subject
        self.detail = detail


@dataclass(frozen=True)
class AccountFlags:
    # A personal account (credit-normal) never goes negative.
    debits_must_not_exceed_credits: bool = False
    # A credit line (debit-normal: its limit is debited in) is never drawn beyond its limit.
    credits_must_not_exceed_debits: bool = False

    def __post_init__(self) -> None:
        if self.debits_must_not_exceed_credits and self.credits_must_not_exceed_debits:
            raise ValueError("account flags are mutually exclusive: an account can have one balance limit")


@dataclass(frozen=True)
class Account:
    id: str
    ledger: str
    code: str
    flags: AccountFlags = AccountFlags()
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def balance(self) -> int:
        """Credit-normal posted balance (what a personal account holds)."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """Credit-normal balance that may still be spent: pending debits are already reserved."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def debit_balance(self) -> int:
        """Debit-normal posted balance (e.g. what remains of a credit line's limit)."""
        return self.debits_posted - self.credits_posted

    @property
    def debit_available(self) -> int:
        return self.debits_posted - self.credits_posted - self.credits_pending

    def same_definition(self, other: Account) -> bool:
        return (self.id, self.ledger, self.code, self.flags) == (other.id, other.ledger, other.code, other.flags)


@dataclass(frozen=True)
class Transfer:
    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    kind: TransferKind = TransferKind.SINGLE
    pending_id: str | None = None
    timeout_s: int = 0
    code: str = ""
    ref: str = ""
    # Stamped by the ledger (store or in-memory) when left None; compared by nothing but expiry.
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", TransferKind(self.kind))
        if type(self.amount) is not int:  # no floats, Decimals or bools for money
            raise TypeError(f"transfer {self.id!r}: amount must be int fen, got {type(self.amount).__name__}")
        if type(self.timeout_s) is not int:
            raise TypeError(f"transfer {self.id!r}: timeout_s must be int seconds")

    @classmethod
    def post(
        cls,
        id: str,
        pending: Transfer,
        amount: int | None = None,
        *,
        code: str | None = None,
        ref: str | None = None,
    ) -> Transfer:
        """Post ``pending`` for ``amount`` (default: all of it); the rest is released."""
        return cls(
            id=id,
            debit_account_id=pending.debit_account_id,
            credit_account_id=pending.credit_account_id,
            amount=pending.amount if amount is None else amount,
            kind=TransferKind.POST_PENDING,
            pending_id=pending.id,
            code=pending.code if code is None else code,
            ref=pending.ref if ref is None else ref,
        )

    @classmethod
    def void(cls, id: str, pending: Transfer, *, code: str | None = None, ref: str | None = None) -> Transfer:
        return cls(
            id=id,
            debit_account_id=pending.debit_account_id,
            credit_account_id=pending.credit_account_id,
            amount=pending.amount,
            kind=TransferKind.VOID_PENDING,
            pending_id=pending.id,
            code=pending.code if code is None else code,
            ref=pending.ref if ref is None else ref,
        )

    @property
    def expires_at(self) -> datetime | None:
        if self.kind is not TransferKind.PENDING or self.timeout_s <= 0 or self.created_at is None:
            return None
        return self.created_at + timedelta(seconds=self.timeout_s)

    def same_fields(self, other: Transfer) -> bool:
        """Equal in everything the client chose (the timestamp is the ledger's)."""
        return dataclasses.replace(self, created_at=None) == dataclasses.replace(other, created_at=None)

    def stamped(self, now: datetime) -> Transfer:
        return self if self.created_at is not None else dataclasses.replace(self, created_at=now)


@dataclass(frozen=True)
class Violation:
    code: str
    message: str
    subject: str = ""


# --- rules -------------------------------------------------------------------------------------------------


def pending_state(pending: Transfer, resolution: Transfer | None, now: datetime) -> PendingState:
    """State of a pending transfer given the post/void that resolved it (if any) at time ``now``."""
    if resolution is not None:
        if resolution.kind is TransferKind.POST_PENDING:
            return PendingState.POSTED
        return PendingState.EXPIRED if resolution.code == EXPIRY_CODE else PendingState.VOIDED
    expires_at = pending.expires_at
    if expires_at is not None and now >= expires_at:
        return PendingState.EXPIRED
    return PendingState.PENDING


def _field_result(t: Transfer) -> TransferResult:
    if not t.id:
        return TransferResult.ID_MUST_NOT_BE_EMPTY
    id_limit = MAX_PENDING_ID_LENGTH if t.kind is TransferKind.PENDING else MAX_ID_LENGTH
    if len(t.id) > id_limit:
        return TransferResult.ID_TOO_LONG
    if len(t.code) > MAX_CODE_LENGTH:
        return TransferResult.CODE_TOO_LONG
    if len(t.ref) > MAX_REF_LENGTH:
        return TransferResult.REF_TOO_LONG
    if t.amount == 0:
        return TransferResult.AMOUNT_MUST_NOT_BE_ZERO
    if t.amount < 0:
        return TransferResult.AMOUNT_MUST_NOT_BE_NEGATIVE
    if t.debit_account_id == t.credit_account_id:
        return TransferResult.ACCOUNTS_MUST_BE_DIFFERENT
    if t.kind.resolves_pending:
        if not t.pending_id:
            return TransferResult.PENDING_ID_REQUIRED
        if t.pending_id == t.id:
            return TransferResult.PENDING_ID_MUST_BE_DIFFERENT
    elif t.pending_id is not None:
        return TransferResult.PENDING_ID_MUST_NOT_BE_SET
    if t.timeout_s < 0:
        return TransferResult.TIMEOUT_MUST_NOT_BE_NEGATIVE
    if t.timeout_s and t.kind is not TransferKind.PENDING:
        return TransferResult.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
    return TransferResult.OK


def _resolution_result(
    t: Transfer, pending: Transfer | None, resolution: Transfer | None, now: datetime
) -> TransferResult:
    if pending is None:
        return TransferResult.PENDING_TRANSFER_NOT_FOUND
    if pending.kind is not TransferKind.PENDING:
        return TransferResult.PENDING_TRANSFER_NOT_PENDING
    if t.debit_account_id != pending.debit_account_id:
        return TransferResult.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
    if t.credit_account_id != pending.credit_account_id:
        return TransferResult.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
    state = pending_state(pending, resolution, now)
    is_expiry_void = t.kind is TransferKind.VOID_PENDING and t.code == EXPIRY_CODE
    if state is PendingState.POSTED:
        return TransferResult.PENDING_TRANSFER_ALREADY_POSTED
    if state is PendingState.VOIDED:
        return TransferResult.PENDING_TRANSFER_ALREADY_VOIDED
    if state is PendingState.EXPIRED and not (resolution is None and is_expiry_void):
        return TransferResult.PENDING_TRANSFER_EXPIRED
    if t.kind is TransferKind.POST_PENDING and t.amount > pending.amount:
        return TransferResult.EXCEEDS_PENDING_TRANSFER_AMOUNT
    if t.kind is TransferKind.VOID_PENDING and t.amount != pending.amount:
        return TransferResult.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
    return TransferResult.OK


def _limit_result(t: Transfer, debit: Account, credit: Account) -> TransferResult:
    # Posting or voiding only moves or releases amounts already reserved, so limits are checked on entry.
    if t.kind.resolves_pending:
        return TransferResult.OK
    if debit.debits_pending + debit.debits_posted + t.amount > MAX_TOTAL:
        return TransferResult.OVERFLOWS_DEBITS
    if credit.credits_pending + credit.credits_posted + t.amount > MAX_TOTAL:
        return TransferResult.OVERFLOWS_CREDITS
    if (
        debit.flags.debits_must_not_exceed_credits
        and debit.debits_pending + debit.debits_posted + t.amount > debit.credits_posted
    ):
        return TransferResult.EXCEEDS_CREDITS
    if (
        credit.flags.credits_must_not_exceed_debits
        and credit.credits_pending + credit.credits_posted + t.amount > credit.debits_posted
    ):
        return TransferResult.EXCEEDS_DEBITS
    return TransferResult.OK


def validate_transfer(
    t: Transfer,
    *,
    debit: Account | None,
    credit: Account | None,
    existing: Transfer | None = None,
    pending: Transfer | None = None,
    resolution: Transfer | None = None,
) -> TransferResult:
    """Check ``t`` (stamped with ``created_at``) against the current state.

    ``existing`` is a stored transfer with the same id; for post/void, ``pending`` is the transfer named by
    ``pending_id`` and ``resolution`` the post/void already recorded for it. Returns OK, EXISTS (an identical
    retry: apply nothing) or the first failing rule.
    """
    if t.created_at is None:
        raise ValueError(f"transfer {t.id!r} must be stamped with created_at before validation")
    result = _field_result(t)
    if result is not TransferResult.OK:
        return result
    if existing is not None:
        return TransferResult.EXISTS if existing.same_fields(t) else TransferResult.EXISTS_WITH_DIFFERENT_FIELDS
    if debit is None:
        return TransferResult.DEBIT_ACCOUNT_NOT_FOUND
    if credit is None:
        return TransferResult.CREDIT_ACCOUNT_NOT_FOUND
    if debit.ledger != credit.ledger:
        return TransferResult.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
    if t.kind.resolves_pending:
        result = _resolution_result(t, pending, resolution, t.created_at)
        if result is not TransferResult.OK:
            return result
    return _limit_result(t, debit, credit)


def apply_transfer(
    t: Transfer, debit: Account, credit: Account, pending: Transfer | None = None
) -> tuple[Account, Account]:
    """New (debit, credit) account states after a validated transfer."""
    replace = dataclasses.replace
    if t.kind is TransferKind.SINGLE:
        return (
            replace(debit, debits_posted=debit.debits_posted + t.amount),
            replace(credit, credits_posted=credit.credits_posted + t.amount),
        )
    if t.kind is TransferKind.PENDING:
        return (
            replace(debit, debits_pending=debit.debits_pending + t.amount),
            replace(credit, credits_pending=credit.credits_pending + t.amount),
        )
    if pending is None:
        raise ValueError(f"transfer {t.id!r}: applying a post/void needs its pending transfer")
    posted = t.amount if t.kind is TransferKind.POST_PENDING else 0
    return (
        replace(
            debit,
            debits_pending=debit.debits_pending - pending.amount,
            debits_posted=debit.debits_posted + posted,
        ),
        replace(
            credit,
            credits_pending=credit.credits_pending - pending.amount,
            credits_posted=credit.credits_posted + posted,
        ),
    )


def expiry_void(pending: Transfer, now: datetime) -> Transfer:
    """The void that records the expiry of ``pending`` (deterministic id, so concurrent sweeps agree)."""
    return dataclasses.replace(
        Transfer.void(EXPIRY_ID_PREFIX + pending.id, pending, code=EXPIRY_CODE), created_at=now
    )


# --- invariants --------------------------------------------------------------------------------------------


def _limit_violations(a: Account) -> list[Violation]:
    found = []
    totals = (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
    if any(v < 0 for v in totals):
        found.append(Violation("negative_total", f"account {a.id} has a negative total {totals}", a.id))
    if a.flags.debits_must_not_exceed_credits and a.debits_pending + a.debits_posted > a.credits_posted:
        found.append(
            Violation(
                "exceeds_credits",
                f"account {a.id}: debits {a.debits_pending}+{a.debits_posted} exceed credits {a.credits_posted}",
                a.id,
            )
        )
    if a.flags.credits_must_not_exceed_debits and a.credits_pending + a.credits_posted > a.debits_posted:
        found.append(
            Violation(
                "exceeds_debits",
                f"account {a.id}: credits {a.credits_pending}+{a.credits_posted} exceed debits {a.debits_posted}",
                a.id,
            )
        )
    return found


def check_invariants(
    accounts: Iterable[Account], transfers: Iterable[Transfer], now: datetime | None = None
) -> list[Violation]:
    """Every rule the ledger promises, checked from scratch. Empty list = healthy.

    ``transfers`` is consumed once, in any order, so a store can stream it. Only pending transfers and
    their resolutions are held in memory. With ``now``, a pending transfer past its timeout that no sweep
    has voided yet is reported too (``expired_pending_not_voided``).
    """
    accounts_by_id = {a.id: a for a in accounts}
    violations: list[Violation] = []

    def report(code: str, message: str, subject: str) -> None:
        violations.append(Violation(code, message, subject))

    # Expected totals per account: [debits_pending, debits_posted, credits_pending, credits_posted].
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    pendings: dict[str, Transfer] = {}
    resolutions: dict[str, list[Transfer]] = defaultdict(list)
    DP, DPO, CP, CPO = range(4)

    for t in transfers:
        if t.amount <= 0:
            report("nonpositive_amount", f"transfer {t.id} has amount {t.amount}", t.id)
        for side, account_id in (("debit", t.debit_account_id), ("credit", t.credit_account_id)):
            if account_id not in accounts_by_id:
                report("unknown_account", f"transfer {t.id}: {side} account {account_id} does not exist", t.id)
        if t.kind is TransferKind.SINGLE:
            expected[t.debit_account_id][DPO] += t.amount
            expected[t.credit_account_id][CPO] += t.amount
        elif t.kind is TransferKind.PENDING:
            pendings[t.id] = t
            expected[t.debit_account_id][DP] += t.amount
            expected[t.credit_account_id][CP] += t.amount
        else:
            resolutions[t.pending_id or ""].append(t)

    for pending_id, resolved_by in resolutions.items():
        for r in resolved_by:
            if r.kind is TransferKind.POST_PENDING:
                expected[r.debit_account_id][DPO] += r.amount
                expected[r.credit_account_id][CPO] += r.amount
        pending = pendings.get(pending_id)
        names = ", ".join(r.id for r in resolved_by)
        if pending is None:
            report("dangling_pending_id", f"{names} resolve(s) {pending_id!r}, not a pending transfer", pending_id)
            continue
        # The resolution releases the whole reservation, whatever it posts.
        expected[pending.debit_account_id][DP] -= pending.amount
        expected[pending.credit_account_id][CP] -= pending.amount
        if len(resolved_by) > 1:
            report("pending_resolved_twice", f"pending {pending_id} resolved by {names}", pending_id)
        for r in resolved_by:
            if (r.debit_account_id, r.credit_account_id) != (pending.debit_account_id, pending.credit_account_id):
                report("resolution_accounts_differ", f"{r.id} moves other accounts than {pending_id}", r.id)
            if r.kind is TransferKind.POST_PENDING and r.amount > pending.amount:
                report("post_exceeds_pending", f"{r.id} posts {r.amount} > pending {pending.amount}", r.id)
            expires_at = pending.expires_at
            if (
                r.kind is TransferKind.POST_PENDING
                and expires_at is not None
                and r.created_at is not None
                and r.created_at >= expires_at
            ):
                report("posted_after_expiry", f"{r.id} posted expired pending {pending_id}", r.id)

    if now is not None:
        for pending in pendings.values():
            if pending.id not in resolutions and pending_state(pending, None, now) is PendingState.EXPIRED:
                message = f"pending {pending.id} expired but still reserves funds"
                report("expired_pending_not_voided", message, pending.id)

    sums_by_ledger: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for a in accounts_by_id.values():
        actual = [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]
        want = expected.get(a.id, [0, 0, 0, 0])
        if actual != want:
            message = (
                f"account {a.id}: totals (debits pending/posted, credits pending/posted) are {actual}, "
                f"its transfers sum to {want}"
            )
            report("account_totals_mismatch", message, a.id)
        violations.extend(_limit_violations(a))
        sums = sums_by_ledger[a.ledger]
        for i, value in enumerate(actual):
            sums[i] += value
    for ledger, (dp, dpo, cp, cpo) in sorted(sums_by_ledger.items()):
        if dpo != cpo:
            report("posted_unbalanced", f"ledger {ledger}: debits posted {dpo} != credits posted {cpo}", ledger)
        if dp != cp:
            report("pending_unbalanced", f"ledger {ledger}: debits pending {dp} != credits pending {cp}", ledger)
    return violations


# --- in-memory ledger ---------------------------------------------------------------------------------------


class InMemoryLedger:
    """The rules applied to dictionaries: the reference model for property tests and a fake for services.

    Same contract as the database store: ``create_transfers`` is all-or-nothing and raises ``LedgerError``
    on the first refused transfer. ``clock`` stamps transfers unless a call passes ``now``.
    """

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.clock = clock
        self.accounts: dict[str, Account] = {}
        self.transfers: dict[str, Transfer] = {}
        self._resolution_of: dict[str, Transfer] = {}  # pending id -> its post/void

    def open_account(self, id: str, ledger: str, code: str, flags: AccountFlags = AccountFlags()) -> AccountResult:
        account = Account(id=id, ledger=ledger, code=code, flags=flags)
        result = account_definition_result(account, self.accounts.get(id))
        if result is AccountResult.OK:
            self.accounts[id] = account
        elif result is not AccountResult.EXISTS:
            raise LedgerError(result, id)
        return result

    def create_transfers(
        self, transfers: Sequence[Transfer], now: datetime | None = None
    ) -> list[tuple[str, TransferResult]]:
        now = now or self.clock()
        accounts = dict(self.accounts)
        new: dict[str, Transfer] = {}
        resolution_of: dict[str, Transfer] = {}
        results = []

        def lookup(transfer_id: str | None) -> Transfer | None:
            if transfer_id is None:
                return None
            return new.get(transfer_id) or self.transfers.get(transfer_id)

        for t in transfers:
            t = t.stamped(now)
            pending = lookup(t.pending_id) if t.kind.resolves_pending else None
            resolution = None
            if t.pending_id is not None:
                resolution = resolution_of.get(t.pending_id) or self._resolution_of.get(t.pending_id)
            result = validate_transfer(
                t,
                debit=accounts.get(t.debit_account_id),
                credit=accounts.get(t.credit_account_id),
                existing=lookup(t.id),
                pending=pending,
                resolution=resolution,
            )
            if not result.succeeded:
                raise LedgerError(result, t.id)
            if result is TransferResult.OK:
                debit, credit = apply_transfer(
                    t, accounts[t.debit_account_id], accounts[t.credit_account_id], pending
                )
                accounts[debit.id], accounts[credit.id] = debit, credit
                new[t.id] = t
                if t.pending_id is not None:
                    resolution_of[t.pending_id] = t
            results.append((t.id, result))

        self.accounts = accounts
        self.transfers.update(new)
        self._resolution_of.update(resolution_of)
        return results

    def pending_state(self, pending_id: str, now: datetime | None = None) -> PendingState:
        return pending_state(self.transfers[pending_id], self._resolution_of.get(pending_id), now or self.clock())

    def expire_pending(self, now: datetime | None = None) -> list[Transfer]:
        now = now or self.clock()
        due = [
            t
            for t in self.transfers.values()
            if t.kind is TransferKind.PENDING
            and t.id not in self._resolution_of
            and pending_state(t, None, now) is PendingState.EXPIRED
        ]
        voids = [expiry_void(t, now) for t in due]
        self.create_transfers(voids, now)
        return voids

    def check(self, now: datetime | None = None) -> list[Violation]:
        return check_invariants(self.accounts.values(), self.transfers.values(), now)


def account_definition_result(new: Account, existing: Account | None) -> AccountResult:
    if not new.id:
        return AccountResult.ID_MUST_NOT_BE_EMPTY
    if len(new.id) > MAX_ID_LENGTH:
        return AccountResult.ID_TOO_LONG
    if not new.ledger:
        return AccountResult.LEDGER_MUST_NOT_BE_EMPTY
    if len(new.ledger) > MAX_CODE_LENGTH:
        return AccountResult.LEDGER_TOO_LONG
    if len(new.code) > MAX_CODE_LENGTH:
        return AccountResult.CODE_TOO_LONG
    if existing is None:
        return AccountResult.OK
    return AccountResult.EXISTS if existing.same_definition(new) else AccountResult.EXISTS_WITH_DIFFERENT_FIELDS


def accounts_for(transfers: Iterable[Transfer]) -> list[str]:
    """Ids of the accounts a batch touches, sorted: the order to lock them in (no deadlocks)."""
    return sorted({i for t in transfers for i in (t.debit_account_id, t.credit_account_id)})


__all__ = [
    "Account",
    "AccountFlags",
    "AccountResult",
    "EXPIRY_CODE",
    "InMemoryLedger",
    "LedgerError",
    "PendingState",
    "Transfer",
    "TransferKind",
    "TransferResult",
    "Violation",
    "account_definition_result",
    "accounts_for",
    "apply_transfer",
    "check_invariants",
    "expiry_void",
    "pending_state",
    "validate_transfer",
]
