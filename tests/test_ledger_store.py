"""The ledger in the database, on SQLite and PostgreSQL: atomicity, idempotency, two-phase, races."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError

from medpay.adapters.db.engine import make_engine, normalize_url
from medpay.adapters.db.ledger_store import LedgerStore, check_ledger
from medpay.adapters.db.ledger_tables import LedgerAccountRow, LedgerTransferRow
from medpay.domain.ledger import (
    AccountFlags,
    AccountResult,
    LedgerError,
    PendingState,
    Transfer,
    TransferKind,
    TransferResult,
)

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)
PERSONAL = AccountFlags(debits_must_not_exceed_credits=True)


class Clock:
    """A test clock: time moves only when the test says so."""

    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def funded(session_factory, clock):
    """Accounts fund, hosp and psn (personal, holding 100.00 yuan)."""
    with session_factory.begin() as session:
        store = LedgerStore(session, clock)
        store.open_account("fund", "cny", "fund")
        store.open_account("hosp", "cny", "institution")
        store.open_account("psn", "cny", "personal", PERSONAL)
        store.create_transfers([Transfer("topup", "fund", "psn", 10_000, code="topup")])
    return session_factory


def balance(session_factory, account_id: str) -> int:
    with session_factory() as session:
        return LedgerStore(session).account(account_id).balance


def test_open_account_is_idempotent(session_factory):
    with session_factory.begin() as session:
        store = LedgerStore(session)
        assert store.open_account("psn", "cny", "personal", PERSONAL) is AccountResult.OK
        assert store.open_account("psn", "cny", "personal", PERSONAL) is AccountResult.EXISTS
        with pytest.raises(LedgerError) as caught:
            store.open_account("psn", "cny", "personal")
        assert caught.value.code is AccountResult.EXISTS_WITH_DIFFERENT_FIELDS
        assert store.account("psn").flags == PERSONAL
        assert set(store.accounts(["psn", "nobody"])) == {"psn"}


def test_transfer_round_trips_with_aware_timestamps(funded, clock):
    with funded.begin() as session:
        store = LedgerStore(session, clock)
        store.create_transfers([Transfer("pay", "psn", "hosp", 2_500, code="settle", ref="setl-1")])
    with funded() as session:
        store = LedgerStore(session)
        [pay] = store.transfers_by_ref("setl-1")
        assert pay == Transfer("pay", "psn", "hosp", 2_500, code="settle", ref="setl-1", created_at=T0)
        assert store.account("psn").balance == 7_500
        assert store.account("hosp").credits_posted == 2_500
        assert check_ledger(session) == []


def test_a_refused_batch_changes_nothing(funded, clock):
    batch = [Transfer("a", "psn", "hosp", 6_000, ref="s"), Transfer("b", "psn", "hosp", 6_000, ref="s")]
    with pytest.raises(LedgerError) as caught:
        with funded.begin() as session:
            LedgerStore(session, clock).create_transfers(batch)
    assert (caught.value.code, caught.value.subject) == (TransferResult.EXCEEDS_CREDITS, "b")
    assert balance(funded, "psn") == 10_000

    # Even a caller that catches the error and commits its transaction keeps nothing of the batch.
    with funded.begin() as session:
        store = LedgerStore(session, clock)
        with pytest.raises(LedgerError):
            store.create_transfers(batch)
        store.create_transfers([Transfer("c", "psn", "hosp", 1_000, ref="s")])
    with funded() as session:
        assert [t.id for t in LedgerStore(session).transfers_by_ref("s")] == ["c"]
        assert check_ledger(session) == []


def test_identical_retry_is_idempotent_and_a_changed_one_is_refused(funded, clock):
    pay = Transfer("pay", "psn", "hosp", 2_500, ref="setl-1")
    with funded.begin() as session:
        assert LedgerStore(session, clock).create_transfers([pay]) == [("pay", TransferResult.OK)]
    clock.now += timedelta(minutes=1)
    with funded.begin() as session:
        assert LedgerStore(session, clock).create_transfers([pay]) == [("pay", TransferResult.EXISTS)]
    assert balance(funded, "psn") == 7_500
    with pytest.raises(LedgerError) as caught, funded.begin() as session:
        LedgerStore(session, clock).create_transfers([Transfer("pay", "psn", "hosp", 2_600, ref="setl-1")])
    assert caught.value.code is TransferResult.EXISTS_WITH_DIFFERENT_FIELDS


def test_two_phase_post_and_void(funded, clock):
    hold = Transfer("hold", "psn", "hosp", 4_000, kind=TransferKind.PENDING, ref="setl-2")
    hold2 = Transfer("hold2", "psn", "hosp", 1_000, kind=TransferKind.PENDING, ref="setl-3")
    with funded.begin() as session:
        store = LedgerStore(session, clock)
        store.create_transfers([hold, hold2])
        assert store.account("psn").available == 5_000
        store.create_transfers([Transfer.post("capture", hold, 3_000), Transfer.void("release", hold2)])
        assert store.pending_state("hold") is PendingState.POSTED
        assert store.pending_state("hold2") is PendingState.VOIDED
    with funded.begin() as session:
        store = LedgerStore(session, clock)
        psn = store.account("psn")
        assert (psn.balance, psn.available, psn.debits_pending) == (7_000, 7_000, 0)
        for second, code in [
            (Transfer.post("capture-2", hold), TransferResult.PENDING_TRANSFER_ALREADY_POSTED),
            (Transfer.void("release-2", hold), TransferResult.PENDING_TRANSFER_ALREADY_POSTED),
            (Transfer.post("capture-3", hold2), TransferResult.PENDING_TRANSFER_ALREADY_VOIDED),
        ]:
            with pytest.raises(LedgerError) as caught:
                store.create_transfers([second])
            assert caught.value.code is code
        assert [t.id for t in store.transfers_by_ref("setl-2")] == ["capture", "hold"]
        assert check_ledger(session) == []


def test_expired_pending_cannot_be_posted_and_the_sweep_voids_it(funded, clock):
    hold = Transfer("hold", "psn", "hosp", 4_000, kind=TransferKind.PENDING, timeout_s=60)
    with funded.begin() as session:
        LedgerStore(session, clock).create_transfers([hold])
    clock.now = T0 + timedelta(seconds=60)
    with funded.begin() as session:
        store = LedgerStore(session, clock)
        assert store.pending_state("hold") is PendingState.EXPIRED
        with pytest.raises(LedgerError) as caught:
            store.create_transfers([Transfer.post("capture", hold)])
        assert caught.value.code is TransferResult.PENDING_TRANSFER_EXPIRED
        assert [v.code for v in check_ledger(session, now=clock.now)] == ["expired_pending_not_voided"]
        voids = store.expire_pending()
        assert [v.id for v in voids] == ["expire:hold"]
        assert store.expire_pending() == []
        assert store.account("psn").available == 10_000
        assert store.pending_state("hold") is PendingState.EXPIRED
        assert check_ledger(session, now=clock.now) == []


def test_check_ledger_detects_a_tampered_total(funded):
    with funded.begin() as session:
        session.execute(
            update(LedgerAccountRow.__table__)
            .where(LedgerAccountRow.id == "hosp")
            .values(credits_posted=LedgerAccountRow.credits_posted + 1)
        )
    with funded() as session:
        codes = {v.code for v in check_ledger(session)}
    assert codes == {"account_totals_mismatch", "posted_unbalanced"}


def test_database_constraints_back_up_the_rules(funded):
    # Overdrawing a personal account behind the store's back is refused by a CHECK constraint.
    with pytest.raises(IntegrityError), funded.begin() as session:
        session.execute(update(LedgerAccountRow.__table__).where(LedgerAccountRow.id == "psn").values(debits_posted=10_001))
    # A pending transfer can be resolved only once, whatever the writer.
    row = dict(debit_account_id="psn", credit_account_id="hosp", amount=1, code="", ref="", timeout_s=0, created_at=T0)
    with funded.begin() as session:
        session.execute(insert(LedgerTransferRow.__table__).values(id="h", kind="pending", **row))
        session.execute(insert(LedgerTransferRow.__table__).values(id="p1", kind="post_pending", pending_id="h", **row))
    with pytest.raises(IntegrityError), funded.begin() as session:
        session.execute(insert(LedgerTransferRow.__table__).values(id="p2", kind="void_pending", pending_id="h", **row))


def _race(session_factory, clock, transfers: list[Transfer]) -> list[TransferResult]:
    """Submit each transfer from its own thread and connection, all at once."""
    start = threading.Barrier(len(transfers))

    def attempt(transfer: Transfer) -> TransferResult:
        start.wait()
        try:
            with session_factory.begin() as session:
                return LedgerStore(session, clock).create_transfers([transfer])[0][1]
        except LedgerError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=len(transfers)) as pool:
        return list(pool.map(attempt, transfers))


def test_parallel_overdraw_lets_exactly_three_through(funded, clock):
    spends = [Transfer(f"spend-{i}", "psn", "hosp", 3_000) for i in range(8)]
    results = _race(funded, clock, spends)
    assert sorted(results) == sorted([TransferResult.OK] * 3 + [TransferResult.EXCEEDS_CREDITS] * 5)
    assert balance(funded, "psn") == 1_000
    with funded() as session:
        assert check_ledger(session) == []


def test_parallel_resolutions_post_a_pending_exactly_once(funded, clock):
    hold = Transfer("hold", "psn", "hosp", 4_000, kind=TransferKind.PENDING)
    with funded.begin() as session:
        LedgerStore(session, clock).create_transfers([hold])
    attempts = [Transfer.post(f"capture-{i}", hold) for i in range(4)] + [Transfer.void(f"void-{i}", hold) for i in range(4)]
    results = _race(funded, clock, attempts)
    assert results.count(TransferResult.OK) == 1
    assert set(results) - {TransferResult.OK} <= {
        TransferResult.PENDING_TRANSFER_ALREADY_POSTED,
        TransferResult.PENDING_TRANSFER_ALREADY_VOIDED,
    }
    with funded() as session:
        assert check_ledger(session) == []


def test_make_engine_accepts_plain_postgresql_urls(tmp_path):
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    engine = make_engine(f"sqlite:///{tmp_path}/nested/dir/medpay.db")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert (tmp_path / "nested" / "dir" / "medpay.db").exists()
    finally:
        engine.dispose()
    with pytest.raises(ValueError):
        make_engine("mysql://u@h/db")


def test_sqlite_writers_take_the_lock_at_begin(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/lock.db")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        # No waiting on the second connection (set on the raw connection, outside any transaction):
        # it must fail at BEGIN, before reading anything.
        with engine.connect() as first, engine.connect() as second:
            second.connection.dbapi_connection.execute("PRAGMA busy_timeout = 0")
            first.execute(select(text("1")))  # opens BEGIN IMMEDIATE on the first connection
            with pytest.raises(Exception, match="locked"):
                second.execute(select(text("1")))
    finally:
        engine.dispose()


def test_an_account_opened_by_a_rolled_back_transaction_is_not_remembered(engine, session_factory, clock):
    """Accounts without a limit are remembered per connection once seen committed, so postings to funds and
    institutions read nothing; one that only a rolled-back transaction created must be opened again."""
    from medpay.domain.posting import AccountSpec

    spec = AccountSpec("medins:H1:fund", "medins_fund", ledger="cny")
    with engine.connect() as conn:  # one connection throughout, as a pooled worker connection would be
        with conn.begin() as tx:
            store = LedgerStore(conn, clock)
            store.open_account("fund", "cny", "fund")
            store.ensure_accounts([spec])
            store.create_transfers([Transfer("t1", "fund", spec.id, 100)])
            tx.rollback()
        with conn.begin():
            store = LedgerStore(conn, clock)
            store.open_account("fund", "cny", "fund")
            store.ensure_accounts([spec])  # opens it again: the rolled-back one was not remembered
            store.create_transfers([Transfer("t2", "fund", spec.id, 100)])
        with conn.begin():
            store = LedgerStore(conn, clock)
            store.ensure_accounts([spec])  # read committed now: remembered from here on
            assert store.create_transfers([Transfer("t3", "fund", spec.id, 50)]) == [("t3", TransferResult.OK)]
        with conn.begin():
            store = LedgerStore(conn, clock)
            store.open_account = None  # remembered: nothing is opened …
            store.accounts = lambda ids: {} if spec.id in set(ids) else LedgerStore.accounts(store, ids)
            store.ensure_accounts([spec])  # … nor read
            assert store.create_transfers([Transfer("t4", "fund", spec.id, 25)]) == [("t4", TransferResult.OK)]
    with session_factory() as session:
        assert LedgerStore(session).account(spec.id).credits_posted == 175
        assert check_ledger(session) == []
