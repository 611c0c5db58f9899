"""The facts regions' rules need (issue 12), end to end: stored (migration 0017, the salary encrypted), loaded into
the domain's Person and Institution, seeded in the demo, taken by stand-alone quotes — and the domain's own reading
of them (age on a day, months enrolled, where a visit is treated relative to the insured region)."""

from __future__ import annotations

import copy
from datetime import date

import pytest
from alembic import command
from sqlalchemy import inspect, select, text

from medpay.adapters.db import migrate
from medpay.adapters.db.engine import make_engine
from medpay.adapters.db.tables import PersonRow
from medpay.api.admin import QUOTE_EXAMPLE, QuoteRequest
from medpay.api.bodies import json_body
from medpay.domain.model import Institution, Person, VisitContext
from medpay.services import demo, records
from medpay.services.audit import events
from medpay.services.directory import Directory, PersonInput, set_institution_kind
from medpay.services.errors import Invalid
from medpay.services.quote import parse_quote

PERSON_FACTS = ("retr_date", "pay_grade", "salary_enc")


# ------------------------------------------------------------------------------------------ migration 0017

def _columns(engine, table: str) -> set[str]:
    with engine.connect() as conn:
        return {c["name"] for c in inspect(conn).get_columns(table)}


# a region, an institution and a person as revision 0016 stored them (SQL: today's models know 0017's columns)
ROWS_AT_0016 = (
    ("INSERT INTO regions (admdvs, name) VALUES ('430100', '长沙市')", {}),
    ("INSERT INTO institutions (fixmedins_code, fixmedins_name, admdvs, level) "
     "VALUES ('H43010000001', '长沙市某医院', '430100', '3')", {}),
    ("INSERT INTO persons (psn_no, psn_name_enc, certno_enc, certno_idx, psn_cert_type, gend, brdy, naty, insutype, "
     "psn_type, psn_insu_stas, psn_insu_date, insuplc_admdvs, emp_name, cvlserv_flag, identities) "
     "VALUES ('P1', 'x', 'y', 'z', '01', '1', :brdy, '01', '310', '1101', '1', :insu, '430100', '', :cvl, '')",
     {"brdy": date(1970, 5, 6), "insu": date(2001, 1, 1), "cvl": False}),
)


def test_0017_adds_the_facts_keeping_rows_and_goes_back(db_url: str) -> None:
    """A person and an institution stored at 0016 come out of 0017 with no facts on record and the kind every
    institution had until then ("general"); the downgrade removes the columns and keeps the rows."""
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0016")
        with engine.begin() as conn:
            for statement, values in ROWS_AT_0016:
                conn.execute(text(statement), values)
        assert not set(PERSON_FACTS) & _columns(engine, "persons")
        migrate.upgrade(engine, "0017")
        assert set(PERSON_FACTS) <= _columns(engine, "persons") and "inst_kind" in _columns(engine, "institutions")
        with engine.connect() as conn:
            assert tuple(conn.execute(text("SELECT retr_date, pay_grade, salary_enc FROM persons")).one()) == (
                None, "", None)
            assert conn.execute(text("SELECT inst_kind FROM institutions")).scalar_one() == "general"
        cfg = migrate.alembic_config(engine)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0016")
        assert migrate.current_revision(engine) == "0016"
        assert not set(PERSON_FACTS) & _columns(engine, "persons") and "inst_kind" not in _columns(engine, "institutions")
        with engine.connect() as conn:
            assert tuple(conn.execute(select(PersonRow.psn_no, PersonRow.brdy)).one()) == ("P1", date(1970, 5, 6))
            assert conn.execute(text("SELECT count(*) FROM institutions")).scalar_one() == 1
        migrate.upgrade(engine, "0017")  # and up again
        assert migrate.current_revision(engine) == "0017"
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------ stored and loaded

CIVIL_SERVANT = PersonInput("99990100009001", "赵公", "999901197002020011", "1", date(1970, 2, 2), "310", "1102",
                            "999901", cvlserv_flag=True, psn_insu_date=date(1998, 12, 1), salary=12_345_678)


@pytest.fixture
def directory(session_factory, cipher) -> Directory:
    d = Directory(session_factory, cipher)
    d.add_region(*demo.REGION)
    return d


def test_salary_is_encrypted_at_rest_and_loaded_in_fen(directory, session_factory, cipher) -> None:
    directory.add_person(CIVIL_SERVANT)
    with session_factory() as s:
        raw = s.execute(select(PersonRow.salary_enc).where(PersonRow.psn_no == CIVIL_SERVANT.psn_no)).scalar_one()
        person = records.person(records.person_row(s, CIVIL_SERVANT.psn_no), cipher)
        audited = s.execute(select(events.c.fields).where(events.c.psn_no == CIVIL_SERVANT.psn_no)).scalar_one()
    assert "12345678" not in raw and "123456.78" not in raw
    assert cipher.decrypt(raw, "salary") == "12345678"
    assert person.salary == 12_345_678
    assert (person.brdy, person.insu_date, person.retr_date, person.pay_grade) == (
        date(1970, 2, 2), date(1998, 12, 1), None, "")
    assert "salary" in audited.split(",")


def test_re_entering_a_person_changes_the_salary_and_nothing_when_it_is_the_same(directory, session_factory,
                                                                                 cipher) -> None:
    directory.add_person(CIVIL_SERVANT)
    directory.add_person(CIVIL_SERVANT)  # the same: no second audit event
    raised = PersonInput(**{**CIVIL_SERVANT.__dict__, "salary": 13_000_000})
    directory.add_person(raised)
    cleared = PersonInput(**{**CIVIL_SERVANT.__dict__, "salary": None})
    directory.add_person(cleared)
    with session_factory() as s:
        row = records.person_row(s, CIVIL_SERVANT.psn_no)
        actions = s.execute(select(events.c.action).where(events.c.psn_no == CIVIL_SERVANT.psn_no)).scalars().all()
    assert row.salary_enc is None and records.person(row, cipher).salary is None
    assert actions == ["person.add", "person.update", "person.update"]


@pytest.mark.parametrize("change, field", [
    ({"pay_grade": "一档"}, "pay_grade"), ({"pay_grade": "123"}, "pay_grade"),
    ({"retr_date": date(1960, 1, 1)}, "retr_date"), ({"salary": -1}, "salary"), ({"salary": 1.5}, "salary"),
])
def test_the_directory_refuses_a_fact_that_cant_be_right_naming_it(directory, change, field) -> None:
    with pytest.raises(Invalid) as e:
        directory.add_person(PersonInput(**{**CIVIL_SERVANT.__dict__, **change}))
    assert e.value.field == field


def test_an_institution_kind_is_stored_loaded_set_and_refused(directory, session_factory) -> None:
    directory.add_institution("H99990109001", "演示市中医院", "999901", "2", kind="tcm")
    with session_factory() as s:
        assert records.institution(s, "H99990109001").inst_kind == "tcm"
    with pytest.raises(Invalid) as e:
        directory.add_institution("H99990109002", "某医院", "999901", "2", kind="hospital")
    assert e.value.field == "inst_kind"
    assert set_institution_kind(session_factory, "H99990109001", "grassroots", "tester") == "grassroots"
    with pytest.raises(Invalid, match="inst_kind"):
        set_institution_kind(session_factory, "H99990109001", "clinic", "tester")
    with session_factory() as s:
        assert records.institution(s, "H99990109001").inst_kind == "grassroots"
        assert s.execute(select(events.c.ref).where(events.c.action == "institution.kind")).scalar_one() == (
            "H99990109001:tcm->grassroots")


# ------------------------------------------------------------------------------------------ the demo

def test_demo_persons_and_institutions_carry_the_facts(session_factory, cipher) -> None:
    demo.seed(session_factory, cipher)
    on = date(2026, 6, 1)
    with session_factory() as s:
        persons = {p.psn_no: records.person(records.person_row(s, p.psn_no), cipher) for p in demo.PERSONS}
        kinds = {code: records.institution(s, code).inst_kind for code, *_ in demo.INSTITUTIONS}
    for given in demo.PERSONS:  # what was entered is what the rules see
        p = persons[given.psn_no]
        assert (p.brdy, p.insu_date, p.retr_date, p.pay_grade, p.salary) == (
            given.brdy, given.psn_insu_date, given.retr_date, given.pay_grade, given.salary)
    retirees = [p for p in persons.values() if p.psn_type == "1201"]
    assert retirees and all(p.retr_date is not None and p.retr_date < on for p in retirees)
    residents = [p for p in persons.values() if p.insutype == "390"]
    assert residents and {p.pay_grade for p in residents} == {"1", "2"}
    assert [p.salary for p in persons.values() if p.cvlserv_flag] == [12_600_000]
    assert any(p.age_on(on) < 18 for p in residents)  # a child, told by the birth date
    assert all(p.months_enrolled(on) > 0 for p in persons.values())
    assert sorted(kinds.values()) == ["general", "grassroots", "tcm"]
    listed = demo.summary()
    assert {i["inst_kind"] for i in listed["institutions"]} == {"general", "grassroots", "tcm"}
    assert {p["pay_grade"] for p in listed["persons"]} == {"", "1", "2"}


# ------------------------------------------------------------------------------------------ stand-alone quotes

def _doc(**changes) -> dict:
    doc = copy.deepcopy(QUOTE_EXAMPLE)
    for path, value in changes.items():
        part, key = path.split("__")
        doc[part][key] = value
    return doc


def test_a_quote_takes_every_fact() -> None:
    person, visit, *_ = parse_quote(_doc(
        person__brdy="1960-07-01", person__retr_date="2020-07-01", person__pay_grade="2",
        person__insu_date="2001-03-15", person__salary="98765.43", person__insuplc_admdvs="430100",
        visit__inst_kind="tcm", visit__admdvs="431000", visit__filed="1", visit__referred=True))
    assert (person.brdy, person.retr_date, person.pay_grade, person.insu_date, person.salary) == (
        date(1960, 7, 1), date(2020, 7, 1), "2", date(2001, 3, 15), 9_876_543)
    assert (visit.institution.inst_kind, visit.institution.admdvs, visit.insured_admdvs) == ("tcm", "431000", "430100")
    assert visit.filed and visit.referred and visit.cross_region == "province"


def test_a_quote_without_the_facts_has_none_and_is_treated_in_its_own_region() -> None:
    doc = copy.deepcopy(QUOTE_EXAMPLE)
    for key in ("brdy", "retr_date", "insu_date"):
        doc["person"].pop(key)
    for key in ("inst_kind", "admdvs"):
        doc["visit"].pop(key)
    person, visit, *_ = parse_quote(doc)
    assert (person.brdy, person.retr_date, person.pay_grade, person.insu_date, person.salary) == (
        None, None, "", None, None)
    assert visit.institution.inst_kind == "general" and not visit.filed and not visit.referred
    assert visit.institution.admdvs == visit.insured_admdvs == "999901" and visit.cross_region == "local"


def test_a_toml_date_is_a_date() -> None:  # policy files' worked examples are TOML: a bare date is a date there
    person, *_ = parse_quote(_doc(person__brdy=date(1950, 6, 16)))
    assert person.brdy == date(1950, 6, 16)


@pytest.mark.parametrize("path, value", [
    ("person__brdy", "1955/03/15"), ("person__brdy", "1955-02-30"), ("person__brdy", 19550315),
    ("person__retr_date", "2005-4-1"), ("person__retr_date", "1950-01-01"),  # before the birth date
    ("person__insu_date", "yesterday"), ("person__pay_grade", "一档"), ("person__pay_grade", 1),
    ("person__pay_grade", "100"), ("person__salary", "-1"), ("person__salary", "1.234"), ("person__salary", "lots"),
    ("visit__inst_kind", "hospital"), ("visit__admdvs", "4301"), ("visit__admdvs", 430100),
    ("visit__filed", "yes"), ("visit__filed", 2), ("visit__referred", "true"), ("person__retired", "1"),
    ("visit__cross_region", "local"),
])
def test_a_quote_refuses_a_malformed_fact_naming_it(path, value) -> None:
    with pytest.raises(Invalid) as e:
        parse_quote(_doc(**{path: value}))
    assert e.value.field == path.replace("__", ".")


@pytest.mark.parametrize("path, value", [
    ("person__brdy", "1955/03/15"), ("person__retr_date", 20050401), ("person__pay_grade", "100"),
    ("person__salary", [1]), ("visit__inst_kind", 1), ("visit__admdvs", "4301"), ("visit__filed", "yes"),
    ("visit__referred", 1), ("person__retired", "1"),
])
def test_the_admin_door_refuses_a_malformed_fact_naming_it(path, value) -> None:
    import json

    with pytest.raises(Invalid) as e:
        doc = json_body(QuoteRequest, json.dumps(_doc(**{path: value})).encode()).model_dump(exclude_none=True,
                                                                                                 mode="json")
        parse_quote(doc)  # what the door checks after the model
    assert e.value.field.split(".")[:2] == path.split("__")  # a union's member may follow: person.salary.int


def test_the_admin_doors_example_is_a_valid_quote() -> None:
    doc = QuoteRequest.model_validate(QUOTE_EXAMPLE).model_dump(exclude_none=True, mode="json")
    person, visit, *_ = parse_quote(doc)
    assert person.retr_date == date(2005, 4, 1) and visit.insured_admdvs == person.insuplc_admdvs


# ------------------------------------------------------------------------------------------ the domain's reading

def _person(**facts) -> Person:
    return Person("P", "", "310", "1101", "430100", **facts)


def test_age_changes_on_the_birthday_not_the_day_before() -> None:
    p = _person(brdy=date(1960, 7, 1))
    assert p.age_on(date(2020, 6, 30)) == 59
    assert p.age_on(date(2020, 7, 1)) == 60
    leap = _person(brdy=date(2000, 2, 29))
    assert (leap.age_on(date(2001, 2, 28)), leap.age_on(date(2001, 3, 1))) == (0, 1)
    assert _person().age_on(date(2020, 7, 1)) is None


def test_months_enrolled_count_whole_months() -> None:
    p = _person(insu_date=date(2020, 1, 15))
    assert p.months_enrolled(date(2020, 1, 15)) == 0
    assert p.months_enrolled(date(2020, 2, 14)) == 0
    assert p.months_enrolled(date(2020, 2, 15)) == 1
    assert p.months_enrolled(date(2021, 1, 15)) == 12
    assert p.months_enrolled(date(2019, 12, 1)) == 0  # before enrolment: none, not negative
    assert _person().months_enrolled(date(2020, 2, 15)) is None


@pytest.mark.parametrize("treating, insured, where", [
    ("430100", "430100", "local"),  # 长沙市 in 长沙市
    ("430181", "430100", "local"),  # 浏阳市, a county-level city of 长沙: pooled with it
    ("430100", "430182", "local"),  # 宁乡's insured treated in the city
    ("431000", "430100", "province"),  # 郴州市: elsewhere in 湖南
    ("440300", "430100", "national"),  # 深圳市: another province
    ("440300", "", "local"),  # no insured region given: nothing to compare with
])
def test_cross_region_by_the_treating_and_insured_regions(treating, insured, where) -> None:
    ctx = VisitContext(mdtrt_id="M", med_type="21", setl_date=date(2026, 6, 1),
                       institution=Institution("H", "", treating, "3"), insured_admdvs=insured)
    assert ctx.cross_region == where
