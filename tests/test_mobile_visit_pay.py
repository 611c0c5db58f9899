"""诊间支付 end to end over HTTP: the HIS uploads a visit's fee lines, the patient's app (signed by its device key)
lists the visit, reads the bill and its pre-settlement split and pays it in one step through the gateway simulator;
the HIS is notified and its window has nothing left to charge. A changed bill, a double tap, a lost answer, another
person's visit, a forged signature: each answered plainly, nothing charged twice."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from medpay.domain.payment_time import PaymentTime, quantile, summarize
from medpay.his_client import HisBusinessError
from medpay.local_time import local_date
from medpay.services import demo
from medpay.services.mobile.visit_pay import LineFacts, bill_version, payment_msgid
from tests.helpers_gateway import CallbackReceiver
from tests.helpers_qr import App, BLOOD, EMP, H1, app_code, fen, his_bill, his_client, qr_stack, scan_image, wallet
from tests.helpers_server import STAFF, run_cli

OTHER = demo.PERSONS[1]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from qr_stack(request.param, tmp_path_factory.mktemp("visitpay"))


def test_pay_what_the_doctor_ordered_once_with_a_changed_bill_refused(stack) -> None:
    identity = scan_image(stack, app_code(stack))["data"]
    mdtrt_id = his_bill(stack, identity["ecToken"], amount="180.00")
    app = App(stack)  # (activating this device retires the one that showed the code: one device per person)
    inbox = CallbackReceiver().__enter__()
    try:
        assert run_cli(["ecert", "notify-url", H1[0], inbox.url], stack["db_url"], stack["tmp"]).returncode == 0
        due = app.get("/api/v1/mobile/visits").json()
        mine = [v for v in due if v["mdtrt_id"] == mdtrt_id]
        assert len(mine) == 1 and mine[0]["medfee_sumamt"] == 180 and mine[0]["line_count"] == 1
        path = f"/api/v1/mobile/visits/{H1[0]}/{mdtrt_id}"
        bill = app.get(path).json()
        assert bill["state"] == "due" and bill["lines"][0]["name"] and bill["lines"][0]["chrgitm_lv"] == "01"
        pre = fen(bill["presettlement"])
        assert pre["fund_pay_sumamt"] + pre["acct_pay"] + pre["psn_cash_pay"] == pre["medfee_sumamt"] == 18000
        seen = bill["version"]

        # the doctor adds a test after the patient looked: paying what was seen is refused, nothing charged
        his_client(stack).upload_fees([{"feedetl_sn": "2", "mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no,
                                        "chrg_bchno": "B2", "med_list_codg": BLOOD, "cnt": 1, "pric": "20.00",
                                        "det_item_fee_sumamt": "20.00"}])
        before = wallet(stack)
        stale = app.post(path + "/pay", {"version": seen})
        assert stale.status_code == 409 and stale.json()["error"]["field"] == "version", stale.text
        assert wallet(stack) == before

        bill = app.get(path).json()
        assert bill["version"] != seen and fen(bill["presettlement"])["medfee_sumamt"] == 20000
        first = app.post(path + "/pay", {"version": bill["version"]})
        assert first.status_code == 200, first.text
        out = first.json()
        assert out["state"] == "captured"
        cash = fen(out["settlement"]["setlinfo"])["psn_cash_pay"]
        assert before - wallet(stack) == cash == fen(bill["presettlement"])["psn_cash_pay"]
        again = app.post(path + "/pay", {"version": bill["version"]}).json()  # a double tap
        assert again["setl_id"] == out["setl_id"] and before - wallet(stack) == cash
        status = app.get(f"{path}/payments/{bill['version']}").json()  # the app reloaded mid-payment
        assert status["state"] == "captured" and status["setl_id"] == out["setl_id"]
        assert all(v["mdtrt_id"] != mdtrt_id for v in app.get("/api/v1/mobile/visits").json())
        assert app.get(path).json()["state"] == "nothing_due"

        notes = inbox.wait_for(1, timeout=10)
        assert json.loads(notes[0].body)["medicalSettleNo"] == out["setl_id"]
    finally:
        inbox.__exit__(None, None, None)
        run_cli(["ecert", "notify-url", H1[0], "--clear"], stack["db_url"], stack["tmp"])

    # the window has nothing left to charge: the HIS's own 2207 for the visit is refused
    his = his_client(stack)
    with pytest.raises(HisBusinessError, match="no unsettled fee lines"):
        his.settle_outpatient(EMP.psn_no, mdtrt_id, "B1", "200.00", mdtrt_cert_type="02", mdtrt_cert_no=EMP.certno,
                              insutype=EMP.insutype)
    assert wallet(stack) == before - cash

    # the bureau's payment-time figure counts this payment under the app
    today = local_date(datetime.now(timezone.utc))
    figures = httpx.get(f"{stack['base']}/api/v1/admin/payment-times", headers=STAFF, params={
        "date_from": (today - timedelta(days=1)).isoformat(), "date_to": (today + timedelta(days=1)).isoformat()})
    assert figures.status_code == 200, figures.text
    doors = figures.json()["doors"]
    assert doors["mobile"]["count"] >= 1 and doors["mobile"]["p50_s"] >= 0


def test_another_persons_visit_a_forged_signature_and_bad_input_are_refused(stack) -> None:
    identity = scan_image(stack, app_code(stack))["data"]
    mdtrt_id = his_bill(stack, identity["ecToken"], amount="12.00")
    path = f"/api/v1/mobile/visits/{H1[0]}/{mdtrt_id}"
    other = App(stack, OTHER)
    assert all(v["mdtrt_id"] != mdtrt_id for v in other.get("/api/v1/mobile/visits").json())
    probe = other.get(path)
    unknown = other.get(f"/api/v1/mobile/visits/{H1[0]}/NOSUCHVISIT1")
    assert probe.status_code == unknown.status_code == 404
    assert probe.json()["error"]["field"] == "mdtrt_id"
    version = App(stack).get(path).json()["version"]
    before = wallet(stack)
    assert other.post(path + "/pay", {"version": version}).status_code == 404
    forged = httpx.post(stack["base"] + path + "/pay", json={"version": version}, timeout=30)
    assert forged.status_code == 401
    me = App(stack)
    bad = me.post(path + "/pay", {"version": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "version"
    extra = me.post(path + "/pay", {"version": version, "amount": 1})
    assert extra.status_code == 422
    assert wallet(stack) == before


def test_bill_version_and_payment_msgid_rules() -> None:
    a = [LineFacts("1", 100), LineFacts("2", 250)]
    assert bill_version(a) == bill_version(list(reversed(a)))  # the order lines come in does not matter
    assert bill_version(a) != bill_version([LineFacts("1", 100), LineFacts("2", 251)])  # a repriced line
    assert bill_version(a) != bill_version(a[:1])  # a withdrawn line
    assert len(payment_msgid("2612...", bill_version(a))) <= 40
    assert payment_msgid("V1", bill_version(a)) != payment_msgid("V2", bill_version(a))


def test_payment_time_quantiles() -> None:
    t0 = datetime(2026, 12, 1, 8, tzinfo=timezone.utc)
    times = [PaymentTime(str(i), "H1", "mobile", t0, t0 + timedelta(seconds=s)) for i, s in enumerate([30, 10, 20])]
    times.append(PaymentTime("w", "H1", "window", t0, t0 + timedelta(minutes=15)))
    assert summarize(times) == {"window": {"count": 1, "p50_s": 900, "p90_s": 900},
                                "mobile": {"count": 3, "p50_s": 20, "p90_s": 30}}
    assert quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == 9
    assert PaymentTime("x", "H1", "scan", t0, t0 - timedelta(seconds=5)).seconds == 0  # clocks apart: never negative


def test_a_cancelled_test_refunds_through_the_gateway_and_the_rest_is_paid_again(stack) -> None:
    """A partial refund as the interface does it: the HIS cancels the app-paid settlement (2208) — the cash goes
    back to the wallet through the gateway, once —, uploads again the lines that stay billed, and the patient pays
    those from the app; the gateway's statement still agrees with the books to the fen."""
    identity = scan_image(stack, app_code(stack))["data"]
    mdtrt_id = his_bill(stack, identity["ecToken"], amount="12000.00")
    his = his_client(stack)
    his.upload_fees([{"feedetl_sn": "2", "mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no, "chrg_bchno": "B2",
                      "med_list_codg": BLOOD, "cnt": 1, "pric": "400.00", "det_item_fee_sumamt": "400.00"}])
    app = App(stack)
    path = f"/api/v1/mobile/visits/{H1[0]}/{mdtrt_id}"
    before = wallet(stack)
    paid = app.post(path + "/pay", {"version": app.get(path).json()["version"]}).json()
    cash = fen(paid["settlement"]["setlinfo"])["psn_cash_pay"]
    assert paid["state"] == "captured" and cash > 0 and before - wallet(stack) == cash

    cancelled = his.cancel_outpatient(paid["setl_id"], mdtrt_id, EMP.psn_no)  # the second test is called off
    assert cancelled.output["setlinfo"]["orig_setl_id"] == paid["setl_id"]
    assert wallet(stack) == before  # the whole cash part came back through the gateway
    with pytest.raises(HisBusinessError, match="already cancelled"):
        his.cancel_outpatient(paid["setl_id"], mdtrt_id, EMP.psn_no)
    assert wallet(stack) == before  # and only once
    recovered = httpx.post(f"{stack['base']}/api/v1/admin/payments/recover", headers=STAFF)
    assert recovered.status_code == 200 and wallet(stack) == before  # recovery finds nothing more to give back

    his.upload_fees([{"feedetl_sn": "1", "mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no, "chrg_bchno": "B3",
                      "med_list_codg": BLOOD, "cnt": 1, "pric": "12000.00", "det_item_fee_sumamt": "12000.00"}])
    bill = app.get(path).json()
    assert bill["state"] == "due" and fen(bill["presettlement"])["medfee_sumamt"] == 1200000
    again = app.post(path + "/pay", {"version": bill["version"]}).json()
    assert again["state"] == "captured" and again["setl_id"] != paid["setl_id"]
    assert before - wallet(stack) == fen(again["settlement"]["setlinfo"])["psn_cash_pay"] < cash
    today = local_date(datetime.now(timezone.utc))
    for day in {today - timedelta(days=1), today}:
        statement = httpx.get(f"{stack['base']}/api/v1/admin/payments/statement/{day.isoformat()}", headers=STAFF)
        assert statement.json()["balanced"], statement.text
    assert httpx.get(f"{stack['base']}/api/v1/admin/ledger/check", headers=STAFF).json()["ok"]
