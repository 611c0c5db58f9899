"""住院 from the phone over HTTP, on SQLite and PostgreSQL, with the gateway simulator: the HIS admits the patient
and uploads fees; the app shows the deposit, the fees and the patient's share so far, tops the deposit up through
the gateway (a retry pays once), asks to be discharged (the HIS is told), and after the HIS's 2402 and 2304 shows the
settlement with the unused deposit back in the wallet (原路退回); a deposit on a settled stay is refused with nothing
charged, and the gateway's statement balances to the fen."""

from __future__ import annotations

import json
import time
import httpx
import pytest

from medpay.adapters.gateway.port import statement_day
from medpay.services import demo
from tests.helpers_gateway import CallbackReceiver
from tests.helpers_qr import App, EMP, H1, fen, his_admission as admit, his_client, local_now as now, qr_stack, wallet
from tests.helpers_server import STAFF, run_cli

RESIDENT = demo.PERSONS[4]  # no personal account: her share is cash


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from qr_stack(request.param, tmp_path_factory.mktemp("stay"))


def test_top_up_discharge_and_the_unused_deposit_back_the_way_it_came(stack) -> None:
    mdtrt_id = admit(stack, RESIDENT)
    app = App(stack, RESIDENT)
    path = f"/api/v1/mobile/stays/{H1[0]}/{mdtrt_id}"
    shown = [s for s in app.get("/api/v1/mobile/stays").json() if s["mdtrt_id"] == mdtrt_id][0]
    assert shown["status"] == "open" and shown["fee_sumamt"] == 300 and shown["deposit_total"] == 0
    share = fen(shown)["own_share"]
    assert 0 < share <= 30000 and fen(shown)["deposit_balc"] == -share  # nothing paid in yet: a top-up is asked for
    before = wallet(stack, RESIDENT.psn_no)

    paid = app.post(path + "/deposits", {"amount": "2000.00", "request_id": "topup-0001"})
    assert paid.status_code == 200 and paid.json()["state"] == "deposited", paid.text
    again = app.post(path + "/deposits", {"amount": "2000.00", "request_id": "topup-0001"})  # a retry: same payment
    assert again.json()["payment_id"] == paid.json()["payment_id"]
    other = app.post(path + "/deposits", {"amount": "1.00", "request_id": "topup-0001"})
    assert other.status_code == 409 and other.json()["error"]["field"] == "request_id"
    assert before - wallet(stack, RESIDENT.psn_no) == 200000
    shown = [s for s in app.get("/api/v1/mobile/stays").json() if s["mdtrt_id"] == mdtrt_id][0]
    assert fen(shown)["deposit_total"] == 200000 and fen(shown)["deposit_balc"] == 200000 - share

    with CallbackReceiver() as inbox:
        assert run_cli(["ecert", "notify-url", H1[0], inbox.url], stack["db_url"], stack["tmp"]).returncode == 0
        try:
            asked = app.post(path + "/discharge", {})
            assert asked.status_code == 200 and asked.json()["discharge_requested_at"], asked.text
            note = json.loads(inbox.wait_for(1, timeout=10)[0].body)
            assert note["event"] == "discharge.requested" and note["mdtrtId"] == mdtrt_id
            # the HIS discharges and settles as usual; the patient's share comes from the deposit, the rest goes back
            his = his_client(stack)
            his.discharge({"mdtrt_id": mdtrt_id, "psn_no": RESIDENT.psn_no, "insutype": RESIDENT.insutype,
                           "endtime": now(), "dscg_way": "1"})
            setl = fen(his.settle_inpatient(RESIDENT.psn_no, mdtrt_id, "300.00", insutype=RESIDENT.insutype,
                                            mdtrt_cert_type="02", mdtrt_cert_no=RESIDENT.certno,
                                            acct_used_flag="0").output["setlinfo"])
        finally:
            run_cli(["ecert", "notify-url", H1[0], "--clear"], stack["db_url"], stack["tmp"])
    assert setl["psn_cash_pay"] == share and setl["deposit_applied"] == share
    assert setl["deposit_refund"] == 200000 - share
    assert before - wallet(stack, RESIDENT.psn_no) == share  # the unused deposit is back in the wallet
    shown = [s for s in app.get("/api/v1/mobile/stays").json() if s["mdtrt_id"] == mdtrt_id][0]
    assert shown["status"] == "settled" and fen(shown["settlement"])["deposit_refund"] == 200000 - share
    assert fen(shown["payments"][0])["refund_amt"] == 200000 - share

    # a deposit on a settled stay is refused and nothing is charged
    late = app.post(path + "/deposits", {"amount": "100.00", "request_id": "topup-0002"})
    assert late.status_code == 409 and late.json()["error"]["field"] == "mdtrt_id", late.text
    assert before - wallet(stack, RESIDENT.psn_no) == share

    # the gateway's statement of the day balances with the books, deposits included
    for day in {statement_day(time.time() - 600), statement_day()}:
        rec = httpx.get(f"{stack['base']}/api/v1/admin/payments/statement/{day.isoformat()}", headers=STAFF,
                        timeout=30).json()
        assert rec["balanced"], rec


def test_someone_elses_stay_bad_amounts_and_a_declined_card(stack) -> None:
    mdtrt_id = admit(stack, RESIDENT, days=1)
    path = f"/api/v1/mobile/stays/{H1[0]}/{mdtrt_id}/deposits"
    stranger = App(stack, EMP)
    assert stranger.post(path, {"amount": "10.00", "request_id": "stranger-1"}).status_code == 404
    assert all(s["mdtrt_id"] != mdtrt_id for s in stranger.get("/api/v1/mobile/stays").json())
    app = App(stack, RESIDENT)
    for i, amount in enumerate(("0", "-5", "1.234", "50000.01", "abc")):
        r = app.post(path, {"amount": amount, "request_id": f"bad-amount-{i}"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "amount", (amount, r.text)
    short = app.post(path, {"amount": "10.00", "request_id": "x"})
    assert short.status_code == 422 and short.json()["error"]["field"] == "request_id"
    before = wallet(stack, RESIDENT.psn_no)
    httpx.post(f"{stack['gateway']}/sim/faults", json={"operation": "authorise", "mode": "decline", "count": 1})
    declined = app.post(path, {"amount": "10.00", "request_id": "declined-1"})
    assert declined.status_code == 200 and declined.json()["state"] == "declined", declined.text
    assert wallet(stack, RESIDENT.psn_no) == before
    stay = [s for s in app.get("/api/v1/mobile/stays").json() if s["mdtrt_id"] == mdtrt_id][0]
    assert stay["deposit_total"] == 0


def test_an_unknown_capture_is_resolved_by_recovery(stack) -> None:
    mdtrt_id = admit(stack, RESIDENT, days=2)
    app = App(stack, RESIDENT)
    path = f"/api/v1/mobile/stays/{H1[0]}/{mdtrt_id}/deposits"
    before = wallet(stack, RESIDENT.psn_no)
    httpx.post(f"{stack['gateway']}/sim/faults", json={"operation": "capture", "mode": "timeout", "count": 1})
    httpx.post(f"{stack['gateway']}/sim/faults", json={"operation": "status", "mode": "timeout", "count": 1})
    first = app.post(path, {"amount": "500.00", "request_id": "doubt-0001"})
    assert first.status_code == 200 and first.json()["state"] == "in_doubt", first.text
    r = httpx.post(f"{stack['base']}/api/v1/admin/payments/recover", headers=STAFF, timeout=60)
    assert r.status_code == 200, r.text
    assert {"intent_id": first.json()["payment_id"], "state": "deposited"} in r.json()["resolved"]
    assert app.post(path, {"amount": "500.00", "request_id": "doubt-0001"}).json()["state"] == "deposited"
    assert before - wallet(stack, RESIDENT.psn_no) == 50000
    stay = [s for s in app.get("/api/v1/mobile/stays").json() if s["mdtrt_id"] == mdtrt_id][0]
    assert fen(stay)["deposit_total"] == 50000


def test_a_deposit_refund_the_gateway_did_not_answer_is_made_by_recovery(stack) -> None:
    mdtrt_id = admit(stack, RESIDENT, days=1)
    app = App(stack, RESIDENT)
    before = wallet(stack, RESIDENT.psn_no)
    paid = app.post(f"/api/v1/mobile/stays/{H1[0]}/{mdtrt_id}/deposits", {"amount": "800.00",
                                                                          "request_id": "refund-later-1"})
    assert paid.json()["state"] == "deposited", paid.text
    his = his_client(stack)
    his.discharge({"mdtrt_id": mdtrt_id, "psn_no": RESIDENT.psn_no, "insutype": RESIDENT.insutype,
                   "endtime": now(), "dscg_way": "1"})
    httpx.post(f"{stack['gateway']}/sim/faults", json={"operation": "refund", "mode": "timeout", "count": 1})
    setl = fen(his.settle_inpatient(RESIDENT.psn_no, mdtrt_id, "60.00", insutype=RESIDENT.insutype,
                                    mdtrt_cert_type="02", mdtrt_cert_no=RESIDENT.certno,
                                    acct_used_flag="0").output["setlinfo"])  # the settlement stands regardless
    assert setl["deposit_refund"] == 80000 - setl["psn_cash_pay"] > 0
    r = httpx.post(f"{stack['base']}/api/v1/admin/payments/recover", headers=STAFF, timeout=60)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 10  # the timed-out refund may also land at the gateway on its own
    while before - wallet(stack, RESIDENT.psn_no) != setl["psn_cash_pay"] and time.monotonic() < deadline:
        time.sleep(0.2)
        httpx.post(f"{stack['base']}/api/v1/admin/payments/recover", headers=STAFF, timeout=60)
    assert before - wallet(stack, RESIDENT.psn_no) == setl["psn_cash_pay"]  # refunded once, not twice
    stay = [s for s in app.get("/api/v1/mobile/stays").json() if s["mdtrt_id"] == mdtrt_id][0]
    assert fen(stay["payments"][0])["refund_amt"] == setl["deposit_refund"]
