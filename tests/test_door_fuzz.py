"""Fuzzing the terminal, mobile, partner and admin doors (hypothesis) through the real FastAPI app, in process, on
SQLite and PostgreSQL — the institution interface has its own (``test_institution_fuzz.py``).

Every operation of those doors is sent what a caller can send: random JSON (odd strings, huge and negative
numbers, nesting, nulls), the operation's own fields with values replaced, raw bytes, multipart forms with random
parts — signed the way the door's real caller signs (terminal key, device key, gateway HMAC, staff key) so the
body gets past authentication, or with random headers. Properties of every answer: never a 5xx; the door's error
shape naming a field; and nothing the caller sent leaves a traceback in the log.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.migrate import upgrade
from medpay.adapters.gateway.port import CALLBACK_SIGNATURE_HEADER, CALLBACK_TIMESTAMP_HEADER, sign_callback
from medpay.adapters.platform_keys import public_key_hex
from medpay.api.app import create_app
from medpay.api.platform import build_platform
from medpay.api.terminal import ecert_service
from medpay.services import demo
from medpay.services.qr.activation import ActivationService
from medpay.services.qr.ecert import sign_device_request, sign_terminal_request
from tests.fakes import FakeSms
from tests.helpers_server import STAFF

H1 = demo.INSTITUTIONS[0]
SECRET = "fuzz-callback-secret"
# (method, path, signed by, the fields a real request has)
OPERATIONS = [
    ("POST", "/api/v1/terminal/ec/query", "terminal", {"orgId": H1[0], "businessType": "01301", "qrCode": "MPEC1.a.b"}),
    ("POST", "/api/v1/terminal/settle", "terminal", {"msgid": "M1", "ecToken": "0" * 40, "mdtrt_id": "2601010000",
                                                      "acct_used_flag": "1", "notify_url": "http://h.example/n"}),
    ("POST", "/api/v1/terminal/bills", "terminal", {"mdtrt_id": "26010100000000000000"}),
    ("POST", "/api/v1/mobile/ecert/activate", None, {"psn_no": demo.PERSONS[0].psn_no,
                                                     "certno": demo.PERSONS[0].certno, "consent": True}),
    ("POST", "/api/v1/mobile/ecert/activate/confirm", "new device", {"activation_id": "AC00000000",
                                                                     "code": "123456"}),
    ("POST", "/api/v1/mobile/ecert/code", "device", {"business_type": "01301"}),
    ("GET", "/api/v1/mobile/ecert/code.png?business_type=01301", "device", None),
    ("POST", "/api/v1/mobile/bills/preview", None, {"bill": "MPBILL1.a.b"}),
    ("POST", "/api/v1/mobile/bills/pay", "device", {"bill": "MPBILL1.a.b"}),
    ("POST", "/api/v1/partner/gateway/callback", "gateway", {"event_id": "E1", "type": "capture", "intent_id": "I1"}),
    ("POST", "/api/v1/admin/quote", "staff", {"person": {"insutype": "310", "psn_type": "1101",
                                                         "insuplc_admdvs": "999901"},
                                              "visit": {"med_type": "11"},
                                              "lines": [{"chrgitm_lv": "01", "det_item_fee_sumamt": "1.00"}]}),
    ("POST", "/api/v1/admin/ecert/counter-activations", "staff", {"psn_no": demo.PERSONS[5].psn_no,
                                                                  "certno": demo.PERSONS[5].certno,
                                                                  "consent": True, "id_checked": True}),
    ("GET", "/api/v1/admin/payments/statement/2026-12-01", "staff", None),
    # the face doors: a face terminal signs; frames and photos come as multipart
    ("POST", "/api/v1/terminal/face/sessions", "face terminal", {"orgId": H1[0], "businessType": "01301",
                                                                 "amount": "60.00", "outBizNo": "B1"}),
    ("POST", "/api/v1/terminal/face/verify", "face terminal", None),
    ("POST", "/api/v1/terminal/face/auth-check", "face terminal", {"orgId": H1[0], "authNo": "0" * 32}),
    ("POST", "/api/v1/admin/face/enrolments", "staff", None),
    ("DELETE", f"/api/v1/admin/face/enrolments/{demo.PERSONS[0].psn_no}", "staff", None),
    ("POST", "/api/v1/mobile/face/enrolment", "device", None),
    ("DELETE", "/api/v1/mobile/face/enrolment", "device", None),
]
FORM_NAMES = ["image", "orgId", "businessType", "bill", "qrCode", "x", "frame0", "frame1", "session_id", "pin",
              "id_last4", "image0", "psn_no", "certno", "consent", "consent_version"]
SETTINGS = dict(max_examples=int(os.environ.get("MEDPAY_DOOR_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False) |
    st.text(max_size=30) | st.sampled_from(["", "\x00", "\ud800x", "0" * 300, "MPEC1.x.y", "01301", "1e999"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


class Traces(logging.Handler):
    """Every log record that carries a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(self.format(record))


@pytest.fixture
def world(db_url: str):
    cipher = FieldCipher(os.urandom(32))
    platform = build_platform(db_url, cipher=cipher)
    upgrade(platform.engine)
    demo.seed(platform.factory, cipher)
    platform.gateway_secret = SECRET
    platform.sms = FakeSms()  # activation codes are "texted" in memory
    app = create_app(platform)
    terminal_key = Ed25519PrivateKey.generate()
    traces = Traces()
    logging.getLogger().addHandler(traces)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            service = ecert_service(client)  # the app's own (it takes anything with .app, as a request has)
            terminal_id = service.register_terminal(H1[0], public_key_hex(terminal_key), "fuzz window")
            face_key = Ed25519PrivateKey.generate()
            face_id = service.register_terminal(H1[0], public_key_hex(face_key), "fuzz kiosk", kind="face")
            device = Ed25519PrivateKey.generate()
            activations = ActivationService(platform.factory, cipher, None)
            counter = activations.start_at_counter(demo.PERSONS[0].psn_no, demo.PERSONS[0].certno, True, "fuzz")
            ecert_id = activations.confirm(public_key_hex(device), counter_code=counter.counter_code).ecert_id
            yield {"client": client, "terminal": (terminal_id, terminal_key), "device": (ecert_id, device),
                   "face terminal": (face_id, face_key), "traces": traces}
    finally:
        logging.getLogger().removeHandler(traces)
        platform.engine.dispose()


def _signed(world: dict, by: str | None, method: str, path: str, body: bytes) -> dict[str, str]:
    if by in ("terminal", "face terminal"):
        return sign_terminal_request(world[by][1], world[by][0], method, path, body)
    if by == "device":
        return sign_device_request(world["device"][1], world["device"][0], method, path, body)
    if by == "new device":
        return sign_device_request(Ed25519PrivateKey.generate(), None, method, path, body)
    if by == "gateway":
        ts = int(time.time())
        return {CALLBACK_TIMESTAMP_HEADER: str(ts), CALLBACK_SIGNATURE_HEADER: sign_callback(body, SECRET, ts)}
    if by == "staff":
        return dict(STAFF)
    return {}


@st.composite
def requests_to(draw: Any) -> tuple[str, str, bytes, dict[str, str], bool]:
    """(method, path, body, extra headers, signed): what a caller can send to one of the doors."""
    method, path, by, fields = draw(st.sampled_from(OPERATIONS))
    kind = draw(st.sampled_from(["fields", "json", "bytes", "multipart", "empty"]))
    content_type = "application/json"
    if kind == "fields" and fields is not None:
        doc = dict(fields)
        for key in draw(st.lists(st.sampled_from(sorted(doc)), max_size=3, unique=True)):
            if draw(st.booleans()):
                doc[key] = draw(json_values)
            else:
                del doc[key]
        body = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    elif kind in ("json", "fields"):
        body = json.dumps(draw(json_values)).encode("utf-8", "surrogatepass")
    elif kind == "bytes":
        body = draw(st.binary(max_size=200))
        content_type = draw(st.sampled_from(["application/json", "text/plain", "", "image/png"]))
    elif kind == "multipart":
        boundary = "fuzzboundary"
        parts = draw(st.lists(st.tuples(st.sampled_from(FORM_NAMES), st.binary(max_size=60), st.booleans()),
                              max_size=6))
        file_name = '; filename="f.png"'
        body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
                        f"{file_name if as_file else ''}\r\n\r\n".encode() + data + b"\r\n"
                        for name, data, as_file in parts) + f"--{boundary}--\r\n".encode()
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        body = b""
    if method == "GET":
        body = b""
    signed = draw(st.booleans()) or by is None
    headers = {"content-type": content_type} if content_type else {}
    if not signed:
        headers.update(draw(st.dictionaries(st.sampled_from(["X-Terminal-Id", "X-Ecert-Id", "X-Timestamp",
                                                              "X-Nonce", "X-Signature", "Authorization",
                                                              CALLBACK_SIGNATURE_HEADER]),
                                            st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                                                    max_size=140), max_size=4)))
    return method, path, body, headers, signed


@given(request=requests_to())
@settings(**SETTINGS)
def test_nothing_a_caller_sends_breaks_a_door(world: dict, request: tuple) -> None:
    method, path, body, headers, signed = request
    by = next(o[2] for o in OPERATIONS if o[0] == method and o[1] == path)
    if signed:
        headers = {**headers, **_signed(world, by, method, path, body)}
    note(f"{method} {path} {headers} {body[:300]!r}")
    before = len(world["traces"].records)
    r = world["client"].request(method, path, content=body or None, headers=headers)
    assert r.status_code < 500, r.text
    assert world["traces"].records[before:] == []  # nothing a caller sends is a fault of ours
    if r.headers.get("content-type", "").startswith("application/json") and r.status_code >= 400:
        doc = r.json()
        if path.endswith("/ec/query"):
            assert set(doc) == {"orgId", "code", "message", "data"} and ": " in doc["message"]
        else:
            assert set(doc) == {"error"} and doc["error"]["field"] and doc["error"]["message"]
