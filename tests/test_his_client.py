"""The HIS client (medpay.his_client) and `medpay his send`, against a scripted transport."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medpay import cli_his
from medpay.his_client import (
    CALL_SERVICE_PATH, ENVELOPE_FIELDS, PATHS, HisBusinessError, HisClient, HisHTTPError, HisSystemError,
    HisTransportError, OutcomeReversed, ReversalFailed, parse_infcode,
)
from medpay.his_transport import HttpResult, TransportFailure, TransportTimeout
from medpay.money import MoneyError

FIXTURES = Path(__file__).parent / "fixtures" / "nhsa"
CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 3, 1, 8, 30, 5, tzinfo=CST)
CODE, NAME, PAASID, TOKEN = "H99990100001", "演示市第一人民医院", "demo_paas_h1", "demo-token-h1-5f2b8c1e9a"
CERTNO = "999901198001010011"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def ok(output: dict | None = None, infcode: object = 0) -> dict:
    return {"infcode": infcode, "inf_refmsgid": "999901202603010830050000000001", "refmsg_time": "20260301083005000",
            "respond_time": "20260301083005010", "err_msg": None, "output": output or {}}


@dataclass(frozen=True)
class Sent:
    base_url: str
    path: str
    content: bytes
    headers: dict[str, str]


def answer(status: int, body: object) -> HttpResult:
    return HttpResult(status, body.encode() if isinstance(body, str) else json.dumps(body).encode())


class Server:
    """A transport that records requests and answers from ``script`` (a list of answers/exceptions, the last one
    repeats) or from ``by_infno`` (infno → same); a dict answer is an HTTP 200 JSON body."""

    def __init__(self, script=None, by_infno=None, base_url: str = ""):
        self.script = list(script or [])
        self.by_infno = {k: list(v) for k, v in (by_infno or {}).items()}
        self.requests: list[Sent] = []
        self.base_url = base_url

    @property
    def bodies(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests]

    def post(self, path: str, body: bytes, headers) -> HttpResult:
        self.requests.append(Sent(self.base_url, path, body, headers()))
        infno = json.loads(body)["infno"]
        queue = self.by_infno.get(infno, self.script)
        item = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else ok())
        if isinstance(item, type) and issubclass(item, Exception):
            raise item("simulated")
        if isinstance(item, HttpResult):
            return item
        return answer(200, item)

    def close(self) -> None:
        pass


def client(server: Server, **kw) -> HisClient:
    kw.setdefault("clock", lambda: NOW)
    kw.setdefault("backoff", 0)
    return HisClient(kw.pop("base_url", "http://medpay.test"), kw.pop("fixmedins_code", CODE), NAME, PAASID, TOKEN,
                     mdtrtarea_admvs="999901", transport=server, **kw)


# ------------------------------------------------------------------------------------------- envelope

def test_envelope_has_every_field_of_the_reference():
    server = Server([ok()])
    c = client(server, opter="0042", opter_name="收费员", sign_no="651918")
    resp = c.call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": CERTNO}}, insuplc_admdvs="999901")
    assert resp.ok and resp.infcode == 0 and resp.inf_refmsgid == "999901202603010830050000000001"
    env = server.bodies[0]
    assert set(env) == set(ENVELOPE_FIELDS)
    assert env["infno"] == "1101" and env["infver"] == "V1.0" and env["recer_sys_code"] == "YBXT"
    assert env["mdtrtarea_admvs"] == "999901" and env["insuplc_admdvs"] == "999901"
    assert env["fixmedins_code"] == CODE and env["fixmedins_name"] == NAME
    assert (env["opter"], env["opter_name"], env["opter_type"], env["sign_no"]) == ("0042", "收费员", "1", "651918")
    assert env["inf_time"] == "2026-03-01 08:30:05"
    assert env["input"] == {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": CERTNO}}
    assert server.requests[0].path == CALL_SERVICE_PATH
    assert server.requests[0].headers["content-type"].startswith("application/json")
    # the real 2207 request of the reference has the same envelope keys (plus regional serv_code/serv_sign)
    assert set(ENVELOPE_FIELDS) <= set(fixture("2207-request-chongqing.json"))


def test_two_clients_of_one_hospital_never_draw_the_same_msgid():
    clock = lambda: NOW  # noqa: E731 (one clock, frozen: every msgid falls in the same second)
    a, b = client(Server(), clock=clock), client(Server(), clock=clock)
    ids = [c.next_msgid() for _ in range(3000) for c in (a, b)]
    assert len(set(ids)) == len(ids)
    other = client(Server(), clock=clock, fixmedins_code="H99990100002")  # another hospital: its own sequence
    assert other.next_msgid().startswith("H99990100002")


def test_processes_of_one_hospital_in_their_own_lanes_never_meet():
    # two processes of one hospital, as two sequences (each process has its own), same frozen second
    from medpay.his_client import _MsgidSequence

    clock = lambda: NOW  # noqa: E731
    first, second = (_MsgidSequence("H99990100001", clock, lane) for lane in ((0, 2), (1, 2)))
    a = [first.next() for _ in range(6000)]  # more than the lane's 5,000 a second: the time part moves on
    b = [second.next() for _ in range(6000)]
    assert len(set(a)) == len(a) and len(set(b)) == len(b) and not set(a) & set(b)
    assert {int(m[-4:]) % 2 for m in a} == {0} and {int(m[-4:]) % 2 for m in b} == {1}
    assert all(len(m) == 30 for m in a + b)
    assert int(client(Server(), msgid_lane=(3, 4)).next_msgid()[-4:]) % 4 == 3
    for bad in ((2, 2), (-1, 3), (0, 0), (0, 10001)):
        with pytest.raises(ValueError, match="msgid_lane"):
            client(Server(), msgid_lane=bad)


def test_msgid_format_and_uniqueness():
    c = client(Server())
    ids = [c.next_msgid() for _ in range(25_000)]  # more than 10,000 in one (frozen) second
    assert len(set(ids)) == len(ids)
    for m in ids[:3] + ids[-3:]:
        assert len(m) == 30 and re.fullmatch(r"H99990100001\d{18}", m)
    assert ids[0][12:26] == "20260301083005"
    assert all(ids[i][12:26] <= ids[i + 1][12:26] for i in range(len(ids) - 1))
    assert len(client(Server(), fixmedins_code="H123").next_msgid()) == 30
    assert client(Server(), fixmedins_code="H123").next_msgid().startswith("H12300000000")
    assert client(Server(), fixmedins_code="H1234567890123").next_msgid().startswith("H12345678901")
    # each call gets its own msgid; an explicit one is kept
    server = Server([ok()])
    c = client(server)
    c.call("2204", {"feedetail": []})
    c.call("2204", {"feedetail": []})
    c.call("2204", {"feedetail": []}, msgid="H99990100001202603010830059999")
    m = [b["msgid"] for b in server.bodies]
    assert m[0] != m[1] and m[2] == "H99990100001202603010830059999"


def test_recer_sys_code_switches_for_retired_cadres():
    server = Server([ok()])
    c = client(server)
    c.call("2207", {"data": {"psn_no": "p1", "insutype": "340"}})
    c.call("2207", {"data": {"psn_no": "p1", "insutype": "310"}})
    c.call("2401", {"mdtrtinfo": {"psn_no": "p1", "insutype": "340"}, "diseinfo": []})
    c.call("2204", {"feedetail": [{"insutype": "340"}]})  # not a switching transaction
    c.call("2207", {"data": {"psn_no": "p1", "insutype": "310"}}, recer_sys_code="GSXT")
    assert [b["recer_sys_code"] for b in server.bodies] == ["LXXT", "YBXT", "LXXT", "YBXT", "GSXT"]


def test_signature_headers_verify():
    server = Server([ok()])
    client(server).call("9001", {"signIn": {"opter_no": "1", "mac": "", "ip": ""}})
    h = server.requests[0].headers
    assert h["x-tif-paasid"] == PAASID
    assert h["x-tif-timestamp"] == str(int(NOW.timestamp()))
    assert re.fullmatch(r"[0-9a-f]{32}", h["x-tif-nonce"])
    ts, nonce = h["x-tif-timestamp"], h["x-tif-nonce"]
    assert h["x-tif-signature"] == hashlib.sha256(f"{ts}{TOKEN}{nonce}{ts}".encode()).hexdigest()


# ------------------------------------------------------------------------------------------- retries

def test_retries_resend_the_same_bytes_with_a_fresh_nonce():
    server = Server([TransportFailure, TransportTimeout, answer(503, "busy"),
                     answer(200, "<html>proxy</html>"), ok({"x": 1})])
    resp = client(server, retries=4).call("2207", {"data": {"psn_no": "p1", "medfee_sumamt": 9}})
    assert resp.ok and resp.output == {"x": 1} and resp.attempts == 5
    assert len(server.requests) == 5
    assert len({r.content for r in server.requests}) == 1  # same msgid, same inf_time, same body
    nonces = [r.headers["x-tif-nonce"] for r in server.requests]
    assert len(set(nonces)) == 5
    for r in server.requests:
        ts, nonce = r.headers["x-tif-timestamp"], r.headers["x-tif-nonce"]
        assert r.headers["x-tif-signature"] == hashlib.sha256(f"{ts}{TOKEN}{nonce}{ts}".encode()).hexdigest()


def test_transport_failure_after_all_retries():
    server = Server([TransportFailure])
    with pytest.raises(HisTransportError) as e:
        client(server, retries=2).call("2206", {"data": {"psn_no": "p1"}})
    assert len(server.requests) == 3
    assert e.value.msgid == server.bodies[0]["msgid"] and e.value.infno == "2206" and e.value.attempts == 3


def test_system_error_is_retried_then_raised():
    server = Server([{"infcode": -1, "err_msg": "数据库连接失败", "output": None}])
    with pytest.raises(HisSystemError) as e:
        client(server, retries=1).call("2206", {"data": {}})
    assert len(server.requests) == 2 and e.value.infcode == -1 and e.value.err_msg == "数据库连接失败"
    assert e.value.response.output == {}
    # and a -1 followed by success is just a success
    server = Server([{"infcode": "-1", "err_msg": "x"}, ok()])
    assert client(server, retries=1).call("2206", {"data": {}}).ok


# ------------------------------------------------------------------------------------------- infcode

@pytest.mark.parametrize("raw", [0, "0", " 0 ", 0.0])
def test_infcode_number_or_string(raw):
    server = Server([ok({"a": 1}, infcode=raw)])
    resp = client(server).call("1101", {"data": {}})
    assert resp.infcode == 0 and resp.ok and resp.output == {"a": 1}


def test_parse_infcode_refuses_junk():
    assert parse_infcode("-2") == -2 and parse_infcode(-1) == -1
    for bad in (None, True, "ok", "1.5", 0.5):
        with pytest.raises(ValueError):
            parse_infcode(bad)


@pytest.mark.parametrize("code", [-2, "-2"])
def test_business_error_raises_with_err_msg_and_is_not_retried(code):
    server = Server([{"infcode": code, "err_msg": "input.data.medfee_sumamt: 与明细合计不符", "output": None}])
    c = client(server)
    with pytest.raises(HisBusinessError) as e:
        c.call("2207", {"data": {"psn_no": "p1"}})
    assert e.value.infcode == -2 and e.value.err_msg == "input.data.medfee_sumamt: 与明细合计不符"
    assert e.value.response.infcode == -2 and e.value.response.raw["err_msg"] == e.value.err_msg
    assert len(server.requests) == 1
    assert c.call("2207", {"data": {}}, check=False).infcode == -2


def test_http_refusal_without_envelope():
    server = Server([answer(401, {"detail": "bad signature"})])
    with pytest.raises(HisHTTPError) as e:
        client(server).call("1101", {"data": {}})
    assert e.value.status == 401 and len(server.requests) == 1
    # a 4xx carrying an envelope is read as a response
    server = Server([answer(401, {"infcode": -2, "err_msg": "x-tif-signature: 签名错误"})])
    with pytest.raises(HisBusinessError, match="x-tif-signature"):
        client(server).call("1101", {"data": {}})


# ------------------------------------------------------------------------------------------- reversal

def test_unknown_outcome_is_reversed_by_2601():
    server = Server(by_infno={"2207": [TransportTimeout], "2601": [ok()]})
    c = client(server, retries=2)
    with pytest.raises(OutcomeReversed) as e:
        c.settle_with_reversal("2207", {"data": {"psn_no": "p1", "mdtrt_id": "m1"}}, "999901", "p1")
    bodies = server.bodies
    assert [b["infno"] for b in bodies] == ["2207"] * 3 + ["2601"]
    original = bodies[0]["msgid"]
    assert all(b["msgid"] == original for b in bodies[:3])
    rev = bodies[3]
    assert rev["input"] == {"data": {"psn_no": "p1", "omsgid": original, "oinfno": "2207"}}
    assert rev["msgid"] != original and rev["insuplc_admdvs"] == "999901"
    assert e.value.omsgid == original and e.value.oinfno == "2207" and e.value.reversal.ok
    assert isinstance(e.value.cause, HisTransportError)


@pytest.mark.parametrize("infno", ["2207", "2208", "2304", "2305", "2401"])
def test_system_error_on_reversible_trade_is_reversed(infno):
    server = Server(by_infno={infno: [{"infcode": -1, "err_msg": "主机错误"}], "2601": [ok()]})
    with pytest.raises(OutcomeReversed) as e:
        client(server, retries=1).settle_with_reversal(infno, {"data": {"psn_no": "p9"}}, "999901", "p9")
    assert server.bodies[-1]["infno"] == "2601" and server.bodies[-1]["input"]["data"]["oinfno"] == infno
    assert isinstance(e.value.cause, HisSystemError)


def test_reversal_is_itself_retried_and_may_fail():
    server = Server(by_infno={"2304": [TransportFailure], "2601": [TransportFailure]})
    with pytest.raises(ReversalFailed) as e:
        client(server, retries=1).settle_with_reversal("2304", {"data": {"psn_no": "p1"}}, "999901", "p1")
    bodies = server.bodies
    assert [b["infno"] for b in bodies] == ["2304", "2304", "2601", "2601"]
    assert bodies[2]["msgid"] == bodies[3]["msgid"] != bodies[0]["msgid"]
    assert e.value.omsgid == bodies[0]["msgid"] and e.value.oinfno == "2304" and e.value.psn_no == "p1"


def test_no_reversal_on_success_business_error_or_non_reversible_trade():
    server = Server(by_infno={"2207": [ok({"setlinfo": {"setl_id": "S1"}})], "2601": [ok()]})
    assert client(server).settle_with_reversal("2207", {"data": {}}, "999901", "p1").output["setlinfo"]["setl_id"] == "S1"
    server = Server(by_infno={"2207": [{"infcode": -2, "err_msg": "余额不足"}], "2601": [ok()]})
    with pytest.raises(HisBusinessError):
        client(server).settle_with_reversal("2207", {"data": {}}, "999901", "p1")
    assert [b["infno"] for b in server.bodies] == ["2207"]
    server = Server(by_infno={"2206": [TransportTimeout], "2601": [ok()]})
    with pytest.raises(HisTransportError):
        client(server, retries=1).settle_with_reversal("2206", {"data": {}}, "999901", "p1")
    assert [b["infno"] for b in server.bodies] == ["2206", "2206"]


def test_convenience_settle_reverses_unless_told_not_to():
    server = Server(by_infno={"2208": [TransportTimeout], "2601": [ok()]})
    c = client(server, retries=0)
    with pytest.raises(OutcomeReversed):
        c.cancel_outpatient("S1", "M1", "p1", insuplc_admdvs="999901")
    with pytest.raises(HisTransportError):
        c.cancel_outpatient("S1", "M1", "p1", insuplc_admdvs="999901", reverse_on_unknown=False)
    assert [b["infno"] for b in server.bodies] == ["2208", "2601", "2208"]


# ------------------------------------------------------------------------------------------- routing

def test_path_styles():
    server = Server([ok()])
    c = client(server, path_style="named", base_url="http://gw.test/ebus/rio_fsi")
    for infno in ("9001", "1101", "2206", "2207", "2208", "2303", "2304", "2305", "2601", "3201", "3202", "2201",
                  "2204", "2301", "4242"):
        c.call(infno, {"data": {}})
    paths = [r.path for r in server.requests]  # the transport puts base_url's path in front (test_his_transport)
    assert paths[:14] == [PATHS[i] for i in ("9001", "1101", "2206", "2207", "2208", "2303", "2304", "2305", "2601",
                                             "3201", "3202", "2201", "2204", "2301")]
    assert paths[3] == "/fsi/api/outpatientSettleService/saveSettletmentV2"
    assert paths[8] == "/fsi/api/reverseService/revsMethod"
    assert paths[11] == "/fsi/api/outpatientDocInfoService/outpatientRregistration"
    assert paths[12] == "/fsi/api/outpatientDocInfoService/outpatientFeeListUp"  # feeDtlUp names 2301 first
    assert paths[14] == CALL_SERVICE_PATH  # no named path
    server.requests.clear()
    c = client(server, path_style="infno", base_url="http://gw.test/hsa/hgs", nonce=iter("abc").__next__)
    for infno in ("1101", "2207"):
        c.call(infno, {"data": {}})
    assert [r.path for r in server.requests] == ["/1101", "/2207"]
    assert [r.headers["x-tif-nonce"] for r in server.requests] == ["a", "b"]
    with pytest.raises(ValueError, match="path_style"):
        client(server, path_style="per_path")
    server = Server([ok()])
    client(server).call("2207", {"data": {}})
    assert server.requests[0].path == CALL_SERVICE_PATH


# ------------------------------------------------------------------------------------------- convenience

def test_sign_in_person_info_and_settle_flow(caplog):
    server = Server(by_infno={"9001": [fixture("9001-response.json")],
                              "1101": [ok({"baseinfo": {"psn_no": "99990100000001", "certno": CERTNO},
                                           "insuinfo": [{"insuplc_admdvs": "999902", "insutype": "310"}]})],
                              "2207": [fixture("2207-response-hebei.json")]})
    c = client(server)
    caplog.set_level(logging.DEBUG, logger="medpay.his_client")
    assert c.sign_in("0042", "00:11:22:33:44:55", "10.0.0.8").ok
    assert c.sign_no == "359754"
    assert server.bodies[0]["input"] == {"signIn": {"opter_no": "0042", "mac": "00:11:22:33:44:55", "ip": "10.0.0.8"}}
    assert server.bodies[0]["sign_no"] == ""
    c.person_info("02", CERTNO, psn_name="王建国")
    assert server.bodies[1]["input"]["data"]["mdtrt_cert_no"] == CERTNO
    resp = c.settle_outpatient("99990100000001", "M1", "B1", Decimal("4.52"), preselfpay_amt="0.23",
                               inscp_scp_amt=4.29, mdtrt_cert_type="02", mdtrt_cert_no=CERTNO, insutype="310")
    assert resp.output["setlinfo"]["medins_setl_id"] == "H13110200026202111291809520478"
    env = server.bodies[2]
    assert env["sign_no"] == "359754"
    assert env["insuplc_admdvs"] == "999902"  # learnt from 1101 insuinfo
    data = env["input"]["data"]
    assert (data["medfee_sumamt"], data["preselfpay_amt"], data["inscp_scp_amt"]) == (4.52, 0.23, 4.29)
    assert "fulamt_ownpay_amt" not in data  # sums the HIS did not give are not sent as 0
    assert b'"medfee_sumamt":4.52' in server.requests[2].content
    # logs never show the full ID number or name
    assert CERTNO not in caplog.text and "王建国" not in caplog.text
    assert "999901********0011" in caplog.text


def test_amounts_are_validated_and_sent_as_numbers():
    server = Server([ok({"result": []})])
    c = client(server)
    c.upload_fees([{"feedetl_sn": "1", "det_item_fee_sumamt": "12.30", "cnt": "1.5", "pric": Decimal("8.2")}])
    line = server.bodies[0]["input"]["feedetail"][0]
    assert (line["det_item_fee_sumamt"], line["cnt"], line["pric"]) == (12.3, 1.5, 8.2)
    with pytest.raises(MoneyError, match="medfee_sumamt"):
        c.presettle_outpatient("p1", "M1", "B1", "4.521")
    with pytest.raises(MoneyError, match=r"feedetail\[0\].det_item_fee_sumamt"):
        c.upload_fees([{"det_item_fee_sumamt": "abc"}])
    assert len(server.requests) == 1


def test_other_convenience_transactions_build_reference_inputs():
    server = Server([ok()])
    c = client(server, sign_no="1")
    c.register("p1", "310", "02", CERTNO, ipt_otp_no="MZ1", insuplc_admdvs="999901")
    c.admit({"psn_no": "p1", "insutype": "310", "med_type": "21"}, [{"diag_code": "K35"}], insuplc_admdvs="999901")
    c.upload_inpatient_fees([{"feedetl_sn": "1", "det_item_fee_sumamt": 60, "cnt": 1, "pric": 60}])
    c.presettle_inpatient("p1", "M2", "60.00")
    c.settle_inpatient("p1", "M2", "60.00", inscp_scp_amt="60.00", mid_setl_flag="1")
    c.cancel_inpatient("S2", "M2", "p1")
    c.discharge({"mdtrt_id": "M2", "psn_no": "p1"}, [])
    c.reverse("H99990100001202603010830050001", "2207", "p1")
    c.sign_out()
    b = server.bodies
    assert [x["infno"] for x in b] == ["2201", "2401", "2301", "2303", "2304", "2305", "2402", "2601", "9002"]
    assert b[0]["input"]["data"]["ipt_otp_no"] == "MZ1" and b[0]["input"]["data"]["begntime"] == "2026-03-01 08:30:05"
    assert b[1]["input"] == {"mdtrtinfo": {"psn_no": "p1", "insutype": "310", "med_type": "21"},
                             "diseinfo": [{"diag_code": "K35"}]}
    assert b[4]["input"]["data"]["mid_setl_flag"] == "1" and b[4]["input"]["data"]["medfee_sumamt"] == 60
    assert b[5]["input"]["data"] == {"mdtrt_id": "M2", "setl_id": "S2", "psn_no": "p1"}
    assert b[7]["input"]["data"] == {"psn_no": "p1", "omsgid": "H99990100001202603010830050001", "oinfno": "2207"}
    assert b[8]["input"] == {"signOut": {"sign_no": "1", "opter_no": "hisdemo"}} and c.sign_no == ""


# ------------------------------------------------------------------------------------------- CLI

@pytest.fixture
def cli(monkeypatch):
    for var in ("MEDPAY_HIS_BASE_URL", "MEDPAY_HIS_FIXMEDINS_CODE", "MEDPAY_HIS_PAASID", "MEDPAY_HIS_TOKEN",
                "MEDPAY_HIS_ADMDVS", "MEDPAY_HIS_SIGN_NO", "MEDPAY_HIS_FIXMEDINS_NAME"):
        monkeypatch.delenv(var, raising=False)

    def run(server: Server, tmp_path: Path, message: dict, *args: str, env: dict | None = None):
        def transport(base_url: str, timeout: float) -> Server:
            server.base_url = base_url
            return server

        monkeypatch.setattr(cli_his, "make_transport", transport)
        f = tmp_path / "msg.json"
        f.write_text(json.dumps(message, ensure_ascii=False), encoding="utf-8")
        return CliRunner().invoke(cli_his.his_app, ["send", str(f), *args], env=env)

    return run


def test_cli_send_short_form_uses_demo_credentials(cli, tmp_path):
    server = Server([ok({"baseinfo": {"psn_no": "99990100000001"}}, infcode="0")])
    result = cli(server, tmp_path, {"infno": "1101", "input": {"data": {"mdtrt_cert_type": "02",
                                                                        "mdtrt_cert_no": CERTNO}},
                                    "insuplc_admdvs": "999901"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["output"]["baseinfo"]["psn_no"] == "99990100000001"
    req = server.requests[0]
    assert req.base_url + req.path == "http://127.0.0.1:8000" + CALL_SERVICE_PATH
    env = json.loads(req.content)
    assert env["fixmedins_code"] == CODE and env["fixmedins_name"] == NAME and env["mdtrtarea_admvs"] == "999901"
    assert env["insuplc_admdvs"] == "999901" and env["msgid"].startswith(CODE)
    ts, nonce = req.headers["x-tif-timestamp"], req.headers["x-tif-nonce"]
    assert req.headers["x-tif-paasid"] == PAASID
    assert req.headers["x-tif-signature"] == hashlib.sha256(f"{ts}{TOKEN}{nonce}{ts}".encode()).hexdigest()


def test_cli_send_full_envelope_per_path_and_options(cli, tmp_path):
    server = Server([ok()])
    envelope = fixture("2207-request-chongqing.json")
    assert cli(server, tmp_path, envelope, "--path-style", "per-path").exit_code == 2
    result = cli(server, tmp_path, envelope, "--path-style", "named", "--base-url", "http://gw.test", "--paasid", "p2",
                 "--admdvs", "500155", env={"MEDPAY_HIS_TOKEN": "t2"})
    assert cli(server, tmp_path, envelope, "--token", "t2").exit_code == 2  # no secret on a command line
    assert result.exit_code == 0, result.output
    req = server.requests[0]
    assert req.base_url == "http://gw.test" and req.path == PATHS["2207"] and req.headers["x-tif-paasid"] == "p2"
    sent = json.loads(req.content)
    assert sent["msgid"] == envelope["msgid"] and sent["fixmedins_code"] == "H50015501017"
    assert sent["input"] == envelope["input"] and sent["serv_code"] == envelope["serv_code"]
    ts, nonce = req.headers["x-tif-timestamp"], req.headers["x-tif-nonce"]
    assert req.headers["x-tif-signature"] == hashlib.sha256(f"{ts}t2{nonce}{ts}".encode()).hexdigest()


def test_cli_send_env_vars(cli, tmp_path):
    server = Server([ok()])
    result = cli(server, tmp_path, {"infno": "9001", "input": {"signIn": {"opter_no": "1"}}},
                 env={"MEDPAY_HIS_FIXMEDINS_CODE": "H99990100002", "MEDPAY_HIS_BASE_URL": "http://env.test"})
    assert result.exit_code == 0, result.output
    req = server.requests[0]
    assert req.base_url == "http://env.test" and req.headers["x-tif-paasid"] == "demo_paas_h2"
    assert json.loads(req.content)["fixmedins_name"] == "演示县中心卫生院"


@pytest.mark.parametrize("answer,code", [({"infcode": -2, "err_msg": "未知的交易 infno 9999"}, 1),
                                         ({"infcode": "-1", "err_msg": "系统错误"}, 1),
                                         (TransportFailure, 2),
                                         (answer(401, {"detail": "bad signature"}), 2)])
def test_cli_send_exit_codes(cli, tmp_path, answer, code):
    result = cli(Server([answer]), tmp_path, {"infno": "9999", "input": {}}, "--retries", "0")
    assert result.exit_code == code, result.output
    if code == 1:
        assert json.loads(result.stdout)["err_msg"] == answer["err_msg"]


def test_cli_send_rejects_a_bad_file(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    result = CliRunner().invoke(cli_his.his_app, ["send", str(bad)])
    assert result.exit_code == 2
