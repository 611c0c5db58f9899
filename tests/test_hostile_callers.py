"""Every door, tried as an attacker would (issue 9): a stolen URL, a replayed request, a stripped signature and a
probe for ids, over real HTTP against ``medpay serve`` with its simulators, on SQLite and PostgreSQL. Nothing an
attacker sends may change anything, leak personal data, or tell them which ids exist.

The doors: the institution interface (``x-tif-*``), the terminal door (terminal key), the patient's app (device
key), the gateway's callbacks (HMAC) and the admin door (staff key). Huge, deep and slow bodies and disconnects
are tried on every door in ``test_http_edges.py``.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medpay.adapters.gateway.port import sign_callback
from medpay.domain.gateway_signature import sign_headers
from medpay.his_client import HisClient
from medpay.services import demo
from medpay.services.qr.ecert import sign_device_request, sign_terminal_request
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
