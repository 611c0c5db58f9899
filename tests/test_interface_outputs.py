"""Outputs as the specification types them (issue 10, items 4 and 5), over HTTP against `medpay serve` on SQLite and
PostgreSQL, read back with the strict readers of ``medpay.nhsa_models`` (written from the spec's field tables):
5204's rows, the settlement's setlinfo and setldetail, 2204's result, 1101; and psn_setlway 02 refused."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from medpay.domain.gateway_signature import sign_headers
from medpay.his_client import HisBusinessError, HisClient
from medpay.nhsa_models import FeeResult, FeeRow, PersonInfo, Settlement
from medpay.nhsa_paths import CALL_SERVICE
from medpay.services import demo
from tests.helpers_server import audit_events, backend_server, run_cli

H1, H2 = demo.INSTITUTIONS[0], demo.INSTITUTIONS[1]  # H2 answers 5204 in the object shape here
EMP, RETIREE = demo.PERSONS[0], demo.PERSONS[1]
DRUG, EXAM, BED = "XM01AEB002", "002100000020000", "001102000010000"
ROWS = TypeAdapter(list[FeeRow])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("outputs")
    for base in backend_server(request.param, tmp):
        done = run_cli(["institution", "fee-query-shape", H2[0], "object", "--operator", "张经办"], base.db_url, tmp)
        assert done.returncode == 0 and json.loads(done.stdout) == {"fixmedins_code": H2[0],
                                                                   "fee_query_shape": "object"}, done.stderr
        base.tmp = tmp
        yield base


def client(base: str, inst=H1) -> HisClient:
    code, name, _level, paasid, token = inst
    c = HisClient(base, code, name, paasid, token, mdtrtarea_admvs="999901", retries=0)
    c.sign_in("1001")
    return c


def raw(c: HisClient, infno: str, input_: dict) -> bytes:
    """The answer's bytes, for a strict reader of JSON."""
    r = httpx.post(c.base_url + CALL_SERVICE, json=c.envelope(infno, input_), timeout=30,
                   headers=sign_headers(c.paasid, c._token))
    doc = r.json()
    assert doc["infcode"] == 0, doc
    return json.dumps(doc["output"]).encode()


LINE_DETAILS = {"rxno": "RX-0001", "sin_dos_dscr": "一次2粒", "used_frqu_dscr": "每日3次", "prd_days": "3",
                "medc_way_dscr": "口服", "bilg_dept_codg": "A03", "bilg_dept_name": "内科", "bilg_dr_codg": "D1001",
                "bilg_dr_name": "李医生", "acord_dept_codg": "P01", "acord_dept_name": "药房", "orders_dr_code": "D2002",
                "orders_dr_name": "王药师", "hosp_appr_flag": "1", "medins_list_name": "布洛芬缓释胶囊(院内)"}


def open_visit(c: HisClient, person=EMP) -> str:
    c.person_info("02", person.certno)
    return c.register(person.psn_no, person.insutype, "02", person.certno, ipt_otp_no="MZ-T1").output["data"]["mdtrt_id"]


def upload(c: HisClient, mdtrt_id: str, person=EMP, batch: str = "B1", start: int = 1) -> Decimal:
    c.upload_fees([
        {"feedetl_sn": str(start), "mdtrt_id": mdtrt_id, "psn_no": person.psn_no, "chrg_bchno": batch,
         "med_list_codg": DRUG, "medins_list_codg": "HIS-DRUG-7", "cnt": 2, "pric": "30.50",
         "det_item_fee_sumamt": "61.00", "fee_ocur_time": "2026-12-01 09:30:00", **LINE_DETAILS},
        {"feedetl_sn": str(start + 1), "mdtrt_id": mdtrt_id, "psn_no": person.psn_no, "chrg_bchno": batch,
         "med_list_codg": EXAM, "cnt": 1, "pric": "200.00", "det_item_fee_sumamt": "200.00"}])
    return Decimal("261.00")


def test_5204_answers_the_specs_rows_as_a_list_read_strictly(served: str) -> None:
    c = client(served)
    mdtrt_id = open_visit(c)
    total = upload(c, mdtrt_id)
    upload(c, mdtrt_id, batch="B2", start=3)
    c.call("2205", {"data": {"mdtrt_id": mdtrt_id, "chrg_bchno": "B2", "psn_no": EMP.psn_no}})  # withdrawn: not listed
    before = ROWS.validate_json(raw(c, "5204", {"data": {"mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no}}))
    assert [r.feedetl_sn for r in before] == ["1", "2"] and {r.setl_id for r in before} == {""}
    setl = c.settle_outpatient(EMP.psn_no, mdtrt_id, "B1", total).output["setlinfo"]
    rows = ROWS.validate_json(raw(c, "5204", {"data": {"mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no,
                                                       "setl_id": setl["setl_id"]}}))
    drug, exam = rows
    assert {r.setl_id for r in rows} == {setl["setl_id"]} and {r.mdtrt_id for r in rows} == {mdtrt_id}
    assert (drug.med_type, drug.fee_ocur_time, drug.cnt, drug.pric, drug.det_item_fee_sumamt) == (
        "11", "2026-12-01 09:30:00", 2, Decimal("30.5"), Decimal("61"))
    assert (drug.hilist_code, drug.hilist_name, drug.list_type, drug.med_list_codg, drug.chrgitm_lv) == (
        DRUG, "布洛芬缓释胶囊", "101", DRUG, "02")
    assert (drug.medins_list_codg, drug.medins_list_name) == ("HIS-DRUG-7", "布洛芬缓释胶囊(院内)")
    assert (drug.rx_drord_no, drug.prd_days, drug.bilg_dept_codg, drug.bilg_dr_name, drug.orders_dr_name) == (
        "RX-0001", 3, "A03", "李医生", "王药师")
    assert drug.preselfpay_amt + drug.inscp_scp_amt == drug.det_item_fee_sumamt and drug.selfpay_prop > 0
    assert drug.opter_id == c.opter and drug.opt_time and drug.dosform_name == ""
    assert (exam.list_type, exam.medins_list_codg, exam.medins_list_name, exam.bilg_dept_codg) == (
        "201", EXAM, "胸部CT平扫", None)
    assert exam.pric_uplmt_amt == 300  # the catalog's price limit, yuan


def test_5204_in_the_object_shape_for_an_institution_that_reads_it(served) -> None:
    c = client(served, H2)
    mdtrt_id = open_visit(c, RETIREE)
    upload(c, mdtrt_id, RETIREE)
    out = json.loads(raw(c, "5204", {"data": {"mdtrt_id": mdtrt_id}}))
    assert set(out) == {"feedetail"} and len(ROWS.validate_python(out["feedetail"])) == 2
    events = audit_events(served.db_url, "institution.fee_query_shape")
    assert [(e.actor, e.ref) for e in events] == [("张经办", f"{H2[0]}:rows->object")]
    wrong = run_cli(["institution", "fee-query-shape", H2[0], "table"], served.db_url, served.tmp)
    assert wrong.returncode == 2 and "fee_query_shape: must be one of rows, object" in wrong.stderr


def test_a_settlement_reads_strictly_in_every_transaction_that_answers_one(served: str) -> None:
    """setldetail's crt_payb_lmt_amt is a number in every row (an uncapped fund, the personal account too);
    pool_prop_selfpay a number, not text."""
    c = client(served)
    person = PersonInfo.model_validate_json(raw(c, "1101", {"data": {"mdtrt_cert_type": "02",
                                                                     "mdtrt_cert_no": EMP.certno}}))
    assert person.baseinfo.psn_no == EMP.psn_no and person.insuinfo[0].balc > 0
    mdtrt_id = open_visit(c)
    total = upload(c, mdtrt_id)
    results = TypeAdapter(list[FeeResult]).validate_python(
        c.call("2204", {"feedetail": [{"feedetl_sn": "9", "mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no,
                                       "med_list_codg": BED, "cnt": 1, "pric": 60, "det_item_fee_sumamt": 60}]}
               ).output["result"])
    assert results[0].cnt == 1 and results[0].pric_uplmt_amt == 60
    total += 60
    data = {"psn_no": EMP.psn_no, "mdtrt_id": mdtrt_id, "medfee_sumamt": str(total), "acct_used_flag": "1"}
    pre = Settlement.model_validate_json(raw(c, "2206", {"data": data}))
    settled = Settlement.model_validate_json(raw(c, "2207", {"data": data}))
    assert settled.setlinfo.pool_prop_selfpay == pre.setlinfo.pool_prop_selfpay
    account = [d for d in settled.setldetail if d.fund_pay_type == "310200"]
    assert account and account[0].crt_payb_lmt_amt >= account[0].fund_payamt == settled.setlinfo.acct_pay
    query = Settlement.model_validate_json(raw(c, "5203", {"data": {"setl_id": settled.setlinfo.setl_id}}))
    cancel = Settlement.model_validate_json(raw(c, "2208", {"data": {"setl_id": settled.setlinfo.setl_id,
                                                                     "mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no}}))
    assert query.setldetail == settled.setldetail
    assert [d.fund_payamt for d in cancel.setldetail] == [-d.fund_payamt for d in settled.setldetail]
    assert [d.crt_payb_lmt_amt for d in cancel.setldetail] == [d.crt_payb_lmt_amt for d in settled.setldetail]


def test_the_strict_reader_refuses_what_typed_clients_refuse() -> None:
    row = {"mdtrt_id": "M", "setl_id": "", "feedetl_sn": "1", "med_type": "11", "fee_ocur_time": "2026-12-01 09:30:00",
           "cnt": 1, "pric": 2.5, "det_item_fee_sumamt": 2.5, "pric_uplmt_amt": 999999, "chrgitm_lv": "01",
           "hilist_code": "X", "hilist_name": "x", "list_type": "101", "med_list_codg": "X",
           "medins_list_codg": "X", "medins_list_name": "x", "med_chrgitm_type": "09", "dosform_name": ""}
    assert ROWS.validate_python([row])
    for bad in ({"cnt": "1"}, {"pric": None}, {"setl_id": None}, {"med_type": 11}, {"cnt": True},
                {"fee_ocur_time": "2026/12/01"}):
        with pytest.raises(ValidationError):
            ROWS.validate_python([{**row, **bad}])
    with pytest.raises(ValidationError):
        ROWS.validate_python({"feedetail": [row]})  # the object shape is not what the field reads


@pytest.mark.parametrize("setlway, words", [("02", "02 按定额结算"), ("03", "must be 01")])
def test_a_quota_settlement_is_refused_naming_the_field_and_changes_nothing(served: str, setlway: str,
                                                                           words: str) -> None:
    c = client(served)
    before = c.person_info("02", EMP.certno).output["insuinfo"][0]["balc"]
    mdtrt_id = open_visit(c)
    total = upload(c, mdtrt_id)
    with pytest.raises(HisBusinessError) as e:
        c.settle_outpatient(EMP.psn_no, mdtrt_id, "B1", total, psn_setlway=setlway)
    assert e.value.err_msg.startswith("data.psn_setlway: ") and words in e.value.err_msg
    assert c.person_info("02", EMP.certno).output["insuinfo"][0]["balc"] == before
    assert c.settle_outpatient(EMP.psn_no, mdtrt_id, "B1", total).ok  # nothing was settled: 01 settles it


@pytest.mark.parametrize("field, value, words", [
    ("bilg_dept_name", "科" * 101, "longer than 100"), ("prd_days", "three", "must be a number"),
    ("prd_days", "1.234", "at most 2 decimals"), ("rxno", "R" * 31, "longer than 30"),
    ("bilg_dr_codg", {"a": 1}, "must be a string")])
def test_a_wrong_line_detail_is_refused_naming_it(served: str, field: str, value, words: str) -> None:
    c = client(served)
    mdtrt_id = open_visit(c)
    with pytest.raises(HisBusinessError) as e:
        c.upload_fees([{"feedetl_sn": "1", "mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no, "med_list_codg": EXAM,
                        "cnt": 1, "pric": 1, "det_item_fee_sumamt": 1, field: value}])
    assert e.value.err_msg.startswith(f"feedetail[0].{field}: ") and words in e.value.err_msg
    assert c.call("5204", {"data": {"mdtrt_id": mdtrt_id}}).output == []  # nothing was stored
