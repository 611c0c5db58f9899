"""One-scan settlement against the gateway simulator running as its own process, under each injected fault:
afterwards every charge has exactly one settlement, nothing is charged without one, and the ledger balances."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

import pytest

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.ledger_store import check_ledger
from medpay.adapters.gateway.http_gateway import HttpGateway
from medpay.adapters.gateway.port import sign_callback, statement_day
from medpay.adapters.policy_files import builtin_policies
from medpay.services import demo
from medpay.services.directory import Directory
from medpay.services.errors import Forbidden, Invalid, NotFound
from medpay.services.qr.one_scan import OneScanService
from medpay.services.persons import PersonService
from medpay.services.settlement import FeeLineInput, SettlementService
from tests.helpers_gateway import API_KEY, CallbackReceiver, gateway_simulator

H1, H2 = "H99990100001", "H99990100002"
EMP = "99990100000001"  # 2000.00 in the personal account: make the bill bigger than that to have a cash part
BLOOD = "002101000010000"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory):
    with gateway_simulator(tmp_path_factory.mktemp("gw"), None, "--timeout-delay", "1.2") as s:
        yield s


@pytest.fixture
def env(session_factory, sim):
    sim.reset()
    cipher = FieldCipher(os.urandom(32))
    demo.seed(session_factory, cipher)
    settlement = SettlementService(session_factory, builtin_policies(), cipher)
    gateway = HttpGateway(sim.url, "medpay-test", API_KEY, timeout=0.5)
    one = OneScanService(session_factory, settlement, gateway, cipher)
    persons = PersonService(session_factory, cipher)
    token = sim.payer(1_000_000)  # 10000.00 in the patient's wallet
    one.bind_payment_method(EMP, token)
    yield one, settlement, persons, token, sim, session_factory
    gateway.close()


def visit_with_bill(settlement: SettlementService, amount: str = "6000.00") -> str:
    v = settlement.register_visit(H1, EMP, "11")
    settlement.upload_fees(H1, v.mdtrt_id, [FeeLineInput("1", BLOOD, "1", amount, amount)])
    return v.mdtrt_id


def scan(persons: PersonService, business_type: str = "01301", at: str = H1) -> str:
    return persons.issue_ec_token(EMP, at, business_type, ttl=timedelta(minutes=5))


def wallet(sim, token: str) -> dict:
    return sim.payer_info(token)


def assert_one_settlement_per_charge(one: OneScanService, factory) -> None:
    # the statement days this test's payments may fall on, should it run across midnight in China
    for day in {statement_day(time.time() - 600), statement_day()}:
        rec = one.reconcile_statement(day)
        assert rec["balanced"], rec
    session = factory()
    try:
        assert check_ledger(session) == []
    finally:
        session.close()


def test_one_scan_settles_fund_account_and_cash_in_one_step(env) -> None:
    one, settlement, persons, token, sim, factory = env
    before = wallet(sim, token)["balance_fen"]
    mdtrt_id = visit_with_bill(settlement)
    res = one.pay(H1, "SCAN-1", scan(persons), mdtrt_id)
    assert res.state == "captured"
    info = res.output["setlinfo"]
    assert info["channel"] == "gateway" and info["psn_cash_pay"] > 0
    assert info["acct_pay"] + info["psn_cash_pay"] + info["fund_pay_sumamt"] == info["medfee_sumamt"]
    assert before - wallet(sim, token)["balance_fen"] == info["psn_cash_pay"]
    assert res.notify["medicalSettleState"] == "SUCCESS" and res.notify["medicalSettleNo"] == info["setl_id"]
    again = one.pay(H1, "SCAN-1", scan(persons), mdtrt_id)  # a retry: same answer, charged once
    assert again.setl_id == res.setl_id and before - wallet(sim, token)["balance_fen"] == info["psn_cash_pay"]
    assert_one_settlement_per_charge(one, factory)


def test_declined_payment_settles_nothing(env) -> None:
    one, settlement, persons, token, sim, factory = env
    poor = sim.payer(100)  # 1.00 in the wallet
    one.bind_payment_method(EMP, poor)
    mdtrt_id = visit_with_bill(settlement)
    res = one.pay(H1, "SCAN-2", scan(persons), mdtrt_id)
    assert res.state == "declined" and res.setl_id is None
    assert settlement.account_balance(EMP) == 200000  # the personal account was not touched either
    assert_one_settlement_per_charge(one, factory)


# the state a payment is in right after each fault: a lost answer whose effect a status query confirms is
# resolved at once; a refused or unanswered capture leaves the hold standing, in doubt, for recovery
FIRST_STATE = {("authorise", "timeout"): "captured", ("capture", "timeout"): "captured",
               ("capture", "fail"): "in_doubt", ("capture", "timeout_before"): "in_doubt"}


@pytest.mark.parametrize("operation, mode", list(FIRST_STATE))
def test_gateway_faults_resolve_to_exactly_one_charge(env, operation: str, mode: str) -> None:
    one, settlement, persons, token, sim, factory = env
    before = wallet(sim, token)["balance_fen"]
    mdtrt_id = visit_with_bill(settlement)
    sim.fault(operation, mode, count=1)
    res = one.pay(H1, f"SCAN-{operation}-{mode}", scan(persons), mdtrt_id)
    assert res.state == FIRST_STATE[(operation, mode)]
    assert any(e["operation"] == operation and e["fault"] == mode for e in sim.log("request"))  # it did fire
    if res.state == "in_doubt":
        one.recover()
        res = one.pay(H1, f"SCAN-{operation}-{mode}", scan(persons), mdtrt_id)
    assert res.state == "captured"
    assert before - wallet(sim, token)["balance_fen"] == res.output["setlinfo"]["psn_cash_pay"]
    assert_one_settlement_per_charge(one, factory)


def test_authorise_outcome_unknown_and_status_down_is_voided_by_recovery(env) -> None:
    one, settlement, persons, token, sim, factory = env
    before = wallet(sim, token)["balance_fen"]
    mdtrt_id = visit_with_bill(settlement)
    sim.fault("authorise", "timeout", count=1)  # the hold is made, the answer lost …
    sim.fault("status", "fail", count=1)  # … and the status query fails too
    res = one.pay(H1, "SCAN-DOUBT", scan(persons), mdtrt_id)
    assert res.state == "in_doubt" and res.setl_id is None
    assert wallet(sim, token)["held_fen"] > 0
    assert [state for _, state in one.recover()] == ["voided"]  # no settlement, so the hold is released
    assert wallet(sim, token)["balance_fen"] == before and wallet(sim, token)["held_fen"] == 0
    assert settlement.fee_lines(H1, mdtrt_id)[0]["setl_id"] == ""  # nothing settled
    assert_one_settlement_per_charge(one, factory)


def test_token_for_another_use_or_institution_is_refused_and_nothing_charged(env) -> None:
    one, settlement, persons, token, sim, factory = env
    before = wallet(sim, token)["balance_fen"]
    mdtrt_id = visit_with_bill(settlement)
    with pytest.raises(Forbidden) as e:
        one.pay(H1, "SCAN-BT", scan(persons, "01101"), mdtrt_id)  # a registration code can't pay
    assert e.value.field == "ecToken"
    with pytest.raises(Forbidden):
        one.pay(H1, "SCAN-INST", scan(persons, at=H2), mdtrt_id)
    assert wallet(sim, token)["balance_fen"] == before


def test_refund_cancels_the_settlement_and_returns_the_cash(env) -> None:
    one, settlement, persons, token, sim, factory = env
    before = wallet(sim, token)["balance_fen"]
    res = one.pay(H1, "SCAN-R", scan(persons), visit_with_bill(settlement))
    one.refund(H1, "SCAN-R-CANCEL", res.intent_id)
    assert wallet(sim, token)["balance_fen"] == before
    assert settlement.account_balance(EMP) == 200000
    assert_one_settlement_per_charge(one, factory)


def test_recovery_leaves_a_payment_that_is_still_in_progress_alone(env) -> None:
    """A gateway callback triggers recovery while another request is between hold and capture: recovery must
    not void that hold (only in-doubt or abandoned payments are swept)."""
    one, settlement, persons, token, sim, factory = env
    mdtrt_id = visit_with_bill(settlement)
    fresh = one._open_intent("pi_in_progress", H1, "SCAN-P", scan(persons), mdtrt_id,
                             {"mdtrt_id": mdtrt_id, "acct_used_flag": True}, True)
    held = one._hold(fresh)
    assert held.state == "held" and not held.in_doubt
    assert one.recover() == []  # touched just now, not in doubt: left to its request
    assert wallet(sim, token)["held_fen"] == held.amount
    assert one.recover(grace=timedelta(0)) == [("pi_in_progress", "voided")]  # once abandoned, it is released
    assert wallet(sim, token)["held_fen"] == 0


def test_statement_mismatch_is_found_when_the_ledger_and_the_gateway_disagree(env) -> None:
    """Tamper: the gateway refunds behind our back — the statement no longer matches our ledger."""
    one, settlement, persons, token, sim, factory = env
    res = one.pay(H1, "SCAN-T", scan(persons), visit_with_bill(settlement))
    assert one.reconcile_statement(statement_day())["balanced"]
    one.gateway.refund(res.intent_id, "rogue-refund", 100)  # 1.00 refunded outside medpay
    rec = one.reconcile_statement(statement_day())
    assert not rec["balanced"]
    [m] = rec["mismatches"]
    assert m["intent_id"] == res.intent_id and m["ledger_fen"] - m["gateway_fen"] == 100


def test_notice_reaches_the_registered_notify_url_signed_and_once(env) -> None:
    """The HIS registers its URL once (``medpay ecert notify-url``); every payment of the institution is pushed
    there, besides the URL the terminal's request names, and a URL named by both gets one notice."""
    one, settlement, persons, token, sim, factory = env
    his_token = demo.INSTITUTIONS[0][4]
    with CallbackReceiver() as his, CallbackReceiver() as terminal:
        Directory(factory, one.cipher).set_notify_url(H1, his.url)
        demo.seed(factory, one.cipher)  # seeding runs on every start: it must keep the registration
        mdtrt_id = visit_with_bill(settlement)
        res = one.pay(H1, "SCAN-N", scan(persons), mdtrt_id, notify_urls=(terminal.url, his.url))
        assert res.state == "captured"
        one.pay(H1, "SCAN-N", scan(persons), mdtrt_id)  # a retry, and a recovery run, send nothing again
        one.recover()
        alone = one.pay(H1, "SCAN-N2", scan(persons), visit_with_bill(settlement))  # no URL in the request
        assert alone.state == "captured"
        time.sleep(0.2)  # a late duplicate would have arrived by now: delivery is synchronous
        assert [json.loads(n.body)["medicalSettleNo"] for n in his.received] == [res.setl_id, alone.setl_id]
        assert [json.loads(n.body)["medicalSettleNo"] for n in terminal.received] == [res.setl_id]
        for note in his.received:
            ts = note.headers["X-Medpay-Timestamp"]
            assert note.headers["X-Medpay-Signature"] == sign_callback(note.body, his_token, ts)
            assert note.headers["X-Medpay-Signature"] != sign_callback(note.body, demo.INSTITUTIONS[1][4], ts)


def test_notify_url_must_be_an_http_url_of_a_known_institution(env) -> None:
    one, settlement, persons, token, sim, factory = env
    directory = Directory(factory, one.cipher)
    for bad in ("ftp://his.example/n", "his.example/notify", "http:///nohost", "http://his.example/a b",
                "http://his.example/" + "x" * 200):
        with pytest.raises(Invalid) as e:
            directory.set_notify_url(H1, bad)
        assert e.value.field == "notify_url"
    with pytest.raises(NotFound) as e:
        directory.set_notify_url("H00000000000", "http://his.example/notify")
    assert e.value.field == "fixmedins_code"
    assert one._registered_notify_url(H1) == ()  # nothing was stored by the refusals
    assert directory.set_notify_url(H1, " https://his.example/notify ") == "https://his.example/notify"
    assert one._registered_notify_url(H1) == ("https://his.example/notify",)
    assert directory.set_notify_url(H1, None) is None and one._registered_notify_url(H1) == ()


def test_a_face_token_limited_to_an_amount_does_not_pay_a_larger_bill(env) -> None:
    """A face match only close enough for the region's normal threshold earns a token with a bill limit: the
    terminal's one-step settle of a larger bill is refused before anything is held, and a bill within it pays."""
    one, settlement, persons, token, sim, factory = env
    from medpay.services.unit_of_work import unit_of_work

    def face_token() -> str:
        with unit_of_work(factory) as uow:
            return persons.add_ec_token(uow.session, EMP, H1, "01301", timedelta(minutes=5), max_bill_fen=300_000)

    before = wallet(sim, token)
    large = visit_with_bill(settlement, "6000.00")
    with pytest.raises(Forbidden) as e:
        one.pay(H1, "FACE-LARGE", face_token(), large)
    assert e.value.field == "ecToken" and "3000.00" in e.value.message and "6000.00" in e.value.message
    assert wallet(sim, token) == before  # no hold was even asked for:
    assert not [r for r in sim.log("request") if r.get("operation") == "authorise"]
    assert settlement.fee_lines(H1, large)[0]["setl_id"] == ""
    res = one.pay(H1, "FACE-SMALL", face_token(), visit_with_bill(settlement, "2500.00"))
    assert res.state == "captured" and res.output["setlinfo"]["medfee_sumamt"] == 250_000
