"""Family in the app (issue 13, item 2): add a member with the relation; the member consents with their own
sign-in, or a parent acts for a minor child whose record carries the parent's phone; then act for them — their
bills listed and paid from the parent's device, the parent's personal account paying through family mutual aid
(``acct_mulaid_pay``) and the parent's wallet the cash part. Revoking takes effect at once.

Service tests on both backends; end to end over HTTP against ``medpay serve`` with its gateway and SMS simulators.
"""

from __future__ import annotations

import os
from contextlib import closing
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.tables import FamilyLinkRow
from medpay.services import demo
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound
from medpay.services.mobile.accounts import RECYCLE_AFTER, AccountService, purge_sign_ins
from medpay.services.errors import RateLimited
from medpay.services.mobile.family import DAILY_WRONG, FamilyService
from medpay.services.qr.ecert import sign_device_request
from tests.fakes import FakeSms, FrozenClock
from tests.helpers_qr import H1, Phone, app_code, fen, his_bill, qr_stack, scan_image, scan_text, wallet
from tests.helpers_server import audit_events

FATHER, ZHANG, CHILD, CHEN = demo.PERSONS[0], demo.PERSONS[2], demo.PERSONS[3], demo.PERSONS[4]


class Env:
    def __init__(self, factory, cipher) -> None:
        self.factory, self.clock, self.sms = factory, FrozenClock(), FakeSms()
        self.accounts = AccountService(factory, cipher, self.sms, self.clock)
        self.family = FamilyService(factory, cipher, self.clock)

    def account(self, person, phone: str | None = None):
        """A signed-in account that speaks for ``person`` (its device linked it)."""
        phone = phone or person.phone
        sent = self.accounts.start(phone, "10.0.0.1")
        caller = self.accounts.caller(self.accounts.confirm(sent.challenge_id, self.sms.last_code(phone), phone).token)
        self.accounts.link_self(caller, f"EC{person.psn_no[-8:]}", person.psn_no)
        return caller

    def mutual_aid(self, payer, beneficiary) -> tuple[str, bool] | None:
        with self.factory() as s:
            row = s.execute(select(FamilyLinkRow).where(FamilyLinkRow.payer_psn_no == payer.psn_no,
                                                        FamilyLinkRow.beneficiary_psn_no == beneficiary.psn_no)).scalar()
            return (row.relation, row.active) if row else None


@pytest.fixture
def env(session_factory) -> Env:
    cipher = FieldCipher(os.urandom(32))
    demo.seed(session_factory, cipher)
    return Env(session_factory, cipher)


def test_a_parent_acts_for_a_minor_child_at_once_and_revoking_ends_it_at_once(env: Env) -> None:
    father = env.account(FATHER)  # the child's record carries the father's number
    added = env.family.add(father, CHILD.psn_no, CHILD.certno, "child", as_guardian=True)
    assert (added["status"], added["consent"], added["relation"]) == ("active", "guardian_minor", "child")
    assert added["name"] != CHILD.psn_name and added["name"][0] == CHILD.psn_name[0]
    assert env.family.acting_for(father, CHILD.psn_no) == CHILD.psn_no
    assert env.mutual_aid(FATHER, CHILD) == ("parent", True)  # the payer is the child's parent
    assert env.family.add(father, CHILD.psn_no, CHILD.certno, "child", as_guardian=True) == added  # asked again
    env.accounts.unlink(father, CHILD.psn_no)
    with pytest.raises(Forbidden):
        env.family.acting_for(father, CHILD.psn_no)
    assert env.mutual_aid(FATHER, CHILD) == ("parent", False)
    assert [e.action for e in audit_rows(env)] == ["family.add", "account.unlink"]


def audit_rows(env: Env) -> list:
    from medpay.adapters.db.audit_tables import AuditEventRow
    with env.factory() as s:
        return list(s.scalars(select(AuditEventRow).where(AuditEventRow.psn_no == CHILD.psn_no,
                                                          AuditEventRow.action.in_(("family.add", "account.unlink")))
                              .order_by(AuditEventRow.id)))


def test_a_stranger_who_knows_a_childs_numbers_is_sent_to_a_counter(env: Env) -> None:
    stranger = env.account(ZHANG)
    with pytest.raises(Forbidden) as e:
        env.family.add(stranger, CHILD.psn_no, CHILD.certno, "child", as_guardian=True)
    assert e.value.field == "as_guardian" and "户口簿" in e.value.message
    pending = env.family.add(stranger, CHILD.psn_no, CHILD.certno, "child")  # may only ask: nobody can consent
    assert pending["status"] == "pending"
    with pytest.raises(Forbidden):
        env.family.acting_for(stranger, CHILD.psn_no)


def test_an_adult_member_consents_with_their_own_sign_in_and_may_withdraw(env: Env) -> None:
    son = env.account(ZHANG)
    asked = env.family.add(son, CHEN.psn_no, CHEN.certno, "parent")
    assert asked["status"] == "pending" and env.mutual_aid(ZHANG, CHEN) is None
    with pytest.raises(Forbidden):
        env.family.acting_for(son, CHEN.psn_no)  # pending does nothing
    mother = env.account(CHEN)
    [request] = env.family.requests(mother)
    assert request["relation"] == "child" and request["from_name"][0] == ZHANG.psn_name[0]  # he is her son
    with pytest.raises(NotFound):
        env.family.answer(son, request["link_id"], True)  # only the member answers
    assert env.family.answer(mother, request["link_id"], True) == {"link_id": request["link_id"], "status": "active"}
    assert env.family.acting_for(son, CHEN.psn_no) == CHEN.psn_no and env.mutual_aid(ZHANG, CHEN) == ("child", True)
    assert env.family.answer(mother, request["link_id"], False)["status"] == "revoked"  # withdrawn
    with pytest.raises(Forbidden):
        env.family.acting_for(son, CHEN.psn_no)
    assert env.mutual_aid(ZHANG, CHEN) == ("child", False) and env.family.requests(mother) == []
    declined = env.family.add(son, CHEN.psn_no, CHEN.certno, "parent")  # asked again, declined this time
    assert declined["link_id"] != request["link_id"]
    env.family.answer(mother, declined["link_id"], False)
    with pytest.raises(Forbidden):
        env.family.acting_for(son, CHEN.psn_no)


def test_bad_asks_are_named_and_change_nothing(env: Env) -> None:
    nobody = env.accounts.caller(env.accounts.confirm(
        (sent := env.accounts.start("13700000001", "10.0.0.1")).challenge_id, env.sms.last_code("13700000001"),
        "13700000001").token)
    with pytest.raises(Conflict) as e:  # an account that doesn't speak for anyone adds nobody
        env.family.add(nobody, CHILD.psn_no, CHILD.certno, "child")
    assert e.value.field == "account" and sent
    father = env.account(FATHER)
    for args, field in (((CHILD.psn_no, CHILD.certno, "cousin"), "relation"),
                        ((CHILD.psn_no, "999901201506010045", "child"), "certno"),
                        (("99990199999999", CHILD.certno, "child"), "certno"),  # unknown: the same answer
                        ((FATHER.psn_no, FATHER.certno, "child"), "psn_no"),
                        (("", CHILD.certno, "child"), "psn_no")):
        with pytest.raises(Invalid) as e:
            env.family.add(father, *args)
        assert e.value.field == field
    with pytest.raises(Invalid) as e:  # an adult consents for themselves
        env.family.add(father, ZHANG.psn_no, ZHANG.certno, "child", as_guardian=True)
    assert e.value.field == "as_guardian"
    assert env.accounts.persons_of(father) == [FATHER.psn_no]


def test_an_account_cannot_try_id_numbers_until_one_fits(env: Env) -> None:
    son = env.account(ZHANG)
    for last in range(DAILY_WRONG):
        with pytest.raises(Invalid):
            env.family.add(son, CHEN.psn_no, CHEN.certno[:-1] + str((int(CHEN.certno[-1]) + 1 + last) % 10), "parent")
    with pytest.raises(RateLimited) as e:  # even the right number now: tomorrow
        env.family.add(son, CHEN.psn_no, CHEN.certno, "parent")
    assert e.value.field == "certno" and env.accounts.persons_of(son) == [ZHANG.psn_no]
    env.clock.advance(days=1)
    assert env.family.add(son, CHEN.psn_no, CHEN.certno, "parent")["status"] == "pending"
    assert purge_sign_ins(env.factory, env.clock() + timedelta(days=3)) >= DAILY_WRONG


def test_when_the_account_no_longer_speaks_for_its_person_its_family_links_end(env: Env) -> None:
    father = env.account(FATHER)
    env.family.add(father, CHILD.psn_no, CHILD.certno, "child", as_guardian=True)
    env.clock.advance((RECYCLE_AFTER.total_seconds()) + 86400)  # the number lay silent: perhaps someone else's now
    sent = env.accounts.start(FATHER.phone, "10.0.0.1")
    fresh = env.accounts.caller(env.accounts.confirm(sent.challenge_id, env.sms.last_code(FATHER.phone),
                                                     FATHER.phone).token)
    assert env.accounts.persons_of(fresh) == [] and env.mutual_aid(FATHER, CHILD) == ("parent", False)
    with pytest.raises(Forbidden):
        env.family.acting_for(father, CHILD.psn_no)


# -- over HTTP -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from qr_stack(request.param, tmp_path_factory.mktemp("family"))


def test_a_parent_pays_the_childs_bill_from_the_parents_phone(stack) -> None:
    identity = scan_image(stack, app_code(stack, person=CHILD))["data"]  # the child shows a code at the window
    mdtrt_id = his_bill(stack, identity["ecToken"], CHILD, "12000.00")
    father = Phone(stack, FATHER)
    with closing(father.http):
        visits = f"/api/v1/mobile/visits?for={CHILD.psn_no}"
        r = father.signed("GET", visits, csrf=False)
        assert r.status_code == 403 and r.json()["error"]["field"] == "psn_no"  # no family link in force yet
        assert father.signed("POST", "/api/v1/mobile/account/persons").status_code == 200  # the device: himself
        r = father.http.post("/api/v1/mobile/family", headers={"X-CSRF-Token": father.csrf}, json={
            "psn_no": CHILD.psn_no, "certno": CHILD.certno, "relation": "child", "as_guardian": True})
        assert r.status_code == 200 and r.json()["status"] == "active", r.text
        due = father.signed("GET", visits, csrf=False)
        assert [v["mdtrt_id"] for v in due.json()] == [mdtrt_id], due.text
        # his phone shows his son's code (家庭代办): the window's terminal reads the son
        code_path = f"/api/v1/mobile/ecert/code?for={CHILD.psn_no}"
        code = father.signed("POST", code_path, {"business_type": "01301"}, csrf=False)
        assert code.status_code == 200, code.text
        assert scan_text(stack, code.json()["payload"])["data"]["userName"].startswith(CHILD.psn_name[0])
        assert [e.psn_no for e in audit_events(stack["db_url"], "ecert.code_for_member")] == [CHILD.psn_no]
        bill_path = f"/api/v1/mobile/visits/{H1[0]}/{mdtrt_id}?for={CHILD.psn_no}"
        bill = father.signed("GET", bill_path, csrf=False).json()
        pay_path = f"/api/v1/mobile/visits/{H1[0]}/{mdtrt_id}/pay?for={CHILD.psn_no}"
        r = father.signed("POST", pay_path, {"version": bill["version"]}, csrf=False)
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"  # a change needs the token
        father_before, child_before = wallet(stack, FATHER.psn_no), wallet(stack, CHILD.psn_no)
        paid = father.signed("POST", pay_path, {"version": bill["version"]})
        assert paid.status_code == 200 and paid.json()["state"] == "captured", paid.text
        split = fen(paid.json()["settlement"]["setlinfo"])
        assert split["acct_mulaid_pay"] > 0  # the father's personal account paid for his son
        assert split["psn_cash_pay"] > 0 and wallet(stack, FATHER.psn_no) == father_before - split["psn_cash_pay"]
        assert wallet(stack, CHILD.psn_no) == child_before
        assert father.signed("POST", pay_path, {"version": bill["version"]}).json() == paid.json()  # a double tap
        assert father.signed("GET", visits, csrf=False).json() == []
        # revoked: at once, nothing of the child's is shown any more
        assert father.http.delete(f"/api/v1/mobile/account/persons/{CHILD.psn_no}",
                                  headers={"X-CSRF-Token": father.csrf}).status_code == 200
        assert father.signed("GET", visits, csrf=False).status_code == 403
        assert father.signed("POST", code_path, {"business_type": "01301"}, csrf=False).status_code == 403
        # without the session, ?for= is refused even with the device's signature
        path = f"/api/v1/mobile/visits?for={CHILD.psn_no}"
        r = httpx.get(f"{stack['base']}{path}", timeout=10,
                      headers=sign_device_request(father.key, father.ecert_id, "GET", path, b""))
        assert r.status_code == 401 and r.json()["error"]["field"] == "session"
    assert [e.action for e in audit_events(stack["db_url"], "family.add")] == ["family.add"]
