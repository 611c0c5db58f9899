"""The app's accounts (issue 13, item 1): sign in with a phone number and a texted code; sessions in an httpOnly,
SameSite cookie with a CSRF token; sign-out here or everywhere; a recycled number that must not inherit an account;
the person an account speaks for, proved by the device that holds the person's e-certificate.

Service tests on both backends with an in-memory SMS port and a clock the test moves; HTTP tests against
``medpay serve`` with its SMS simulator process, as a hostile caller and as a browser would send.
"""

from __future__ import annotations

import os
from contextlib import closing
from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.account_tables import AccountPersonRow, MobileAccountRow, MobileSessionRow, SignInCodeRow
from medpay.services import demo
from medpay.services.errors import Invalid, NotFound, Unauthorized
from medpay.services.mobile.accounts import (
    CODE_TTL,
    MAX_TRIES,
    RECYCLE_AFTER,
    RESEND_AFTER,
    SESSION_IDLE,
    SESSION_MAX,
    AccountService,
    CsrfRefused,
    RateLimited,
    SmsFailed,
    WrongCode,
    purge_sign_ins,
    session_ends_at,
)
from medpay.services.qr.ecert import sign_device_request
from tests.fakes import FakeSms, FrozenClock
from tests.helpers_server import activate, audit_events, backend_server, texted_code

PHONE, OTHER = "13800000001", "13900000002"
WANG, LI = demo.PERSONS[0], demo.PERSONS[1]


class Env:
    def __init__(self, factory, cipher) -> None:
        self.factory, self.clock, self.sms = factory, FrozenClock(), FakeSms()
        self.svc = AccountService(factory, cipher, self.sms, self.clock, ip_hourly=8)

    def sign_in(self, phone: str = PHONE, ip: str = "10.0.0.1", agent: str = "test"):
        sent = self.svc.start(phone, ip)
        return self.svc.confirm(sent.challenge_id, self.sms.last_code(phone), phone, agent)

    def count(self, model, *where) -> int:
        with self.factory() as s:
            return s.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def env(session_factory) -> Env:
    cipher = FieldCipher(os.urandom(32))
    demo.seed(session_factory, cipher)
    return Env(session_factory, cipher)


# -- codes -------------------------------------------------------------------------------------------------------


def test_a_code_signs_in_once_and_opens_the_account_on_the_first_sign_in(env: Env) -> None:
    sent = env.svc.start(PHONE, "10.0.0.1")
    assert sent.phone == "138****0001" and sent.expires_at == env.clock() + CODE_TTL
    code = env.sms.last_code(PHONE)
    with env.factory() as s:  # only a keyed hash of the code is kept
        assert code not in s.get(SignInCodeRow, sent.challenge_id).code_hash
    first = env.svc.confirm(sent.challenge_id, code, PHONE, "Mozilla/5.0")
    assert first.new_account and len(first.token) >= 40 and first.csrf_token
    with pytest.raises(WrongCode, match="no longer valid"):  # single use
        env.svc.confirm(sent.challenge_id, code, PHONE)
    env.clock.advance(RESEND_AFTER.total_seconds())
    again = env.sign_in()
    assert not again.new_account and again.account_id == first.account_id and again.token != first.token
    assert env.count(MobileAccountRow) == 1 and env.count(MobileSessionRow) == 2
    with env.factory() as s:  # the cookie's token is nowhere in the database
        assert all(first.token not in r.session_id for r in s.scalars(select(MobileSessionRow)))
        assert PHONE not in s.scalars(select(MobileAccountRow.phone_enc)).one()


def test_wrong_expired_and_foreign_codes_are_refused_and_counted(env: Env) -> None:
    sent = env.svc.start(PHONE, "10.0.0.1")
    code = env.sms.last_code(PHONE)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    with pytest.raises(WrongCode, match="no longer valid"):  # the challenge of another number
        env.svc.confirm(sent.challenge_id, code, OTHER)
    for left in range(MAX_TRIES - 1, 0, -1):
        with pytest.raises(WrongCode, match=f"{left} attempt"):
            env.svc.confirm(sent.challenge_id, wrong, PHONE)
    with pytest.raises(WrongCode, match="too often"):
        env.svc.confirm(sent.challenge_id, wrong, PHONE)
    with pytest.raises(WrongCode, match="no longer valid"):  # the right code no longer helps
        env.svc.confirm(sent.challenge_id, code, PHONE)
    env.clock.advance(RESEND_AFTER.total_seconds())
    late = env.svc.start(PHONE, "10.0.0.1")
    env.clock.advance(CODE_TTL.total_seconds())
    with pytest.raises(WrongCode, match="expired"):
        env.svc.confirm(late.challenge_id, env.sms.last_code(PHONE), PHONE)
    assert env.count(MobileAccountRow) == 0 and env.count(MobileSessionRow) == 0
    for bad in ("12345", "abcdef", None, 123456):
        with pytest.raises(Invalid) as e:
            env.svc.confirm(late.challenge_id, bad, PHONE)
        assert e.value.field == "code"
    for bad in ("12800000000", "1380000000", "+8613800000001", None):
        with pytest.raises(Invalid) as e:
            env.svc.start(bad, "10.0.0.1")
        assert e.value.field == "phone"


def test_rate_limits_per_number_and_per_address(env: Env) -> None:
    env.svc.start(PHONE, "10.0.0.1")
    with pytest.raises(RateLimited, match="ask again in 60 s"):
        env.svc.start(PHONE, "10.0.0.9")
    for _ in range(9):
        env.clock.advance(RESEND_AFTER.total_seconds())
        env.svc.start(PHONE, f"10.0.1.{_}")
    env.clock.advance(RESEND_AFTER.total_seconds())
    with pytest.raises(RateLimited, match="a day go to one number"):
        env.svc.start(PHONE, "10.0.0.9")
    env.clock.advance(days=1)
    env.svc.start(PHONE, "10.0.0.9")  # a day later
    for i in range(7):  # the 8 codes an address may ask for an hour (ip_hourly=8 here), to 8 numbers
        env.svc.start(f"1370000000{i}", "10.0.0.9")
    with pytest.raises(RateLimited, match="your network"):
        env.svc.start("13700000009", "10.0.0.9")
    env.svc.start("13700000009", "10.0.0.10")  # another address
    assert len(env.sms.sent) == 1 + 9 + 1 + 7 + 1


def test_an_unsent_code_is_said_and_holds_nothing_back(env: Env) -> None:
    env.sms.fail = 1
    with pytest.raises(SmsFailed) as e:
        env.svc.start(PHONE, "10.0.0.1")
    assert e.value.field == "phone"
    env.sms.unknown = 1  # sent, but the answer was lost: asked again with the same ref, texted once
    sent = env.svc.start(PHONE, "10.0.0.1")
    assert len(env.sms.to(PHONE)) == 1
    assert env.svc.confirm(sent.challenge_id, env.sms.last_code(PHONE), PHONE).new_account


# -- sessions ----------------------------------------------------------------------------------------------------


def test_a_session_needs_its_csrf_token_to_change_anything_and_ends_when_idle_or_old(env: Env) -> None:
    done = env.sign_in()
    caller = env.svc.caller(done.token)
    assert caller.account_id == done.account_id and caller.csrf_token == done.csrf_token
    for csrf in (None, "", "x" * 43, env.sign_in(OTHER).csrf_token):
        with pytest.raises(CsrfRefused):
            env.svc.caller(done.token, csrf, changes_state=True)
    assert env.svc.caller(done.token, done.csrf_token, changes_state=True).account_id == done.account_id
    for forged in (None, "", done.token[:-1] + ("A" if done.token[-1] != "A" else "B"), "x" * 500):
        with pytest.raises(Unauthorized):
            env.svc.caller(forged)
    env.clock.advance((SESSION_IDLE - timedelta(minutes=1)).total_seconds())
    env.svc.caller(done.token)  # used within the idle time: it lives on
    env.clock.advance((SESSION_IDLE - timedelta(minutes=1)).total_seconds())
    env.svc.caller(done.token)
    env.clock.advance(SESSION_IDLE.total_seconds())
    with pytest.raises(Unauthorized, match="ended"):
        env.svc.caller(done.token)
    assert session_ends_at(env.clock(), env.clock() + SESSION_MAX) == env.clock() + SESSION_MAX


def test_sign_out_here_or_everywhere(env: Env) -> None:
    phone_a = env.sign_in(agent="phone A")
    env.clock.advance(RESEND_AFTER.total_seconds())
    phone_b = env.sign_in(agent="phone B")
    other = env.sign_in(OTHER)
    shown = env.svc.account(env.svc.caller(phone_a.token))
    assert [s["user_agent"] for s in shown["sessions"]] == ["phone B", "phone A"]
    assert [s["current"] for s in shown["sessions"]] == [False, True] and shown["phone"] == "138****0001"
    assert env.svc.sign_out(env.svc.caller(phone_a.token)) == 1
    with pytest.raises(Unauthorized):
        env.svc.caller(phone_a.token)
    env.clock.advance(RESEND_AFTER.total_seconds())
    phone_c = env.sign_in(agent="phone C")
    assert env.svc.sign_out(env.svc.caller(phone_c.token), everywhere=True) == 2
    for token in (phone_b.token, phone_c.token):
        with pytest.raises(Unauthorized):
            env.svc.caller(token)
    env.svc.caller(other.token)  # another account's session is untouched


def test_a_recycled_number_does_not_inherit_the_account(env: Env) -> None:
    old = env.sign_in()
    ecert_id = "EC" + "1" * 8
    env.svc.link_self(env.svc.caller(old.token), ecert_id, WANG.psn_no)
    env.clock.advance(days=1)
    kept = env.sign_in()  # a sign-in within the time: the same account
    assert kept.account_id == old.account_id
    env.clock.advance((RECYCLE_AFTER + timedelta(days=1)).total_seconds())
    new = env.sign_in()
    assert new.new_account and new.account_id != old.account_id
    assert env.svc.account(env.svc.caller(new.token))["persons"] == []
    with env.factory() as s:
        closed = s.get(MobileAccountRow, old.account_id)
        assert (closed.status, closed.closed_reason) == ("closed", "number_silent")
        assert s.scalar(select(AccountPersonRow.revoked_reason).where(
            AccountPersonRow.account_id == old.account_id)) == "number_silent"


def test_the_person_an_account_speaks_for(env: Env) -> None:
    a, b = env.sign_in(), env.sign_in(OTHER)
    ca, cb = env.svc.caller(a.token), env.svc.caller(b.token)
    assert env.svc.link_self(ca, "EC00000001", WANG.psn_no) is True
    assert env.svc.link_self(ca, "EC00000001", WANG.psn_no) is False  # again: nothing new
    shown = env.svc.account(ca)["persons"]
    assert [(p["psn_no"], p["relation"]) for p in shown] == [(WANG.psn_no, "self")]
    assert shown[0]["name"] != WANG.psn_name and shown[0]["name"][0] == WANG.psn_name[0]  # masked
    assert env.svc.link_self(cb, "EC00000002", WANG.psn_no) is True  # the person's device moved the link
    assert env.svc.persons_of(ca) == [] and env.svc.persons_of(cb) == [WANG.psn_no]
    with pytest.raises(NotFound):
        env.svc.unlink(ca, WANG.psn_no)
    env.svc.unlink(cb, WANG.psn_no)
    assert env.svc.persons_of(cb) == []


def test_housekeeping_forgets_old_codes_and_ended_sessions(env: Env) -> None:
    done = env.sign_in()
    env.svc.sign_out(env.svc.caller(done.token))  # ended now
    env.sign_in(OTHER)  # left alone: ends idle
    assert purge_sign_ins(env.factory, env.clock()) == 0
    env.clock.advance(days=8)
    env.svc.start(PHONE, "10.0.0.1")
    assert purge_sign_ins(env.factory, env.clock()) == 2  # the two used codes; both sessions still listed
    assert env.count(SignInCodeRow) == 1 and env.count(MobileSessionRow) == 2
    assert purge_sign_ins(env.factory, env.clock() + timedelta(days=31)) == 3  # the code, then both sessions
    assert env.count(SignInCodeRow) == 0 and env.count(MobileSessionRow) == 0 and env.count(MobileAccountRow) == 2


# -- over HTTP -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from backend_server(request.param, tmp_path_factory.mktemp("accounts"),
                              env={"MEDPAY_SIGN_IN_IP_HOURLY": "1000"})


def http_sign_in(served, phone: str) -> tuple[httpx.Client, str]:
    """A browser signs in: a client that keeps cookies, and its CSRF token."""
    client = httpx.Client(base_url=str(served), timeout=30)
    r = client.post("/api/v1/mobile/sign-in", json={"phone": phone})
    assert r.status_code == 202, r.text
    start = r.json()
    r = client.post("/api/v1/mobile/sign-in/confirm", json={"challenge_id": start["challenge_id"], "phone": phone,
                                                            "code": texted_code(served, phone)})
    assert r.status_code == 200, r.text
    return client, r.json()["csrf_token"]


def test_sign_in_sets_a_cookie_no_script_or_other_site_can_use(served) -> None:
    client, csrf = http_sign_in(served, "13800000011")
    with closing(client):
        r = client.get("/api/v1/mobile/account")
        assert r.status_code == 200 and r.json()["csrf_token"] == csrf and r.headers["cache-control"] == "no-store"
        assert r.json()["phone"] == "138****0011"
        # the Set-Cookie of a fresh sign-in: httpOnly, SameSite=Strict, the whole site
        again = httpx.Client(base_url=str(served), timeout=30)
        raw = _sign_in_response(served, again, "13800000012")
        set_cookie = raw.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/" in set_cookie
        assert "secure" not in set_cookie  # plain http here; MEDPAY_COOKIE_SECURE or https sets it
        again.close()
        # state-changing requests need the token and our origin
        for headers, code in (({}, "csrf"), ({"X-CSRF-Token": "forged"}, "csrf"),
                              ({"X-CSRF-Token": csrf, "Origin": "https://evil.example"}, "csrf")):
            r = client.post("/api/v1/mobile/sign-out", headers=headers)
            assert r.status_code == 403 and r.json()["error"]["code"] == code, r.text
            assert client.get("/api/v1/mobile/account").status_code == 200  # nothing changed
        token = client.cookies["medpay_session"]
        r = client.post("/api/v1/mobile/sign-out", headers={"X-CSRF-Token": csrf, "Origin": str(served).rstrip("/")})
        assert r.status_code == 200 and r.json() == {"ended": 1}
        assert "medpay_session=" in r.headers["set-cookie"] and "max-age=0" in r.headers["set-cookie"].lower()
        r = httpx.get(f"{served}/api/v1/mobile/account", headers={"cookie": f"medpay_session={token}"}, timeout=10)
        assert r.status_code == 401 and r.json()["error"]["field"] == "session"


def _sign_in_response(served, client: httpx.Client, phone: str) -> httpx.Response:
    start = client.post("/api/v1/mobile/sign-in", json={"phone": phone}).json()
    return client.post("/api/v1/mobile/sign-in/confirm", json={"challenge_id": start["challenge_id"], "phone": phone,
                                                               "code": texted_code(served, phone)})


def test_hostile_callers_get_a_clear_refusal_and_nothing_changes(served) -> None:
    base = str(served)
    for body, field in (({"phone": "12345"}, "phone"), ({"phone": 13800000001}, "phone"),
                        ({"phone": "13800000001", "extra": 1}, "extra"), ({}, "phone")):
        r = httpx.post(f"{base}/api/v1/mobile/sign-in", json=body, timeout=10)
        assert r.status_code == 422 and field in r.json()["error"]["field"], r.text
    r = httpx.post(f"{base}/api/v1/mobile/sign-in", json={"phone": "13800000019"}, timeout=10,
                   headers={"Origin": "https://evil.example"})  # another site's page texting codes in our name
    assert r.status_code == 403 and r.json()["error"]["field"] == "Origin"
    r = httpx.post(f"{base}/api/v1/mobile/sign-in", content=b"[" * 5000, timeout=10,
                   headers={"content-type": "application/json"})
    assert r.status_code in (400, 413, 422) and "Traceback" not in r.text
    start = httpx.post(f"{base}/api/v1/mobile/sign-in", json={"phone": "13800000013"}, timeout=10).json()
    guess = {"challenge_id": start["challenge_id"], "phone": "13800000013", "code": "000000"}
    if texted_code(served, "13800000013") == "000000":
        guess["code"] = "000001"
    r = httpx.post(f"{base}/api/v1/mobile/sign-in/confirm", json=guess, timeout=10)
    assert r.status_code == 422 and r.json()["error"] == {
        "code": "code_wrong", "field": "code", "message": "wrong code; 4 attempt(s) left"} | {
        k: v for k, v in r.json()["error"].items() if k not in ("code", "field", "message")}
    assert "set-cookie" not in r.headers
    r = httpx.post(f"{base}/api/v1/mobile/sign-in", json={"phone": "13800000013"}, timeout=10)
    assert r.status_code == 429 and r.json()["error"]["field"] == "phone"
    for path in ("/api/v1/mobile/account", "/api/v1/mobile/sign-out"):
        r = httpx.request("GET" if path.endswith("account") else "POST", base + path, timeout=10,
                          cookies={"medpay_session": "A" * 43})
        assert r.status_code == 401 and r.json()["error"]["field"] == "session"


def test_the_device_links_its_person_and_a_lost_phone_signs_out_everywhere(served) -> None:
    key = Ed25519PrivateKey.generate()
    ecert_id = activate(served, LI, key)["ecert_id"]
    phone, csrf = http_sign_in(served, "13800000014")
    path = "/api/v1/mobile/account/persons"
    with closing(phone):
        r = phone.post(path, headers={"X-CSRF-Token": csrf})  # no device signature: a session isn't a person
        assert r.status_code == 401 and r.json()["error"]["field"].lower().startswith("x-"), r.text
        r = phone.post(path, headers=sign_device_request(key, ecert_id, "POST", path, b""))  # no CSRF token
        assert r.status_code == 403, r.text
        r = phone.post(path, headers={"X-CSRF-Token": csrf, **sign_device_request(key, ecert_id, "POST", path, b"")})
        assert r.status_code == 200 and r.json() == {"psn_no": LI.psn_no, "linked": True}, r.text
        account = phone.get("/api/v1/mobile/account").json()
        assert [p["psn_no"] for p in account["persons"]] == [LI.psn_no] and account["persons"][0]["name"] != LI.psn_name
        assert audit_events(served.db_url, "account.link")[-1].ref == account["account_id"]
        # the phone is lost: from the account, its e-certificate stops working at once
        r = phone.post(f"{path}/{LI.psn_no}/revoke-device", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json() == {"ecert_id": ecert_id, "status": "revoked"}, r.text
        code_path = "/api/v1/mobile/ecert/code"
        body = b'{"business_type": "01301"}'
        r = httpx.post(f"{served}{code_path}", content=body, timeout=10, headers={
            "content-type": "application/json", **sign_device_request(key, ecert_id, "POST", code_path, body)})
        assert r.status_code == 403 and "lost phone" in r.json()["error"]["message"], r.text
        r = phone.post(f"{path}/{LI.psn_no}/revoke-device", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 404 and r.json()["error"]["field"] == "psn_no"
        not_his = phone.post(f"{path}/{WANG.psn_no}/revoke-device", headers={"X-CSRF-Token": csrf})
        assert not_his.status_code == 404
        r = phone.delete(f"{path}/{LI.psn_no}", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and phone.get("/api/v1/mobile/account").json()["persons"] == []
        r = phone.delete(f"{path}/{LI.psn_no}", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 404 and r.json()["error"]["field"] == "psn_no"
        r = phone.post("/api/v1/mobile/sign-out/everywhere", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json() == {"ended": 1}
        assert phone.get("/api/v1/mobile/account").status_code == 401
