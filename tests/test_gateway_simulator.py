"""The payment-gateway simulator in its own process, driven through ``HttpGateway``: holds, captures, voids,
refunds, idempotency, refusals, every injected fault, signed callbacks, statements and restarts."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import httpx
import pytest

from medpay.adapters.gateway import (
    CALLBACK_SIGNATURE_HEADER,
    CALLBACK_TIMESTAMP_HEADER,
    STATEMENT_COLUMNS,
    CallbackRejected,
    GatewayProtocolError,
    GatewayTimeout,
    GatewayUnavailable,
    PaymentGateway,
    parse_statement,
    sign_callback,
    statement_day,
    verify_callback,
)
from medpay.adapters.gateway.http_gateway import HttpGateway
from tests.helpers_gateway import API_KEY, SECRET, CallbackReceiver, gateway_simulator
from tests.helpers_server import free_port

CLIENT_TIMEOUT = 0.5
FAULT_SLEEP = 1.2  # how long the simulator's timeout faults sleep: longer than the client waits


@pytest.fixture(scope="module")
def receiver():
    with CallbackReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def sim_process(tmp_path_factory, receiver):
    tmp = tmp_path_factory.mktemp("gwsim")
    with gateway_simulator(tmp, receiver.url, "--timeout-delay", str(FAULT_SLEEP), "--late-delay", "1.0",
                           "--callback-retries", "1") as sim:
        yield sim


@pytest.fixture
def sim(sim_process, receiver):
    sim_process.reset()
    receiver.clear()
    return sim_process


@pytest.fixture
def gw(sim):
    with HttpGateway(sim.url, "M001", API_KEY, timeout=CLIENT_TIMEOUT) as g:
        yield g


def iid() -> str:
    return "pi_" + uuid.uuid4().hex


def events(receiver, n, timeout=15.0):
    got = receiver.wait_for(n, timeout)
    return [verify_callback(c.headers, c.body, SECRET) for c in got]


def test_http_gateway_is_a_payment_gateway(gw):
    assert isinstance(gw, PaymentGateway)


def test_hold_capture_less_than_hold_releases_the_rest(sim, gw, receiver):
    payer = sim.payer(10_000)
    i = iid()
    r = gw.authorise(i, 3_000, payer, "outpatient cash part")
    assert (r.ok, r.state, r.amount_held, r.gateway_ref.startswith("pay_")) == (True, "held", 3_000, True)
    assert sim.payer_info(payer)["available_fen"] == 7_000
    c = gw.capture(i, 2_500)
    assert (c.ok, c.state, c.amount_held, c.amount_captured, c.gateway_ref) == (True, "captured", 0, 2_500,
                                                                                 r.gateway_ref)
    assert sim.payer_info(payer) == {"payer_token": payer, "balance_fen": 7_500, "held_fen": 0,
                                     "available_fen": 7_500}
    [ev] = events(receiver, 1)
    assert (ev["type"], ev["intent_id"], ev["amount_fen"], ev["merchant_id"]) == ("payment.captured", i, 2_500, "M001")
    assert ev["payment"]["state"] == "captured"


def test_void_releases_the_hold(sim, gw, receiver):
    payer = sim.payer(5_000)
    i = iid()
    gw.authorise(i, 5_000, payer, "deposit")
    assert sim.payer_info(payer)["available_fen"] == 0
    v = gw.void(i)
    assert (v.ok, v.state, v.amount_held, v.amount_captured) == (True, "voided", 0, 0)
    assert sim.payer_info(payer)["available_fen"] == 5_000
    assert gw.void(i).state == "voided"  # a retry: same answer, nothing more
    c = gw.capture(i, 1)
    assert (c.error_code, c.state) == ("already_voided", "voided")
    [ev] = events(receiver, 1)
    assert (ev["type"], ev["amount_fen"]) == ("payment.voided", 5_000)


def test_refunds_partial_full_idempotent_and_bounded(sim, gw, receiver):
    payer = sim.payer(10_000)
    i = iid()
    gw.authorise(i, 4_000, payer, "bill")
    gw.capture(i, 4_000)
    r1 = gw.refund(i, "rf1", 1_500)
    assert (r1.ok, r1.state, r1.amount_refunded, r1.gateway_ref.startswith("rfd_")) == (True, "partially_refunded",
                                                                                       1_500, True)
    assert gw.refund(i, "rf1", 1_500) == r1  # retry: the first answer, refunded once
    assert gw.refund(i, "rf1", 1_000).error_code == "idempotency_key_reused"
    too_much = gw.refund(i, "rf2", 2_501)
    assert (too_much.error_code, too_much.amount_refunded) == ("refund_exceeds_capture", 1_500)
    r2 = gw.refund(i, "rf2", 2_500)
    assert (r2.state, r2.amount_refunded) == ("refunded", 4_000)
    assert gw.refund(i, "rf3", 1).error_code == "refund_exceeds_capture"
    assert sim.payer_info(payer)["balance_fen"] == 10_000
    kinds = sorted(e["type"] for e in events(receiver, 3))  # callbacks are asynchronous: order is not promised
    assert kinds == ["payment.captured", "payment.refunded", "payment.refunded"]
    # refund before capture, void after capture
    j = iid()
    gw.authorise(j, 100, payer, "x")
    assert gw.refund(j, "rf-j", 100).error_code == "not_captured"
    assert gw.void(i).error_code == "already_captured"
    assert gw.capture("pi_nope", 1).error_code == "hold_not_found"


def test_idempotent_authorise_and_capture(sim, gw):
    payer = sim.payer(10_000)
    i = iid()
    first = gw.authorise(i, 2_000, payer, "bill")
    assert gw.authorise(i, 2_000, payer, "bill") == first
    assert sim.payer_info(payer)["held_fen"] == 2_000  # held once
    other = gw.authorise(i, 2_001, payer, "bill")
    assert (other.error_code, other.state, other.amount_held) == ("idempotency_key_reused", "held", 2_000)
    c = gw.capture(i, 2_000)
    assert gw.capture(i, 2_000) == c
    assert gw.capture(i, 1_000).error_code == "idempotency_key_reused"
    assert sim.payer_info(payer)["balance_fen"] == 8_000  # charged once
    replays = [e for e in sim.log("request") if e.get("replayed")]
    assert [e["operation"] for e in replays] == ["authorise", "capture"]


def test_capture_more_than_hold_is_refused_and_charges_nothing(sim, gw, receiver):
    payer = sim.payer(10_000)
    i = iid()
    gw.authorise(i, 1_000, payer, "bill")
    r = gw.capture(i, 1_001)
    assert (r.ok, r.error_code, r.state, r.amount_held, r.amount_captured) == (False, "amount_exceeds_hold", "held",
                                                                               1_000, 0)
    assert "1001" in r.error_message and "1000" in r.error_message
    assert sim.payer_info(payer) == {"payer_token": payer, "balance_fen": 10_000, "held_fen": 1_000,
                                     "available_fen": 9_000}
    assert receiver.wait_for(1, 0.3) == []
    assert gw.capture(i, 1_000).state == "captured"  # a refusal is not remembered: the corrected capture goes through


def test_insufficient_funds_and_unknown_payer_are_declined(sim, gw):
    payer = sim.payer(999)
    i = iid()
    r = gw.authorise(i, 1_000, payer, "bill")
    assert (r.state, r.error_code, r.amount_held) == ("declined", "insufficient_funds", 0)
    assert sim.payer_info(payer)["available_fen"] == 999
    assert gw.status(i).state == "declined"
    assert gw.capture(i, 1).error_code == "intent_declined"
    assert gw.authorise(iid(), 1, "tok_nobody", "x").error_code == "payer_not_found"


def test_status_of_an_unknown_payment(gw):
    r = gw.status("pi_never_seen")
    assert (r.state, r.error_code) == ("unknown", "hold_not_found")


def test_fault_timeout_applies_then_sleeps(sim, gw, receiver):
    payer = sim.payer(10_000)
    i = iid()
    sim.fault("authorise", "timeout")
    with pytest.raises(GatewayTimeout):
        gw.authorise(i, 1_000, payer, "bill")
    assert gw.status(i).state == "held"  # it happened
    sim.fault("capture", "timeout")
    with pytest.raises(GatewayTimeout):
        gw.capture(i, 1_000)
    s = gw.status(i)
    assert (s.state, s.amount_captured) == ("captured", 1_000)
    assert gw.capture(i, 1_000).amount_captured == 1_000  # a retry replays, charges nothing more
    assert sim.payer_info(payer)["balance_fen"] == 9_000
    assert [e["type"] for e in events(receiver, 1)] == ["payment.captured"]


def test_fault_timeout_before_does_nothing(sim, gw):
    payer = sim.payer(10_000)
    i = iid()
    sim.fault("authorise", "timeout_before")
    with pytest.raises(GatewayTimeout):
        gw.authorise(i, 1_000, payer, "bill")
    assert gw.status(i).state == "unknown"
    assert sim.payer_info(payer)["held_fen"] == 0
    assert gw.authorise(i, 1_000, payer, "bill").state == "held"  # the retry is processed
    sim.fault("refund", "timeout_before")
    gw.capture(i, 1_000)
    with pytest.raises(GatewayTimeout):
        gw.refund(i, "rf", 1_000)
    assert gw.status(i).amount_refunded == 0


def test_fault_fail_is_unavailable_without_effect(sim, gw):
    payer = sim.payer(10_000)
    i = iid()
    gw.authorise(i, 1_000, payer, "bill")
    sim.fault("void", "fail")
    with pytest.raises(GatewayUnavailable):
        gw.void(i)
    assert gw.status(i).state == "held"
    assert gw.void(i).state == "voided"
    sim.fault("status", "fail", count=2)
    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            gw.status(i)
    assert gw.status(i).state == "voided"  # count=2: the third call is normal
    assert [e["fault"] for e in sim.log("request") if e["fault"]] == ["fail", "fail", "fail"]


def test_fault_decline(sim, gw):
    payer = sim.payer(10_000)
    sim.fault("authorise", "decline")
    i = iid()
    r = gw.authorise(i, 1_000, payer, "bill")
    assert (r.state, r.error_code) == ("declined", "declined_by_issuer")
    j = iid()
    gw.authorise(j, 1_000, payer, "bill")
    sim.fault("capture", "decline")
    r = gw.capture(j, 1_000)
    assert (r.state, r.error_code, r.amount_captured) == ("held", "declined_by_issuer", 0)


def test_callbacks_duplicate_late_never(sim, gw, receiver):
    payer = sim.payer(10_000)
    sim.fault("callback", "duplicate")
    i = iid()
    gw.authorise(i, 1_000, payer, "bill")
    gw.capture(i, 1_000)
    got = receiver.wait_for(2)
    assert len(got) == 2
    a, b = (verify_callback(c.headers, c.body, SECRET) for c in got)
    assert a == b and a["type"] == "payment.captured"

    receiver.clear()
    sim.fault("callback", "late", delay=1.0)
    j = iid()
    gw.authorise(j, 1_000, payer, "bill")
    t0 = time.monotonic()
    gw.void(j)
    assert receiver.wait_for(1, 0.6) == []
    [late] = receiver.wait_for(1, 3)
    assert late.at - t0 >= 0.9
    assert verify_callback(late.headers, late.body, SECRET)["intent_id"] == j

    receiver.clear()
    sim.fault("callback", "never")
    k = iid()
    gw.authorise(k, 1_000, payer, "bill")
    gw.capture(k, 500)
    assert receiver.wait_for(1, 1.0) == []
    assert [e.get("suppressed") for e in sim.log("callback") if e["intent_id"] == k] == [True]


def test_callbacks_are_retried_when_the_receiver_fails(sim, gw, receiver):
    receiver.status = 500
    payer = sim.payer(1_000)
    i = iid()
    gw.authorise(i, 1_000, payer, "bill")
    gw.void(i)
    got = receiver.wait_for(2, 3)  # --callback-retries 1: two attempts, same event
    assert len({json.loads(c.body)["event_id"] for c in got}) == 1 and len(got) == 2


def test_forged_or_stale_callbacks_are_rejected(sim, gw, receiver):
    payer = sim.payer(1_000)
    i = iid()
    gw.authorise(i, 1_000, payer, "bill")
    gw.capture(i, 1_000)
    [cb] = receiver.wait_for(1)
    assert verify_callback(cb.headers, cb.body, SECRET)["intent_id"] == i
    forged = cb.body.replace(b'"amount_fen":1000', b'"amount_fen":9000')
    assert forged != cb.body
    with pytest.raises(CallbackRejected) as e:
        verify_callback(cb.headers, forged, SECRET)
    assert e.value.field == CALLBACK_SIGNATURE_HEADER
    with pytest.raises(CallbackRejected):
        verify_callback(cb.headers, cb.body, "another-secret")
    ts = int(cb.headers[CALLBACK_TIMESTAMP_HEADER])
    with pytest.raises(CallbackRejected) as e:
        verify_callback(cb.headers, cb.body, SECRET, now=ts + 301)
    assert e.value.field == CALLBACK_TIMESTAMP_HEADER
    with pytest.raises(CallbackRejected) as e:
        verify_callback({CALLBACK_TIMESTAMP_HEADER: str(ts)}, cb.body, SECRET)
    assert e.value.field == CALLBACK_SIGNATURE_HEADER
    # the pure signer agrees with the simulator, and header names match case-insensitively
    lower = {k.lower(): v for k, v in cb.headers.items()}
    assert sign_callback(cb.body, SECRET, ts) == lower[CALLBACK_SIGNATURE_HEADER.lower()]
    assert verify_callback(lower, cb.body, SECRET)["type"] == "payment.captured"
    body = b'{"a":1}'
    assert verify_callback({CALLBACK_TIMESTAMP_HEADER: "1700000000",
                            CALLBACK_SIGNATURE_HEADER: sign_callback(body, "k", 1700000000)},
                           body, "k", now=1700000100) == {"a": 1}


def test_statement_reconciles_captured_minus_refunded(sim, gw):
    payer = sim.payer(100_000)
    ids = [iid() for _ in range(4)]
    for n, i in enumerate(ids):
        gw.authorise(i, 10_000 + n, payer, "bill")
    gw.capture(ids[0], 10_000)
    gw.capture(ids[1], 7_001)
    gw.capture(ids[2], 10_002)
    gw.void(ids[3])
    gw.refund(ids[1], "rf-a", 1)
    gw.refund(ids[2], "rf-b", 10_002)
    gw.refund(ids[2], "rf-b", 10_002)  # a retry adds no row
    data = gw.statement(statement_day())
    assert data.decode().splitlines()[0] == ",".join(STATEMENT_COLUMNS)
    rows = parse_statement(data)
    statuses = [gw.status(i) for i in ids]
    net = sum(s.amount_captured - s.amount_refunded for s in statuses)
    assert sum(r["amount_fen"] for r in rows) == net == 10_000 + 7_000
    assert sorted((r["type"], r["intent_id"], r["amount_fen"], r["refund_id"]) for r in rows) == sorted([
        ("capture", ids[0], 10_000, ""), ("capture", ids[1], 7_001, ""), ("capture", ids[2], 10_002, ""),
        ("refund", ids[1], -1, "rf-a"), ("refund", ids[2], -10_002, "rf-b")])
    assert {r["merchant_id"] for r in rows} == {"M001"}
    assert {r["gateway_ref"] for r in rows if r["type"] == "capture"} == {s.gateway_ref for s in statuses[:3]}
    with HttpGateway(sim.url, "M002", API_KEY, timeout=CLIENT_TIMEOUT) as other:
        assert parse_statement(other.statement(statement_day())) == []  # a merchant sees only its own
    assert parse_statement(gw.statement(statement_day() - timedelta(days=1))) == []


def test_hold_expires_on_the_simulator_clock(sim, gw, receiver):
    payer = sim.payer(1_000)
    i = iid()
    gw.authorise(i, 1_000, payer, "bill")
    sim.advance_clock(7 * 86400 + 1)
    s = gw.status(i)
    assert (s.state, s.amount_held) == ("voided", 0)
    assert gw.capture(i, 1_000).error_code == "hold_expired"
    assert sim.payer_info(payer)["available_fen"] == 1_000
    [ev] = events(receiver, 1)
    assert (ev["type"], ev["reason"]) == ("payment.voided", "expired")


def test_bad_credentials_and_no_gateway(sim):
    with HttpGateway(sim.url, "M001", "wrong-key", timeout=CLIENT_TIMEOUT) as bad:
        with pytest.raises(GatewayProtocolError) as e:
            bad.status("pi_x")
    assert e.value.status_code == 401
    with HttpGateway(f"http://127.0.0.1:{free_port()}", "M001", API_KEY, timeout=CLIENT_TIMEOUT) as nowhere:
        with pytest.raises(GatewayUnavailable):
            nowhere.status("pi_x")
    r = httpx.post(f"{sim.url}/payments", json={"intent_id": "pi_1", "amount_fen": 1, "payer_token": "t"},
                   headers={"X-Merchant-Id": "M001", "X-Timestamp": str(int(time.time())), "X-Signature": "00"})
    assert r.status_code == 401 and r.json()["error"]["field"] == "X-Signature"
    with HttpGateway(sim.url, "M001", API_KEY) as gw:
        with pytest.raises(ValueError):
            gw.capture("pi_x", 0)


def test_restart_keeps_holds_and_idempotency(tmp_path):
    with gateway_simulator(tmp_path, None, "--fault", "status=fail:1") as sim:
        payer = sim.payer(10_000)
        i = iid()
        with HttpGateway(sim.url, "M001", API_KEY, timeout=2) as gw:
            with pytest.raises(GatewayUnavailable):  # the --fault flag
                gw.status(i)
            held = gw.authorise(i, 6_000, payer, "bill")
        sim.restart()
        with HttpGateway(sim.url, "M001", API_KEY, timeout=2) as gw:
            with pytest.raises(GatewayUnavailable):  # CLI faults come back with the process
                gw.status(i)
            assert gw.status(i).state == "held"
            assert sim.payer_info(payer)["available_fen"] == 4_000
            assert gw.authorise(i, 6_000, payer, "bill") == held  # the idempotency record survived
            assert gw.capture(i, 6_000).state == "captured"
        sim.restart()
        with HttpGateway(sim.url, "M001", API_KEY, timeout=2) as gw:
            with pytest.raises(GatewayUnavailable):
                gw.status(i)
            assert gw.status(i).amount_captured == 6_000
            assert sum(r["amount_fen"] for r in parse_statement(gw.statement(statement_day()))) == 6_000
