"""A retail pharmacy's purchases (2101 药店预结算, 2102 药店结算, 2103 药店结算撤销) over HTTP against `medpay serve`
on SQLite and PostgreSQL: priced to the fen by the policy (no pooled fund for 41 定点药店购药 in the demo region; the
personal account and the family's mutual aid pay), settled once by msgid, cancelled once by the pharmacy that
settled it, reversed by 2601, reconciled by 3201/3202 and the ledger check; bad input refused naming the field."""

from __future__ import annotations

import base64
import io
import json
import os
import zipfile
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.engine import make_engine, session_factory
from medpay.adapters.db.ledger_store import check_ledger
from medpay.adapters.db.tables import SettlementRow, VisitRow
from medpay.domain.adjudication import identity_violations
from medpay.his_client import HisBusinessError, HisClient
from medpay.money import parse_yuan
from medpay.services import demo
from medpay.services.persons import PersonService
from tests.helpers_server import backend_server, run_cli, signed_in_client

P1, H1 = demo.PHARMACIES[0], demo.INSTITUTIONS[0]
EMP, RETIREE, CIVIL, CHILD = demo.PERSONS[0], demo.PERSONS[1], demo.PERSONS[2], demo.PERSONS[3]
FATHER = EMP  # 王建国's account may pay for his son 王小明 (demo.FAMILY)
TODAY = date.today()

# the basket, and its split worked out by hand from the demo policy and catalog (fen):
#   布洛芬缓释胶囊 乙类 西药 (09: 5% first self-pay)   2 × 30.50 = 61.00 → preselfpay 3.05, in scope 57.95
#   板蓝根颗粒 甲类                                   3 × 12.80 = 38.40 → in scope 38.40
#   医用电子体温计 乙类 卫材 (10%), limit 50.00/unit  1 × 59.90 = 59.90 → over the limit 9.90, preselfpay 5.00,
#                                                                         in scope 45.00
#   自费进口药品 丙类                                 1 × 20.00 = 20.00 → wholly self-paid 20.00
# 41 is in no fund tier: the pool pays 0; the person bears all 179.30, which the personal account may pay whole.
BASKET = [("XM01AEB002", 2, "30.50"), ("ZA01AAA004", 3, "12.80"), ("C14010100005", 1, "59.90"),
          ("CZF0000000002", 1, "20.00")]
EXPECTED = {"medfee_sumamt": 17930, "fulamt_ownpay_amt": 2000, "overlmt_selfpay": 990, "preselfpay_amt": 805,
            "inscp_scp_amt": 14135, "fund_pay_sumamt": 0, "hifp_pay": 0, "psn_part_amt": 17930, "hosp_part_amt": 0}
LINE_SPLITS = [(0, 0, 305, 5795), (0, 0, 0, 3840), (0, 990, 500, 4500), (2000, 0, 0, 0)]  # fulamt, overlmt, pre, inscp


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from backend_server(request.param, tmp_path_factory.mktemp("pharmacy"))


def client(base: str, inst=P1, shown=(EMP,)) -> HisClient:
    """The demo pharmacy's till (or ``inst``'s HIS), signed in, having identified ``shown``."""
    return signed_in_client(base, inst, shown)


def drugdetail(basket=BASKET) -> list[dict]:
    return [{"feedetl_sn": str(i), "med_list_codg": code, "medins_list_codg": f"YD{i:04d}", "cnt": cnt, "pric": pric,
             "det_item_fee_sumamt": str(cnt * Decimal(pric)), "fee_ocur_time": f"{TODAY} 09:30:00"}
            for i, (code, cnt, pric) in enumerate(basket, start=1)]


def purchase(person=EMP, cert=None, basket=BASKET, lines_node="drugdetail", **changes) -> dict:
    cert_type, cert_no = cert or ("02", person.certno)
    data = {"psn_no": person.psn_no, "mdtrt_cert_type": cert_type, "mdtrt_cert_no": cert_no, "med_type": "41",
            "insutype": person.insutype, "psn_setlway": "01", "acct_used_flag": "1",
            "medfee_sumamt": str(sum(cnt * Decimal(p) for _c, cnt, p in basket)), "ipt_otp_no": "XS0001"}
    return {"data": {**data, **changes}, lines_node: drugdetail(basket)}


def fen(info: dict, *keys: str) -> dict[str, int]:
    return {k: parse_yuan(info[k], k, allow_negative=True) for k in keys or EXPECTED}


def balance(c: HisClient, person=EMP) -> int:
    return parse_yuan(c.person_info("02", person.certno).output["insuinfo"][0]["balc"], "balc")


def token(served, person, business_type: str, at=P1) -> str:
    """An ecToken as the terminal's scan of the patient's code mints it (``ec.query``), written to the server's
    database."""
    engine = make_engine(served.db_url)
    try:
        return PersonService(session_factory(engine), FieldCipher(os.urandom(32))).issue_ec_token(
            person.psn_no, at[0], business_type)
    finally:
        engine.dispose()


def counts(served) -> tuple[int, int]:
    engine = make_engine(served.db_url)
    try:
        with session_factory(engine)() as s:
            return (s.execute(select(func.count()).select_from(SettlementRow)).scalar_one(),
                    s.execute(select(func.count()).select_from(VisitRow)).scalar_one())
    finally:
        engine.dispose()


def visit_status(served, mdtrt_id: str) -> str:
    engine = make_engine(served.db_url)
    try:
        with session_factory(engine)() as s:
            return s.execute(select(VisitRow.status).where(VisitRow.mdtrt_id == mdtrt_id)).scalar_one()
    finally:
        engine.dispose()


def refused(c: HisClient, infno: str, body: dict, field: str, match: str = "", msgid: str | None = None) -> str:
    with pytest.raises(HisBusinessError) as e:
        c.call(infno, body, msgid=msgid)
    assert e.value.infcode == -2 and e.value.err_msg.startswith(f"{field}: "), e.value.err_msg
    assert match in e.value.err_msg, e.value.err_msg
    return e.value.err_msg


# ------------------------------------------------------------------------------------------------ settle, cancel


def test_a_purchase_is_quoted_settled_once_to_the_fen_and_cancelled_once(served) -> None:
    c = client(served)
    before = balance(c)
    quote = c.call("2101", purchase()).output
    assert fen(quote["setlinfo"]) == EXPECTED and balance(c) == before  # a quote books nothing
    assert [fen(r, "fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt", "inscp_scp_amt")
            for r in quote["detlcutinfo"]] == [dict(zip(("fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt",
                                                         "inscp_scp_amt"), s)) for s in LINE_SPLITS]
    msgid = c.next_msgid()
    out = c.call("2102", purchase(), msgid=msgid).output
    info = out["setlinfo"]
    assert fen(info) == EXPECTED
    paid = fen(info, "acct_pay", "psn_cash_pay", "acct_mulaid_pay")
    assert paid == {"acct_pay": 17930, "psn_cash_pay": 0, "acct_mulaid_pay": 0}  # the account pays the whole 179.30
    assert identity_violations({**fen(info, *EXPECTED, "acct_pay", "psn_cash_pay"), "act_pay_dedc": 0}) == []
    assert (info["med_type"], info["clr_type"], info["psn_name"], info["certno"], info["medins_setl_id"]) == \
        ("41", "41", EMP.psn_name, EMP.certno, msgid)
    assert [(d["fund_pay_type"], d["fund_payamt"]) for d in out["setldetail"]] == [("310200", 179.3)]
    assert balance(c) == before - 17930 and parse_yuan(info["balc"], "balc") == before - 17930

    again = c.call("2102", purchase(), msgid=msgid).output  # a retry: the first answer, no second payment
    assert again["setlinfo"]["setl_id"] == info["setl_id"] and balance(c) == before - 17930
    refused(c, "2102", purchase(basket=BASKET[:2]), "msgid", msgid=msgid)  # the same msgid, another purchase

    queried = c.call("5203", {"data": {"psn_no": EMP.psn_no, "mdtrt_id": info["mdtrt_id"],
                                       "setl_id": info["setl_id"]}}).output
    assert fen(queried["setlinfo"]) == EXPECTED

    cancel = {"data": {"setl_id": info["setl_id"], "mdtrt_id": info["mdtrt_id"], "psn_no": EMP.psn_no}}
    cancel_msgid = c.next_msgid()
    undone = c.call("2103", cancel, msgid=cancel_msgid).output["setlinfo"]
    assert fen(undone, *EXPECTED, "acct_pay") == {k: -v for k, v in {**EXPECTED, "acct_pay": 17930}.items()}
    assert undone["setl_id"] != info["setl_id"] and balance(c) == before
    assert c.call("2103", cancel, msgid=cancel_msgid).output["setlinfo"]["setl_id"] == undone["setl_id"]
    assert balance(c) == before  # cancelled once
    refused(c, "2103", cancel, "setl_id", "already cancelled")
    assert visit_status(served, info["mdtrt_id"]) == "cancelled"


def test_family_mutual_aid_pays_for_the_child_and_is_given_back(served) -> None:
    c = client(served, shown=(FATHER,))
    ec = token(served, CHILD, "02121")  # the child's code, shown at the pharmacy's POS for 药店购药
    c.person_info("01", ec)
    father_before = balance(c, FATHER)
    basket = BASKET[:2]  # 99.40
    info = c.call("2102", purchase(CHILD, ("01", ec), basket)).output["setlinfo"]
    # a resident (390) has no account of their own here; the father's pays all under 共济
    assert fen(info, "medfee_sumamt", "fund_pay_sumamt", "acct_pay", "acct_mulaid_pay", "psn_cash_pay") == \
        {"medfee_sumamt": 9940, "fund_pay_sumamt": 0, "acct_pay": 9940, "acct_mulaid_pay": 9940, "psn_cash_pay": 0}
    assert info["mdtrt_cert_type"] == "01" and balance(c, FATHER) == father_before - 9940
    refused(c, "2102", purchase(CHILD, ("01", ec), basket), "mdtrt_cert_no", "used up")  # one code, one purchase
    undone = c.call("2103", {"data": {"setl_id": info["setl_id"], "psn_no": CHILD.psn_no}}).output["setlinfo"]
    assert fen(undone, "acct_mulaid_pay") == {"acct_mulaid_pay": -9940} and balance(c, FATHER) == father_before


def test_a_settlement_the_outcome_of_which_is_unknown_is_reversed_by_2601(served) -> None:
    c = client(served)
    before = balance(c)
    msgid = c.next_msgid()
    info = c.call("2102", purchase(basket=BASKET[:1]), msgid=msgid).output["setlinfo"]
    assert balance(c) == before - 6100
    out = c.call("2601", {"data": {"psn_no": EMP.psn_no, "omsgid": msgid, "oinfno": "2102"}}).output["data"]
    assert out["result"] == "reversed" and balance(c) == before
    assert visit_status(served, info["mdtrt_id"]) == "cancelled"
    refused(c, "2103", {"data": {"setl_id": info["setl_id"]}}, "setl_id", "already cancelled")


# ------------------------------------------------------------------------------------------------ credentials


def test_the_e_certificate_must_be_shown_for_this_purchase_here(served) -> None:
    c = client(served, shown=())
    before = counts(served)
    refused(c, "2102", purchase(cert=("01", "")), "data.mdtrt_cert_no", "missing")  # no token
    refused(c, "2102", purchase(cert=("01", "f" * 40)), "mdtrt_cert_no", "unknown")  # a made-up one
    refused(c, "2101", purchase(cert=("01", "f" * 40)), "mdtrt_cert_no", "unknown")
    clinic_code = token(served, EMP, "01301")  # shown for 门诊结算, not for 药店购药
    refused(c, "2102", purchase(cert=("01", clinic_code)), "mdtrt_cert_no", "02121")
    refused(c, "2101", purchase(cert=("01", clinic_code)), "mdtrt_cert_no", "02121")
    hospitals = token(served, EMP, "02121", at=H1)  # minted at another institution's terminal
    refused(c, "2102", purchase(cert=("01", hospitals)), "mdtrt_cert_no", "another institution")
    someone_elses = token(served, CIVIL, "02121")
    refused(c, "2102", purchase(cert=("01", someone_elses)), "mdtrt_cert_no", "not this person")
    refused(c, "2102", purchase(RETIREE), "psn_no", "1101 first")  # an ID number, never shown here (1101)
    assert counts(served) == before
    good = token(served, EMP, "02121")
    info = c.call("2102", purchase(cert=("01", good), basket=BASKET[1:2])).output["setlinfo"]
    assert info["mdtrt_cert_type"] == "01" and fen(info, "medfee_sumamt") == {"medfee_sumamt": 3840}
    c.call("2103", {"data": {"setl_id": info["setl_id"], "psn_no": EMP.psn_no}})


# ------------------------------------------------------------------------------------------------ tenancy


def test_only_a_pharmacy_purchases_and_only_its_own_are_cancelled(served) -> None:
    pharmacy, hospital = client(served), client(served, H1)
    refused(hospital, "2102", purchase(), "fixmedins_code", "定点零售药店")
    refused(hospital, "2101", purchase(), "fixmedins_code")
    info = pharmacy.call("2102", purchase(basket=BASKET[1:2])).output["setlinfo"]
    refused(hospital, "2103", {"data": {"setl_id": info["setl_id"]}}, "fixmedins_code")
    with pytest.raises(HisBusinessError) as theirs:  # the hospital's own cancellation: as if it did not exist
        hospital.call("2208", {"data": {"setl_id": info["setl_id"], "mdtrt_id": info["mdtrt_id"],
                                        "psn_no": EMP.psn_no}})
    assert theirs.value.err_msg.startswith("setl_id: no settlement")
    visit = hospital.register(EMP.psn_no, "310", "02", EMP.certno, ipt_otp_no="MZ1").output["data"]["mdtrt_id"]
    hospital.upload_fees([{"feedetl_sn": "1", "mdtrt_id": visit, "psn_no": EMP.psn_no, "med_list_codg": "XJ01CAA001",
                           "cnt": 1, "pric": "12.40", "det_item_fee_sumamt": "12.40"}])
    setl = hospital.call("2207", {"data": {"psn_no": EMP.psn_no, "mdtrt_id": visit, "medfee_sumamt": "12.40"}}
                         ).output["setlinfo"]["setl_id"]
    refused(pharmacy, "2103", {"data": {"setl_id": setl}}, "setl_id", "no settlement")  # a hospital's settlement
    refused(pharmacy, "2103", {"data": {"setl_id": info["setl_id"], "mdtrt_id": visit}}, "mdtrt_id")
    pharmacy.call("2103", {"data": {"setl_id": info["setl_id"]}})
    hospital.call("2208", {"data": {"setl_id": setl, "mdtrt_id": visit, "psn_no": EMP.psn_no}})


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("body, field", [
    (purchase(med_type="11"), "med_type"),
    (purchase(med_type="21"), "med_type"),
    (purchase(insutype="390"), "insutype"),
    (purchase(psn_setlway="02"), "data.psn_setlway"),
    (purchase(medfee_sumamt="179.31"), "medfee_sumamt"),
    (purchase(inscp_scp_amt="1.00"), "inscp_scp_amt"),
    (purchase(acct_used_flag="2"), "data.acct_used_flag"),
    (purchase(mdtrt_cert_type="09"), "mdtrt_cert_type"),
    (purchase(psn_no=""), "data.psn_no"),
    (purchase(psn_no=CIVIL.psn_no), "mdtrt_cert_no"),  # the ID number is 王建国's
    (purchase(begntime="2026/12/01"), "data.begntime"),
    ({"data": purchase()["data"]}, "input.drugdetail"),
    ({"data": purchase()["data"], "drugdetail": []}, "input.drugdetail"),
    ({"drugdetail": drugdetail()}, "input.druginfo"),  # the node as the national tables name it
    ({**purchase(), "drugdetail": [{**drugdetail()[0], "med_list_codg": "NOSUCHCODE"}]}, "drugdetail[0].med_list_codg"),
    ({**purchase(), "drugdetail": [{**drugdetail()[0], "det_item_fee_sumamt": "61.05"}]},
     "drugdetail[0].det_item_fee_sumamt"),
    ({**purchase(), "drugdetail": [{**drugdetail()[0], "cnt": 0}]}, "drugdetail[0].cnt"),
    ({**purchase(), "drugdetail": [{**drugdetail()[0], "pric": "-1"}]}, "drugdetail[0].pric"),
    ({**purchase(), "drugdetail": [drugdetail()[0], drugdetail()[0]]}, "drugdetail[1].feedetl_sn"),
    ({**purchase(), "drugdetail": [{**drugdetail()[0], "feedetl_sn": ""}]}, "drugdetail[0].feedetl_sn"),
])
def test_a_bad_purchase_is_refused_naming_the_field_and_writes_nothing(served, body: dict, field: str) -> None:
    c = client(served, shown=(EMP, CIVIL))
    before, balc = counts(served), balance(c)
    for infno in ("2101", "2102"):
        refused(c, infno, body, field)
    assert counts(served) == before and balance(c) == balc


def test_a_pos_that_names_the_lines_feedetail_is_understood(served) -> None:
    c = client(served)
    quote = c.call("2101", purchase(lines_node="feedetail")).output["setlinfo"]
    assert fen(quote) == EXPECTED


def test_the_national_node_name_druginfo_is_read_like_data(served) -> None:
    """The national 2101/2102 tables name the purchase ``druginfo`` (a public 国家医保 POS model); its fields are
    read and named as sent."""
    c = client(served)
    body = purchase()
    as_national = {"druginfo": body["data"], "drugdetail": body["drugdetail"]}
    assert fen(c.call("2101", as_national).output["setlinfo"]) == EXPECTED
    refused(c, "2101", {**as_national, "druginfo": {**body["data"], "psn_no": ""}}, "druginfo.psn_no")


# ------------------------------------------------------------------------------------------------ reconciliation


def test_pharmacy_settlements_reconcile_and_keep_the_ledger_balanced(served) -> None:
    c = client(served, shown=(EMP,))
    kept = c.call("2102", purchase(basket=BASKET[:1])).output["setlinfo"]  # 61.00, the account pays
    gone = c.call("2102", purchase(basket=BASKET[1:2])).output["setlinfo"]  # 38.40, then cancelled
    undone = c.call("2103", {"data": {"setl_id": gone["setl_id"]}}).output["setlinfo"]
    day = kept["setl_time"][:10]
    # every record of the pharmacy that day (this module's other tests' included), as the pharmacy booked them
    records = settlement_records(served)
    sums = {k: sum(r[k] for r in records) for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "psn_cash_pay")}
    assert {kept["setl_id"], gone["setl_id"], undone["setl_id"]} <= {r["setl_id"] for r in records}
    stmt = c.call("3201", {"data": {"insutype": "310", "clr_type": "41", "setl_optins": "999901",
                                    "stmt_begndate": day, "stmt_enddate": day,
                                    "medfee_sumamt": yuan(sums["medfee_sumamt"]),
                                    "fund_pay_sumamt": yuan(sums["fund_pay_sumamt"]), "acct_pay": yuan(sums["acct_pay"]),
                                    "fixmedins_setl_cnt": len(records), "refd_setl_flag": "1"}}).output["stmtinfo"]
    assert stmt["stmt_rslt"] == "0", stmt
    every = settlement_records(served, insutype=None)  # 3202 compares every insurance type's records
    all_sums = {k: sum(r[k] for r in every) for k in ("medfee_sumamt", "fund_pay_sumamt", "psn_cash_pay")}
    file_qury_no = c.call("9101", {"fsUploadIn": {"in": detail_zip(every), "filename": "detail.zip",
                                                  "fixmedins_code": P1[0]}}).output["file_qury_no"]
    detail = c.call("3202", {"data": {"file_qury_no": file_qury_no, "setl_optins": "999901", "clr_type": "41",
                                      "stmt_begndate": day, "stmt_enddate": day,
                                      "medfee_sumamt": yuan(all_sums["medfee_sumamt"]),
                                      "fund_pay_sumamt": yuan(all_sums["fund_pay_sumamt"]),
                                      "cash_payamt": yuan(all_sums["psn_cash_pay"]),
                                      "fixmedins_setl_cnt": len(every)}}).output["stmtinfo"]
    assert detail["stmt_rslt"] == "0", detail
    wrong = c.call("3201", {"data": {"insutype": "310", "clr_type": "41", "setl_optins": "999901",
                                     "stmt_begndate": day, "stmt_enddate": day,
                                     "medfee_sumamt": yuan(sums["medfee_sumamt"] + 1),
                                     "fund_pay_sumamt": yuan(sums["fund_pay_sumamt"]),
                                     "acct_pay": yuan(sums["acct_pay"]), "fixmedins_setl_cnt": len(records),
                                     "refd_setl_flag": "1"}}).output["stmtinfo"]
    assert wrong["stmt_rslt"] == "1"  # the check can fail
    engine = make_engine(served.db_url)
    try:
        with session_factory(engine)() as s:
            assert check_ledger(s) == []
    finally:
        engine.dispose()
    c.call("2103", {"data": {"setl_id": kept["setl_id"]}})


def settlement_records(served, insutype: str | None = "310") -> list[dict]:
    """The pharmacy's settlement records (of ``insutype``, None: all), fen, from the database."""
    engine = make_engine(served.db_url)
    try:
        with session_factory(engine)() as s:
            query = select(SettlementRow).where(SettlementRow.fixmedins_code == P1[0])
            if insutype is not None:
                query = query.where(SettlementRow.insutype == insutype)
            rows = s.execute(query).scalars().all()
            return [{"setl_id": r.setl_id, "mdtrt_id": r.mdtrt_id, "psn_no": r.psn_no, "kind": r.kind,
                     "medfee_sumamt": r.medfee_sumamt, "fund_pay_sumamt": r.fund_pay_sumamt, "acct_pay": r.acct_pay,
                     "psn_cash_pay": r.psn_cash_pay} for r in rows]
    finally:
        engine.dispose()


def yuan(fen_amount: int) -> str:
    return str(Decimal(fen_amount) / 100)


def detail_zip(records: list[dict]) -> str:
    lines = "".join("\t".join([r["setl_id"], r["mdtrt_id"], r["psn_no"], yuan(r["medfee_sumamt"]),
                               yuan(r["fund_pay_sumamt"]), yuan(r["acct_pay"]),
                               "1" if r["kind"] == "cancel" else "0"]) + "\n" for r in records)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("detail.txt", lines)
    return base64.b64encode(buf.getvalue()).decode()


# ------------------------------------------------------------------------------------------------ the demo pharmacy


def test_his_send_reaches_the_demo_pharmacy(served, tmp_path) -> None:
    """`medpay his send --fixmedins-code P…` takes the demo pharmacy's gateway credentials, as for a hospital."""
    sign_in = tmp_path / "9001.json"
    sign_in.write_text(json.dumps({"infno": "9001", "input": {"signIn": {"opter_no": "1001"}}}), encoding="utf-8")
    args = ["his", "send", "--base-url", str(served), "--fixmedins-code", P1[0]]
    done = run_cli([*args, str(sign_in)], served.db_url, tmp_path)
    assert done.returncode == 0, done.stderr
    sign_no = json.loads(done.stdout)["output"]["signinoutb"]["sign_no"]
    show = tmp_path / "1101.json"
    show.write_text(json.dumps({"infno": "1101", "input": {"data": {"mdtrt_cert_type": "02",
                                                                    "mdtrt_cert_no": EMP.certno}}}), encoding="utf-8")
    assert run_cli([*args, "--sign-no", sign_no, str(show)], served.db_url, tmp_path).returncode == 0
    quote = tmp_path / "2101.json"
    quote.write_text(json.dumps({"infno": "2101", "input": purchase()}), encoding="utf-8")
    done = run_cli([*args, "--sign-no", sign_no, str(quote)], served.db_url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert fen(json.loads(done.stdout)["output"]["setlinfo"]) == EXPECTED
