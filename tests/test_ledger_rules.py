"""Pure ledger rules: unit tests and property tests against InMemoryLedger."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from medpay.domain.ledger import (
    Account,
    AccountFlags,
    AccountResult,
    InMemoryLedger,
    LedgerError,
    PendingState,
    Transfer,
    TransferKind,
    TransferResult,
    check_invariants,
)

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)
PERSONAL = AccountFlags(debits_must_not_exceed_credits=True)
CREDIT_LINE = AccountFlags(credits_must_not_exceed_debits=True)


def make_ledger() -> InMemoryLedger:
    ledger = InMemoryLedger()
    ledger.open_account("fund", "cny", "fund")
    ledger.open_account("bank", "cny", "bank")
    ledger.open_account("hosp", "cny", "institution")
    ledger.open_account("psn", "cny", "personal", PERSONAL)
    ledger.open_account("line", "cny", "credit_line", CREDIT_LINE)
    ledger.open_account("usd", "usd", "other")
    return ledger


def refused(ledger: InMemoryLedger, *transfers: Transfer, now: datetime = T0) -> TransferResult:
    with pytest.raises(LedgerError) as caught:
        ledger.create_transfers(list(transfers), now)
    return caught.value.code


@pytest.fixture
def ledger() -> InMemoryLedger:
    ledger = make_ledger()
    ledger.create_transfers([Transfer("topup", "fund", "psn", 10_000, code="topup")], T0)
    return ledger


# --- accounts ----------------------------------------------------------------------------------------------


def test_open_account_is_idempotent_and_refuses_a_different_definition():
    ledger = make_ledger()
    assert ledger.open_account("psn", "cny", "personal", PERSONAL) is AccountResult.EXISTS
    with pytest.raises(LedgerError) as caught:
        ledger.open_account("psn", "cny", "personal")
    assert caught.value.code is AccountResult.EXISTS_WITH_DIFFERENT_FIELDS


def test_account_flags_are_mutually_exclusive():
    with pytest.raises(ValueError):
        AccountFlags(debits_must_not_exceed_credits=True, credits_must_not_exceed_debits=True)


def test_balance_helpers():
    a = Account("a", "cny", "personal", PERSONAL, debits_pending=300, debits_posted=200, credits_posted=1000)
    assert (a.balance, a.available) == (800, 500)
    line = Account("l", "cny", "line", CREDIT_LINE, debits_posted=5000, credits_posted=1000, credits_pending=500)
    assert (line.debit_balance, line.debit_available) == (4000, 3500)


# --- single-phase transfers ----------------------------------------------------------------------------------


def test_single_transfer_moves_posted_totals(ledger):
    assert ledger.create_transfers([Transfer("pay", "psn", "hosp", 2_500)], T0) == [("pay", TransferResult.OK)]
    assert ledger.accounts["psn"].balance == 7_500
    assert ledger.accounts["hosp"].credits_posted == 2_500
    assert ledger.transfers["pay"].created_at == T0
    assert ledger.check() == []


def test_personal_account_never_goes_negative(ledger):
    assert refused(ledger, Transfer("pay", "psn", "hosp", 10_001)) is TransferResult.EXCEEDS_CREDITS
    ledger.create_transfers([Transfer("pay", "psn", "hosp", 10_000)], T0)
    assert ledger.accounts["psn"].balance == 0


def test_credit_line_never_exceeds_its_limit():
    ledger = make_ledger()
    ledger.create_transfers([Transfer("grant", "line", "bank", 50_000, code="limit")], T0)
    ledger.create_transfers([Transfer("draw1", "hosp", "line", 30_000)], T0)
    assert refused(ledger, Transfer("draw2", "hosp", "line", 20_001)) is TransferResult.EXCEEDS_DEBITS
    ledger.create_transfers([Transfer("draw2", "hosp", "line", 20_000)], T0)
    assert ledger.accounts["line"].debit_available == 0


@pytest.mark.parametrize(
    ("transfer", "code"),
    [
        (Transfer("", "psn", "hosp", 1), TransferResult.ID_MUST_NOT_BE_EMPTY),
        (Transfer("x" * 101, "psn", "hosp", 1), TransferResult.ID_TOO_LONG),
        (Transfer("t", "psn", "hosp", 0), TransferResult.AMOUNT_MUST_NOT_BE_ZERO),
        (Transfer("t", "psn", "hosp", -5), TransferResult.AMOUNT_MUST_NOT_BE_NEGATIVE),
        (Transfer("t", "psn", "psn", 1), TransferResult.ACCOUNTS_MUST_BE_DIFFERENT),
        (Transfer("t", "psn", "hosp", 1, pending_id="p"), TransferResult.PENDING_ID_MUST_NOT_BE_SET),
        (Transfer("t", "psn", "hosp", 1, timeout_s=5), TransferResult.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
        (Transfer("t", "psn", "hosp", 1, kind="pending", timeout_s=-1), TransferResult.TIMEOUT_MUST_NOT_BE_NEGATIVE),
        (Transfer("t", "psn", "hosp", 1, kind="post_pending"), TransferResult.PENDING_ID_REQUIRED),
        (Transfer("t", "nobody", "hosp", 1), TransferResult.DEBIT_ACCOUNT_NOT_FOUND),
        (Transfer("t", "psn", "nobody", 1), TransferResult.CREDIT_ACCOUNT_NOT_FOUND),
        (Transfer("t", "psn", "usd", 1), TransferResult.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER),
        (Transfer("t", "fund", "hosp", 2**63), TransferResult.OVERFLOWS_DEBITS),
        (Transfer("t", "psn", "hosp", 1, code="c" * 33), TransferResult.CODE_TOO_LONG),
    ],
)
def test_invalid_transfers_are_refused_with_a_named_code(ledger, transfer, code):
    assert refused(ledger, transfer) is code


def test_error_names_the_transfer(ledger):
    with pytest.raises(LedgerError, match="exceeds_credits: 'too-much'"):
        ledger.create_transfers([Transfer("too-much", "psn", "hosp", 99_999)], T0)


def test_money_must_be_integer_fen():
    with pytest.raises(TypeError):
        Transfer("t", "psn", "hosp", 4.52)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Transfer("t", "psn", "hosp", True)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Transfer("t", "psn", "hosp", 1, kind="refund")  # type: ignore[arg-type]


def test_a_batch_is_all_or_nothing(ledger):
    before = (dict(ledger.accounts), dict(ledger.transfers))
    code = refused(ledger, Transfer("a", "psn", "hosp", 6_000), Transfer("b", "psn", "hosp", 6_000))
    assert code is TransferResult.EXCEEDS_CREDITS
    assert (ledger.accounts, ledger.transfers) == before


# --- idempotency ---------------------------------------------------------------------------------------------


def test_identical_retry_answers_exists_and_moves_nothing(ledger):
    pay = Transfer("pay", "psn", "hosp", 2_500, ref="setl-1")
    ledger.create_transfers([pay], T0)
    later = T0 + timedelta(minutes=5)
    assert ledger.create_transfers([pay], later) == [("pay", TransferResult.EXISTS)]
    assert ledger.accounts["psn"].balance == 7_500
    assert ledger.transfers["pay"].created_at == T0  # the first answer stands


def test_same_id_with_different_fields_is_refused(ledger):
    ledger.create_transfers([Transfer("pay", "psn", "hosp", 2_500)], T0)
    assert refused(ledger, Transfer("pay", "psn", "hosp", 2_600)) is TransferResult.EXISTS_WITH_DIFFERENT_FIELDS


# --- two-phase transfers -----------------------------------------------------------------------------------


def test_pending_reserves_and_partial_post_releases_the_rest(ledger):
    hold = Transfer("hold", "psn", "hosp", 4_000, kind=TransferKind.PENDING)
    ledger.create_transfers([hold], T0)
    psn = ledger.accounts["psn"]
    assert (psn.balance, psn.available) == (10_000, 6_000)
    assert refused(ledger, Transfer("over", "psn", "hosp", 6_001)) is TransferResult.EXCEEDS_CREDITS

    ledger.create_transfers([Transfer.post("capture", hold, 3_000)], T0)
    psn = ledger.accounts["psn"]
    assert (psn.balance, psn.available, psn.debits_pending) == (7_000, 7_000, 0)
    assert ledger.accounts["hosp"].credits_posted == 3_000
    assert ledger.pending_state("hold", T0) is PendingState.POSTED
    assert ledger.check() == []


def test_pending_resolves_exactly_once(ledger):
    hold = Transfer("hold", "psn", "hosp", 4_000, kind="pending")
    ledger.create_transfers([hold, Transfer.void("release", hold)], T0)
    assert ledger.pending_state("hold", T0) is PendingState.VOIDED
    assert ledger.accounts["psn"].available == 10_000
    assert refused(ledger, Transfer.post("capture", hold)) is TransferResult.PENDING_TRANSFER_ALREADY_VOIDED
    assert refused(ledger, Transfer.void("release-2", hold)) is TransferResult.PENDING_TRANSFER_ALREADY_VOIDED
    # The original void, retried, is still just "exists".
    assert ledger.create_transfers([Transfer.void("release", hold)], T0) == [("release", TransferResult.EXISTS)]

    hold2 = Transfer("hold2", "psn", "hosp", 1_000, kind="pending")
    ledger.create_transfers([hold2, Transfer.post("capture2", hold2)], T0)
    assert refused(ledger, Transfer.post("capture3", hold2)) is TransferResult.PENDING_TRANSFER_ALREADY_POSTED
    assert refused(ledger, Transfer.void("release3", hold2)) is TransferResult.PENDING_TRANSFER_ALREADY_POSTED


def test_resolution_must_match_its_pending(ledger):
    hold = Transfer("hold", "psn", "hosp", 4_000, kind="pending")
    ledger.create_transfers([hold], T0)
    single = Transfer("pay", "psn", "hosp", 100)
    ledger.create_transfers([single], T0)
    assert refused(ledger, Transfer.post("p", dataclasses.replace(hold, id="ghost"))) is TransferResult.PENDING_TRANSFER_NOT_FOUND
    assert refused(ledger, Transfer.post("p", single)) is TransferResult.PENDING_TRANSFER_NOT_PENDING
    assert refused(ledger, Transfer.post("p", hold, 4_001)) is TransferResult.EXCEEDS_PENDING_TRANSFER_AMOUNT
    wrong_void = dataclasses.replace(Transfer.void("v", hold), amount=1)
    assert refused(ledger, wrong_void) is TransferResult.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
    wrong_accounts = dataclasses.replace(Transfer.post("p", hold), debit_account_id="fund")
    assert refused(ledger, wrong_accounts) is TransferResult.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID


def test_expired_pending_cannot_be_posted_and_is_voided_by_the_sweep(ledger):
    hold = Transfer("hold", "psn", "hosp", 4_000, kind="pending", timeout_s=60)
    ledger.create_transfers([hold], T0)
    deadline = T0 + timedelta(seconds=60)
    assert ledger.pending_state("hold", deadline - timedelta(microseconds=1)) is PendingState.PENDING
    assert ledger.pending_state("hold", deadline) is PendingState.EXPIRED
    assert refused(ledger, Transfer.post("capture", hold), now=deadline) is TransferResult.PENDING_TRANSFER_EXPIRED
    assert refused(ledger, Transfer.void("release", hold), now=deadline) is TransferResult.PENDING_TRANSFER_EXPIRED
    assert [v.code for v in ledger.check(now=deadline)] == ["expired_pending_not_voided"]

    voids = ledger.expire_pending(deadline)
    assert [(v.id, v.pending_id, v.code) for v in voids] == [("expire:hold", "hold", "expire")]
    assert ledger.accounts["psn"].available == 10_000
    assert ledger.pending_state("hold", deadline) is PendingState.EXPIRED
    assert ledger.expire_pending(deadline + timedelta(hours=1)) == []
    assert ledger.check(now=deadline) == []


def test_pending_without_timeout_never_expires(ledger):
    ledger.create_transfers([Transfer("hold", "psn", "hosp", 1, kind="pending")], T0)
    assert ledger.expire_pending(T0 + timedelta(days=3650)) == []
    assert ledger.pending_state("hold", T0 + timedelta(days=3650)) is PendingState.PENDING


# --- invariants detect damage ------------------------------------------------------------------------------


def test_check_invariants_reports_each_kind_of_damage(ledger):
    hold = Transfer("hold", "psn", "hosp", 1_000, kind="pending", created_at=T0)
    ledger.create_transfers([hold, Transfer.post("cap", hold)], T0)
    accounts = dict(ledger.accounts)
    transfers = list(ledger.transfers.values())
    assert check_invariants(accounts.values(), transfers) == []

    tampered = dict(accounts, psn=dataclasses.replace(accounts["psn"], credits_posted=accounts["psn"].credits_posted + 1))
    codes = {v.code for v in check_invariants(tampered.values(), transfers)}
    assert codes == {"account_totals_mismatch", "posted_unbalanced"}

    overdrawn = dict(accounts, psn=dataclasses.replace(accounts["psn"], debits_posted=20_000))
    assert "exceeds_credits" in {v.code for v in check_invariants(overdrawn.values(), transfers)}

    extra = [
        Transfer.post("cap-again", hold).stamped(T0),
        Transfer.void("ghost", dataclasses.replace(hold, id="nope")).stamped(T0),
        dataclasses.replace(Transfer("neg", "psn", "hosp", 1, created_at=T0), amount=-1),
    ]
    codes = {v.code for v in check_invariants(accounts.values(), transfers + extra)}
    assert {"pending_resolved_twice", "dangling_pending_id", "nonpositive_amount"} <= codes


# --- properties --------------------------------------------------------------------------------------------

# Mostly meaningful pairs (top-ups, payments, credit draws), with a few invalid ones mixed in.
VALID_PAIRS = [("fund", "psn"), ("psn", "hosp"), ("psn", "fund"), ("hosp", "line"), ("line", "bank"), ("bank", "line")]
INVALID_PAIRS = [("psn", "psn"), ("psn", "usd"), ("psn", "nobody")]
account_pair = st.sampled_from(VALID_PAIRS * 5 + INVALID_PAIRS)
# Hypothesis favours small integers; round amounts near the balances make limits bite.
amount = st.one_of(st.sampled_from([1_000, 2_500, 4_000, 6_000, 8_000, 12_000, 20_000, 0, -1]), st.integers(1, 9_000))
operation = st.one_of(
    st.tuples(st.just("single"), account_pair, amount),
    st.tuples(st.just("pending"), account_pair, amount, st.sampled_from([0, 30, 30, 300])),
    st.tuples(st.just("post"), st.integers(0, 50), st.integers(0, 6_000)),
    st.tuples(st.just("void"), st.integers(0, 50)),
    st.tuples(st.just("retry"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("advance"), st.integers(1, 400)),
    st.tuples(st.just("expire")),
    st.tuples(st.just("batch"), st.lists(st.tuples(account_pair, amount), min_size=2, max_size=3)),
)


def _pick(items: list, index: int):
    return items[index % len(items)] if items else None


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, max_size=60))
def test_random_operations_keep_every_invariant(operations):
    ledger = make_ledger()
    ledger.create_transfers([Transfer("grant", "line", "bank", 20_000), Transfer("topup", "fund", "psn", 8_000)], T0)
    now = T0
    submitted: list[Transfer] = []
    counter = 0

    def next_id() -> str:
        nonlocal counter
        counter += 1
        return f"t{counter}"

    for op in operations:
        batch: list[Transfer] = []
        kind = op[0]
        pendings = [t for t in submitted if t.kind is TransferKind.PENDING]
        if kind == "single":
            batch = [Transfer(next_id(), *op[1], op[2])]
        elif kind == "pending":
            batch = [Transfer(next_id(), *op[1], op[2], kind="pending", timeout_s=op[3])]
        elif kind == "post" and pendings:
            batch = [Transfer.post(next_id(), _pick(pendings, op[1]), op[2] or None)]
        elif kind == "void" and pendings:
            batch = [Transfer.void(next_id(), _pick(pendings, op[1]))]
        elif kind == "retry" and submitted:
            earlier = _pick(submitted, op[1])
            batch = [dataclasses.replace(earlier, created_at=None, ref="changed" if op[2] else earlier.ref)]
        elif kind == "advance":
            now += timedelta(seconds=op[1])
        elif kind == "expire":
            voids = ledger.expire_pending(now)
            event(f"expired {min(len(voids), 2)}+")
            assert all(ledger.pending_state(v.pending_id, now) is PendingState.EXPIRED for v in voids)
        elif kind == "batch":
            batch = [Transfer(next_id(), *pair, a) for pair, a in op[1]]
        if not batch:
            continue

        before = (dict(ledger.accounts), dict(ledger.transfers))
        try:
            results = ledger.create_transfers(batch, now)
        except LedgerError as error:
            event(f"refused: {error.code.value}")
            assert not error.code.succeeded
            assert (ledger.accounts, ledger.transfers) == before, "a refused batch must change nothing"
        else:
            for (transfer_id, result), t in zip(results, batch):
                event(f"{t.kind.value}: {result.value}")
                if result is TransferResult.EXISTS:
                    assert before[1][transfer_id].same_fields(t)
                    assert ledger.accounts == before[0] or len(batch) > 1
                else:
                    submitted.append(ledger.transfers[transfer_id])
        assert ledger.check() == [], ledger.check()
        for account in ledger.accounts.values():
            assert account.debits_pending + account.debits_posted <= account.credits_posted or not (
                account.flags.debits_must_not_exceed_credits
            )
            assert account.credits_pending + account.credits_posted <= account.debits_posted or not (
                account.flags.credits_must_not_exceed_debits
            )
    # Every pending transfer is resolved at most once, and never posted after its expiry.
    resolutions = [t for t in ledger.transfers.values() if t.kind.resolves_pending]
    assert len({t.pending_id for t in resolutions}) == len(resolutions)
    for r in resolutions:
        pending = ledger.transfers[r.pending_id]
        if r.kind is TransferKind.POST_PENDING and pending.expires_at is not None:
            assert r.created_at < pending.expires_at


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(VALID_PAIRS), st.integers(1, 800)), min_size=1, max_size=6))
def test_retrying_an_accepted_batch_changes_nothing(transfers):
    ledger = make_ledger()
    ledger.create_transfers([Transfer("topup", "fund", "psn", 5_000)], T0)
    batch = [Transfer(f"t{i}", *pair, a) for i, (pair, a) in enumerate(transfers)]
    try:
        ledger.create_transfers(batch, T0)
    except LedgerError:
        assume(False)  # only accepted batches are this law's subject; refused ones are tested elsewhere
    state = (dict(ledger.accounts), dict(ledger.transfers))
    results = ledger.create_transfers(batch, T0 + timedelta(hours=1))
    assert {r for _, r in results} == {TransferResult.EXISTS}
    assert (ledger.accounts, ledger.transfers) == state
