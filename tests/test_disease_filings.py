"""2503/2504/5301, chronic and special outpatient disease filings, over HTTP against `medpay serve` on SQLite and
PostgreSQL: filed once by msgid, listed (strictly read, audited), cancelled once by the institution that filed it;
every bad input refused naming its field, writing nothing."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import TypeAdapter
from sqlalchemy import func, select

from medpay.adapters.db.engine import make_engine, session_factory
from medpay.adapters.db.filing_tables import DiseaseFilingRow
from medpay.his_client import HisBusinessError, HisClient
from medpay.nhsa_models import DiseaseFiling
from medpay.services import demo
from tests.helpers_server import audit_events, backend_server, signed_in_client

H1, H2 = demo.INSTITUTIONS[0], demo.INSTITUTIONS[1]
CIVIL, CHILD = demo.PERSONS[2], demo.PERSONS[3]
FILINGS = TypeAdapter(list[DiseaseFiling])
TODAY = date.today()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from backend_server(request.param, tmp_path_factory.mktemp("filings"))


def client(base: str, inst=H1, shown=(CIVIL,)) -> HisClient:
    return signed_in_client(base, inst, shown)


def filing(person=CIVIL, **changes) -> dict:
    data = {"psn_no": person.psn_no, "insutype": person.insutype, "opsp_dise_code": "M03900",
            "opsp_dise_name": "高血压", "tel": "13800000003", "addr": "演示市", "insu_optins": "999901",
            "ide_fixmedins_no": H1[0], "ide_fixmedins_name": H1[1], "hosp_ide_date": str(TODAY - timedelta(days=3)),
            "diag_dr_codg": "D001", "diag_dr_name": "李医生", "begndate": str(TODAY), "enddate": ""}
    return {"data": {**data, **changes}}


def listed(c: HisClient, person=CIVIL) -> list[DiseaseFiling]:
    return FILINGS.validate_python(c.call("5301", {"data": {"psn_no": person.psn_no}}).output["feedetail"])


def stored(served: str) -> int:
    engine = make_engine(served.db_url)
    try:
        with session_factory(engine)() as s:
            return s.execute(select(func.count()).select_from(DiseaseFilingRow)).scalar_one()
    finally:
        engine.dispose()


def test_a_filing_is_made_once_listed_and_cancelled_once(served) -> None:
    c = client(served)
    msgid = c.next_msgid()
    sn = c.call("2503", filing(opsp_dise_code="M04900", opsp_dise_name="糖尿病"), msgid=msgid).output["result"][
        "trt_dcla_detl_sn"]
    again = c.call("2503", filing(opsp_dise_code="M04900", opsp_dise_name="糖尿病"), msgid=msgid)
    assert again.output["result"]["trt_dcla_detl_sn"] == sn  # a retry: the first answer, no second filing
    with pytest.raises(HisBusinessError, match="msgid"):
        c.call("2503", filing(opsp_dise_code="M05000", opsp_dise_name="冠心病"), msgid=msgid)
    rows = [r for r in listed(c) if r.opsp_dise_code == "M04900"]
    assert [(r.opsp_dise_name, r.begndate, r.enddate) for r in rows] == [("糖尿病", str(TODAY), None)]
    with pytest.raises(HisBusinessError, match="^infcode -2: data.opsp_dise_code: M04900 is filed"):
        c.call("2503", filing(opsp_dise_code="M04900", opsp_dise_name="糖尿病", begndate=str(TODAY + timedelta(days=9))))
    other = client(served, H2)
    with pytest.raises(HisBusinessError) as theirs:  # another institution's filing: as if unknown
        other.call("2504", {"data": {"trt_dcla_detl_sn": sn, "psn_no": CIVIL.psn_no, "memo": "误报"}})
    with pytest.raises(HisBusinessError) as unknown:
        other.call("2504", {"data": {"trt_dcla_detl_sn": "0" * 20, "psn_no": CIVIL.psn_no, "memo": "误报"}})
    assert theirs.value.err_msg.replace(sn, "X") == unknown.value.err_msg.replace("0" * 20, "X")
    cancel = c.next_msgid()
    c.call("2504", {"data": {"trt_dcla_detl_sn": sn, "psn_no": CIVIL.psn_no, "memo": "诊断变更"}}, msgid=cancel)
    c.call("2504", {"data": {"trt_dcla_detl_sn": sn, "psn_no": CIVIL.psn_no, "memo": "诊断变更"}}, msgid=cancel)
    with pytest.raises(HisBusinessError, match="already cancelled"):
        c.call("2504", {"data": {"trt_dcla_detl_sn": sn, "psn_no": CIVIL.psn_no, "memo": "诊断变更"}})
    assert [r for r in listed(c) if r.opsp_dise_code == "M04900"] == []
    assert c.call("2503", filing(opsp_dise_code="M04900", opsp_dise_name="糖尿病")).ok  # filed again once cancelled
    events = audit_events(served.db_url, "disease_filings")
    assert events and all(e.actor == H1[0] and e.psn_no == CIVIL.psn_no for e in events)


@pytest.mark.parametrize("changes, field", [
    ({"opsp_dise_code": ""}, "data.opsp_dise_code"),
    ({"opsp_dise_name": "病" * 301}, "data.opsp_dise_name"),
    ({"tel": "1" * 51}, "data.tel"),
    ({"insutype": "390"}, "data.insutype"),
    ({"insu_optins": "110000"}, "data.insu_optins"),
    ({"begndate": "2026/12/01"}, "data.begndate"),
    ({"enddate": str(TODAY - timedelta(days=1))}, "data.enddate"),
    ({"hosp_ide_date": str(TODAY + timedelta(days=2))}, "data.hosp_ide_date"),
    ({"diag_dr_name": None}, "data.diag_dr_name"),
    ({"psn_no": CHILD.psn_no, "insutype": CHILD.insutype}, "data.psn_no"),  # never shown here (no 1101)
    ({"psn_no": "99990199999999"}, "data.psn_no"),
])
def test_a_bad_filing_is_refused_naming_the_field_and_writes_nothing(served, changes: dict, field: str) -> None:
    c = client(served)
    before = stored(served)
    with pytest.raises(HisBusinessError) as e:
        c.call("2503", filing(**changes))
    assert e.value.err_msg.startswith(f"{field}: "), e.value.err_msg
    assert stored(served) == before


@pytest.mark.parametrize("data, field", [
    ({"psn_no": CIVIL.psn_no, "memo": "x"}, "data.trt_dcla_detl_sn"),
    ({"trt_dcla_detl_sn": "S", "psn_no": CIVIL.psn_no}, "data.memo"),
    ({"trt_dcla_detl_sn": "S", "psn_no": CIVIL.psn_no, "memo": "m" * 501}, "data.memo"),
])
def test_a_bad_cancellation_is_refused_naming_the_field(served, data: dict, field: str) -> None:
    with pytest.raises(HisBusinessError) as e:
        client(served).call("2504", {"data": data})
    assert e.value.err_msg.startswith(f"{field}: ")


def test_the_filing_of_another_person_is_not_cancelled_by_naming_it(served) -> None:
    c = client(served, shown=(CIVIL, demo.PERSONS[0]))
    sn = c.call("2503", filing(opsp_dise_code="M06000", opsp_dise_name="慢阻肺")).output["result"]["trt_dcla_detl_sn"]
    with pytest.raises(HisBusinessError, match="^infcode -2: data.psn_no"):
        c.call("2504", {"data": {"trt_dcla_detl_sn": sn, "psn_no": demo.PERSONS[0].psn_no, "memo": "x"}})
    assert any(r.opsp_dise_code == "M06000" for r in listed(c))
    with pytest.raises(HisBusinessError, match="^infcode -2: data.psn_no"):  # 5301 for a person never shown here
        client(served, H2, shown=()).call("5301", {"data": {"psn_no": CHILD.psn_no}})
