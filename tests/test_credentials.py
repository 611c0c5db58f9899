"""The credential every institution transaction names is checked (issue 9, items 2 and 3), on both backends.

An ecToken is bound to one person, one institution and one visit: it works for that visit's 1101/2201/2204/2207
(2401/2301/2303/2304) until the visit is settled or cancelled; a later discharge or a new visit needs a fresh
code. 02/03 numbers are not secrets: what they may do without a card read is the institution's assurance
setting, and a social-security card's ``card_sn`` is checked where it is sent.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from itertools import count

import pytest
from sqlalchemy import func, select

from medpay.adapters.db.tables import EcTokenRow, VisitRow
from medpay.services import demo
from medpay.services.credentials import Credential
from medpay.services.directory import set_institution_setting
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from medpay.services.settlement import FeeLineInput, SettleRequest
from tests.fakes import FrozenClock

H1, H2 = demo.INSTITUTIONS[0][0], demo.INSTITUTIONS[1][0]
WANG, LI = demo.PERSONS[0], demo.PERSONS[1]
BLOOD = "002101000010000"  # 甲类
BED = "001102000010000"  # 甲类, 60.00 a day



@pytest.fixture
def p(seeded_platform):
    """The served platform (tenancy on: a visit needs a credential shown here), on a clock the test moves."""
    clock = FrozenClock(datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc))
    seeded_platform.settlement.clock = seeded_platform.persons.clock = clock
    seeded_platform.clock = clock
    return seeded_platform


_msgids = count(1)


def msgid() -> str:
    return f"{H1}{next(_msgids):016d}"


def token(p, person=WANG, inst: str = H1) -> str:
    """What a terminal's scan (ec.query) gives the HIS."""
    return p.persons.issue_ec_token(person.psn_no, inst, "01301")


def ec(tok: str) -> Credential:
    return Credential("01", tok)


def open_visit(p, tok: str | None, person=WANG, inst: str = H1, med_type: str = "11", cred: Credential | None = None):
    return p.settlement.register_visit(inst, person.psn_no, med_type, mdtrt_cert_type="01" if tok else "",
                                       msgid=msgid(), credential=cred or (ec(tok) if tok else None))


def bill(p, mdtrt_id: str, inst: str = H1, code: str = BLOOD, amount: str = "30.00", sn: str = "1") -> None:
    p.settlement.upload_fees(inst, mdtrt_id, [FeeLineInput(sn, code, "1", amount, amount)], msgid=msgid())


def settle(p, mdtrt_id: str, cred: Credential | None = None, inst: str = H1, **kw) -> dict:
    return p.settlement.settle(SettleRequest(inst, msgid(), mdtrt_id, credential=cred, **kw))


def visits(p) -> int:
    with p.factory() as s:
        return s.scalar(select(func.count()).select_from(VisitRow))


def refused(exc: type[ServiceError], field: str, fn, *args, **kw) -> ServiceError:
    with pytest.raises(exc) as e:
        fn(*args, **kw)
    assert e.value.field == field, e.value
    return e.value


# -- item 2: every transaction that takes a credential checks it ---------------------------------------------


def test_2201_with_a_made_up_token_opens_no_visit(p) -> None:
    """The report: once the person showed any credential here, 40 zeros as an ecToken opened a visit."""
    p.persons.person_info(H1, "02", WANG.certno)  # shown today, by ID card
    before = visits(p)
    refused(NotFound, "mdtrt_cert_no", open_visit, p, "0" * 40)
    assert visits(p) == before


def test_2201_with_another_persons_or_institutions_token_is_refused(p) -> None:
    p.persons.person_info(H1, "02", WANG.certno)
    refused(Forbidden, "mdtrt_cert_no", open_visit, p, token(p, LI))  # Li's token for Wang's visit
    refused(Forbidden, "mdtrt_cert_no", open_visit, p, token(p, WANG, H2))  # scanned at another hospital
    refused(Forbidden, "mdtrt_cert_no", open_visit, p, None, cred=Credential("02", LI.certno))
    refused(Forbidden, "mdtrt_cert_no", open_visit, p, None, cred=Credential("03", LI.card_no))
    assert visits(p) == 0


def test_2201_without_a_credential_uses_the_one_last_shown_and_checks_it(p) -> None:
    tok = token(p)
    p.persons.person_info(H1, "01", tok)
    visit = open_visit(p, None)  # the HIS left mdtrt_cert_no out: the token shown in 1101 opens it
    with p.factory() as s:
        assert s.get(EcTokenRow, _hash(tok)).mdtrt_id == visit.mdtrt_id
        assert s.get(VisitRow, visit.mdtrt_id).mdtrt_cert_type == "01"
    bill(p, visit.mdtrt_id)
    settle(p, visit.mdtrt_id)
    refused(Invalid, "mdtrt_cert_no", open_visit, p, None)  # the last credential shown is spent: no new visit


def test_a_token_opens_one_visit(p) -> None:
    tok = token(p)
    first = open_visit(p, tok)
    e = refused(Forbidden, "mdtrt_cert_no", open_visit, p, tok)
    assert first.mdtrt_id in e.message
    assert visits(p) == 1


def test_a_settlement_with_a_made_up_or_foreign_credential_is_refused(p) -> None:
    p.persons.person_info(H1, "02", WANG.certno)
    visit = open_visit(p, None, cred=Credential("02", WANG.certno))
    bill(p, visit.mdtrt_id)
    refused(NotFound, "mdtrt_cert_no", settle, p, visit.mdtrt_id, ec("0" * 40))
    refused(Forbidden, "mdtrt_cert_no", settle, p, visit.mdtrt_id, ec(token(p, LI)))
    refused(Forbidden, "mdtrt_cert_no", settle, p, visit.mdtrt_id, Credential("02", LI.certno))
    refused(NotFound, "mdtrt_cert_no", p.settlement.presettle, H1, visit.mdtrt_id, credential=ec("0" * 40))
    out = settle(p, visit.mdtrt_id, Credential("02", WANG.certno))
    assert out["setlinfo"]["psn_no"] == WANG.psn_no


# -- item 3: what a token may do, and when it is used up -----------------------------------------------------


def test_the_token_is_spent_by_its_visits_settlement(p) -> None:
    """The report: after the settlement, 1101 with the same token answered again for 30 minutes."""
    tok = token(p)
    assert p.persons.person_info(H1, "01", tok)["baseinfo"]["psn_no"] == WANG.psn_no
    visit = open_visit(p, tok)
    bill(p, visit.mdtrt_id)
    p.settlement.presettle(H1, visit.mdtrt_id, credential=ec(tok))
    assert p.persons.person_info(H1, "01", tok)  # still this visit's until it is settled
    settle(p, visit.mdtrt_id, ec(tok))
    e = refused(Invalid, "mdtrt_cert_no", p.persons.person_info, H1, "01", tok)
    assert "used up" in e.message
    refused(Invalid, "mdtrt_cert_no", open_visit, p, tok)
    with p.factory() as s:
        assert s.get(EcTokenRow, _hash(tok)).spent_at == p.clock()


def test_a_bound_token_lives_with_its_visit_an_unbound_one_30_minutes(p) -> None:
    bound, idle = token(p), token(p)
    visit = open_visit(p, bound, med_type="21")  # an admission: days, not minutes
    p.clock.advance(days=3)
    refused(Invalid, "mdtrt_cert_no", p.persons.person_info, H1, "01", idle)
    assert p.persons.person_info(H1, "01", bound)["baseinfo"]["psn_no"] == WANG.psn_no
    bill(p, visit.mdtrt_id, code=BED, amount="60.00")
    p.settlement.discharge(H1, visit.mdtrt_id, msgid=msgid())
    assert settle(p, visit.mdtrt_id, ec(bound))["setlinfo"]["setl_id"]


def test_after_an_interim_settlement_the_discharge_needs_a_fresh_code(p) -> None:
    tok = token(p)
    visit = open_visit(p, tok, med_type="21")
    bill(p, visit.mdtrt_id, code=BED, amount="60.00")
    settle(p, visit.mdtrt_id, mid_setl_flag=True)  # no credential named: the visit's live token governs
    bill(p, visit.mdtrt_id, code=BED, amount="60.00", sn="2")
    p.settlement.discharge(H1, visit.mdtrt_id, msgid=msgid())
    e = refused(Forbidden, "mdtrt_cert_no", settle, p, visit.mdtrt_id)
    assert "fresh" in e.message
    refused(Invalid, "mdtrt_cert_no", settle, p, visit.mdtrt_id, ec(tok))  # the spent token, named
    out = settle(p, visit.mdtrt_id, ec(token(p)))  # the patient showed the code again
    assert out["setlinfo"]["mdtrt_id"] == visit.mdtrt_id


def test_a_cancelled_settlement_is_settled_again_only_with_a_fresh_credential(p) -> None:
    tok = token(p)
    visit = open_visit(p, tok)
    bill(p, visit.mdtrt_id)
    first = settle(p, visit.mdtrt_id, ec(tok))
    p.settlement.cancel(H1, msgid(), first["setlinfo"]["setl_id"])
    bill(p, visit.mdtrt_id, sn="2")  # a cancellation refunds the lines: what stays billed is uploaded again
    refused(Forbidden, "mdtrt_cert_no", settle, p, visit.mdtrt_id)
    p.persons.person_info(H1, "02", WANG.certno)
    assert settle(p, visit.mdtrt_id, Credential("02", WANG.certno))["setlinfo"]["setl_id"]


def test_cancelling_the_visit_spends_its_token(p) -> None:
    tok = token(p)
    visit = open_visit(p, tok)
    p.settlement.cancel_visit(H1, visit.mdtrt_id, msgid=msgid())
    refused(Invalid, "mdtrt_cert_no", p.persons.person_info, H1, "01", tok)
    refused(Invalid, "mdtrt_cert_no", open_visit, p, tok)


def test_a_reversed_admission_spends_its_token(p) -> None:
    tok = token(p)
    admitted = msgid()
    p.settlement.register_visit(H1, WANG.psn_no, "21", msgid=admitted, credential=ec(tok))
    p.settlement.reverse(H1, msgid(), admitted, "2401")
    refused(Invalid, "mdtrt_cert_no", open_visit, p, tok)


def test_a_token_for_one_visit_does_not_settle_another(p) -> None:
    tok_a, tok_b = token(p), token(p)
    a, b = open_visit(p, tok_a), open_visit(p, tok_b)
    bill(p, b.mdtrt_id)
    e = refused(Forbidden, "mdtrt_cert_no", settle, p, b.mdtrt_id, ec(tok_a))
    assert a.mdtrt_id in e.message


def test_a_retried_2201_returns_its_visit_without_a_second_check(p) -> None:
    tok = token(p)
    m = msgid()
    first = p.settlement.register_visit(H1, WANG.psn_no, "11", msgid=m, credential=ec(tok))
    again = p.settlement.register_visit(H1, WANG.psn_no, "11", msgid=m, credential=ec(tok))
    assert again.mdtrt_id == first.mdtrt_id and visits(p) == 1


def test_two_visits_racing_for_one_token_open_one(p) -> None:
    tok = token(p)
    results: list[object] = []

    def attempt() -> None:
        try:
            results.append(open_visit(p, tok).mdtrt_id)
        except ServiceError as e:
            results.append(e)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    opened = [r for r in results if isinstance(r, str)]
    assert len(opened) == 1 and visits(p) == 1
    assert all(isinstance(r, (Forbidden, Conflict)) for r in results if not isinstance(r, str))


def test_housekeeping_keeps_a_bound_token_while_its_visit_is_open(p) -> None:
    bound, _idle, spent = token(p), token(p), token(p)
    open_visit(p, bound, med_type="21")
    visit = open_visit(p, spent)
    bill(p, visit.mdtrt_id)
    settle(p, visit.mdtrt_id)
    p.clock.advance(days=2)
    assert p.persons.purge_expired_tokens() == 2  # the idle one expired, the spent one is done
    with p.factory() as s:
        assert [r.token_hash for r in s.scalars(select(EcTokenRow))] == [_hash(bound)]


# -- 02/03 numbers: the institution's assurance setting, and card_sn ------------------------------------------


def _assure(p, value: str, inst: str = H1) -> None:
    set_institution_setting(p.factory, inst, "id_assurance", value, operator="test")
    p.settlement._institutions.clear()  # the service keeps institutions 10 s; the test doesn't wait


def test_counter_assurance_lets_numbers_do_what_they_did(p) -> None:
    p.persons.person_info(H1, "02", WANG.certno)
    assert open_visit(p, None, cred=Credential("02", WANG.certno)).mdtrt_id


def test_lookup_assurance_identifies_by_number_but_opens_visits_only_with_a_card_read(p) -> None:
    _assure(p, "lookup")
    assert p.persons.person_info(H1, "02", WANG.certno)["baseinfo"]["psn_no"] == WANG.psn_no
    e = refused(Forbidden, "mdtrt_cert_type", open_visit, p, None, cred=Credential("02", WANG.certno))
    assert "lookup" in e.message
    refused(Forbidden, "mdtrt_cert_type", open_visit, p, None)  # the ID card shown in 1101 can't either
    refused(Forbidden, "mdtrt_cert_type", open_visit, p, None, cred=Credential("03", WANG.card_no))
    read = Credential("03", WANG.card_no, WANG.card_sn)
    p.persons.person_info(H1, "03", WANG.card_no, WANG.card_sn)
    assert open_visit(p, None, cred=read).mdtrt_id
    assert open_visit(p, token(p)).mdtrt_id  # the e-certificate works whatever the setting


def test_card_assurance_refuses_numbers_even_for_1101(p) -> None:
    _assure(p, "card")
    refused(Forbidden, "mdtrt_cert_type", p.persons.person_info, H1, "02", WANG.certno)
    refused(Forbidden, "mdtrt_cert_type", p.persons.person_info, H1, "03", WANG.card_no)
    assert p.persons.person_info(H1, "03", WANG.card_no, WANG.card_sn)["baseinfo"]["psn_no"] == WANG.psn_no
    assert open_visit(p, None).mdtrt_id  # the card read shown in 1101 opens the visit


def test_a_wrong_card_sn_is_refused_wherever_it_is_sent(p) -> None:
    wrong = "999901D15600000500BF7C7A0000FFFF"
    refused(Forbidden, "card_sn", p.persons.person_info, H1, "03", WANG.card_no, wrong)
    p.persons.person_info(H1, "03", WANG.card_no)
    refused(Forbidden, "card_sn", open_visit, p, None, cred=Credential("03", WANG.card_no, wrong))


def test_an_unknown_assurance_is_refused_by_name(p) -> None:
    e = refused(Invalid, "id_assurance", _assure, p, "trusted")
    assert "counter" in e.message


def _hash(tok: str) -> str:
    from medpay.services.credentials import token_hash

    return token_hash(tok)
