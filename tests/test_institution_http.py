"""The institution interface end to end: `medpay serve` in its own process, the package's HIS client over
real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from medpay.domain.adjudication import identity_violations
from medpay.domain.gateway_signature import sign_headers
from medpay.his_client import HisBusinessError, HisClient
from medpay.money import parse_yuan
from medpay.services import demo
from tests.helpers_server import backend_server

FIXTURES = Path(__file__).parent / "fixtures" / "nhsa"
H1, H2 = demo.INSTITUTIONS[0], demo.INSTITUTIONS[1]
EMP = demo.PERSONS[0]  # employee with a personal account
RETIREE = demo.PERSONS[1]
DRUG, EXAM, COSMETIC, BED = "XM01AEB002", "002100000020000", "CZF0000000001", "001102000010000"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One server per backend for the module; each test works on visits of its own."""
    yield from backend_server(request.param, tmp_path_factory.mktemp("inst"))


def client(base: str, inst=H1, **kw) -> HisClient:
    code, name, _level, paasid, token = inst
    c = HisClient(base, code, name, paasid, token, mdtrtarea_admvs="999901", retries=2, backoff=0.05, **kw)
    c.sign_in("1001", "00:16:3e:00:00:01", "127.0.0.1")
    return c


def fen(info: dict) -> dict[str, int]:
    keys = ("medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt",
            "fund_pay_sumamt", "psn_part_amt", "hosp_part_amt", "acct_pay", "psn_cash_pay")
    return {k: parse_yuan(info[k], k, allow_negative=True) for k in keys}


def open_outpatient(c: HisClient, person=EMP, lines=((DRUG, 2, "30.50"), (EXAM, 1, "350.00"), (COSMETIC, 1, "100"))):
    c.person_info("02", person.certno)
    visit = c.register(person.psn_no, person.insutype, "02", person.certno, ipt_otp_no="MZ1").output["data"]
    feedetail = [{"feedetl_sn": str(i), "mdtrt_id": visit["mdtrt_id"], "psn_no": person.psn_no, "chrg_bchno": "B1",
                  "med_list_codg": code, "cnt": cnt, "pric": pric,
                  "det_item_fee_sumamt": str(Decimal(str(cnt)) * Decimal(pric))}
                 for i, (code, cnt, pric) in enumerate(lines, start=1)]
    result = c.upload_fees(feedetail).output["result"]
    total = sum(Decimal(f["det_item_fee_sumamt"]) for f in feedetail)
    return visit["mdtrt_id"], result, total


def balance(c: HisClient, person=EMP) -> Decimal:
    return Decimal(str(c.person_info("02", person.certno).output["insuinfo"][0]["balc"]))


def test_outpatient_flow_settle_retry_query_cancel(base: str) -> None:
    c = client(base)
    before = balance(c)
    mdtrt_id, result, total = open_outpatient(c)
    assert [r["chrgitm_lv"] for r in result] == ["02", "01", "03"]
    assert result[0]["preselfpay_amt"] == 3.05 and result[1]["overlmt_amt"] == 50 and result[2]["fulamt_ownpay_amt"] == 100
    c.call("2203", {"mdtrtinfo": {"mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no, "med_type": "11",
                                  "dise_codg": "J06.900", "dise_name": "急性上呼吸道感染"}, "diseinfo": []})
    pre = c.presettle_outpatient(EMP.psn_no, mdtrt_id, "B1", total).output["setlinfo"]
    assert balance(c) == before  # pre-settlement books nothing
    msgid = c.next_msgid()
    settled = c.call("2207", {"data": {"psn_no": EMP.psn_no, "mdtrt_id": mdtrt_id, "medfee_sumamt": str(total),
                                       "acct_used_flag": "1"}}, msgid=msgid).output
    info = settled["setlinfo"]
    assert fen(info) == fen(pre) and identity_violations({**fen(info), "act_pay_dedc": 0}) == []
    assert info["psn_name"] == EMP.psn_name and info["certno"] == EMP.certno and info["medins_setl_id"] == msgid
    again = c.call("2207", {"data": {"psn_no": EMP.psn_no, "mdtrt_id": mdtrt_id, "medfee_sumamt": str(total),
                                     "acct_used_flag": "1"}}, msgid=msgid).output
    assert again == settled  # a retry returns the first answer and books nothing more
    assert balance(c) == before - Decimal(str(info["acct_pay"]))
    assert c.call("5203", {"data": {"setl_id": info["setl_id"], "psn_no": EMP.psn_no}}).output["setlinfo"]["setl_id"] == info["setl_id"]
    assert len(c.call("5204", {"data": {"mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no}}).output) == 3
    cum = c.call("5206", {"data": {"psn_no": EMP.psn_no}}).output["cuminfo"]
    assert any(x["cum_type_code"] == "emp_otp.dedc" for x in cum)
    cancel = c.cancel_outpatient(info["setl_id"], mdtrt_id, EMP.psn_no).output["setlinfo"]
    assert fen(cancel) == {k: -v for k, v in fen(info).items()} and cancel["setl_id"] != info["setl_id"]
    assert balance(c) == before
    with pytest.raises(HisBusinessError, match="already cancelled"):
        c.cancel_outpatient(info["setl_id"], mdtrt_id, EMP.psn_no)


def test_our_settlement_output_has_the_fixture_fields(base: str) -> None:
    c = client(base, path_style="named")
    mdtrt_id, _, total = open_outpatient(c, lines=((DRUG, 1, "4.52"),))
    ours = c.settle_outpatient(EMP.psn_no, mdtrt_id, "B1", total).output
    for name in ("2207-response-hebei.json", "2304-response-chongqing.json"):
        theirs = json.loads((FIXTURES / name).read_text(encoding="utf-8"))["output"]
        assert set(theirs["setlinfo"]) <= set(ours["setlinfo"]), name
        assert {k for row in theirs["setldetail"] for k in row} - {"setl_proc_info", "crt_payb_lmt_amt", "fund_pay_type_name"} \
            <= {k for row in ours["setldetail"] for k in row}


def test_inpatient_interim_and_discharge_settlement_then_cancel_both(base: str) -> None:
    c = client(base)
    c.person_info("03", RETIREE.card_no)
    visit = c.admit({"psn_no": RETIREE.psn_no, "insutype": "310", "med_type": "21", "mdtrt_cert_type": "03",
                     "mdtrt_cert_no": RETIREE.card_no, "ipt_no": "ZY1", "dise_codg": "K35.800"}).output["result"]
    mdtrt_id = visit["mdtrt_id"]

    def upload(sn: str, cnt: int) -> Decimal:
        c.upload_inpatient_fees([{"feedetl_sn": sn, "mdtrt_id": mdtrt_id, "psn_no": RETIREE.psn_no,
                                  "med_list_codg": BED, "cnt": cnt, "pric": "60.00", "det_item_fee_sumamt": 60 * cnt}])
        return Decimal(60 * cnt)

    first = upload("1", 20)
    with pytest.raises(HisBusinessError, match="not discharged"):
        c.settle_inpatient(RETIREE.psn_no, mdtrt_id, first)
    interim = c.settle_inpatient(RETIREE.psn_no, mdtrt_id, first, mid_setl_flag="1", acct_used_flag="0").output["setlinfo"]
    assert interim["act_pay_dedc"] == 900  # retiree, level-3 hospital: deductible taken at the first settlement
    second = upload("2", 10)
    c.discharge({"mdtrt_id": mdtrt_id, "psn_no": RETIREE.psn_no, "insutype": "310", "endtime": "2026-11-23 12:00:00"})
    final = c.settle_inpatient(RETIREE.psn_no, mdtrt_id, second, acct_used_flag="0").output["setlinfo"]
    assert interim["hifp_pay"] == 270  # (1200.00 − 900.00) × 90% (retiree, level 3, first band)
    assert final["act_pay_dedc"] == 0 and final["hifp_pay"] == 540  # 600.00 × 90%, no second deductible
    with pytest.raises(HisBusinessError, match="later settlement"):
        c.cancel_inpatient(interim["setl_id"], mdtrt_id, RETIREE.psn_no)
    c.cancel_inpatient(final["setl_id"], mdtrt_id, RETIREE.psn_no)
    c.cancel_inpatient(interim["setl_id"], mdtrt_id, RETIREE.psn_no)


def _settle_input(mdtrt_id: str, total: Decimal) -> dict:
    return {"data": {"psn_no": EMP.psn_no, "mdtrt_id": mdtrt_id, "medfee_sumamt": str(total), "acct_used_flag": "1"}}


def test_reversal_when_the_original_never_arrived(base: str) -> None:
    c = client(base)
    mdtrt_id, _, total = open_outpatient(c)
    lost = c.next_msgid()
    out = c.reverse(lost, "2207", EMP.psn_no).output["data"]
    assert out["result"] == "original_not_received"
    with pytest.raises(HisBusinessError, match="reversed"):  # the original, arriving late, books nothing
        c.call("2207", _settle_input(mdtrt_id, total), msgid=lost)
    assert c.settle_outpatient(EMP.psn_no, mdtrt_id, "B1", total).ok  # a new msgid settles normally


@pytest.mark.parametrize("times", [1, 2])
def test_reversal_when_the_original_arrived_once_or_twice(base: str, times: int) -> None:
    c = client(base)
    before = balance(c)
    mdtrt_id, _, total = open_outpatient(c)
    msgid = c.next_msgid()
    for _ in range(times):
        setl = c.call("2207", _settle_input(mdtrt_id, total), msgid=msgid).output["setlinfo"]
    assert c.reverse(msgid, "2207", EMP.psn_no).output["data"]["result"] == "reversed"
    assert c.reverse(msgid, "2207", EMP.psn_no).ok  # reversing twice is harmless
    assert balance(c) == before
    with pytest.raises(HisBusinessError, match="already cancelled"):
        c.cancel_outpatient(setl["setl_id"], mdtrt_id, EMP.psn_no)


def test_reversal_of_a_cancellation_restores_the_settlement(base: str) -> None:
    c = client(base)
    before = balance(c)
    mdtrt_id, _, total = open_outpatient(c)
    setl = c.settle_outpatient(EMP.psn_no, mdtrt_id, "B1", total).output["setlinfo"]
    cancel_msgid = c.next_msgid()
    c.call("2208", {"data": {"setl_id": setl["setl_id"], "mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no}}, msgid=cancel_msgid)
    assert balance(c) == before
    c.reverse(cancel_msgid, "2208", EMP.psn_no)
    assert balance(c) == before - Decimal(str(setl["acct_pay"]))
    assert c.cancel_outpatient(setl["setl_id"], mdtrt_id, EMP.psn_no).ok  # it stands again, so it can be cancelled


def test_reversal_of_an_admission(base: str) -> None:
    c = client(base)
    c.person_info("02", RETIREE.certno)
    msgid = c.next_msgid()
    visit = c.call("2401", {"mdtrtinfo": {"psn_no": RETIREE.psn_no, "insutype": "310", "med_type": "21"}},
                   msgid=msgid).output["result"]
    c.reverse(msgid, "2401", RETIREE.psn_no)
    with pytest.raises(HisBusinessError, match="cancelled"):
        c.upload_inpatient_fees([{"feedetl_sn": "1", "mdtrt_id": visit["mdtrt_id"], "med_list_codg": BED,
                                  "cnt": 1, "pric": 60, "det_item_fee_sumamt": 60}])


def test_tenancy_another_institution_cannot_touch_the_visit(base: str) -> None:
    c1, c2 = client(base), client(base, H2)
    mdtrt_id, _, total = open_outpatient(c1)
    with pytest.raises(HisBusinessError, match="at this institution"):  # as if it didn't exist: no probing
        c2.settle_outpatient(EMP.psn_no, mdtrt_id, "B1", total)
    with pytest.raises(HisBusinessError, match="at this institution"):
        c2.call("5204", {"data": {"mdtrt_id": mdtrt_id}})
    with pytest.raises(HisBusinessError, match="presented a credential"):
        c2.register(RETIREE.psn_no, "310", "02", RETIREE.certno, ipt_otp_no="X")  # never showed a card at H2


def test_an_invented_ectoken_opens_no_visit(base: str) -> None:
    """Issue 9 item 2, as reported: after any credential shown here, 40 zeros as mdtrt_cert_no opened a visit."""
    c = client(base)
    c.person_info("02", EMP.certno)
    with pytest.raises(HisBusinessError) as e:
        c.register(EMP.psn_no, EMP.insutype, "01", "0" * 40, ipt_otp_no="MZ-forged")
    assert e.value.err_msg.startswith("mdtrt_cert_no") and "unknown e-certificate token" in e.value.err_msg
    with pytest.raises(HisBusinessError, match="infcode -2: mdtrt_cert_no"):  # another person's ID number, same story
        c.register(EMP.psn_no, EMP.insutype, "02", RETIREE.certno, ipt_otp_no="MZ-forged")


def _raw_post(base: str, headers: dict[str, str], body: dict) -> httpx.Response:
    return httpx.post(f"{base}/fsi/api/rsfComIfsService/callService", json=body, headers=headers)


def test_replayed_forged_and_stale_requests_are_refused(base: str) -> None:
    code, name, _, paasid, token = H1
    body = {"infno": "9001", "msgid": f"{code}20261123000000{9999}", "fixmedins_code": code,
            "input": {"signIn": {"opter_no": "1"}}}
    headers = sign_headers(paasid, token)
    assert _raw_post(base, headers, body).status_code == 200
    replay = _raw_post(base, headers, body)
    assert replay.status_code == 401 and "nonce" in replay.json()["err_msg"]
    forged = sign_headers(paasid, "not-the-token")
    assert _raw_post(base, forged, body).status_code == 401
    stale = sign_headers(paasid, token, now=1_000_000_000)
    assert "x-tif-timestamp" in _raw_post(base, stale, body).json()["err_msg"]
    other = _raw_post(base, sign_headers(H2[3], H2[4]), body)  # H2's credentials, H1's code in the envelope
    assert other.status_code == 401 and "fixmedins_code" in other.json()["err_msg"]
    missing = _raw_post(base, {}, body)
    assert missing.status_code == 401 and "x-tif-" in missing.json()["err_msg"]


@pytest.mark.parametrize("body, field", [
    (b"{not json", "body"),
    (b'{"infno": "2207", "fixmedins_code": "H99990100001", "input": {}}', "msgid"),
    (b'{"infno": "7777", "msgid": "M1", "fixmedins_code": "H99990100001", "sign_no": "x", "input": {}}', "infno"),
    (b'{"infno": "2207", "msgid": "M2", "fixmedins_code": "H99990100001", "input": []}', "input"),
])
def test_malformed_envelopes_get_minus_2_naming_the_field(base: str, body: bytes, field: str) -> None:
    r = httpx.post(f"{base}/fsi/api/rsfComIfsService/callService", content=body,
                   headers={**sign_headers(H1[3], H1[4]), "content-type": "application/json"})
    out = r.json()
    assert r.status_code == 200 and out["infcode"] == -2 and out["err_msg"].startswith(field)
    assert "Traceback" not in r.text


def test_a_his_that_drops_its_connection_mid_call_and_retries_settles_once(base: str) -> None:
    c = client(base)
    before = balance(c)
    mdtrt_id, _, total = open_outpatient(c)
    env = c.envelope("2207", _settle_input(mdtrt_id, total))
    raw = json.dumps(env).encode()
    headers = sign_headers(H1[3], H1[4])
    host = urlparse(base)
    with socket.create_connection((host.hostname, host.port)) as s:  # send the request, then hang up unread
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(f"POST /fsi/api/rsfComIfsService/callService HTTP/1.1\r\nHost: {host.netloc}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n{head}\r\n".encode() + raw)
    again = c.send_envelope(env).output["setlinfo"]  # the HIS retries the same msgid
    third = c.send_envelope(env).output["setlinfo"]
    assert again["setl_id"] == third["setl_id"]
    assert balance(c) == before - Decimal(str(again["acct_pay"]))


def test_reconciliation_totals_and_detail_file_over_http(base: str) -> None:
    """3201 totals, then 9101 upload of the 7-column detail file, 3202 comparison and 9102 download."""
    import base64

    from medpay.services.reconciliation import detail_file, read_result_file

    c = client(base, H2)  # H2 settles nothing else in this module, so its totals are exactly these
    mdtrt_id, _, total = open_outpatient(c, person=RETIREE, lines=((DRUG, 1, "4.52"),))
    setl = c.settle_outpatient(RETIREE.psn_no, mdtrt_id, "B1", total, acct_used_flag="0").output["setlinfo"]
    today = setl["setl_time"][:10]  # the settlement's own day in China, whatever the clock says by now
    period = {"stmt_begndate": today, "stmt_enddate": today, "setl_optins": "999901", "clr_type": "11"}
    stmt = c.call("3201", {"data": {**period, "insutype": "310", "medfee_sumamt": setl["medfee_sumamt"],
                                    "fund_pay_sumamt": setl["fund_pay_sumamt"], "acct_pay": setl["acct_pay"],
                                    "fixmedins_setl_cnt": 1, "refd_setl_flag": "0"}}).output["stmtinfo"]
    assert stmt["stmt_rslt"] == "0"
    off = c.call("3201", {"data": {**period, "insutype": "310", "medfee_sumamt": 99, "fund_pay_sumamt": 0,
                                   "acct_pay": 0, "fixmedins_setl_cnt": 1, "refd_setl_flag": "0"}}).output["stmtinfo"]
    assert off["stmt_rslt"] == "1"
    rows = [(setl["setl_id"], mdtrt_id, RETIREE.psn_no, setl["medfee_sumamt"], setl["fund_pay_sumamt"],
             setl["acct_pay"], "0"),
            ("HOSPITAL-ONLY-1", mdtrt_id, RETIREE.psn_no, "1.00", "0", "0", "0")]
    upload = c.call("9101", {"fsUploadIn": {"in": base64.b64encode(detail_file(rows)).decode(),
                                            "filename": "detail.zip", "fixmedins_code": H2[0]}}).output
    info = c.call("3202", {"data": {**period, "file_qury_no": upload["file_qury_no"],
                                    "medfee_sumamt": setl["medfee_sumamt"], "fund_pay_sumamt": setl["fund_pay_sumamt"],
                                    "cash_payamt": setl["psn_cash_pay"], "fixmedins_setl_cnt": 2}}).output["fileinfo"]
    got = c.call("9102", {"fsDownloadIn": {"file_qury_no": info["file_qury_no"], "filename": info["filename"],
                                           "fixmedins_code": H2[0]}}).output
    result = {r["setl_id"]: r for r in read_result_file(base64.b64decode(got["content"]))}
    assert result[setl["setl_id"]]["stmt_rslt"] == "0"
    assert result["HOSPITAL-ONLY-1"]["stmt_rslt"] == "1" and "医院有医保无" in result["HOSPITAL-ONLY-1"]["memo"]
    with pytest.raises(HisBusinessError):  # another institution can't fetch it
        client(base).call("9102", {"fsDownloadIn": {"file_qury_no": info["file_qury_no"], "fixmedins_code": H1[0]}})


def test_a_refused_request_still_uses_up_its_nonce(base: str) -> None:
    """The nonce is written by the request's own transaction; when that is rolled back (a refusal), it is
    written on its own, so no refused request can be replayed either — also one refused for its body, which
    the signature does not cover."""
    code, _name, _, paasid, token = H1
    c = client(base)
    for body in (b"{not json", b'{"infno": "2207", "fixmedins_code": "H99990100002", "msgid": "M1", "input": {}}',
                 b'{"infno": "9001", "fixmedins_code": "H99990100001", "msgid": "M2", "signtype": "SM2", '
                 b'"cainfo": "00", "input": {"signIn": {"opter_no": "1"}}}'):
        headers = {**sign_headers(paasid, token), "content-type": "application/json"}
        first = httpx.post(f"{base}/fsi/api/rsfComIfsService/callService", content=body, headers=headers)
        assert first.json()["infcode"] == -2, first.text
        good = json.dumps({"infno": "9001", "msgid": f"{code}20261123999999", "fixmedins_code": code,
                           "input": {"signIn": {"opter_no": "1"}}}).encode()
        again = httpx.post(f"{base}/fsi/api/rsfComIfsService/callService", content=good, headers=headers)
        assert again.status_code == 401 and again.json()["err_msg"].startswith("x-tif-nonce"), again.text
    cases = [
        {"infno": "2207", "sign_no": "000000000000000000000000000000",  # no such sign-in
         "input": {"data": {"mdtrt_id": "M-UNKNOWN", "medfee_sumamt": 1}}},
        {"infno": "2207", "sign_no": c.sign_no, "input": {"data": {"mdtrt_id": "M-UNKNOWN", "medfee_sumamt": 1}}},
        {"infno": "7777", "sign_no": c.sign_no, "input": {}},  # unknown transaction
    ]
    for i, case in enumerate(cases):
        body = {**case, "msgid": f"{code}2026112300000{i}", "fixmedins_code": code}
        headers = sign_headers(paasid, token)
        first = _raw_post(base, headers, body)
        assert first.status_code == 200 and first.json()["infcode"] == -2, first.text
        replay = _raw_post(base, headers, body)
        assert replay.status_code == 401 and replay.json()["err_msg"].startswith("x-tif-nonce"), replay.text


def test_a_sign_out_takes_effect_at_once(base: str) -> None:
    """Also for transactions whose handler reads before any transaction of its own (9102, 3202): the caller
    hears "sign_no", not what the handler found."""
    c = client(base)
    c.person_info("02", EMP.certno)
    signed_out = c.sign_no
    c.sign_out("1001")
    c.sign_no = signed_out  # a HIS that keeps using it
    with pytest.raises(HisBusinessError, match="^infcode -2: sign_no"):
        c.person_info("02", EMP.certno)
    for infno, node in (("9102", {"fsDownloadIn": {"file_qury_no": "20260101000000deadbeefdeadbeef"}}),
                        ("3202", {"data": {"file_qury_no": "20260101000000deadbeefdeadbeef", "setl_optins": "999901",
                                           "clr_type": "11", "stmt_begndate": "2026-01-01",
                                           "stmt_enddate": "2026-01-02", "medfee_sumamt": 0, "fund_pay_sumamt": 0,
                                           "cash_payamt": 0, "fixmedins_setl_cnt": 0}})):
        with pytest.raises(HisBusinessError, match="^infcode -2: sign_no"):
            c.call(infno, node)
