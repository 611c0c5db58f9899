"""E-certificates end to end on both backends: activation, the dynamic code, the terminal's ec.query, and the
ecToken it yields in 1101 — plus every way a scan is refused (nothing is consumed by a refusal)."""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from medpay.adapters import qr_images
from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.ecert_tables import EcertCodeNonceRow, EcertRow, TerminalNonceRow
from medpay.adapters.db.tables import EcTokenRow
from medpay.adapters.platform_keys import load_or_create_key, public_key_hex
from medpay.domain.ecert_code import BUSINESS_TYPES, CodeError, make_payload, parse_and_verify
from medpay.services import demo
from medpay.services.qr.activation import ActivationService
from medpay.services.qr.ecert import (
    BusinessTypeMismatch,
    CodeExpired,
    CodeForged,
    CodeInvalid,
    CodeReplayed,
    DeviceAuthError,
    EcertRevoked,
    EcertService,
    ImageRejected,
    TerminalAuthError,
    sign_device_request,
    sign_terminal_request,
)
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound
from medpay.services.persons import PersonService
from tests.fakes import FakeSms, FrozenClock
from tests.helpers_server import STAFF

H1, H2 = demo.INSTITUTIONS[0][0], demo.INSTITUTIONS[1][0]
WANG, LI = demo.PERSONS[0], demo.PERSONS[1]  # 王建国, 李秀英
QUERY_PATH = "/api/v1/terminal/ec/query"
CODE_PATH = "/api/v1/mobile/ecert/code"



@dataclass
class Env:
    factory: sessionmaker[Session]
    clock: FrozenClock
    persons: PersonService
    svc: EcertService
    activations: ActivationService
    sms: FakeSms

    def activate(self, person=WANG, key: Ed25519PrivateKey | None = None) -> tuple[str, Ed25519PrivateKey]:
        """A counter activation (the staff saw the ID card), confirmed with the device key."""
        key = key or Ed25519PrivateKey.generate()
        started = self.activations.start_at_counter(person.psn_no, person.certno, True, "staff:test")
        return self.activations.confirm(public_key_hex(key), counter_code=started.counter_code).ecert_id, key

    def now(self) -> int:
        return int(self.clock().timestamp())

    def signed(self, ecert_id: str, key: Ed25519PrivateKey, bt: str = "01301", **kw) -> tuple[dict, bytes]:
        body = json.dumps({"business_type": bt}).encode()
        return sign_device_request(key, ecert_id, "POST", CODE_PATH, body,
                                   timestamp=kw.pop("timestamp", int(self.clock().timestamp())), **kw), body

    def code(self, ecert_id: str, key: Ed25519PrivateKey, bt: str = "01301") -> str:
        headers, body = self.signed(ecert_id, key, bt)
        asked, _psn_no = self.svc.verify_device(headers, "POST", CODE_PATH, body)
        return self.svc.issue_code(asked, bt)[0]

    def terminal(self, inst: str = H1) -> tuple[str, Ed25519PrivateKey]:
        key = Ed25519PrivateKey.generate()
        return self.svc.register_terminal(inst, public_key_hex(key), "门诊收费1号窗口"), key

    def scan(self, terminal: tuple[str, Ed25519PrivateKey], bt: str = "01301", qr: str | None = None,
             image: bytes | None = None) -> dict:
        """What the HTTP layer does: authenticate the signed request, then ec.query."""
        body = json.dumps({"businessType": bt, "qrCode": qr}).encode()
        headers = sign_terminal_request(terminal[1], terminal[0], "POST", QUERY_PATH, body,
                                        timestamp=int(self.clock().timestamp()))
        tid, inst = self.svc.verify_terminal(headers, "POST", QUERY_PATH, body)
        return self.svc.query(tid, inst, qr, image, bt)

    def count(self, row) -> int:
        with self.factory() as s:
            return s.scalar(select(func.count()).select_from(row))


@pytest.fixture
def env(session_factory: sessionmaker[Session]) -> Env:
    cipher = FieldCipher(os.urandom(32))
    demo.seed(session_factory, cipher)
    clock = FrozenClock()
    persons = PersonService(session_factory, cipher, clock)
    sms = FakeSms()
    return Env(session_factory, clock, persons,
               EcertService(session_factory, cipher, Ed25519PrivateKey.generate(), persons, clock),
               ActivationService(session_factory, cipher, sms, clock), sms)


# -- activation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "zz" * 32, "ab" * 31, "ab" * 33, None])
def test_activation_refuses_a_malformed_device_key(env: Env, bad) -> None:
    headers = sign_device_request(Ed25519PrivateKey.generate(), None, "POST", "/confirm", b"{}", env.now())
    with pytest.raises(Invalid) as e:
        env.svc.verify_device_key(headers, "POST", "/confirm", b"{}", bad)
    assert e.value.field == "device_public_key"


def test_activation_proves_the_device_holds_the_key(env: Env) -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    headers = sign_device_request(other, None, "POST", "/confirm", b"{}", env.now())
    with pytest.raises(DeviceAuthError) as e:  # someone else's public key, signed with mine
        env.svc.verify_device_key(headers, "POST", "/confirm", b"{}", public_key_hex(key))
    assert e.value.field == "X-Signature"
    headers = sign_device_request(key, None, "POST", "/confirm", b"{}", env.now())
    assert env.svc.verify_device_key(headers, "POST", "/confirm", b"{}", public_key_hex(key)) == public_key_hex(key)
    with pytest.raises(DeviceAuthError) as e:  # the same request again
        env.svc.verify_device_key(headers, "POST", "/confirm", b"{}", public_key_hex(key))
    assert e.value.field == "X-Nonce"


def test_reactivation_revokes_the_old_ecert(env: Env) -> None:
    old_id, old_key = env.activate()
    old_code = env.code(old_id, old_key)
    new_id, new_key = env.activate()
    assert new_id != old_id
    term = env.terminal()
    with pytest.raises(EcertRevoked) as e:
        env.scan(term, qr=old_code)
    assert e.value.field == "qrCode"
    with pytest.raises(EcertRevoked):
        env.code(old_id, old_key)
    assert env.scan(term, qr=env.code(new_id, new_key))["ecIndexNo"] == new_id
    with env.factory() as s:
        assert s.scalar(select(func.count()).select_from(EcertRow).where(EcertRow.status == "active")) == 1


def test_one_active_ecert_per_device_key(env: Env) -> None:
    key = Ed25519PrivateKey.generate()
    env.activate(WANG, key)
    with pytest.raises(Conflict) as e:
        env.activate(LI, key)
    assert e.value.field == "device_public_key"
    env.activate(WANG, key)  # the same person again on the same device: fine, replaces the old one
    assert env.count(EcertRow) == 2


# -- the happy path ------------------------------------------------------------------------------------------


def test_code_to_query_to_ectoken_in_1101(env: Env) -> None:
    ecert_id, key = env.activate()
    payload, expires_at = env.svc.issue_code(ecert_id, "01301")
    assert expires_at == env.clock() + timedelta(seconds=60)
    assert len(payload) <= 213  # a version-10 QR code at level M
    out = env.scan(env.terminal(H1), "01301", qr=payload)
    assert out == {"idNo": "999901********0011", "idType": "01", "userName": "王**", "ecToken": out["ecToken"],
                   "insuOrg": "999901", "ecIndexNo": ecert_id, "gender": "1", "birthday": "1980-01-01",
                   "businessType": "01301"}
    assert len(out["ecToken"]) == 40
    info = env.persons.person_info(H1, "01", out["ecToken"])
    assert info["baseinfo"]["psn_no"] == WANG.psn_no
    with pytest.raises(Forbidden) as e:  # bound to the institution whose terminal scanned it
        env.persons.person_info(H2, "01", out["ecToken"])
    assert e.value.field == "mdtrt_cert_no"
    with env.factory() as s:
        tok = s.scalars(select(EcTokenRow)).one()
        assert (tok.fixmedins_code, tok.business_type) == (H1, "01301")
        assert tok.expires_at == env.clock() + timedelta(minutes=30)
    env.clock.advance(31 * 60)
    with pytest.raises(Invalid, match="expired"):
        env.persons.person_info(H1, "01", out["ecToken"])


def test_code_scanned_at_another_institution_binds_the_token_there(env: Env) -> None:
    """A code names no institution: the patient shows it wherever they are. The institution whose terminal
    scans it first gets the token, usable there only; the code is then spent everywhere."""
    ecert_id, key = env.activate()
    payload = env.code(ecert_id, key)
    out = env.scan(env.terminal(H2), qr=payload)
    assert env.persons.person_info(H2, "01", out["ecToken"])["baseinfo"]["psn_no"] == WANG.psn_no
    with pytest.raises(Forbidden):
        env.persons.person_info(H1, "01", out["ecToken"])
    with pytest.raises(CodeReplayed):
        env.scan(env.terminal(H1), qr=payload)


def test_image_path_through_query(env: Env) -> None:
    ecert_id, key = env.activate(LI)
    payload = env.code(ecert_id, key, "02121")
    photo = Image.open(io.BytesIO(qr_images.render_png(payload, scale=6))).convert("L").rotate(
        11, expand=True, fillcolor=255)
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=35)
    term = env.terminal()
    out = env.scan(term, "02121", image=buf.getvalue())
    assert (out["userName"], out["gender"], out["businessType"]) == ("李**", "2", "02121")
    with pytest.raises(CodeReplayed) as e:  # the photo of a spent code
        env.scan(term, "02121", image=buf.getvalue())
    assert e.value.field == "image"


def test_image_without_a_code_or_with_two_or_not_an_image(env: Env) -> None:
    term = env.terminal()
    blank = io.BytesIO()
    Image.new("L", (640, 480), 255).save(blank, "PNG")
    with pytest.raises(ImageRejected) as e:
        env.scan(term, image=blank.getvalue())
    assert (e.value.field, e.value.message) == ("image", "no QR code found")
    ecert_id, key = env.activate()
    one = Image.open(io.BytesIO(qr_images.render_png(env.code(ecert_id, key), scale=4)))
    two = Image.new("L", (one.width * 2, one.height), 255)
    two.paste(one, (0, 0))
    two.paste(one, (one.width, 0))
    buf = io.BytesIO()
    two.save(buf, "PNG")
    with pytest.raises(ImageRejected, match="2 codes in the image; show one"):
        env.scan(term, image=buf.getvalue())
    with pytest.raises(ImageRejected, match="not an image"):
        env.scan(term, image=b"GIF89a-not-really")
    with pytest.raises(Invalid) as both:
        env.scan(term, qr="MPEC1.a.b", image=buf.getvalue())
    assert both.value.field == "image"
    assert env.count(EcertCodeNonceRow) == 0


# -- refused codes -------------------------------------------------------------------------------------------


def test_expired_code(env: Env) -> None:
    ecert_id, key = env.activate()
    payload = env.code(ecert_id, key)
    term = env.terminal()
    env.clock.advance(60)
    with pytest.raises(CodeExpired) as e:
        env.scan(term, qr=payload)
    assert e.value.field == "qrCode" and "refresh" in e.value.message
    env.clock.advance(-1)  # one second before expiry: still good
    assert env.scan(term, qr=payload)["ecIndexNo"] == ecert_id


def test_replayed_code(env: Env) -> None:
    ecert_id, key = env.activate()
    payload = env.code(ecert_id, key)
    term = env.terminal()
    env.scan(term, qr=payload)
    with pytest.raises(CodeReplayed) as e:
        env.scan(term, qr=payload)
    assert e.value.field == "qrCode" and e.value.status == 409
    assert env.count(EcTokenRow) == 1 and env.count(EcertCodeNonceRow) == 1
    env.scan(term, qr=env.code(ecert_id, key))  # a refreshed code works


def test_forged_code(env: Env) -> None:
    ecert_id, key = env.activate()
    term = env.terminal()
    other_platform = Ed25519PrivateKey.generate()
    with pytest.raises(CodeForged) as e:
        env.scan(term, qr=make_payload(other_platform, ecert_id, "01301", env.clock()))
    assert e.value.field == "qrCode" and "signature" in e.value.message
    # a genuine code with its claims swapped for another business type's
    genuine = env.code(ecert_id, key, "01301")
    other = env.code(ecert_id, key, "01101")
    spliced = ".".join([genuine.split(".")[0], other.split(".")[1], genuine.split(".")[2]])
    with pytest.raises(CodeForged):
        env.scan(term, "01101", qr=spliced)
    assert env.count(EcTokenRow) == 0


@pytest.mark.parametrize("cut", [
    lambda p: p[:-1], lambda p: p[:-20], lambda p: p[:120], lambda p: p.rsplit(".", 1)[0],
    lambda p: p[:5], lambda p: p.replace("MPEC1", "MPEC2"), lambda p: "WXPAY" + p[5:], lambda p: p + ".x",
    lambda p: p[:60] + "!" + p[61:], lambda p: " ",
])
def test_truncated_or_garbled_code(env: Env, cut) -> None:
    ecert_id, key = env.activate()
    term = env.terminal()
    with pytest.raises((CodeInvalid, Invalid)) as e:
        env.scan(term, qr=cut(env.code(ecert_id, key)))
    assert e.value.field == "qrCode"
    assert env.count(EcertCodeNonceRow) == 0


def test_wrong_business_type_names_both_and_consumes_nothing(env: Env) -> None:
    ecert_id, key = env.activate()
    payload = env.code(ecert_id, key, "01301")
    term = env.terminal()
    with pytest.raises(BusinessTypeMismatch) as e:
        env.scan(term, "01101", qr=payload)
    assert e.value.field == "businessType"
    assert "01301 门诊结算" in e.value.message and "01101 门诊挂号" in e.value.message
    assert env.count(EcertCodeNonceRow) == 0 and env.count(EcTokenRow) == 0
    assert env.scan(term, "01301", qr=payload)["businessType"] == "01301"
    with pytest.raises(Invalid) as unknown:
        env.scan(term, "99999", qr=payload)
    assert unknown.value.field == "businessType"


def test_revoked_ecert(env: Env) -> None:
    ecert_id, key = env.activate()
    payload = env.code(ecert_id, key)
    env.svc.revoke(ecert_id)
    with pytest.raises(EcertRevoked):
        env.scan(env.terminal(), qr=payload)
    with pytest.raises(EcertRevoked):
        env.code(ecert_id, key)
    with pytest.raises(NotFound):
        env.svc.revoke("ECNOSUCH00")


def test_code_needs_the_device_key_of_this_ecert(env: Env) -> None:
    ecert_id, _ = env.activate(WANG)
    _, li_key = env.activate(LI)
    headers, body = env.signed(ecert_id, li_key)  # 李秀英's phone asks for 王建国's code
    with pytest.raises(DeviceAuthError) as e:
        env.svc.verify_device(headers, "POST", CODE_PATH, body)
    assert e.value.field == "X-Signature" and e.value.status == 401


def test_code_request_signature_is_bound_fresh_single_use_and_canonical(env: Env) -> None:
    import base64

    ecert_id, key = env.activate()
    headers, body = env.signed(ecert_id, key, "01301")

    def refused(h: dict, field: str, path: str = CODE_PATH, b: bytes = body) -> DeviceAuthError:
        with pytest.raises(DeviceAuthError) as e:
            env.svc.verify_device(h, "POST", path, b)
        assert e.value.field == field, e.value
        return e.value

    refused(headers, "X-Signature", b=json.dumps({"business_type": "01101"}).encode())  # signed for 01301
    refused(headers, "X-Signature", path=CODE_PATH + ".png")  # signed for another path
    stale, _ = env.signed(ecert_id, key, timestamp=int(env.clock().timestamp()) - 121)
    assert "stale" in refused(stale, "X-Timestamp").message
    for bad in ("", "00" * 64, "xyz", headers["X-Signature"][:-2]):
        refused({**headers, "X-Signature": bad}, "X-Signature")
    for name in ("X-Nonce", "X-Timestamp", "X-Ecert-Id"):
        refused({k: v for k, v in headers.items() if k != name}, name)
    # an unknown e-certificate is refused exactly like a wrong signature: ids can't be probed
    unknown = refused(sign_device_request(key, "ECNOSUCH00", "POST", CODE_PATH, body, env.now()), "X-Signature")
    wrong = refused(env.signed(ecert_id, Ed25519PrivateKey.generate())[0], "X-Signature")
    assert (unknown.status, unknown.code, unknown.message) == (wrong.status, wrong.code, wrong.message)

    raw = bytes.fromhex(headers["X-Signature"])
    b64 = base64.urlsafe_b64encode(raw).decode().rstrip("=")  # base64 is fine …
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = b64[:-1] + last[last.index(b64[-1]) ^ 1]  # … but not a second spelling of the same bytes
    assert base64.urlsafe_b64decode(twin + "==") == raw
    refused({**headers, "X-Signature": twin}, "X-Signature")
    assert env.svc.verify_device({**headers, "X-Signature": b64}, "POST", CODE_PATH, body)[0] == ecert_id
    refused(headers, "X-Nonce")  # used once, by the base64 spelling: a replay in hex is refused too


def test_token_failure_releases_the_code(env: Env, monkeypatch) -> None:
    """The code is used up and the token written in one transaction: a failure in between uses up nothing."""
    ecert_id, key = env.activate()
    payload = env.code(ecert_id, key)
    term = env.terminal()

    def broken(*a, **k):
        raise RuntimeError("database went away")

    monkeypatch.setattr(env.persons, "add_ec_token", broken)
    with pytest.raises(RuntimeError):
        env.scan(term, qr=payload)
    assert env.count(EcertCodeNonceRow) == 0
    monkeypatch.undo()
    assert env.scan(term, qr=payload)["ecIndexNo"] == ecert_id


# -- terminals -----------------------------------------------------------------------------------------------


def test_terminal_registration(env: Env) -> None:
    key = public_key_hex(Ed25519PrivateKey.generate())
    with pytest.raises(NotFound) as e:
        env.svc.register_terminal("H00000000000", key, "窗口")
    assert e.value.field == "fixmedins_code"
    tid = env.svc.register_terminal(H1, key, "窗口")
    assert tid.startswith("TM")
    with pytest.raises(Conflict):
        env.svc.register_terminal(H2, key, "窗口")
    with pytest.raises(Invalid) as bad:
        env.svc.register_terminal(H1, "00", "窗口")
    assert bad.value.field == "public_key"


def _signed(env: Env, term, body: bytes = b"{}", **kw) -> dict[str, str]:
    kw.setdefault("timestamp", int(env.clock().timestamp()))
    return sign_terminal_request(term[1], term[0], "POST", QUERY_PATH, body, **kw)


def test_terminal_signature_checks(env: Env) -> None:
    term = env.terminal(H1)
    body = b'{"businessType":"01301"}'
    assert env.svc.verify_terminal(_signed(env, term, body), "POST", QUERY_PATH, body) == (term[0], H1)

    def refused(headers, header: str, method="POST", path=QUERY_PATH, b=body) -> TerminalAuthError:
        with pytest.raises(TerminalAuthError) as e:
            env.svc.verify_terminal(headers, method, path, b)
        assert e.value.field == header and e.value.status == 401
        return e.value

    impostor = (term[0], Ed25519PrivateKey.generate())
    wrong_key = refused(_signed(env, impostor, body), "X-Signature")  # signed with another key
    refused(_signed(env, term, body), "X-Signature", b=body + b" ")  # body altered
    refused(_signed(env, term, body), "X-Signature", path="/api/v1/terminal/other")
    refused(_signed(env, term, body), "X-Signature", method="PUT")
    now = int(env.clock().timestamp())
    refused(_signed(env, term, body, timestamp=now - 301), "X-Timestamp")  # stale
    refused(_signed(env, term, body, timestamp=now + 301), "X-Timestamp")
    refused({**_signed(env, term, body), "X-Timestamp": str(now * 1000)}, "X-Timestamp")
    replay = _signed(env, term, body, nonce="nonce-0001")
    env.svc.verify_terminal(replay, "POST", QUERY_PATH, body)
    refused(replay, "X-Nonce")  # replayed
    refused(_signed(env, (term[0], term[1]), body, nonce="short"), "X-Nonce")
    refused({k: v for k, v in _signed(env, term, body).items() if k != "X-Signature"}, "X-Signature")
    refused({k: v for k, v in _signed(env, term, body).items() if k != "X-Terminal-Id"}, "X-Terminal-Id")
    unknown = refused(_signed(env, ("TMNOSUCH00", term[1]), body), "X-Signature")
    assert unknown.message == wrong_key.message  # an unknown terminal answers like a wrong key: ids can't be probed
    assert env.count(TerminalNonceRow) == 2  # only the accepted requests recorded a nonce
    env.svc.disable_terminal(term[0])
    refused(_signed(env, term, body), "X-Terminal-Id")
    # headers are case-insensitive
    other = env.terminal(H2)
    lower = {k.lower(): v for k, v in _signed(env, other, body).items()}
    assert env.svc.verify_terminal(lower, "post", QUERY_PATH, body) == (other[0], H2)


def test_purge_forgets_only_what_cannot_be_replayed(env: Env) -> None:
    ecert_id, key = env.activate()
    term = env.terminal()
    env.scan(term, qr=env.code(ecert_id, key))
    assert env.svc.purge_nonces() == 0
    env.clock.advance(601)
    assert env.svc.purge_nonces() == 3  # one terminal nonce, one device nonce, one code nonce
    assert env.count(TerminalNonceRow) == 0 and env.count(EcertCodeNonceRow) == 0


# -- the payload format (pure) -------------------------------------------------------------------------------


def test_payload_claims_and_limits() -> None:
    key = Ed25519PrivateKey.generate()
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    payload = make_payload(key, "EC7K2M9QX4", "01104", t)
    c = parse_and_verify(payload, key.public_key(), t + timedelta(seconds=59))
    assert (c.ecert_id, c.business_type, c.expires_at - c.issued_at, c.version) == ("EC7K2M9QX4", "01104", 60, 1)
    with pytest.raises(ValueError):
        make_payload(key, "EC7K2M9QX4", "01104", t, ttl_s=61)
    with pytest.raises(ValueError):
        make_payload(key, "EC7K2M9QX4", "00000", t)
    with pytest.raises(CodeError) as e:
        parse_and_verify(payload, key.public_key(), t - timedelta(seconds=31))
    assert e.value.kind == "not_yet_valid"
    with pytest.raises(CodeError) as e:
        parse_and_verify(payload, key.public_key(), t + timedelta(seconds=60))
    assert e.value.kind == "expired"
    with pytest.raises(CodeError) as e:
        parse_and_verify(payload, Ed25519PrivateKey.generate().public_key(), t)
    assert e.value.kind == "signature"
    assert {"01101", "01201", "01301", "01104", "02121"} <= set(BUSINESS_TYPES)


def test_signing_key_file_is_created_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "var" / "signing.key"
    key = load_or_create_key(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert public_key_hex(load_or_create_key(path)) == public_key_hex(key)
    path.write_text("bm90IGEga2V5")
    with pytest.raises(ValueError, match="32 bytes"):
        load_or_create_key(path)


# -- HTTP: mobile and terminal doors ----------------------------------------------------------------------


@pytest.fixture
def client(db_url: str, engine, tmp_path: Path):
    from medpay.api.app import create_app
    from medpay.api.platform import build_platform

    cipher = FieldCipher(os.urandom(32))
    platform = build_platform(db_url, cipher=cipher)
    demo.seed(platform.factory, cipher)
    app = create_app(platform)
    app.state.ecert = EcertService(platform.factory, cipher, Ed25519PrivateKey.generate(), platform.persons)
    with TestClient(app) as c:
        yield c
    platform.engine.dispose()


def _now() -> int:
    return int(datetime.now(timezone.utc).timestamp())


def test_http_activate_code_png_and_query(client: TestClient) -> None:
    device = Ed25519PrivateKey.generate()
    no_sms = client.post("/api/v1/mobile/ecert/activate", json={"psn_no": WANG.psn_no, "certno": WANG.certno,
                                                                "consent": True})
    assert no_sms.status_code == 503 and no_sms.json()["error"]["field"] == "sms"  # no SMS service here: a counter
    no_consent = client.post("/api/v1/mobile/ecert/activate", json={"psn_no": WANG.psn_no, "certno": WANG.certno,
                                                                    "consent": False})
    assert no_consent.status_code == 422 and no_consent.json()["error"]["field"] == "consent"
    counter = client.post("/api/v1/admin/ecert/counter-activations", headers=STAFF, json={
        "psn_no": WANG.psn_no, "certno": WANG.certno, "consent": True, "id_checked": True})
    assert counter.status_code == 201, counter.text
    assert client.post("/api/v1/admin/ecert/counter-activations", json={
        "psn_no": WANG.psn_no, "certno": WANG.certno, "consent": True, "id_checked": True}).status_code == 401
    confirm = "/api/v1/mobile/ecert/activate/confirm"
    body = json.dumps({"device_public_key": public_key_hex(device),
                       "counter_code": counter.json()["counter_code"]}).encode()
    unsigned = client.post(confirm, content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401 and unsigned.json()["error"]["field"] == "X-Timestamp"
    r = client.post(confirm, content=body, headers={"Content-Type": "application/json",
                                                    **sign_device_request(device, None, "POST", confirm, body)})
    assert r.status_code == 200, r.text
    ecert_id = r.json()["ecert_id"]
    assert r.json() == {"ecert_id": ecert_id, "status": "active", "userName": "王**", "idNo": "999901********0011"}

    body = json.dumps({"business_type": "01301"}).encode()
    r = client.post(CODE_PATH, content=body, headers={"Content-Type": "application/json",
                                                      **sign_device_request(device, ecert_id, "POST", CODE_PATH, body)})
    assert r.status_code == 200, r.text
    code = r.json()
    assert code["svg"].startswith("<svg") and code["refresh_in_s"] == 50 and r.headers["cache-control"] == "no-store"
    png_path = "/api/v1/mobile/ecert/code.png?business_type=01301"
    signed_png = sign_device_request(device, ecert_id, "GET", png_path)
    png = client.get(png_path, headers=signed_png)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    png_payload = qr_images.decode(png.content)
    assert png_payload.startswith("MPEC1.") and png_payload != code["payload"]  # a fresh code each time
    again = client.get(png_path, headers=signed_png)  # the same signed request, fetched twice: one code
    assert again.status_code == 401 and again.json()["error"]["field"] == "X-Nonce"
    other = client.get("/api/v1/mobile/ecert/code.png?business_type=01101",
                       headers=sign_device_request(device, ecert_id, "GET", png_path))  # signed for 01301
    assert other.status_code == 401 and other.json()["error"]["field"] == "X-Signature"
    in_url = client.get(png_path + f"&ecert_id={ecert_id}&device_signature={'0' * 128}")  # the old way: no more
    assert in_url.status_code == 401 and in_url.json()["error"]["field"] in ("X-Ecert-Id", "X-Timestamp")

    svc: EcertService = client.app.state.ecert
    tkey = Ed25519PrivateKey.generate()
    tid = svc.register_terminal(H1, public_key_hex(tkey), "自助机")

    def post_json(doc: dict, key=tkey, terminal_id=tid) -> httpx.Response:
        body = json.dumps(doc, ensure_ascii=False).encode()
        headers = sign_terminal_request(key, terminal_id, "POST", QUERY_PATH, body)
        return client.post(QUERY_PATH, content=body, headers={**headers, "Content-Type": "application/json"})

    wrong_bt = post_json({"orgId": H1, "businessType": "01101", "qrCode": code["payload"]})
    assert wrong_bt.status_code == 422
    assert wrong_bt.json()["code"] == 2006 and wrong_bt.json()["message"].startswith("businessType: ")
    ok = post_json({"orgId": H1, "transType": "ec.query",
                    "data": {"businessType": "01301", "qrCode": code["payload"], "deviceType": "SelfService"}})
    assert ok.status_code == 200, ok.text
    out = ok.json()
    assert (out["code"], out["orgId"], out["data"]["userName"], out["data"]["insuOrg"]) == (0, H1, "王**", "999901")
    again = post_json({"orgId": H1, "businessType": "01301", "qrCode": code["payload"]})
    assert again.status_code == 409 and again.json()["code"] == 2004 and again.json()["message"].startswith("qrCode: ")
    other_org = post_json({"orgId": H2, "businessType": "01301", "qrCode": png_payload})
    assert other_org.status_code == 403 and other_org.json()["message"].startswith("orgId: ")
    unsigned = client.post(QUERY_PATH, json={"orgId": H1, "businessType": "01301", "qrCode": png_payload})
    assert unsigned.status_code == 401 and unsigned.json()["code"] == 1101
    assert unsigned.json()["message"] == "X-Terminal-Id: missing header"

    # multipart with the photo, encoded by a real HTTP client's form encoder
    req = httpx.Request("POST", "http://testserver" + QUERY_PATH, data={"orgId": H1, "businessType": "01301"},
                        files={"image": ("code.png", png.content, "image/png")})
    body = req.read()
    headers = sign_terminal_request(tkey, tid, "POST", QUERY_PATH, body)
    r = client.post(QUERY_PATH, content=body, headers={**headers, "Content-Type": req.headers["content-type"]})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["ecIndexNo"] == ecert_id
    token = r.json()["data"]["ecToken"]
    assert client.app.state.platform.persons.person_info(H1, "01", token)["baseinfo"]["psn_no"] == WANG.psn_no

    req = httpx.Request("POST", "http://testserver" + QUERY_PATH, data={"orgId": H1, "businessType": "01301"},
                        files={"image": ("blank.png", qr_images.render_png("x")[:50], "image/png")})
    body = req.read()
    headers = sign_terminal_request(tkey, tid, "POST", QUERY_PATH, body)
    r = client.post(QUERY_PATH, content=body, headers={**headers, "Content-Type": req.headers["content-type"]})
    assert r.status_code == 422 and r.json()["code"] == 2007 and r.json()["message"].startswith("image: ")


@pytest.mark.parametrize("value, ttl", [("", 60), ("15", 15), ("0", None), ("61", None), ("15s", None), ("-5", None)])
def test_code_lifetime_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, ttl: int | None) -> None:
    """MEDPAY_ECERT_CODE_TTL_S shortens codes; a value the code format can't carry stops the start."""
    from medpay.api.platform import build_platform

    monkeypatch.setenv("MEDPAY_ECERT_CODE_TTL_S", value)
    url = f"sqlite:///{tmp_path / 'ttl.db'}"
    if ttl is None:
        with pytest.raises(ValueError, match="MEDPAY_ECERT_CODE_TTL_S must be whole seconds from 1 to 60"):
            build_platform(url, cipher=FieldCipher(os.urandom(32)))
    else:
        platform = build_platform(url, cipher=FieldCipher(os.urandom(32)))
        assert platform.ecert_code_ttl_s == ttl
        platform.engine.dispose()


def test_openapi_documents_both_doors(client: TestClient) -> None:
    """How the terminal and the app sign is a security scheme of each operation, not loose header parameters."""
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert all(schemes[name] == {"type": "apiKey", "in": "header", "name": name, "description": schemes[name][
        "description"]} for name in ("X-Terminal-Id", "X-Ecert-Id", "X-Timestamp", "X-Nonce", "X-Signature"))
    query = spec["paths"][QUERY_PATH]["post"]
    assert {"application/json", "multipart/form-data"} <= set(query["requestBody"]["content"])
    assert query["security"] == [{"X-Terminal-Id": [], "X-Timestamp": [], "X-Nonce": [], "X-Signature": []}]
    assert "parameters" not in query
    assert {"/api/v1/mobile/ecert/activate", "/api/v1/mobile/ecert/activate/confirm", CODE_PATH,
            "/api/v1/mobile/ecert/code.png"} <= set(spec["paths"])
    png = spec["paths"]["/api/v1/mobile/ecert/code.png"]["get"]
    assert png["security"] == [{"X-Ecert-Id": [], "X-Timestamp": [], "X-Nonce": [], "X-Signature": []}]
    assert {p["name"] for p in png["parameters"]} == {"business_type", "scale"}  # nothing secret in the URL
    confirm = spec["paths"]["/api/v1/mobile/ecert/activate/confirm"]["post"]
    assert confirm["security"] == [{"X-Timestamp": [], "X-Nonce": [], "X-Signature": []}]
    preview = spec["paths"]["/api/v1/mobile/bills/preview"]["post"]
    assert {"application/json", "multipart/form-data"} <= set(preview["requestBody"]["content"])
    assert preview["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    assert preview["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"}
    schema = spec["components"]["schemas"]["BillPreview"]
    assert schema["examples"][0]["fixmedins_name"] == "演示市第一人民医院" and "medfee_sumamt" in schema["required"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # 422s are the door's own shape


# -- CLI -----------------------------------------------------------------------------------------------------


def test_cli_activate_code_and_register_terminal(db_url: str, engine, tmp_path: Path) -> None:
    from medpay.adapters.crypto import cipher_of
    from medpay.adapters.db.engine import session_factory
    from medpay.adapters.db.key_check import open_keyring
    from medpay.cli_ecert import ecert_app

    env = {"MEDPAY_DATABASE_URL": db_url, "MEDPAY_DATA_KEY_FILE": str(tmp_path / "data.key"),
           "MEDPAY_SIGNING_KEY_FILE": str(tmp_path / "signing.key")}
    keys = open_keyring(engine, env["MEDPAY_DATA_KEY_FILE"], env["MEDPAY_SIGNING_KEY_FILE"])
    demo.seed(session_factory(engine), cipher_of(keys))
    runner = CliRunner()
    device = tmp_path / "device.key"
    no = runner.invoke(ecert_app, ["activate", "--psn-no", WANG.psn_no, "--certno", WANG.certno,
                                   "--key-file", str(device)], env=env)
    assert no.exit_code == 2 and "consent" in no.output
    r = runner.invoke(ecert_app, ["activate", "--psn-no", WANG.psn_no, "--certno", WANG.certno,
                                  "--key-file", str(device), "--consent"], env=env)
    assert r.exit_code == 0, r.output
    ecert_id = json.loads(r.stdout)["ecert_id"]
    assert oct(device.stat().st_mode & 0o777) == "0o600"
    png, svg = tmp_path / "code.png", tmp_path / "code.svg"
    r = runner.invoke(ecert_app, ["code", "--ecert-id", ecert_id, "--key-file", str(device),
                                  "--business-type", "02121", "--png", str(png), "--svg", str(svg)], env=env)
    assert r.exit_code == 0, r.output
    payload = json.loads(r.stdout)["payload"]
    assert qr_images.decode(png.read_bytes()) == payload and svg.read_text().startswith("<svg")
    short = runner.invoke(ecert_app, ["code", "--ecert-id", ecert_id, "--key-file", str(device)],
                          env={**env, "MEDPAY_ECERT_CODE_TTL_S": "20"})  # the server's code lifetime applies
    assert short.exit_code == 0, short.output
    expires = datetime.fromisoformat(json.loads(short.stdout)["expires_at"]).timestamp()
    assert 18 <= expires - time.time() <= 21
    wrong = runner.invoke(ecert_app, ["code", "--ecert-id", ecert_id, "--key-file", str(device)],
                          env={**env, "MEDPAY_ECERT_CODE_TTL_S": "90"})
    assert wrong.exit_code == 2 and "MEDPAY_ECERT_CODE_TTL_S" in wrong.output
    r = runner.invoke(ecert_app, ["terminal-register", "--fixmedins-code", H1, "--name", "1号窗口",
                                  "--key-file", str(tmp_path / "terminal.key")], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["terminal_id"].startswith("TM")
    bad = runner.invoke(ecert_app, ["terminal-register", "--fixmedins-code", "H0", "--name", "x",
                                    "--key-file", str(tmp_path / "t2.key")], env=env)
    assert bad.exit_code == 2 and "fixmedins_code" in bad.output


def test_a_code_has_one_spelling(env: Env) -> None:
    """Issue 9 item 10: a changed last character of the signature decoded to the same bytes and still verified."""
    ecert_id, key = env.activate()
    payload = env.code(ecert_id, key)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = payload[:-1] + alphabet[alphabet.index(payload[-1]) ^ 1]  # another spelling of the same 64 bytes
    with pytest.raises(CodeError) as e:
        parse_and_verify(twin, env.svc.public_key, env.clock())
    assert e.value.field == "signature" and "canonical" in e.value.message
    with pytest.raises(CodeInvalid):
        env.scan(env.terminal(), qr=twin)
    assert env.scan(env.terminal(), qr=payload)["ecIndexNo"] == ecert_id  # the genuine spelling still scans once
