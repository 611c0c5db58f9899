"""3301/3302/1317, an institution's catalog mapping, over HTTP against `medpay serve` on SQLite and PostgreSQL:
mapped once by msgid, re-mapped with the old mapping kept and audited, cancelled once by its own institution,
listed (strictly read, paged) for the institution only; every bad input refused naming its field, writing nothing;
and 2204 using a mapping for a line that names only the hospital's own code."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from pydantic import TypeAdapter
from sqlalchemy import func, select

from medpay.adapters.db.catalog_tables import CatalogMappingRow
from medpay.adapters.db.engine import make_engine, session_factory
from medpay.his_client import HisBusinessError, HisClient
from medpay.nhsa_models import CatalogMatch, FeeRow, Paged
from medpay.services import demo
from tests.helpers_server import audit_events, backend_server

H1, H2 = demo.INSTITUTIONS[0], demo.INSTITUTIONS[1]
EMP = demo.PERSONS[0]
DRUG, EXAM = "XM01AEB002", "002100000020000"  # list types 101 (西药中成药) and 201 (医疗服务项目)
MATCHES = TypeAdapter(list[CatalogMatch])
TODAY = date.today()
EARLY = "2000-01-01 00:00:00"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from backend_server(request.param, tmp_path_factory.mktemp("catalog_mapping"))


def client(base: str, inst=H1) -> HisClient:
    code, name, _level, paasid, token = inst
    c = HisClient(base, code, name, paasid, token, mdtrtarea_admvs="999901", retries=0)
    c.sign_in("1001")
    return c


def mapping(code: str, **changes) -> dict:
    data = {"fixmedins_hilist_id": code, "fixmedins_hilist_name": "布洛芬缓释胶囊(院内)", "list_type": "101",
            "med_list_codg": DRUG, "begndate": str(TODAY - timedelta(days=30)), "enddate": "2099-12-31",
            "aprvno": "国药准字H10900089", "dosform": "胶囊剂", "prcunt": "盒", "spec": "0.3g*20粒"}
    return {"data": {**data, **changes}}


def unmapping(code: str, inst=H1, **changes) -> dict:
    return {"data": {"fixmedins_code": inst[0], "fixmedins_hilist_id": code, "list_type": "101",
                     "med_list_codg": DRUG, **changes}}


def listed(c: HisClient, **data) -> list[CatalogMatch]:
    page = Paged.model_validate(c.call("1317", {"data": {"updt_time": EARLY, "page_num": 1, "page_size": 100,
                                                         **data}}).output)
    return MATCHES.validate_python(page.data)


def stored(served) -> int:
    engine = make_engine(served.db_url)
    try:
        with session_factory(engine)() as s:
            return s.execute(select(func.count()).select_from(CatalogMappingRow)).scalar_one()
    finally:
        engine.dispose()


def test_a_code_is_mapped_once_remapped_with_audit_and_cancelled_once(served) -> None:
    c = client(served)
    msgid = c.next_msgid()
    c.call("3301", mapping("YP-A1"), msgid=msgid)
    c.call("3301", mapping("YP-A1"), msgid=msgid)  # a retry: the first answer, no second row
    with pytest.raises(HisBusinessError, match="msgid"):
        c.call("3301", mapping("YP-A2"), msgid=msgid)
    (row,) = listed(c, medins_list_codg="YP-A1")
    assert (row.med_list_codg, row.list_type, row.vali_flag, row.fixmedins_code, row.insu_admdvs, row.spec,
            row.enddate) == (DRUG, "101", "1", H1[0], "999901", "0.3g*20粒", "2099-12-31")
    c.call("3301", mapping("YP-A1"))  # the same mapping again: nothing changes
    assert [r.rid for r in listed(c, medins_list_codg="YP-A1")] == [row.rid]
    remap = c.next_msgid()
    c.call("3301", mapping("YP-A1", fixmedins_hilist_name="复方丹参滴丸(院内)", med_list_codg="ZA04BAA003"),
           msgid=remap)
    rows = listed(c, medins_list_codg="YP-A1")
    assert sorted((r.med_list_codg, r.vali_flag) for r in rows) == [(DRUG, "0"), ("ZA04BAA003", "1")]
    assert [r.med_list_codg for r in listed(c, medins_list_codg="YP-A1", vali_flag="1")] == ["ZA04BAA003"]
    assert [e.ref for e in audit_events(served.db_url, "catalog_remap") if e.actor == H1[0]] == [remap]
    with pytest.raises(HisBusinessError, match="^infcode -2: data.med_list_codg: 'YP-A1' is mapped to ZA04BAA003"):
        c.call("3302", unmapping("YP-A1"))
    with pytest.raises(HisBusinessError) as theirs:  # another institution names H1's code: refused, not cancelled
        client(served, H2).call("3302", unmapping("YP-A1", med_list_codg="ZA04BAA003"))
    assert theirs.value.err_msg.startswith("data.fixmedins_code: ")
    with pytest.raises(HisBusinessError, match="^infcode -2: data.fixmedins_hilist_id: 'YP-A1' has no standing"):
        client(served, H2).call("3302", unmapping("YP-A1", inst=H2, med_list_codg="ZA04BAA003"))
    cancel = c.next_msgid()
    c.call("3302", unmapping("YP-A1", med_list_codg="ZA04BAA003"), msgid=cancel)
    c.call("3302", unmapping("YP-A1", med_list_codg="ZA04BAA003"), msgid=cancel)  # a retry
    with pytest.raises(HisBusinessError, match="already cancelled"):
        c.call("3302", unmapping("YP-A1", med_list_codg="ZA04BAA003"))
    assert listed(c, medins_list_codg="YP-A1", vali_flag="1") == []
    assert client(served, H2).call("1317", {"data": {"updt_time": EARLY, "page_num": 1, "page_size": 10,
                                                     "medins_list_codg": "YP-A1"}}).output["data"] == []


def test_the_mappings_are_paged(served) -> None:
    c = client(served)
    for i in range(5):
        c.call("3301", mapping(f"YP-P{i}", fixmedins_hilist_name=f"分页药{i}"))
    seen, page_num = [], 1
    while True:
        page = Paged.model_validate(c.call("1317", {"data": {"updt_time": EARLY, "page_num": page_num,
                                                             "page_size": 2, "medins_list_name": "分页药"}}).output)
        assert page.recordCounts == 5 and page.pages == 3
        if not page.data:
            break
        seen += [r.medins_list_codg for r in MATCHES.validate_python(page.data)]
        page_num += 1
    assert seen == [f"YP-P{i}" for i in range(5)]


@pytest.mark.parametrize("changes, field", [
    ({"med_list_codg": "NOSUCHCODE"}, "data.med_list_codg"),
    ({"list_type": "201"}, "data.list_type"),  # a drug's code uploaded as a service
    ({"list_type": "999"}, "data.list_type"),
    ({"med_list_codg": EXAM}, "data.list_type"),  # a service's code uploaded as a drug
    ({"fixmedins_hilist_id": ""}, "data.fixmedins_hilist_id"),
    ({"fixmedins_hilist_id": "Y" * 31}, "data.fixmedins_hilist_id"),
    ({"fixmedins_hilist_name": None}, "data.fixmedins_hilist_name"),
    ({"begndate": ""}, "data.begndate"),
    ({"begndate": "2026/12/01"}, "data.begndate"),
    ({"enddate": str(TODAY - timedelta(days=31))}, "data.enddate"),
    ({"exct_cont": "x" * 2001}, "data.exct_cont"),
    ({"spec": ["a"]}, "data.spec"),
])
def test_a_bad_mapping_is_refused_naming_the_field_and_writes_nothing(served, changes: dict, field: str) -> None:
    c = client(served)
    before = stored(served)
    with pytest.raises(HisBusinessError) as e:
        c.call("3301", mapping("YP-BAD", **changes))
    assert e.value.err_msg.startswith(f"{field}: "), e.value.err_msg
    assert stored(served) == before


@pytest.mark.parametrize("data, field", [
    ({"fixmedins_code": "", "fixmedins_hilist_id": "X", "list_type": "101", "med_list_codg": DRUG},
     "data.fixmedins_code"),
    ({"fixmedins_code": H1[0], "list_type": "101", "med_list_codg": DRUG}, "data.fixmedins_hilist_id"),
    ({"fixmedins_code": H1[0], "fixmedins_hilist_id": "NEVER", "list_type": "101", "med_list_codg": DRUG},
     "data.fixmedins_hilist_id"),
])
def test_a_bad_cancellation_is_refused_naming_the_field(served, data: dict, field: str) -> None:
    with pytest.raises(HisBusinessError) as e:
        client(served).call("3302", {"data": data})
    assert e.value.err_msg.startswith(f"{field}: ")


@pytest.mark.parametrize("changes, field", [
    ({"fixmedins_code": H2[0]}, "data.fixmedins_code"),  # another institution's mappings
    ({"page_size": 0}, "data.page_size"),
    ({"updt_time": None}, "data.updt_time"),
    ({"begndate": "never"}, "data.begndate"),
])
def test_a_bad_listing_is_refused_naming_the_field(served, changes: dict, field: str) -> None:
    data = {"updt_time": EARLY, "page_num": 1, "page_size": 10, **changes}
    with pytest.raises(HisBusinessError) as e:
        client(served).call("1317", {"data": data})
    assert e.value.err_msg.startswith(f"{field}: ")


def test_a_fee_line_with_only_the_hospitals_code_is_priced_by_its_mapping(served) -> None:
    c = client(served)
    c.call("3301", mapping("YP-FEE"))
    c.call("3301", mapping("YP-OLD", enddate=str(TODAY - timedelta(days=1))))  # no longer in force
    c.person_info("02", EMP.certno)
    visit = c.register(EMP.psn_no, EMP.insutype, "02", EMP.certno, ipt_otp_no="MZ-MAP").output["data"][
        "mdtrt_id"]
    line = {"feedetl_sn": "1", "mdtrt_id": visit, "psn_no": EMP.psn_no, "chrg_bchno": "B1",
            "medins_list_codg": "YP-FEE", "medins_list_name": "布洛芬缓释胶囊(院内)", "cnt": 2, "pric": "30.50",
            "det_item_fee_sumamt": "61.00"}
    for bad, field in (({"medins_list_codg": "YP-OLD"}, "feedetail[0].med_list_codg: missing; medins_list_codg"),
                       ({"medins_list_codg": "YP-NONE", "med_list_codg": "NOSUCHCODE"},
                        "feedetail[0].med_list_codg: unknown catalog item 'NOSUCHCODE'; medins_list_codg")):
        with pytest.raises(HisBusinessError) as e:
            c.call("2204", {"feedetail": [{**line, **bad}]})
        assert e.value.err_msg.startswith(field), e.value.err_msg
    (result,) = c.call("2204", {"feedetail": [line]}).output["result"]
    assert (result["chrgitm_lv"], Decimal(str(result["det_item_fee_sumamt"]))) == ("02", Decimal("61.00"))  # 乙类
    fees = c.call("5204", {"data": {"mdtrt_id": visit, "psn_no": EMP.psn_no}}).output
    (row,) = [FeeRow.model_validate(r) for r in fees]
    assert (row.med_list_codg, row.hilist_code, row.medins_list_codg, row.list_type) == (DRUG, DRUG, "YP-FEE", "101")
