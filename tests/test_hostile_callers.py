"""Every door, tried as an attacker would (issue 9): a stolen URL, a replayed request, a stripped signature and a
probe for ids, over real HTTP against ``medpay serve`` with its simulators, on SQLite and PostgreSQL. Nothing an
attacker sends may change anything, leak personal data, or tell them which ids exist.

The doors: the institution interface (``x-tif-*``), the terminal door (terminal key), the face terminal's doors
(a face terminal's key), the patient's app (device key), the gateway's callbacks (HMAC) and the admin door (staff
key). Huge, deep and slow bodies and disconnects are tried on every door in ``test_http_edges.py``; the face
doors' own uploads (50 MB, not an image, thousands of parts) here.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from medpay.adapters.db.engine import make_engine
from medpay.adapters.gateway.port import sign_callback
from medpay.domain.gateway_signature import sign_headers
from medpay.his_client import HisClient
from medpay.services import demo
from medpay.services.qr.ecert import sign_device_request, sign_terminal_request
from tests.helpers_face import sequence_jpegs
from tests.helpers_face_http import counter_enrol, face_pay_identity, post, register_face_terminal
from tests.helpers_face_http import multipart as face_multipart
from tests.helpers_face_http import session as face_session
from tests.helpers_face_http import verify as face_verify
from tests.helpers_qr import EMP, H1, app_code, his_bill, qr_stack, scan_image, terminal_post
from tests.helpers_server import STAFF, activate

H2 = demo.INSTITUTIONS[1]
CALL_SERVICE = "/fsi/api/rsfComIfsService/callService"
CODE_PATH = "/api/v1/mobile/ecert/code"
GATEWAY_SECRET = "hostile-test-callback-secret"  # the gateway simulator signs callbacks with it
PERSONAL = [p.certno for p in demo.PERSONS] + [p.psn_name for p in demo.PERSONS] + [p.phone for p in demo.PERSONS
                                                                                    if p.phone]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from qr_stack(request.param, tmp_path_factory.mktemp("hostile"),
                        env={"MEDPAY_GATEWAY_SECRET": GATEWAY_SECRET})


@pytest.fixture(scope="module")
def device(stack):
    """The patient's phone: a device key with an active e-certificate."""
    key = Ed25519PrivateKey.generate()
    return {"key": key, "ecert_id": activate(stack["base"], EMP, key)["ecert_id"]}


def _no_personal_data(response: httpx.Response) -> None:
    assert not any(secret in response.text for secret in PERSONAL), response.text


def _envelope(infno: str, inst=H1, **input_) -> bytes:
    return json.dumps({"infno": infno, "msgid": f"{inst[0]}{uuid.uuid4().int % 10**16:016d}", "mdtrtarea_admvs": "999901",
                       "insuplc_admdvs": "999901", "recer_sys_code": "MBS_LOCAL", "dev_no": "", "dev_safe_info": "",
                       "cainfo": "", "signtype": "", "infver": "V1.0", "opter_type": "1", "opter": "1001",
                       "opter_name": "收费员", "inf_time": "2026-12-02 10:00:00", "fixmedins_code": inst[0],
                       "fixmedins_name": inst[1], "sign_no": "", "input": input_}, ensure_ascii=False).encode()


def _institution(stack, body: bytes, headers: dict[str, str] | None) -> httpx.Response:
    return httpx.post(stack["base"] + CALL_SERVICE, content=body, timeout=30,
                      headers={"content-type": "application/json", **(headers or {})})


# -- a stolen URL: the address alone opens nothing ------------------------------------------------------------


@pytest.mark.parametrize("method, path, door", [
    ("POST", CALL_SERVICE, "institution"),
    ("POST", "/fsi/api/fsiPsnInfoService/queryPsnInfo", "institution"),
    ("POST", "/api/v1/terminal/ec/query", "terminal-ec"),
    ("POST", "/api/v1/terminal/settle", "rest"),
    ("POST", "/api/v1/terminal/bills", "rest"),
    ("POST", CODE_PATH, "rest"),
    ("GET", "/api/v1/mobile/ecert/code.png?business_type=01301", "rest"),
    ("POST", "/api/v1/mobile/bills/pay", "rest"),
    ("POST", "/api/v1/mobile/ecert/activate/confirm", "rest"),
    ("POST", "/api/v1/partner/gateway/callback", "rest"),
    ("GET", "/api/v1/admin/policies", "rest"),
    ("GET", "/api/v1/admin/ledger/check", "rest"),
    ("POST", "/api/v1/admin/payments/recover", "rest"),
    ("POST", "/api/v1/admin/ecert/counter-activations", "rest"),
    ("POST", "/api/v1/terminal/face/sessions", "rest"),
    ("POST", "/api/v1/terminal/face/verify", "rest"),
    ("POST", "/api/v1/terminal/face/auth-check", "rest"),
    ("POST", "/api/v1/admin/face/enrolments", "rest"),
    ("DELETE", f"/api/v1/admin/face/enrolments/{EMP.psn_no}", "rest"),
    ("POST", "/api/v1/mobile/face/enrolment", "rest"),
    ("DELETE", "/api/v1/mobile/face/enrolment", "rest"),
])
def test_a_stolen_url_opens_nothing(stack, method: str, path: str, door: str) -> None:
    body = json.dumps({"psn_no": EMP.psn_no, "certno": EMP.certno, "consent": True, "id_checked": True}).encode()
    r = httpx.request(method, stack["base"] + path, content=body if method == "POST" else None, timeout=30,
                      headers={"content-type": "application/json"})
    assert r.status_code == 401, (path, r.status_code, r.text)
    doc = r.json()
    if door == "institution":
        assert doc["infcode"] == -2 and doc["err_msg"].startswith("x-tif-")
    elif door == "terminal-ec":
        assert doc["code"] == 1101 and doc["message"].startswith("X-")
    else:
        assert set(doc) == {"error"} and doc["error"]["code"] == "unauthorized" and doc["error"]["field"]
    _no_personal_data(r)


def test_a_device_url_carries_no_credential(stack, device) -> None:
    """The code's PNG used to be fetched with the signature in the query string: a URL in a log was a code."""
    path = "/api/v1/mobile/ecert/code.png?business_type=01301"
    signed = sign_device_request(device["key"], device["ecert_id"], "GET", path)
    ok = httpx.get(stack["base"] + path, headers=signed)
    assert ok.status_code == 200
    assert not any(v in str(ok.request.url) for v in signed.values())  # nothing secret in the address …
    again = httpx.get(str(ok.request.url))  # … so whoever copies it from a log or a proxy gets nothing
    assert again.status_code == 401


# -- a replayed request: once is all ----------------------------------------------------------------------------


def test_replays_are_refused_on_every_signed_door(stack, device) -> None:
    # the institution interface: the same signed 9001 twice
    body = _envelope("9001", signIn={"opter_no": "1001", "mac": "", "ip": ""})
    headers = sign_headers(H1[3], H1[4])
    first = _institution(stack, body, headers)
    assert first.status_code == 200 and first.json()["infcode"] == 0
    replay = _institution(stack, body, headers)
    assert replay.status_code == 401 and replay.json()["err_msg"].startswith("x-tif-nonce")

    # the terminal: the same signed ec.query twice (the first one spends the code anyway)
    path = "/api/v1/terminal/ec/query"
    scan = json.dumps({"orgId": H1[0], "businessType": "01301", "qrCode": "MPEC1.x.y"}).encode()
    signed = sign_terminal_request(stack["terminal_key"], stack["terminal_id"], "POST", path, scan)
    headers = {**signed, "content-type": "application/json"}
    assert httpx.post(stack["base"] + path, content=scan, headers=headers).json()["code"] != 1101
    replay = httpx.post(stack["base"] + path, content=scan, headers=headers)
    assert replay.status_code == 401 and replay.json()["message"].startswith("X-Nonce")

    # the app: the same signed code request twice gives one code
    body = json.dumps({"business_type": "01301"}).encode()
    signed = {**sign_device_request(device["key"], device["ecert_id"], "POST", CODE_PATH, body),
              "content-type": "application/json"}
    assert httpx.post(stack["base"] + CODE_PATH, content=body, headers=signed).status_code == 200
    replay = httpx.post(stack["base"] + CODE_PATH, content=body, headers=signed)
    assert replay.status_code == 401 and replay.json()["error"]["field"] == "X-Nonce"


def test_a_replayed_gateway_callback_changes_nothing(stack) -> None:
    """Callbacks are hints: the platform asks the gateway for the truth, so a replay inside the window is
    harmless — it triggers the same idempotent recovery, and a stale or altered one is refused."""
    from medpay.adapters.gateway.port import CALLBACK_SIGNATURE_HEADER, CALLBACK_TIMESTAMP_HEADER

    secret = GATEWAY_SECRET
    body = json.dumps({"event_id": "EV-REPLAY", "type": "capture", "intent_id": "nope"}).encode()
    ts = int(time.time())
    headers = {CALLBACK_TIMESTAMP_HEADER: str(ts), CALLBACK_SIGNATURE_HEADER: sign_callback(body, secret, ts),
               "content-type": "application/json"}
    url = stack["base"] + "/api/v1/partner/gateway/callback"
    before = httpx.get(stack["base"] + "/api/v1/admin/ledger/check", headers=STAFF).json()
    for _ in range(2):
        assert httpx.post(url, content=body, headers=headers).json() == {"received": "EV-REPLAY"}
    assert httpx.get(stack["base"] + "/api/v1/admin/ledger/check", headers=STAFF).json() == before
    altered = httpx.post(url, content=body.replace(b"capture", b"refund "), headers=headers)
    assert altered.status_code == 401 and altered.json()["error"]["field"] == CALLBACK_SIGNATURE_HEADER
    stale_ts = ts - 3600
    stale = httpx.post(url, content=body, headers={**headers, CALLBACK_TIMESTAMP_HEADER: str(stale_ts),
                                                   CALLBACK_SIGNATURE_HEADER: sign_callback(body, secret, stale_ts)})
    assert stale.status_code == 401 and stale.json()["error"]["field"] == CALLBACK_TIMESTAMP_HEADER


# -- a stripped signature: no signature, no entry ----------------------------------------------------------------


@pytest.mark.parametrize("header", ["x-tif-signature", "x-tif-nonce", "x-tif-timestamp", "x-tif-paasid"])
def test_a_stripped_gateway_header_is_named(stack, header: str) -> None:
    headers = {k: v for k, v in sign_headers(H1[3], H1[4]).items() if k != header}
    r = _institution(stack, _envelope("1101", data={"mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno}), headers)
    assert r.status_code == 401 and r.json()["err_msg"].startswith(f"{header}: missing")
    _no_personal_data(r)


@pytest.mark.parametrize("header", ["X-Signature", "X-Nonce", "X-Timestamp", "X-Ecert-Id"])
def test_a_stripped_device_header_is_named(stack, device, header: str) -> None:
    body = json.dumps({"business_type": "01301"}).encode()
    signed = sign_device_request(device["key"], device["ecert_id"], "POST", CODE_PATH, body)
    r = httpx.post(stack["base"] + CODE_PATH, content=body,
                   headers={**{k: v for k, v in signed.items() if k != header}, "content-type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["field"] == header


@pytest.mark.parametrize("header", ["X-Signature", "X-Nonce", "X-Timestamp", "X-Terminal-Id"])
def test_a_stripped_terminal_header_is_named(stack, header: str) -> None:
    body = json.dumps({"mdtrt_id": "00000000000000000000"}).encode()
    path = "/api/v1/terminal/bills"
    signed = sign_terminal_request(stack["terminal_key"], stack["terminal_id"], "POST", path, body)
    r = httpx.post(stack["base"] + path, content=body,
                   headers={**{k: v for k, v in signed.items() if k != header}, "content-type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["field"] == header


# -- a probe for ids: what exists elsewhere is not told ------------------------------------------------------------


def test_ids_cannot_be_probed(stack, device) -> None:
    # e-certificate ids: an unknown one answers like a known one with a wrong key
    body = json.dumps({"business_type": "01301"}).encode()
    stranger = Ed25519PrivateKey.generate()
    answers = [httpx.post(stack["base"] + CODE_PATH, content=body, headers={
        **sign_device_request(stranger, ecert_id, "POST", CODE_PATH, body), "content-type": "application/json"})
        for ecert_id in (device["ecert_id"], "ECNOSUCH00")]
    assert [a.status_code for a in answers] == [401, 401] and answers[0].json() == answers[1].json()

    # terminal ids: an unknown terminal answers like a known one with a wrong key
    path = "/api/v1/terminal/bills"
    bills = json.dumps({"mdtrt_id": "00000000000000000000"}).encode()
    answers = [httpx.post(stack["base"] + path, content=bills, headers={
        **sign_terminal_request(stranger, terminal_id, "POST", path, bills), "content-type": "application/json"})
        for terminal_id in (stack["terminal_id"], "TMNOSUCH00")]
    assert [a.status_code for a in answers] == [401, 401] and answers[0].json() == answers[1].json()

    # paasids: an unknown one answers like a known one with a wrong token
    body = _envelope("9001", signIn={"opter_no": "1001", "mac": "", "ip": ""})
    answers = [_institution(stack, body, sign_headers(paasid, "not-the-token")) for paasid in (H1[3], "no_such_paas")]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].json()["err_msg"] == answers[1].json()["err_msg"] == "x-tif-signature: signature does not match"

    # visits and settlements: another institution's answers like one that doesn't exist
    identity = scan_image(stack, app_code(stack))["data"]
    mdtrt_id = his_bill(stack, identity["ecToken"])
    code, name, _level, paasid, token = H2
    h2 = HisClient(stack["base"], code, name, paasid, token, mdtrtarea_admvs="999901")
    h2.sign_in("2001")
    theirs = h2.call("5204", {"data": {"mdtrt_id": mdtrt_id}}, check=False)
    nobody = h2.call("5204", {"data": {"mdtrt_id": "26010100000000000000"}}, check=False)
    assert theirs.infcode == nobody.infcode == -2
    assert theirs.err_msg.replace(mdtrt_id, "ID") == nobody.err_msg.replace("26010100000000000000", "ID")
    r = terminal_post(stack, "/api/v1/terminal/bills", json.dumps({"mdtrt_id": "26010100000000000000"}).encode(),
                      "application/json")
    assert r.status_code == 404 and r.json()["error"]["field"] == "mdtrt_id"


# -- the face doors: a face terminal's key, sessions and authNos of its own, bounded uploads ---------------------

FACE_PIN = "802413"


@pytest.fixture(scope="module")
def face(stack):
    """A face terminal at H1 and one at H2, and the employee enrolled at a counter with the test photo."""
    h1, h2 = register_face_terminal(stack), register_face_terminal(stack, H2[0])
    assert counter_enrol(stack["base"], EMP, "obama.jpg", FACE_PIN).status_code == 200
    return {"h1": h1, "h2": h2}


def _face_rows(stack) -> dict[str, Any]:
    """What the face doors may change: sessions (status, tries), authNos, audit decisions, tokens, settlements."""
    engine = make_engine(stack["db_url"])
    try:
        with engine.connect() as c:
            return {"sessions": dict(c.execute(text("SELECT session_id, status || '/' || tries || '/' || "
                                                    "COALESCE(auth_hash, '') FROM face_sessions")).all()),
                    # decisions only: a refused signature naming a registered terminal leaves its own throttled
                    # record (face.terminal_refuse; tests/test_face_terminal_refusals.py)
                    "face_audit": c.execute(text("SELECT count(*) FROM audit_events WHERE (action LIKE 'face.%' "
                                                 "AND action <> 'face.terminal_refuse') "
                                                 "OR action = 'cn.nhsa.auth.check'")).scalar(),
                    "tokens": c.execute(text("SELECT count(*) FROM ec_tokens")).scalar(),
                    "settlements": c.execute(text("SELECT count(*) FROM settlements")).scalar()}
    finally:
        engine.dispose()


def test_face_terminal_requests_forged_stale_replayed_or_revoked_are_refused(stack, face) -> None:
    path = "/api/v1/terminal/face/sessions"
    body = json.dumps({"orgId": H1[0], "businessType": "01301", "amount": "60.00"}).encode()
    t = face["h1"]

    def send(headers: dict[str, str]) -> httpx.Response:
        return httpx.post(stack["base"] + path, content=body, timeout=30,
                          headers={**headers, "content-type": "application/json"})

    before = _face_rows(stack)
    forged = send(sign_terminal_request(Ed25519PrivateKey.generate(), t["terminal_id"], "POST", path, body))
    assert forged.status_code == 401 and forged.json()["error"]["field"] == "X-Signature"
    stale = send(sign_terminal_request(t["terminal_key"], t["terminal_id"], "POST", path, body,
                                       timestamp=int(time.time()) - 3600))
    assert stale.status_code == 401 and stale.json()["error"]["field"] == "X-Timestamp"
    altered = sign_terminal_request(t["terminal_key"], t["terminal_id"], "POST", path, body)
    changed = httpx.post(stack["base"] + path, content=body.replace(b"60.00", b"6.00"), timeout=30,
                         headers={**altered, "content-type": "application/json"})
    assert changed.status_code == 401 and changed.json()["error"]["field"] == "X-Signature"
    assert _face_rows(stack) == before  # none of them opened a session
    signed = sign_terminal_request(t["terminal_key"], t["terminal_id"], "POST", path, body)
    assert send(signed).status_code == 200
    replay = send(signed)
    assert replay.status_code == 401 and replay.json()["error"]["field"] == "X-Nonce"
    assert len(_face_rows(stack)["sessions"]) == len(before["sessions"]) + 1  # the first one only

    revoked = register_face_terminal(stack)
    engine = make_engine(stack["db_url"])
    with engine.begin() as c:
        c.execute(text("UPDATE terminals SET status = 'disabled' WHERE terminal_id = :t"),
                  {"t": revoked["terminal_id"]})
    engine.dispose()
    middle = _face_rows(stack)
    for p, b in ((path, body), ("/api/v1/terminal/face/auth-check",
                                json.dumps({"orgId": H1[0], "authNo": "0" * 32}).encode())):
        r = httpx.post(stack["base"] + p, content=b, timeout=30, headers={
            **sign_terminal_request(revoked["terminal_key"], revoked["terminal_id"], "POST", p, b),
            "content-type": "application/json"})
        assert r.status_code == 401 and r.json()["error"]["field"] == "X-Terminal-Id", r.text
        assert "disabled" in r.json()["error"]["message"]
    assert _face_rows(stack) == middle


def test_face_sessions_and_auth_nos_of_others_cannot_be_probed_or_used(stack, face) -> None:
    theirs = face_session(face["h2"])["session_id"]  # a session of H2's face terminal
    before = _face_rows(stack)
    frames = sequence_jpegs("obama.jpg", ("blink", "turn_left"), 21)
    answers = [face_verify(face["h1"], sid, frames, FACE_PIN) for sid in (theirs, "FS" + "0" * 22)]
    assert [a.status_code for a in answers] == [404, 404] and answers[0].json() == answers[1].json()
    assert answers[0].json()["error"]["field"] == "session_id"
    assert _face_rows(stack) == before  # H2's session untouched: still open, no try counted

    identity = face_pay_identity(face["h1"], "obama.jpg", FACE_PIN, seed=22)  # H1 verified and exchanged
    assert identity.status_code == 200, identity.text
    mine = identity.json()["data"]["authNo"]
    s = face_session(face["h1"])
    challenge = tuple(step["action"] for step in s["challenge"])
    fresh = face_verify(face["h1"], s["session_id"], sequence_jpegs("obama.jpg", challenge, 23), FACE_PIN)
    assert fresh.status_code == 200, fresh.text
    unexchanged = fresh.json()["authNo"]
    before = _face_rows(stack)
    path = "/api/v1/terminal/face/auth-check"
    probes = [post(face["h2"], path, json.dumps({"orgId": H2[0], "authNo": a}).encode(), "application/json")
              for a in (unexchanged, mine, secrets.token_hex(16))]  # another terminal's, spent, made up
    assert [p.status_code for p in probes] == [404, 404, 404]
    assert probes[0].json() == probes[1].json() == probes[2].json()
    assert probes[0].json()["error"]["field"] == "authNo"
    for p in probes:
        _no_personal_data(p)
    assert _face_rows(stack) == before  # no token issued, no session changed
    ok = post(face["h1"], path, json.dumps({"orgId": H1[0], "authNo": unexchanged}).encode(), "application/json")
    assert ok.status_code == 200  # the probes did not spend it
    other_org = post(face["h1"], "/api/v1/terminal/face/sessions",
                     json.dumps({"orgId": H2[0], "amount": "1.00"}).encode(), "application/json")
    assert other_org.status_code == 403 and other_org.json()["error"]["field"] == "orgId"


def test_face_uploads_huge_not_images_or_thousands_of_parts_change_nothing(stack, face) -> None:
    t = face["h1"]
    sid = face_session(t)["session_id"]
    before = _face_rows(stack)
    huge = face_verify(t, sid, [b"\xff\xd8" + b"0" * (50 * 1024 * 1024)], FACE_PIN)
    assert huge.status_code == 413 and huge.json()["error"]["field"] == "body"
    parts = {f"x{i}": "1" for i in range(5000)}
    body, ctype = face_multipart({"orgId": H1[0], "session_id": sid, "pin": FACE_PIN, **parts}, {})
    many = post(t, "/api/v1/terminal/face/verify", body, ctype)
    assert many.status_code == 422 and many.json()["error"]["field"] == "body" and "5003 parts" in many.text
    assert _face_rows(stack) == before  # neither reached verification: no try counted, nothing audited
    bomb = face_verify(t, sid, [b"GIF89a" + b"\xff" * 64] * 5, FACE_PIN)  # a header and nothing an image has
    assert bomb.status_code == 422 and bomb.json()["error"]["field"] == "frames[0]"
    assert "not an image" in bomb.json()["error"]["message"] and "QR" in bomb.json()["error"]["message"]
    after = _face_rows(stack)
    assert after["sessions"][sid].startswith("open/1/")  # a try counted against the session …
    assert after["face_audit"] == before["face_audit"] + 1  # … and the refusal audited (face.refuse)
    assert (after["tokens"], after["settlements"]) == (before["tokens"], before["settlements"])
    counter = httpx.post(stack["base"] + "/api/v1/admin/face/enrolments", content=body, timeout=30,
                         headers={**STAFF, "content-type": ctype})
    assert counter.status_code == 422 and counter.json()["error"]["field"] == "body"
