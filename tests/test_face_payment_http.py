"""Face payment end to end over HTTP against a real ``medpay serve`` (SQLite and PostgreSQL) with the gateway
simulator: counter enrolment (staff key), a face terminal's signed session, frames of a real photo performing the
random challenge, the PIN, authNo → ecToken, then the HIS's 1101/2201/2204 with that token and the one-scan
settle. And refusals at the door: a scanner is not a face terminal, a forged signature, another face, a 50 MB
image, not an image — each in the door's shape, naming the field, offering QR code or ID card, nothing settled."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from medpay.services import demo
from tests.helpers_face import jpeg, kiosk
from tests.helpers_face_http import (
    counter_enrol,
    face_pay_identity,
    multipart,
    post,
    register_face_terminal,
    session,
    verify,
)
from tests.helpers_qr import EMP, H1, fen, his_bill, qr_stack, terminal_post, wallet
from tests.helpers_server import STAFF

PIN = "802413"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    for s in qr_stack(request.param, tmp_path_factory.mktemp("facepay")):
        s["face"] = register_face_terminal(s)
        r = counter_enrol(s["base"], EMP, "obama.jpg", PIN)
        assert r.status_code == 200, r.text
        yield s


def test_face_identify_then_his_bill_then_one_scan_settle(stack) -> None:
    identity = face_pay_identity(stack["face"], "obama.jpg", PIN, seed=1)
    assert identity.status_code == 200, identity.text
    data = identity.json()["data"]
    assert data["insuOrg"] == "999901" and "*" in data["idNo"] and "*" in data["userName"]
    mdtrt_id = his_bill(stack, data["ecToken"])  # 1101, 2201 and 2204 with the face's ecToken
    before = wallet(stack)
    body = json.dumps({"msgid": f"FACE{time.time_ns()}", "ecToken": data["ecToken"], "mdtrt_id": mdtrt_id}).encode()
    paid = post(stack["face"], "/api/v1/terminal/settle", body, "application/json")
    assert paid.status_code == 200 and paid.json()["state"] == "captured", paid.text
    setl = fen(paid.json()["settlement"]["setlinfo"])
    assert setl["medfee_sumamt"] == setl["fund_pay_sumamt"] + setl["psn_part_amt"] + setl.get("hosp_part_amt", 0)
    assert before - wallet(stack) == setl["psn_cash_pay"]


def test_refusals_name_the_reason_and_offer_the_other_ways(stack) -> None:
    other = face_pay_identity(stack["face"], "biden.jpg", PIN, seed=2)  # right PIN, another face
    assert other.status_code == 403 and "QR" in other.json()["error"]["message"], other.text
    s = session(stack["face"])
    huge = verify(stack["face"], s["session_id"], [b"\xff\xd8" + b"0" * (50 * 1024 * 1024)], PIN)
    assert huge.status_code == 413
    junk = verify(stack["face"], s["session_id"], [b"not an image"] * 5, PIN)
    assert junk.status_code == 422 and junk.json()["error"]["field"] == "frames[0]", junk.text
    # a scanner (not a face terminal) is refused; an unsigned or forged request too
    body = json.dumps({"orgId": H1[0], "amount": "1.00"}).encode()
    scanner = terminal_post(stack, "/api/v1/terminal/face/sessions", body, "application/json")
    assert scanner.status_code == 403 and "not a face" in scanner.json()["error"]["message"]
    forged = httpx.post(stack["base"] + "/api/v1/terminal/face/sessions", content=body, headers={
        "content-type": "application/json", "X-Terminal-Id": stack["face"]["terminal_id"], "X-Timestamp":
        str(int(time.time())), "X-Nonce": "abcdefgh1234", "X-Signature": "00" * 64})
    assert forged.status_code == 401


def test_withdrawal_at_the_counter_deletes_the_template(stack) -> None:
    person = demo.PERSONS[2]
    assert counter_enrol(stack["base"], person, "biden.jpg", "551903").status_code == 200
    assert httpx.delete(f"{stack['base']}/api/v1/admin/face/enrolments/{person.psn_no}", headers=STAFF).json() == {
        "psn_no": person.psn_no, "status": "withdrawn"}
    s = session(stack["face"])
    refused = verify(stack["face"], s["session_id"], [jpeg(kiosk("biden.jpg"))] * 4, "551903")
    assert refused.status_code in (403, 422)
    body, ctype = multipart({"psn_no": person.psn_no, "certno": person.certno, "pin": "551903", "consent": "false",
                             "consent_version": "x"}, {})
    no_consent = httpx.post(stack["base"] + "/api/v1/admin/face/enrolments", content=body,
                            headers={**STAFF, "content-type": ctype})
    assert no_consent.status_code == 422 and no_consent.json()["error"]["field"] == "consent"
