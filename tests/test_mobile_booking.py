"""预约挂号 end to end over HTTP, on SQLite and PostgreSQL, with the gateway simulator: the HIS publishes slots through
its signed terminal door, the patient's app books one — the visit the HIS sees (notice, 5201) and the registration fee
settled in one step — sees the queue number, cancels within the hospital's rule (refunded, seat freed); full slots,
double taps, one booking per department and day, a declined fee, a withdrawn slot and hostile callers answered
plainly with nothing left behind."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from itertools import count

import httpx
import pytest

from medpay.local_time import local_date
from medpay.services import demo
from medpay.services.mobile.booking import slot_id_for
from medpay.services.qr.ecert import sign_terminal_request
from tests.helpers_gateway import CallbackReceiver
from tests.helpers_qr import App, EMP, H1, fen, his_client, qr_stack, wallet
from tests.helpers_server import run_cli

RESIDENT = demo.PERSONS[4]  # no personal account: the fee's cash part goes through the wallet
RETIREE = demo.PERSONS[1]
FEE_ITEM = demo.REGISTRATION_FEE_ITEM
_n = count(1)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from qr_stack(request.param, tmp_path_factory.mktemp("booking"))


def terminal(stack, method: str, path: str, body: dict | None = None) -> httpx.Response:
    raw = json.dumps(body).encode() if body is not None else b""
    headers = sign_terminal_request(stack["terminal_key"], stack["terminal_id"], method, path, raw)
    return httpx.request(method, stack["base"] + path, content=raw,
                         headers={**headers, "content-type": "application/json"}, timeout=30)


def slot(hours: float = 26, **kw) -> dict:
    start = datetime.now(timezone.utc) + timedelta(hours=hours)
    return {"slot_id": f"T{next(_n)}-{start:%H%M%S%f}"[:30], "dept_code": kw.pop("dept_code", f"D{next(_n)}"),
            "dept_name": "测试科", "doctor_code": "X1", "doctor_name": "测试医生", "doctor_title": "主治医师",
            "begntime": start.isoformat(), "endtime": (start + timedelta(hours=2)).isoformat(), "capacity": 5,
            "fee_item": FEE_ITEM, "fee": "10.00", "cancel_before_minutes": 120, **kw}


def publish(stack, *slots: dict) -> dict[str, str]:
    """Publish ``slots`` as H1's HIS; the platform's slot ids by the HIS's."""
    r = terminal(stack, "PUT", "/api/v1/terminal/schedule", {"slots": list(slots)})
    assert r.status_code == 200, r.text
    return {s["slot_id"]: slot_id_for(H1[0], s["slot_id"]) for s in slots}


def test_book_pay_see_queue_number_cancel_and_refund(stack) -> None:
    s = slot()
    sid = publish(stack, s)[s["slot_id"]]
    app = App(stack, RESIDENT)
    listed = [x for x in app.get(f"/api/v1/mobile/slots?fixmedins_code={H1[0]}").json() if x["slot_id"] == sid]
    assert len(listed) == 1 and listed[0]["left"] == 5 and listed[0]["reg_fee"] == 10
    assert listed[0]["fixmedins_name"] == H1[1]
    before = wallet(stack, RESIDENT.psn_no)
    with CallbackReceiver() as inbox:
        assert run_cli(["ecert", "notify-url", H1[0], inbox.url], stack["db_url"], stack["tmp"]).returncode == 0
        try:
            r = app.post("/api/v1/mobile/bookings", {"slot_id": sid})
            assert r.status_code == 200, r.text
            b = r.json()
            assert b["state"] == "booked" and b["queue_no"] == 1 and b["mdtrt_id"] and b["setl_id"], b
            again = app.post("/api/v1/mobile/bookings", {"slot_id": sid}).json()  # a double tap: the same booking
            assert again["booking_id"] == b["booking_id"] and again["queue_no"] == 1
            # the fee settled in one step: fund + cash = 10.00, the cash part taken from the wallet once
            setl = his_client(stack).call("5203", {"data": {"psn_no": RESIDENT.psn_no, "setl_id": b["setl_id"],
                                                            "mdtrt_id": b["mdtrt_id"]}}).output["setlinfo"]
            info = fen(setl)
            assert info["medfee_sumamt"] == 1000 and info["fund_pay_sumamt"] + info["acct_pay"] + info[
                "psn_cash_pay"] == 1000
            assert before - wallet(stack, RESIDENT.psn_no) == info["psn_cash_pay"]
            events = [json.loads(c.body) for c in inbox.wait_for(2, timeout=10)]
            created = [e for e in events if e.get("event") == "booking.created"]
            assert created and created[0]["mdtrtId"] == b["mdtrt_id"] and created[0]["queueNo"] == 1
            assert any(e.get("medicalSettleNo") == b["setl_id"] for e in events)  # settle.notify of the fee
            # the HIS finds the visit the app made (5201) and lists the day's bookings
            visits = his_client(stack).call("5201", {"data": {"psn_no": RESIDENT.psn_no}}).output["mdtrtinfo"]
            assert any(v["mdtrt_id"] == b["mdtrt_id"] for v in visits)
            day = local_date(datetime.fromisoformat(s["begntime"])).isoformat()
            listed = terminal(stack, "GET", f"/api/v1/terminal/schedule/bookings?day={day}").json()
            assert [x["booking_id"] for x in listed if x["slot"]["slot_id"] == sid] == [b["booking_id"]]
            left = [x for x in app.get("/api/v1/mobile/slots").json() if x["slot_id"] == sid][0]["left"]
            assert left == 4
            mine = app.get("/api/v1/mobile/bookings").json()
            assert mine[0]["booking_id"] == b["booking_id"] and mine[0]["cancellable"] is True

            inbox.clear()
            out = app.post(f"/api/v1/mobile/bookings/{b['booking_id']}/cancel", {})
            assert out.status_code == 200, out.text
            assert out.json()["state"] == "cancelled"
            assert wallet(stack, RESIDENT.psn_no) == before  # refunded
            assert any(json.loads(c.body).get("event") == "booking.cancelled" for c in inbox.wait_for(1, timeout=10))
            assert [x for x in app.get("/api/v1/mobile/slots").json() if x["slot_id"] == sid][0]["left"] == 5
            visits = his_client(stack).call("5201", {"data": {"psn_no": RESIDENT.psn_no}}).output["mdtrtinfo"]
            assert all(v["mdtrt_id"] != b["mdtrt_id"] for v in visits)  # cancelled (2202): no longer listed
            # a cancelled booking cancelled again answers as it stands; a new booking of the slot is a new one
            assert app.post(f"/api/v1/mobile/bookings/{b['booking_id']}/cancel", {}).json()["state"] == "cancelled"
            fresh = app.post("/api/v1/mobile/bookings", {"slot_id": sid}).json()
            assert fresh["booking_id"] != b["booking_id"] and fresh["queue_no"] == 2  # numbers are never reused
            assert app.post(f"/api/v1/mobile/bookings/{fresh['booking_id']}/cancel", {}).status_code == 200
        finally:
            run_cli(["ecert", "notify-url", H1[0], "--clear"], stack["db_url"], stack["tmp"])


def test_rules_full_slot_one_per_department_late_cancel_and_others_bookings(stack) -> None:
    one_seat, soon = slot(capacity=1), slot(hours=1)  # ``soon`` is past its cancellation time already
    same_dept = slot(hours=27, dept_code=one_seat["dept_code"])
    ids = publish(stack, one_seat, soon, same_dept)
    emp, retiree = App(stack, EMP), App(stack, RETIREE)
    first = emp.post("/api/v1/mobile/bookings", {"slot_id": ids[one_seat["slot_id"]]})
    assert first.status_code == 200 and first.json()["state"] == "booked", first.text
    full = retiree.post("/api/v1/mobile/bookings", {"slot_id": ids[one_seat["slot_id"]]})
    assert full.status_code == 409 and "full" in full.json()["error"]["message"]
    twice = emp.post("/api/v1/mobile/bookings", {"slot_id": ids[same_dept["slot_id"]]})
    assert twice.status_code == 409 and twice.json()["error"]["field"] == "slot_id", twice.text
    # another person's booking is answered like an unknown one
    other = retiree.post(f"/api/v1/mobile/bookings/{first.json()['booking_id']}/cancel", {})
    assert other.status_code == 404
    late = emp.post("/api/v1/mobile/bookings", {"slot_id": ids[soon["slot_id"]]}).json()
    assert late["state"] == "booked" and late["cancellable"] is False
    refused = emp.post(f"/api/v1/mobile/bookings/{late['booking_id']}/cancel", {})
    assert refused.status_code == 409 and "120 minutes" in refused.json()["error"]["message"]
    unknown = emp.post("/api/v1/mobile/bookings", {"slot_id": "SLnope"})
    assert unknown.status_code == 404
    # booking for someone else needs a signed-in account acting for them; a stolen signature of another path fails
    stranger = emp.post(f"/api/v1/mobile/bookings?for={RETIREE.psn_no}", {"slot_id": ids[same_dept["slot_id"]]})
    assert stranger.status_code in (401, 403), stranger.text
    forged = httpx.post(stack["base"] + "/api/v1/mobile/bookings", json={"slot_id": ids[same_dept["slot_id"]]},
                        headers={"X-Ecert-Id": emp.ecert_id}, timeout=30)
    assert forged.status_code == 401
    extra = emp.post("/api/v1/mobile/bookings", {"slot_id": ids[same_dept["slot_id"]], "psn_no": RETIREE.psn_no})
    assert extra.status_code == 422  # no smuggled fields
    # the capacity can't drop below the seats booked; a bad publication names its field and changes nothing
    shrink = terminal(stack, "PUT", "/api/v1/terminal/schedule", {"slots": [{**one_seat, "capacity": 0}]})
    assert shrink.status_code == 422 and shrink.json()["error"]["field"].startswith("slots")
    bad = terminal(stack, "PUT", "/api/v1/terminal/schedule",
                   {"slots": [slot(), {**slot(), "endtime": slot()["begntime"], "begntime": slot(30)["begntime"]}]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "slots[1].endtime", bad.text
    item = terminal(stack, "PUT", "/api/v1/terminal/schedule", {"slots": [slot(fee_item="NOPE")]})
    assert item.status_code == 422 and item.json()["error"]["field"] == "slots[0].fee_item"
    unsigned = httpx.put(stack["base"] + "/api/v1/terminal/schedule", json={"slots": [slot()]}, timeout=30)
    assert unsigned.status_code == 401


def test_last_seat_goes_to_one_of_two_at_once_and_a_declined_fee_gives_it_back(stack) -> None:
    last = slot(capacity=1)
    sid = publish(stack, last)[last["slot_id"]]
    apps = [App(stack, RESIDENT), App(stack, RETIREE)]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda a: a.post("/api/v1/mobile/bookings", {"slot_id": sid}), apps))
    assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    winner = [r.json() for r in answers if r.status_code == 200][0]
    winner_app = apps[0] if winner["psn_no"] == RESIDENT.psn_no else apps[1]
    assert winner_app.post(f"/api/v1/mobile/bookings/{winner['booking_id']}/cancel", {}).status_code == 200

    # the gateway declines the fee: the seat comes back, no visit is left open, nothing charged
    before = wallet(stack, RESIDENT.psn_no)
    httpx.post(f"{stack['gateway']}/sim/faults", json={"operation": "authorise", "mode": "decline", "count": 1})
    declined = apps[0].post("/api/v1/mobile/bookings", {"slot_id": sid})
    assert declined.status_code == 409 and declined.json()["error"]["field"] == "payment", declined.text
    assert wallet(stack, RESIDENT.psn_no) == before
    assert [x for x in apps[0].get("/api/v1/mobile/slots").json() if x["slot_id"] == sid][0]["left"] == 1
    assert all(b["state"] != "reserved" for b in apps[0].get("/api/v1/mobile/bookings").json())
    ok = apps[0].post("/api/v1/mobile/bookings", {"slot_id": sid})
    assert ok.status_code == 200 and ok.json()["state"] == "booked", ok.text


def test_the_hospital_withdraws_a_slot_and_its_bookings_are_refunded(stack) -> None:
    s = slot()
    sid = publish(stack, s)[s["slot_id"]]
    app = App(stack, RESIDENT)
    before = wallet(stack, RESIDENT.psn_no)
    b = app.post("/api/v1/mobile/bookings", {"slot_id": sid}).json()
    assert b["state"] == "booked"
    r = terminal(stack, "PUT", "/api/v1/terminal/schedule", {"slots": [{**s, "withdrawn": True}]})
    assert r.status_code == 200 and r.json()["withdrawn"] == 1, r.text
    mine = [x for x in app.get("/api/v1/mobile/bookings").json() if x["booking_id"] == b["booking_id"]][0]
    assert mine["state"] == "cancelled" and "withdrew" in mine["reason"]
    assert wallet(stack, RESIDENT.psn_no) == before
    assert all(x["slot_id"] != sid for x in app.get("/api/v1/mobile/slots").json())
    reopen = terminal(stack, "PUT", "/api/v1/terminal/schedule", {"slots": [s]})
    assert reopen.status_code == 409


def test_the_demo_publishes_a_week_of_slots(stack) -> None:
    listed = App(stack, EMP).get("/api/v1/mobile/slots").json()
    demo_slots = [x for x in listed if x["his_slot_id"].endswith(("-AM", "-PM")) and x["dept_code"] in ("NK", "EK", "ZJ")]
    assert {x["fixmedins_code"] for x in demo_slots} == {"H99990100001", "H99990100003"}
    assert len({local_date(datetime.fromisoformat(x["begntime"])) for x in demo_slots}) >= 6
