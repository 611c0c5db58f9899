"""5201 visits, 5202 diagnoses, 5205 chronic-disease medication, 5302 designated institutions and 4101 the
settlement list, over HTTP against `medpay serve` on SQLite and PostgreSQL: answers read with the strict readers
written from the specification's tables; only the institution's own visits; personal data audited; 4101 stored
once per msgid, checked against its settlement, replaced (audited) by a later upload; every bad input refused
naming its field, writing nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import TypeAdapter
from sqlalchemy import select

from medpay.adapters.db.diagnosis_tables import VisitDiagnosisRow
from medpay.adapters.db.engine import make_engine, session_factory
from medpay.adapters.db.settlement_list_tables import SettlementListRow
from medpay.his_client import HisBusinessError, HisClient
from medpay.local_time import LOCAL_TZ
from medpay.nhsa_models import Designation, Diagnosis, MedicationRecord, VisitInfo
from medpay.services import demo
from tests.helpers_server import audit_events, backend_server, signed_in_client

H1, H2 = demo.INSTITUTIONS[0], demo.INSTITUTIONS[1]
EMP, RETIREE, CIVIL, CHILD = demo.PERSONS[0], demo.PERSONS[1], demo.PERSONS[2], demo.PERSONS[3]
CHRONIC_DRUG, DRUG, EXAM = "ZA04BAA003", "XM01AEB002", "002101000010000"
VISITS, DIAGNOSES = TypeAdapter(list[VisitInfo]), TypeAdapter(list[Diagnosis])
MEDICATION, DESIGNATIONS = TypeAdapter(list[MedicationRecord]), TypeAdapter(list[Designation])


def now(**delta: float) -> str:
    return f"{datetime.now(LOCAL_TZ) + timedelta(**delta):%Y-%m-%d %H:%M:%S}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from backend_server(request.param, tmp_path_factory.mktemp("queries"))


def client(base: str, inst=H1, shown=(EMP, RETIREE)) -> HisClient:
    return signed_in_client(base, inst, shown)


def visit(c: HisClient, person=EMP, med_type: str = "11", lines=((DRUG, 1, "20.00"),), dise=("J06.900", "急性上呼吸道感染"),
          ) -> str:
    mdtrt_id = c.call("2201", {"data": {"psn_no": person.psn_no, "insutype": person.insutype, "med_type": med_type,
                                        "mdtrt_cert_type": "02", "mdtrt_cert_no": person.certno,
                                        "dise_codg": dise[0], "dise_name": dise[1]}}).output["data"]["mdtrt_id"]
    c.upload_fees([{"feedetl_sn": str(i), "mdtrt_id": mdtrt_id, "psn_no": person.psn_no, "med_list_codg": code,
                    "cnt": n, "pric": p, "det_item_fee_sumamt": str(n * Decimal(p)), "fee_ocur_time": now(),
                    "bilg_dr_name": "李医生"}
                   for i, (code, n, p) in enumerate(lines, start=1)])
    return mdtrt_id


def refused(c: HisClient, infno: str, data: dict, field: str, node: str = "data") -> str:
    with pytest.raises(HisBusinessError) as e:
        c.call(infno, {node: data} if node else data)
    assert e.value.err_msg.startswith(f"{field}: "), e.value.err_msg
    return e.value.err_msg


# ------------------------------------------------------------------------------------------ 5201, 5202


def test_5201_lists_the_persons_own_visits_here_with_identity_and_audits_it(served) -> None:
    c = client(served)
    first = visit(c)
    chronic = visit(c, med_type="14", dise=("M03900", "高血压"))
    rows = VISITS.validate_python(c.call("5201", {"data": {"psn_no": EMP.psn_no}}).output["mdtrtinfo"])
    mine = {r.mdtrt_id: r for r in rows}
    assert {first, chronic} <= set(mine)
    assert (mine[first].psn_name, mine[first].certno, mine[first].med_type, mine[chronic].dise_codg) == (
        EMP.psn_name, EMP.certno, "11", "M03900")
    assert mine[first].endtime is None and mine[first].inhosp_stas == "0"
    only = c.call("5201", {"data": {"psn_no": EMP.psn_no, "med_type": "14", "begntime": now(hours=-1),
                                    "endtime": now(hours=1)[:10]}}).output["mdtrtinfo"]
    assert chronic in [r["mdtrt_id"] for r in only] and first not in [r["mdtrt_id"] for r in only]
    one = c.call("5201", {"data": {"psn_no": EMP.psn_no, "mdtrt_id": first}}).output["mdtrtinfo"]
    assert [r["mdtrt_id"] for r in one] == [first]
    assert c.call("5201", {"data": {"psn_no": EMP.psn_no, "begntime": now(days=1)}}).output["mdtrtinfo"] == []
    events = audit_events(served.db_url, "visit_info")
    assert events and events[-1].actor == H1[0] and events[-1].psn_no == EMP.psn_no and "certno" in events[-1].fields


def test_5201_never_shows_another_institutions_visits(served) -> None:
    h1 = client(served)
    theirs = visit(h1)
    h2 = client(served, H2, shown=(EMP,))
    own = visit(h2)
    listed = [r["mdtrt_id"] for r in h2.call("5201", {"data": {"psn_no": EMP.psn_no}}).output["mdtrtinfo"]]
    assert own in listed and theirs not in listed
    a = refused(h2, "5201", {"psn_no": EMP.psn_no, "mdtrt_id": theirs}, "mdtrt_id")
    b = refused(h2, "5201", {"psn_no": EMP.psn_no, "mdtrt_id": "0" * 20}, "mdtrt_id")
    assert a.replace(theirs, "X") == b.replace("0" * 20, "X")  # as if unknown
    stranger = client(served, H2, shown=())  # H2 never saw CIVIL: refused exactly like an unknown person
    a = refused(stranger, "5201", {"psn_no": CIVIL.psn_no}, "data.psn_no")
    b = refused(stranger, "5201", {"psn_no": "99990199999999"}, "data.psn_no")
    assert a.replace(CIVIL.psn_no, "X") == b.replace("99990199999999", "X")


def test_5202_answers_the_visits_diagnosis(served) -> None:
    c = client(served)
    mdtrt_id = visit(c, dise=("K29.700", "胃炎"))
    rows = DIAGNOSES.validate_python(c.call("5202", {"data": {"mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no}})
                                     .output["diseinfo"])
    assert [(r.diag_code, r.diag_name, r.maindiag_flag, r.diag_srt_no, r.mdtrt_id) for r in rows] == [
        ("K29.700", "胃炎", "1", 1, mdtrt_id)]
    bare = visit(c, dise=("", ""))
    assert c.call("5202", {"data": {"mdtrt_id": bare, "psn_no": EMP.psn_no}}).output["diseinfo"] == []
    assert audit_events(served.db_url, "diagnoses")[-1].psn_no == EMP.psn_no
    refused(c, "5202", {"mdtrt_id": mdtrt_id, "psn_no": RETIREE.psn_no}, "data.psn_no")
    refused(c, "5202", {"mdtrt_id": mdtrt_id}, "data.psn_no")
    refused(c, "5202", {"psn_no": EMP.psn_no}, "data.mdtrt_id")
    other = visit(client(served, H2, shown=(EMP,)))
    refused(c, "5202", {"mdtrt_id": other, "psn_no": EMP.psn_no}, "mdtrt_id")


# ------------------------------------------------------------------------------------------ 5202: the lists of 2203/2401/2402


def dise(code: str, name: str, srt_no: int = 1, **more) -> dict:
    return {"diag_type": "1", "diag_srt_no": srt_no, "diag_code": code, "diag_name": name, "diag_dept": "内科",
            "dise_dor_no": "D001", "dise_dor_name": "李医生", "diag_time": now(minutes=-5), "vali_flag": "1", **more}


THREE = [dise("J06.900", "急性上呼吸道感染", 1), dise("A01.01", "外感风热证", 2, diag_type="3"),
         dise("I10.x00", "高血压", 3, vali_flag="0")]


def diagnoses_stored(served, mdtrt_id: str | None = None) -> list:
    engine = make_engine(served.db_url)
    try:
        with session_factory(engine)() as s:
            query = select(VisitDiagnosisRow.mdtrt_id, VisitDiagnosisRow.inout_diag_type, VisitDiagnosisRow.diag_code,
                           VisitDiagnosisRow.msgid)
            if mdtrt_id:
                query = query.where(VisitDiagnosisRow.mdtrt_id == mdtrt_id)
            return list(s.execute(query.order_by(VisitDiagnosisRow.id)))
    finally:
        engine.dispose()


def answered(c: HisClient, mdtrt_id: str, person=EMP) -> list[Diagnosis]:
    return DIAGNOSES.validate_python(c.call("5202", {"data": {"mdtrt_id": mdtrt_id, "psn_no": person.psn_no}})
                                     .output["diseinfo"])


def visit_info(mdtrt_id: str, rows: list, person=EMP) -> dict:
    return {"mdtrtinfo": {"mdtrt_id": mdtrt_id, "psn_no": person.psn_no, "med_type": "11",
                          "dise_codg": rows[0]["diag_code"] if rows else "", "dise_name": rows[0]["diag_name"] if rows else ""},
            "diseinfo": rows}


def test_5202_answers_every_diagnosis_2203_sent_in_order_and_a_later_2203_replaces_them(served) -> None:
    c = client(served)
    mdtrt_id = visit(c, dise=("J06.900", "急性上呼吸道感染"))
    msgid = c.next_msgid()
    c.call("2203", visit_info(mdtrt_id, THREE), msgid=msgid)
    rows = answered(c, mdtrt_id)
    assert [(r.diag_srt_no, r.diag_code, r.diag_type, r.maindiag_flag, r.inout_diag_type) for r in rows] == [
        (1, "J06.900", "1", "1", "1"), (2, "A01.01", "3", "0", "1"), (3, "I10.x00", "1", "0", "1")]
    assert {(r.mdtrt_id, r.psn_no, r.diag_dept, r.dise_dor_no, r.dise_dor_name) for r in rows} == {
        (mdtrt_id, EMP.psn_no, "内科", "D001", "李医生")}
    assert rows[0].diag_time == THREE[0]["diag_time"] and [r.model_extra["vali_flag"] for r in rows] == ["1", "1", "0"]
    assert len({r.diag_info_id for r in rows}) == 3
    events = audit_events(served.db_url, "diagnoses")
    assert (events[-1].actor, events[-1].psn_no) == (H1[0], EMP.psn_no)
    assert {r.msgid for r in diagnoses_stored(served, mdtrt_id)} == {msgid}
    c.call("2203", visit_info(mdtrt_id, [dise("J20.900", "急性支气管炎")]))  # the doctor corrects the diagnosis
    assert [(r.diag_code, r.maindiag_flag) for r in answered(c, mdtrt_id)] == [("J20.900", "1")]
    c.call("2203", {"mdtrtinfo": {"mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no, "med_type": "11"}})  # no list sent
    assert [r.diag_code for r in answered(c, mdtrt_id)] == ["J20.900"]
    assert [r.diag_code for r in diagnoses_stored(served, mdtrt_id)] == ["J20.900"]


def test_a_replayed_2203_stores_its_diagnoses_once(served) -> None:
    c = client(served)
    mdtrt_id = visit(c)
    msgid = c.next_msgid()
    c.call("2203", visit_info(mdtrt_id, THREE), msgid=msgid)
    c.call("2203", visit_info(mdtrt_id, THREE), msgid=msgid)  # a retry: the first answer, nothing stored again
    first = [tuple(r) for r in diagnoses_stored(served, mdtrt_id)]
    assert [r[2] for r in first] == ["J06.900", "A01.01", "I10.x00"]
    with pytest.raises(HisBusinessError, match="^infcode -2: msgid"):
        c.call("2203", visit_info(mdtrt_id, THREE[:1]), msgid=msgid)  # the same msgid with another list
    assert [tuple(r) for r in diagnoses_stored(served, mdtrt_id)] == first
    assert [r.diag_code for r in answered(c, mdtrt_id)] == ["J06.900", "A01.01", "I10.x00"]


def test_5202_answers_the_admission_and_the_discharge_lists(served) -> None:
    c = client(served)
    admission = [dise("K35.800", "急性阑尾炎", 1, maindiag_flag="1", inout_diag_type="1"),
                 dise("E11.900", "2型糖尿病", 2, maindiag_flag="0")]
    mdtrt_id = c.call("2401", {"mdtrtinfo": {"psn_no": RETIREE.psn_no, "insutype": RETIREE.insutype, "med_type": "21",
                                             "dise_codg": "K35.800", "dise_name": "急性阑尾炎"},
                               "diseinfo": admission}).output["result"]["mdtrt_id"]
    assert [(r.inout_diag_type, r.diag_code, r.maindiag_flag) for r in answered(c, mdtrt_id, RETIREE)] == [
        ("1", "K35.800", "1"), ("1", "E11.900", "0")]
    discharge = [dise("K35.801", "急性化脓性阑尾炎", 1, maindiag_flag="1", inout_diag_type="2"),
                 dise("E11.900", "2型糖尿病", 2, maindiag_flag="0", inout_diag_type="2")]
    c.call("2402", {"dscginfo": {"mdtrt_id": mdtrt_id, "psn_no": RETIREE.psn_no, "endtime": now()},
                    "diseinfo": discharge})
    assert [(r.inout_diag_type, r.diag_srt_no, r.diag_code, r.maindiag_flag)
            for r in answered(c, mdtrt_id, RETIREE)] == [
        ("1", 1, "K35.800", "1"), ("1", 2, "E11.900", "0"), ("2", 1, "K35.801", "1"), ("2", 2, "E11.900", "0")]
    c.call("2405", {"data": {"mdtrt_id": mdtrt_id, "psn_no": RETIREE.psn_no}})  # the discharge, and its list, undone
    assert [r.inout_diag_type for r in answered(c, mdtrt_id, RETIREE)] == ["1", "1"]
    c.call("2402", {"dscginfo": {"mdtrt_id": mdtrt_id, "psn_no": RETIREE.psn_no, "endtime": now()},
                    "diseinfo": discharge[:1]})
    assert [(r.inout_diag_type, r.diag_code) for r in answered(c, mdtrt_id, RETIREE)] == [
        ("1", "K35.800"), ("1", "E11.900"), ("2", "K35.801")]


@pytest.mark.parametrize("infno, row, field", [
    ("2203", {"diag_code": None}, "diseinfo[1].diag_code"),
    ("2203", {"diag_name": "炎" * 256}, "diseinfo[1].diag_name"),
    ("2203", {"diag_code": "J" * 21}, "diseinfo[1].diag_code"),
    ("2203", {"diag_srt_no": "二"}, "diseinfo[1].diag_srt_no"),
    ("2203", {"diag_srt_no": 0}, "diseinfo[1].diag_srt_no"),
    ("2203", {"diag_srt_no": 1.5}, "diseinfo[1].diag_srt_no"),
    ("2203", {"diag_time": "2026/11/23 10:00"}, "diseinfo[1].diag_time"),
    ("2203", {"diag_time": ""}, "diseinfo[1].diag_time"),
    ("2203", {"diag_dept": None}, "diseinfo[1].diag_dept"),
    ("2203", {"dise_dor_name": None}, "diseinfo[1].dise_dor_name"),
    ("2203", {"vali_flag": "9"}, "diseinfo[1].vali_flag"),
    ("2203", {"diag_type": ["1"]}, "diseinfo[1].diag_type"),
    ("2203", {"diag_name": "胃\x00炎"}, "diseinfo[1].diag_name"),
    ("2203", "J06.900", "diseinfo[1]"),
    ("2401", {"inout_diag_type": "2"}, "diseinfo[1].inout_diag_type"),
    ("2401", {"maindiag_flag": "Y"}, "diseinfo[1].maindiag_flag"),
    ("2402", {"inout_diag_type": "1"}, "diseinfo[1].inout_diag_type"),
    ("2402", {"diag_time": "yesterday"}, "diseinfo[1].diag_time"),
])
def test_a_bad_diagnosis_row_is_refused_naming_the_field_and_nothing_is_stored(served, infno: str, row, field: str,
                                                                              ) -> None:
    c = client(served)
    bad = {**THREE[1], **row} if isinstance(row, dict) else row
    rows = [THREE[0], bad, THREE[2]]
    if infno == "2203":
        mdtrt_id = visit(c, dise=("K29.700", "胃炎"))
        body, person = visit_info(mdtrt_id, rows), EMP
    elif infno == "2401":
        mdtrt_id, person = "", RETIREE
        body = {"mdtrtinfo": {"psn_no": RETIREE.psn_no, "insutype": RETIREE.insutype, "med_type": "21"},
                "diseinfo": rows}
    else:
        person = RETIREE
        mdtrt_id = c.call("2401", {"mdtrtinfo": {"psn_no": RETIREE.psn_no, "insutype": RETIREE.insutype,
                                                 "med_type": "21"}}).output["result"]["mdtrt_id"]
        body = {"dscginfo": {"mdtrt_id": mdtrt_id, "psn_no": RETIREE.psn_no, "endtime": now()}, "diseinfo": rows}
    visits_before = [r["mdtrt_id"] for r in c.call("5201", {"data": {"psn_no": person.psn_no}}).output["mdtrtinfo"]]
    stored_before = diagnoses_stored(served)
    refused(c, infno, body, field, node="")
    assert diagnoses_stored(served) == stored_before
    after = c.call("5201", {"data": {"psn_no": person.psn_no}}).output["mdtrtinfo"]
    assert [r["mdtrt_id"] for r in after] == visits_before  # no admission opened
    if infno == "2203":  # the visit's information unchanged too: its main diagnosis still answered
        assert [(r.diag_code, r.diag_srt_no) for r in answered(c, mdtrt_id)] == [("K29.700", 1)]
    if infno == "2402":
        assert {r["mdtrt_id"]: r["inhosp_stas"] for r in after}[mdtrt_id] == "1"  # still in hospital


def test_diagnoses_of_another_institutions_visit_are_refused_like_an_unknown_visit(served) -> None:
    h2 = client(served, H2, shown=(EMP,))
    theirs = visit(h2)
    h2.call("2203", visit_info(theirs, THREE))
    c = client(served)
    stored = diagnoses_stored(served, theirs)
    a = refused(c, "5202", {"mdtrt_id": theirs, "psn_no": EMP.psn_no}, "mdtrt_id")
    b = refused(c, "5202", {"mdtrt_id": "0" * 20, "psn_no": EMP.psn_no}, "mdtrt_id")
    assert a.replace(theirs, "X") == b.replace("0" * 20, "X")
    a = refused(c, "2203", visit_info(theirs, THREE[:1]), "mdtrt_id", node="")  # nor may it send their list
    b = refused(c, "2203", visit_info("0" * 20, THREE[:1]), "mdtrt_id", node="")
    assert a.replace(theirs, "X") == b.replace("0" * 20, "X")
    assert diagnoses_stored(served, theirs) == stored and len(stored) == 3
    assert [r.diag_code for r in answered(h2, theirs)] == ["J06.900", "A01.01", "I10.x00"]


# ------------------------------------------------------------------------------------------ 5205


def test_5205_lists_only_drug_lines_of_chronic_disease_visits(served) -> None:
    c = client(served, shown=(RETIREE,))
    start = now(seconds=-2)
    chronic = visit(c, RETIREE, "14", lines=((CHRONIC_DRUG, 2, "15.50"), (EXAM, 1, "20.00")))
    ordinary = visit(c, RETIREE, "11", lines=((DRUG, 1, "20.00"),))
    rows = MEDICATION.validate_python(c.call("5205", {"data": {"psn_no": RETIREE.psn_no, "begntime": start}})
                                      .output["feedetail"])
    assert [(r.med_list_codg, r.cnt, r.pric, r.med_type, r.list_type, r.fixmedins_code) for r in rows] == [
        (CHRONIC_DRUG, 2, Decimal("15.5"), "14", "101", H1[0])]
    raw = c.call("5205", {"data": {"psn_no": RETIREE.psn_no, "begntime": start, "endtime": now(hours=1)}}).output
    assert raw["feedetail"][0]["mdtrt_id"] == chronic and raw["feedetail"][0]["det_item_fee_sumamt"] == 31.0
    assert all(r["mdtrt_id"] != ordinary for r in raw["feedetail"])
    assert c.call("5205", {"data": {"psn_no": RETIREE.psn_no, "begntime": now(hours=1)}}).output["feedetail"] == []
    assert audit_events(served.db_url, "chronic_medication")[-1].psn_no == RETIREE.psn_no


@pytest.mark.parametrize("data, field", [
    ({"psn_no": EMP.psn_no}, "data.begntime"),
    ({"psn_no": EMP.psn_no, "begntime": "yesterday"}, "data.begntime"),
    ({"psn_no": EMP.psn_no, "begntime": "2026-11-02 00:00:00", "endtime": "2026-11-01 00:00:00"}, "data.endtime"),
    ({"begntime": "2026-11-01 00:00:00"}, "data.psn_no"),
    ({"psn_no": "9" * 31, "begntime": "2026-11-01 00:00:00"}, "data.psn_no"),
    ({"psn_no": CHILD.psn_no, "begntime": "2026-11-01 00:00:00"}, "data.psn_no"),  # never seen here
])
def test_a_bad_5205_is_refused_naming_the_field(served, data: dict, field: str) -> None:
    refused(client(served), "5205", data, field)


def test_a_bad_5201_is_refused_naming_the_field(served) -> None:
    c = client(served)
    refused(c, "5201", {"begntime": now()}, "data.psn_no")
    refused(c, "5201", {"psn_no": EMP.psn_no, "begntime": now(), "endtime": now(hours=-1)}, "data.endtime")
    refused(c, "5201", {"psn_no": EMP.psn_no, "med_type": "1" * 7}, "data.med_type")
    refused(c, "5201", {"psn_no": EMP.psn_no, "endtime": {"a": 1}}, "data.endtime")
    refused(c, "5201", {}, "input.data", node="")


# ------------------------------------------------------------------------------------------ 5302


def test_5302_lists_the_persons_designated_institutions_in_order_of_choice(served) -> None:
    c = client(served)
    rows = DESIGNATIONS.validate_python(c.call("5302", {"data": {"psn_no": RETIREE.psn_no, "biz_appy_type": "03"}})
                                        .output["psnfixmedin"])
    assert [(r.fix_srt_no, r.fixmedins_code, r.fixmedins_name, r.insutype) for r in rows] == [
        ("1", H1[0], H1[1], "310"), ("2", H2[0], H2[1], "310")]
    assert c.call("5302", {"data": {"psn_no": EMP.psn_no, "biz_appy_type": "03"}}).output["psnfixmedin"] == []
    assert audit_events(served.db_url, "designations")[-1].psn_no == RETIREE.psn_no
    refused(c, "5302", {"psn_no": RETIREE.psn_no}, "data.biz_appy_type")
    refused(c, "5302", {"psn_no": RETIREE.psn_no, "biz_appy_type": "0301"}, "data.biz_appy_type")
    refused(c, "5302", {"psn_no": CHILD.psn_no, "biz_appy_type": "03"}, "data.psn_no")  # not shown here


# ------------------------------------------------------------------------------------------ 4101


def settled(c: HisClient, person=EMP) -> dict:
    mdtrt_id = visit(c, person, lines=((DRUG, 2, "30.50"), (EXAM, 1, "20.00")))
    return c.settle_outpatient(person.psn_no, mdtrt_id, "B1", Decimal("81.00")).output


def settlement_list(out: dict, **changes) -> dict:
    info, detail = out["setlinfo"], out["setldetail"]
    setlinfo = {
        "mdtrt_id": info["mdtrt_id"], "setl_id": info["setl_id"], "fixmedins_name": H1[1], "fixmedins_code": H1[0],
        "hi_no": info["psn_no"], "medcasno": "BA0001", "psn_name": info["psn_name"], "gend": "1", "brdy": "1980-01-01",
        "age": 46, "ntly": "CHN", "naty": "01", "patn_cert_type": "01", "certno": info["certno"], "prfs": "17",
        "coner_name": info["psn_name"], "patn_rlts": "0", "coner_addr": "演示市", "coner_tel": "13800000001",
        "hi_type": info["insutype"], "insuplc": "999901", "maindiag_flag": "1",
        "setl_begn_date": info["setl_time"][:10], "setl_end_date": info["setl_time"][:10],
        "psn_selfpay": str(Decimal(str(info["psn_part_amt"])) - Decimal(str(info["fulamt_ownpay_amt"]))),
        "psn_ownpay": info["fulamt_ownpay_amt"],
        "acct_pay": info["acct_pay"], "psn_cashpay": info["psn_cash_pay"], "hi_paymtd": "1",
        "hsorg": "演示市医疗保障局", "hsorg_opter": "经办员", "medins_fill_dept": "医保办", "medins_fill_psn": "填报员",
        "bill_code": "PJ01", "bill_no": "000001", "biz_sn": "LS000001"}
    body = {"setlinfo": setlinfo, "payinfo": [{"fund_pay_type": d["fund_pay_type"], "fund_payamt": d["fund_payamt"]}
                                              for d in detail],
            "diseinfo": [{"diag_type": "1", "diag_code": "J06.900", "diag_name": "急性上呼吸道感染", "maindiag_flag": "1"}]}
    for key, value in changes.items():
        node, _, field = key.partition("__")
        if node in ("payinfo", "diseinfo"):
            body[node][0][field] = value
        elif value is None:
            body[node].pop(field)
        else:
            body[node][field] = value
    return body


def lists_stored(served) -> list:
    engine = make_engine(served.db_url)
    try:
        with session_factory(engine)() as s:
            return list(s.execute(select(SettlementListRow.setl_id, SettlementListRow.version, SettlementListRow.status)
                                  .order_by(SettlementListRow.setl_id, SettlementListRow.version)))
    finally:
        engine.dispose()


def test_4101_stores_a_list_once_per_msgid_and_a_later_upload_replaces_it_audited(served) -> None:
    c = client(served)
    out = settled(c)
    setl_id = out["setlinfo"]["setl_id"]
    msgid = c.next_msgid()
    first = c.call("4101", settlement_list(out), msgid=msgid).output["setl_list_id"]
    assert c.call("4101", settlement_list(out), msgid=msgid).output["setl_list_id"] == first  # a retry
    with pytest.raises(HisBusinessError, match="^infcode -2: msgid"):
        c.call("4101", settlement_list(out, setlinfo__bill_no="000002"), msgid=msgid)
    assert [r for r in lists_stored(served) if r.setl_id == setl_id] == [(setl_id, 1, "standing")]
    correction = c.next_msgid()
    second = c.call("4101", settlement_list(out, setlinfo__bill_no="000002"), msgid=correction).output["setl_list_id"]
    assert second != first
    assert [r for r in lists_stored(served) if r.setl_id == setl_id] == [(setl_id, 1, "replaced"),
                                                                           (setl_id, 2, "standing")]
    replaced = audit_events(served.db_url, "settlement_list_replaced")
    assert [(e.actor, e.psn_no, e.ref) for e in replaced][-1:] == [(H1[0], EMP.psn_no, correction)]
    engine = make_engine(served.db_url)
    try:
        with session_factory(engine)() as s:
            stored = s.execute(select(SettlementListRow.body_enc).where(SettlementListRow.setl_list_id == second)
                               ).scalar_one()
    finally:
        engine.dispose()
    assert EMP.certno not in stored and EMP.psn_name not in stored  # encrypted at rest


@pytest.mark.parametrize("changes, field", [
    ({"setlinfo__fixmedins_code": H2[0]}, "setlinfo.fixmedins_code"),
    ({"setlinfo__setl_id": "0" * 20}, "setlinfo.setl_id"),
    ({"setlinfo__mdtrt_id": "0" * 20}, "setlinfo.mdtrt_id"),
    ({"setlinfo__hi_no": RETIREE.psn_no}, "setlinfo.hi_no"),
    ({"setlinfo__acct_pay": 999.99}, "setlinfo.acct_pay"),
    ({"setlinfo__psn_cashpay": 0.01}, "setlinfo.psn_cashpay"),
    ({"setlinfo__psn_ownpay": 1}, "setlinfo.psn_selfpay"),
    ({"setlinfo__acct_pay": "1.234"}, "setlinfo.acct_pay"),
    ({"setlinfo__psn_cashpay": None}, "setlinfo.psn_cashpay"),
    ({"setlinfo__psn_name": None}, "setlinfo.psn_name"),
    ({"setlinfo__certno": "1" * 51}, "setlinfo.certno"),
    ({"setlinfo__setl_begn_date": "2026/11/01"}, "setlinfo.setl_begn_date"),
    ({"setlinfo__setl_end_date": "2000-01-01"}, "setlinfo.setl_end_date"),
    ({"payinfo__fund_pay_type": "610100"}, "payinfo.fund_pay_type"),
    ({"payinfo__fund_payamt": 0.01}, "payinfo.fund_payamt"),
    ({"payinfo__fund_payamt": "x"}, "payinfo[0].fund_payamt"),
    ({"diseinfo__diag_name": "胃\x00炎"}, "input.diseinfo[0].diag_name"),
])
def test_a_bad_4101_is_refused_naming_the_field_and_writes_nothing(served, changes: dict, field: str) -> None:
    c = client(served)
    out = settled(c)
    before = lists_stored(served)
    with pytest.raises(HisBusinessError) as e:
        c.call("4101", settlement_list(out, **changes))
    assert e.value.err_msg.startswith(f"{field}: "), e.value.err_msg
    assert lists_stored(served) == before


def test_4101_refuses_another_institutions_and_a_cancelled_settlement(served) -> None:
    h2 = client(served, H2, shown=(EMP,))
    theirs = settled(h2)
    c = client(served)
    a = refused(c, "4101", settlement_list(theirs), "setlinfo.setl_id", node="")
    b = refused(c, "4101", settlement_list(theirs, setlinfo__setl_id="0" * 20), "setlinfo.setl_id", node="")
    assert a.replace(theirs["setlinfo"]["setl_id"], "X") == b.replace("0" * 20, "X")  # as if unknown
    mine = settled(c)
    cancel = c.cancel_outpatient(mine["setlinfo"]["setl_id"], mine["setlinfo"]["mdtrt_id"], EMP.psn_no).output
    refused(c, "4101", settlement_list(mine), "setlinfo.setl_id", node="")
    refused(c, "4101", settlement_list(mine, setlinfo__setl_id=cancel["setlinfo"]["setl_id"]), "setlinfo.setl_id",
            node="")
    refused(c, "4101", {"payinfo": []}, "input.setlinfo", node="")
    refused(c, "4101", {**settlement_list(mine), "oprninfo": "none"}, "input.oprninfo", node="")



def test_two_lists_for_one_settlement_sent_at_once_leave_one_standing(served) -> None:
    """The settlement's row lock orders them: one is version 1 and replaced, the other version 2 and standing."""
    from concurrent.futures import ThreadPoolExecutor

    c = client(served)
    out = settled(c)
    senders = [client(served, shown=()) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda s: s.call("4101", settlement_list(out, setlinfo__bill_no=s.next_msgid()[-6:])),
                                senders))
    assert all(a.ok for a in answers) and len({a.output["setl_list_id"] for a in answers}) == 2
    setl_id = out["setlinfo"]["setl_id"]
    assert [(r.version, r.status) for r in lists_stored(served) if r.setl_id == setl_id] == [
        (1, "replaced"), (2, "standing")]
