"""Activating an e-certificate needs a second proof besides the ID number (issue 9, item 1): a code texted to the
phone on the person's record, or a counter code from staff who saw the ID card. Service tests on both backends
with an in-memory SMS port; end-to-end tests against ``medpay serve`` with its SMS simulator process."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.audit_tables import AuditEventRow
from medpay.adapters.db.ecert_tables import EcertActivationRow, EcertRow
from medpay.adapters.platform_keys import public_key_hex
from medpay.services import demo
from medpay.services.qr.activation import (
    MAX_ATTEMPTS,
    ActivationPending,
    ActivationService,
    SmsFailed,
    TooManyStarts,
    WrongCode,
)
from medpay.services.qr.ecert import EcertRevoked, EcertService, sign_device_request
from medpay.services.errors import Conflict, Invalid, ServiceError
from medpay.services.persons import PersonService
from tests.fakes import FakeSms, FrozenClock
from tests.helpers_server import STAFF, activate, backend_server, texted_code

WANG, LI, CHILD, LIU = demo.PERSONS[0], demo.PERSONS[1], demo.PERSONS[3], demo.PERSONS[5]
CODE_PATH = "/api/v1/mobile/ecert/code"



class Env:
    def __init__(self, factory, cipher) -> None:
        self.factory, self.clock, self.sms = factory, FrozenClock(), FakeSms()
        self.svc = ActivationService(factory, cipher, self.sms, self.clock)
        self.ecerts = EcertService(factory, cipher, Ed25519PrivateKey.generate(), PersonService(factory, cipher),
                                   self.clock)

    def by_sms(self, person=WANG, key: Ed25519PrivateKey | None = None) -> str:
        started = self.svc.start(person.psn_no, person.certno, True)
        key = key or Ed25519PrivateKey.generate()
        return self.svc.confirm(public_key_hex(key), activation_id=started.activation_id,
                                code=self.sms.last_code(person.phone)).ecert_id

    def ecert(self, ecert_id: str) -> EcertRow:
        with self.factory() as s:
            return s.get(EcertRow, ecert_id)

    def activations(self, person=WANG) -> list[str]:
        with self.factory() as s:
            return [r.status for r in s.scalars(select(EcertActivationRow).where(EcertActivationRow.psn_no ==
                                                                                 person.psn_no)
                                                .order_by(EcertActivationRow.created_at))]


@pytest.fixture
def env(session_factory) -> Env:
    cipher = FieldCipher(os.urandom(32))
    demo.seed(session_factory, cipher)
    return Env(session_factory, cipher)


def refused(exc: type[ServiceError], field: str, fn, *args, **kw) -> ServiceError:
    with pytest.raises(exc) as e:
        fn(*args, **kw)
    assert e.value.field == field, e.value
    return e.value


# -- the reported takeover ----------------------------------------------------------------------------------


def test_knowing_someones_numbers_no_longer_takes_their_ecert(env: Env) -> None:
    """The report: psn_no + ID number + an attacker's key took over the victim's e-certificate at once."""
    victims = env.by_sms(WANG)
    attacker = Ed25519PrivateKey.generate()
    started = env.svc.start(WANG.psn_no, WANG.certno, True)  # the attacker knows both numbers
    assert started.phone == "138****0001"  # the code goes to the victim's phone, never to one the caller names
    assert "如非本人操作" in env.sms.to(WANG.phone)[-1]  # and tells the victim someone is trying
    real = env.sms.last_code(WANG.phone)
    guesses = [f"{(int(real) + i) % 10**6:06d}" for i in range(1, MAX_ATTEMPTS + 1)]
    for i, guess in enumerate(guesses, start=1):
        e = refused(WrongCode, "code", env.svc.confirm, public_key_hex(attacker),
                    activation_id=started.activation_id, code=guess)
        assert ("too often" in e.message) == (i == MAX_ATTEMPTS)
    refused(WrongCode, "code", env.svc.confirm, public_key_hex(attacker), activation_id=started.activation_id,
            code=real)  # locked after MAX_ATTEMPTS wrong codes: not even the right one now
    assert env.ecert(victims).status == "active"  # the victim's e-certificate was never touched
    assert env.activations()[-1] == "failed"


def test_consent_and_the_persons_own_id_number_are_required(env: Env) -> None:
    for consent in (False, None, "yes", 1):
        e = refused(Invalid, "consent", env.svc.start, WANG.psn_no, WANG.certno, consent)
        assert "个人信息" in e.message
    wrong = refused(Invalid, "certno", env.svc.start, WANG.psn_no, LI.certno, True)
    unknown = refused(Invalid, "certno", env.svc.start, "99990199999999", WANG.certno, True)
    assert wrong.message == unknown.message  # no probing for who is insured
    assert env.sms.sent == [] and env.activations() == []
    assert env.svc.start(WANG.psn_no, WANG.certno.lower() + " ", True).phone == "138****0001"


# -- pending, expiry, counter override ----------------------------------------------------------------------


def test_a_pending_activation_refuses_another_until_it_expires(env: Env) -> None:
    first = env.svc.start(WANG.psn_no, WANG.certno, True)
    e = refused(ActivationPending, "psn_no", env.svc.start, WANG.psn_no, WANG.certno, True)
    assert e.status == 409 and "16:35" in e.message  # until when (China time)
    assert len(env.sms.to(WANG.phone)) == 1
    env.clock.advance(minutes=5)
    second = env.svc.start(WANG.psn_no, WANG.certno, True)
    refused(WrongCode, "code", env.svc.confirm, public_key_hex(Ed25519PrivateKey.generate()),
            activation_id=first.activation_id, code="000000")  # the expired one is gone
    assert env.activations() == ["expired", "pending"] and second.activation_id != first.activation_id


def test_an_expired_code_is_refused(env: Env) -> None:
    started = env.svc.start(WANG.psn_no, WANG.certno, True)
    env.clock.advance(minutes=5, seconds=1)
    e = refused(WrongCode, "code", env.svc.confirm, public_key_hex(Ed25519PrivateKey.generate()),
                activation_id=started.activation_id, code=env.sms.last_code(WANG.phone))
    assert "expired" in e.message and env.activations() == ["expired"]


def test_a_counter_activation_overrides_a_pending_one(env: Env) -> None:
    """Nobody who knows a person's numbers can block them: staff who saw the ID card cancel the pending attempt."""
    blocked = env.svc.start(WANG.psn_no, WANG.certno, True)  # someone else started it
    counter = env.svc.start_at_counter(WANG.psn_no, WANG.certno, True, "staff:K1")
    assert counter.holder == {"userName": "王**", "idNo": "999901********0011"}
    refused(WrongCode, "code", env.svc.confirm, public_key_hex(Ed25519PrivateKey.generate()),
            activation_id=blocked.activation_id, code=env.sms.last_code(WANG.phone))  # cancelled
    done = env.svc.confirm(public_key_hex(Ed25519PrivateKey.generate()), counter_code=counter.counter_code.lower())
    assert env.ecert(done.ecert_id).status == "active"
    refused(WrongCode, "counter_code", env.svc.confirm, public_key_hex(Ed25519PrivateKey.generate()),
            counter_code=counter.counter_code)  # single use
    with env.factory() as s:
        event = s.scalars(select(AuditEventRow).where(AuditEventRow.action == "ecert.counter_activation")).one()
        assert (event.actor_kind, event.actor, event.psn_no) == ("operator", "staff:K1", WANG.psn_no)


def test_a_counter_code_expires_and_a_malformed_one_is_named(env: Env) -> None:
    counter = env.svc.start_at_counter(LIU.psn_no, LIU.certno, True, "staff:K1")
    refused(Invalid, "counter_code", env.svc.confirm, public_key_hex(Ed25519PrivateKey.generate()),
            counter_code="12345")
    env.clock.advance(minutes=15)
    refused(WrongCode, "counter_code", env.svc.confirm, public_key_hex(Ed25519PrivateKey.generate()),
            counter_code=counter.counter_code)


def test_without_a_phone_on_record_only_a_counter_activates(env: Env) -> None:
    e = refused(Conflict, "phone", env.svc.start, LIU.psn_no, LIU.certno, True)
    assert "counter" in e.message and env.sms.sent == []
    counter = env.svc.start_at_counter(LIU.psn_no, LIU.certno, True, "staff:K1")
    assert env.svc.confirm(public_key_hex(Ed25519PrivateKey.generate()), counter_code=counter.counter_code).ecert_id


# -- re-activation notices ----------------------------------------------------------------------------------


def test_reactivation_on_a_new_device_tells_the_old_device_and_the_phone(env: Env) -> None:
    old_key = Ed25519PrivateKey.generate()
    old = env.by_sms(WANG, old_key)
    started = env.svc.start(WANG.psn_no, WANG.certno, True)
    done = env.svc.confirm(public_key_hex(Ed25519PrivateKey.generate()), activation_id=started.activation_id,
                           code=env.sms.last_code(WANG.phone))
    env.svc.notify_replaced(done)
    assert done.replaced and "在新设备上激活" in env.sms.to(WANG.phone)[-1]
    row = env.ecert(old)
    assert (row.status, row.revoked_reason) == ("revoked", "reactivated")
    body = json.dumps({"business_type": "01301"}).encode()
    headers = sign_device_request(old_key, old, "POST", CODE_PATH, body, int(env.clock().timestamp()))
    e = refused(EcertRevoked, "X-Ecert-Id", env.ecerts.verify_device, headers, "POST", CODE_PATH, body)
    assert "activated on another device at 2026-03-02 16:30" in e.message and "12393" in e.message


def test_a_first_activation_sends_no_replacement_notice(env: Env) -> None:
    started = env.svc.start(WANG.psn_no, WANG.certno, True)
    done = env.svc.confirm(public_key_hex(Ed25519PrivateKey.generate()), activation_id=started.activation_id,
                           code=env.sms.last_code(WANG.phone))
    env.svc.notify_replaced(done)
    assert not done.replaced and len(env.sms.to(WANG.phone)) == 1


# -- the SMS service's faults, and rate limits ----------------------------------------------------------------


def test_a_code_that_could_not_be_texted_blocks_nobody(env: Env) -> None:
    env.sms.fail = 1
    e = refused(SmsFailed, "sms", env.svc.start, WANG.psn_no, WANG.certno, True)
    assert e.status == 503 and env.activations() == ["failed"]
    assert env.svc.start(WANG.psn_no, WANG.certno, True).phone  # at once, not after 5 minutes


def test_an_unknown_sms_outcome_is_asked_again_with_the_same_ref(env: Env) -> None:
    env.sms.unknown = 1
    started = env.svc.start(WANG.psn_no, WANG.certno, True)
    assert len(env.sms.to(WANG.phone)) == 1  # texted once, though asked twice
    assert env.svc.confirm(public_key_hex(Ed25519PrivateKey.generate()), activation_id=started.activation_id,
                           code=env.sms.last_code(WANG.phone)).ecert_id


def test_at_most_so_many_codes_a_day(env: Env) -> None:
    for _ in range(5):
        env.svc.start(WANG.psn_no, WANG.certno, True)
        env.clock.advance(minutes=6)
    e = refused(TooManyStarts, "psn_no", env.svc.start, WANG.psn_no, WANG.certno, True)
    assert e.status == 429 and len(env.sms.to(WANG.phone)) == 5
    env.clock.advance(hours=24)
    assert env.svc.start(WANG.psn_no, WANG.certno, True)


def test_one_code_confirms_once_even_when_two_devices_race(env: Env) -> None:
    started = env.svc.start(WANG.psn_no, WANG.certno, True)
    code = env.sms.last_code(WANG.phone)
    results: list[object] = []

    def confirm() -> None:
        try:
            results.append(env.svc.confirm(public_key_hex(Ed25519PrivateKey.generate()),
                                           activation_id=started.activation_id, code=code).ecert_id)
        except ServiceError as e:
            results.append(e)

    threads = [threading.Thread(target=confirm) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, str) for r in results) == 1, results
    with env.factory() as s:
        assert len(s.scalars(select(EcertRow).where(EcertRow.status == "active")).all()) == 1


# -- end to end: the HTTP door and the SMS simulator process ---------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from backend_server(request.param, tmp_path_factory.mktemp("activation"))


def _confirm(served, key: Ed25519PrivateKey, fields: dict) -> httpx.Response:
    path = "/api/v1/mobile/ecert/activate/confirm"
    body = json.dumps({"device_public_key": public_key_hex(key), **fields}).encode()
    return httpx.post(served + path, content=body, timeout=30, headers={
        "content-type": "application/json", **sign_device_request(key, None, "POST", path, body)})


def _code(served, key: Ed25519PrivateKey, ecert_id: str) -> httpx.Response:
    body = json.dumps({"business_type": "01301"}).encode()
    return httpx.post(served + CODE_PATH, content=body, timeout=30, headers={
        "content-type": "application/json", **sign_device_request(key, ecert_id, "POST", CODE_PATH, body)})


def test_http_takeover_attempt_fails_and_the_victim_keeps_paying(served) -> None:
    victim_key = Ed25519PrivateKey.generate()
    victim = activate(served, LI, victim_key)["ecert_id"]
    attacker = Ed25519PrivateKey.generate()
    start = httpx.post(f"{served}/api/v1/mobile/ecert/activate",
                       json={"psn_no": LI.psn_no, "certno": LI.certno, "consent": True})
    assert start.status_code == 202 and start.json()["phone"] == "138****0002"
    wrong = _confirm(served, attacker, {"activation_id": start.json()["activation_id"], "code": "000000"})
    assert wrong.status_code == 422 and wrong.json()["error"] == {
        "code": "code_wrong", "field": "code", "message": f"wrong code; {MAX_ATTEMPTS - 1} attempt(s) left"}
    again = httpx.post(f"{served}/api/v1/mobile/ecert/activate",
                       json={"psn_no": LI.psn_no, "certno": LI.certno, "consent": True})
    assert again.status_code == 409 and again.json()["error"]["code"] == "activation_pending"
    assert _code(served, victim_key, victim).status_code == 200  # the victim's phone still shows codes


def test_http_sms_fault_and_the_texted_code(served) -> None:
    assert httpx.post(f"{served.sms}/sim/faults", json={"mode": "fail", "count": 1}).status_code == 201
    failed = httpx.post(f"{served}/api/v1/mobile/ecert/activate",
                        json={"psn_no": CHILD.psn_no, "certno": CHILD.certno, "consent": True})
    assert failed.status_code == 503 and failed.json()["error"]["field"] == "sms"
    assert activate(served, CHILD, Ed25519PrivateKey.generate())["userName"] == "王**"  # at once, not blocked


def test_http_reactivation_notifies_the_old_device_and_the_phone(served) -> None:
    old_key = Ed25519PrivateKey.generate()
    old = activate(served, WANG, old_key)["ecert_id"]
    assert _code(served, old_key, old).status_code == 200
    activate(served, WANG, Ed25519PrivateKey.generate())
    told = _code(served, old_key, old)
    assert told.status_code == 403 and told.json()["error"]["code"] == "ecert_revoked"
    assert "activated on another device" in told.json()["error"]["message"]
    texts = httpx.get(f"{served.sms}/sim/messages", params={"to": WANG.phone}).json()["messages"]
    assert "在新设备上激活" in texts[-1]["text"]


def test_http_counter_activation_needs_a_staff_key_and_is_audited(served, tmp_path: Path) -> None:
    body = {"psn_no": LIU.psn_no, "certno": LIU.certno, "consent": True, "id_checked": True}
    url = f"{served}/api/v1/admin/ecert/counter-activations"
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json={**body, "id_checked": False}, headers=STAFF).status_code == 422
    given = httpx.post(url, json=body, headers=STAFF)
    assert given.status_code == 201, given.text
    done = _confirm(served, Ed25519PrivateKey.generate(), {"counter_code": given.json()["counter_code"]})
    assert done.status_code == 200 and done.json()["idNo"] == "999901********0066"


def test_the_sms_simulator_keeps_its_key_off_the_command_line(served) -> None:
    """`ps` shows every process's command line to every user: the simulator's API key is not on it."""
    port = served.sms.rsplit(":", 1)[1]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"medpay.simulators.sms_sim" in cmdline and port.encode() in cmdline:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            key = next(v for v in environ.split(b"\0") if v.startswith(b"MEDPAY_SMS_API_KEY=")).split(b"=", 1)[1]
            assert key and not any(key in part for part in cmdline)
            return
    raise AssertionError("the SMS simulator process was not found")


def test_texted_code_helper_reads_the_simulator(served) -> None:
    """The simulator keeps what it texted, by phone, for the tests (and the demo) to read."""
    httpx.post(f"{served}/api/v1/mobile/ecert/activate", json={"psn_no": demo.PERSONS[4].psn_no,
                                                               "certno": demo.PERSONS[4].certno, "consent": True})
    assert len(texted_code(served, demo.PERSONS[4].phone)) == 6
