"""The conformance corpus (tests/conformance/quirks.toml): what real HIS clients send, each quirk as a whole
outpatient (and inpatient) flow over HTTP against `medpay serve` on SQLite and PostgreSQL.

The HIS here is deliberately raw — httpx, envelopes built by hand, the named paths read from the data file — so
that a quirk is sent exactly as the field sends it, whatever the package's own client does.
"""

from __future__ import annotations

import copy
import itertools
import re
import time
import tomllib
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from medpay.domain.gateway_signature import sign_headers
from medpay.local_time import LOCAL_TZ
from medpay.nhsa_models import FeeRow, Settlement
from medpay.services import demo
from tests.helpers_server import backend_server, run_cli

ROOT = Path(__file__).parents[1]
QUIRKS = tomllib.loads((Path(__file__).parent / "conformance" / "quirks.toml").read_text(encoding="utf-8"))["quirk"]
NAMED = {infno: path for path, infno in reversed([
    (e["path"], e["infnos"][0]) for e in
    tomllib.loads((ROOT / "src" / "medpay" / "nhsa_paths.toml").read_text(encoding="utf-8"))["path"]])}
CALL_SERVICE = "/fsi/api/rsfComIfsService/callService"
BASE_PATHS = "/hsa/hgs/,/ebus/rio_fsi"
H1, H2 = demo.INSTITUTIONS[0], demo.INSTITUTIONS[1]  # H2 is set to sign-in "optional" for the quirks without 9001
EMP, RETIREE = demo.PERSONS[0], demo.PERSONS[1]
DRUG, EXAM, BED = "XM01AEB002", "002100000020000", "001102000010000"
DROP, NULL, NOW, AS_TEXT = "<drop>", "<null>", "<now>", "<as text>"
READERS = {"5204": TypeAdapter(list[FeeRow]), "2207": TypeAdapter(Settlement), "2304": TypeAdapter(Settlement)}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("corpus")
    for served in backend_server(request.param, tmp, env={"MEDPAY_INSTITUTION_BASE_PATHS": BASE_PATHS}):
        # before any request, so no worker has H2's settings cached yet
        run_cli(["institution", "sign-in", H2[0], "optional", "--operator", "corpus"], served.db_url, tmp)
        yield served


def now() -> str:
    return f"{datetime.now(LOCAL_TZ):%Y-%m-%d %H:%M:%S}"


# ------------------------------------------------------------------------------------------ a raw HIS


SERIAL = itertools.count(1)  # msgid sequence, shared by every flow: a msgid is once per institution
_SENT: dict[tuple[str, int], set[str]] = {}  # (paasid, second) → nonces already sent in that second


def nonce_for(paasid: str, samples: list[str], turn: int) -> tuple[int, str]:
    """(timestamp, nonce): the samples in turn, skipping any this paasid already sent in the same second — an
    honest client that repeats a short nonce within a second is (rightly) refused as a replay."""
    while True:
        second = int(time.time())
        sent = _SENT.setdefault((paasid, second), set())
        for i in range(len(samples)):
            candidate = samples[(turn + i) % len(samples)]
            if candidate not in sent:
                sent.add(candidate)
                return second, candidate
        time.sleep(second + 1 - time.time())


def _steps(at: str) -> list[str | int]:
    return [int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"\[\d+\]|[^.\[\]]+", at)]


def _apply(doc: dict, at: str, change: dict) -> None:
    *parents, last = _steps(at)
    for step in parents:
        doc = doc[step]
    if "rename" in change:
        doc[change["rename"]] = doc.pop(last)
        return
    value = change["set"]
    if value == DROP:
        doc.pop(last, None)
    else:
        doc[last] = {NULL: None, NOW: now(), AS_TEXT: str(doc.get(last))}.get(value, value) \
            if isinstance(value, str) else value


class RawHis:
    """One institution's HIS sending as the quirk says."""

    def __init__(self, base: str, quirk: dict):
        self.quirk = quirk
        self.inst = H1 if quirk.get("sign_in", True) else H2
        self.http = httpx.Client(base_url=base, timeout=60)
        self.turn = itertools.count()
        self.sign_no = ""

    def path(self, infno: str) -> str:
        if infno in self.quirk.get("paths", {}):
            return self.quirk["paths"][infno]
        url = self.quirk.get("url", "call_service")
        if url == "call_service":
            return CALL_SERVICE
        if url == "named":
            return self.quirk.get("prefix", "") + NAMED.get(infno, CALL_SERVICE)
        return url.format(infno=infno)

    def envelope(self, infno: str, input_: dict) -> dict:
        code, name = self.inst[0], self.inst[1]
        env = {"infno": infno, "msgid": f"{code}{datetime.now(LOCAL_TZ):%Y%m%d%H%M%S}{next(SERIAL) % 10000:04d}",
               "mdtrtarea_admvs": "999901", "insuplc_admdvs": "999901", "recer_sys_code": "YBXT", "dev_no": "",
               "dev_safe_info": "", "cainfo": "", "signtype": "", "infver": "V1.0", "opter_type": "1",
               "opter": "1001", "opter_name": "收费员", "inf_time": now(), "fixmedins_code": code,
               "fixmedins_name": name, "sign_no": self.sign_no, "input": copy.deepcopy(input_)}
        for key, value in self.quirk.get("envelope", {}).items():
            _apply(env, key, {"set": value})
        for change in self.quirk.get("input", []):
            if change["infno"] == infno:
                _apply(env["input"], change["at"], change)
        return env

    def call(self, infno: str, input_: dict) -> Any:
        """The answer's output; read strictly, as a typed client does, where the quirk says so."""
        output = self._send(infno, input_)
        if infno in self.quirk.get("reads", []):
            try:
                READERS[infno].validate_python(output)
            except ValidationError as e:
                pytest.fail(f"{self.quirk['id']}: {infno}'s output is not what a typed client reads: {e}", pytrace=False)
        return output

    def _send(self, infno: str, input_: dict) -> Any:
        env, path = self.envelope(infno, input_), self.path(infno)
        paasid, token = self.inst[3], self.inst[4]
        if self.quirk.get("nonces"):
            second, nonce = nonce_for(paasid, self.quirk["nonces"], next(self.turn))
        else:
            second, nonce = int(time.time()), uuid.uuid4().hex
        r = self.http.post(path, json=env, headers=sign_headers(paasid, token, now=second, nonce=nonce))
        try:
            answer = r.json()
        except ValueError:
            answer = {}
        if r.status_code != 200 or answer.get("infcode") not in (0, "0"):
            pytest.fail(f"{self.quirk['id']}: {infno} to {path} (nonce {nonce!r}) → HTTP {r.status_code} {r.text[:400]}",
                        pytrace=False)
        return answer["output"]


# ------------------------------------------------------------------------------------------ the flows


def sign_in(h: RawHis) -> None:
    if h.quirk.get("sign_in", True):
        h.sign_no = h.call("9001", {"signIn": {"opter_no": "1001", "mac": "00:16:3e:00:00:01", "ip": "10.0.0.8"}}
                           )["signinoutb"]["sign_no"]


def outpatient(h: RawHis) -> None:
    sign_in(h)
    h.call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno, "card_sn": "", "begntime": now(),
                             "psn_cert_type": "01", "certno": EMP.certno, "psn_name": ""}})
    visit = h.call("2201", {"data": {"psn_no": EMP.psn_no, "insutype": "310", "begntime": now(),
                                     "mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno, "ipt_otp_no": "MZ-C1",
                                     "atddr_no": "D001", "dr_name": "李医生", "dept_code": "01",
                                     "dept_name": "内科", "caty": "A03"}})["data"]
    mdtrt_id = visit["mdtrt_id"]
    lines = [(DRUG, 2, Decimal("30.50")), (EXAM, 1, Decimal("200.00"))]
    h.call("2204", {"feedetail": [
        {"feedetl_sn": str(i), "mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no, "chrg_bchno": "B1", "rxno": "",
         "rx_circ_flag": "0", "fee_ocur_time": now(), "med_list_codg": code, "medins_list_codg": code, "cnt": cnt,
         "pric": float(pric), "det_item_fee_sumamt": float(cnt * pric), "bilg_dept_codg": "01",
         "bilg_dept_name": "内科", "bilg_dr_codg": "D001", "bilg_dr_name": "李医生", "hosp_appr_flag": "1"}
        for i, (code, cnt, pric) in enumerate(lines, start=1)]})
    total = float(sum(cnt * pric for _, cnt, pric in lines))
    settle = {"psn_no": EMP.psn_no, "mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno, "med_type": "11",
              "medfee_sumamt": total, "psn_setlway": "01", "mdtrt_id": mdtrt_id, "chrg_bchno": "B1",
              "insutype": "310", "acct_used_flag": "1", "invono": ""}
    h.call("2206", {"data": settle})
    setl = h.call("2207", {"data": settle})["setlinfo"]
    h.call("5203", {"data": {"psn_no": EMP.psn_no, "setl_id": setl["setl_id"], "mdtrt_id": mdtrt_id}})
    h.call("5204", {"data": {"psn_no": EMP.psn_no, "mdtrt_id": mdtrt_id, "setl_id": setl["setl_id"]}})
    h.call("2208", {"data": {"setl_id": setl["setl_id"], "mdtrt_id": mdtrt_id, "psn_no": EMP.psn_no}})
    today = setl["setl_time"][:10]
    h.call("3201", {"data": {"insutype": "310", "clr_type": "11", "setl_optins": "999901", "stmt_begndate": today,
                             "stmt_enddate": today, "medfee_sumamt": 0, "fund_pay_sumamt": 0, "acct_pay": 0,
                             "fixmedins_setl_cnt": 2, "refd_setl_flag": "1"}})


def inpatient(h: RawHis) -> None:
    sign_in(h)
    h.call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": RETIREE.certno, "card_sn": "",
                             "begntime": now(), "psn_cert_type": "01", "certno": RETIREE.certno, "psn_name": ""}})
    admitted = h.call("2401", {"mdtrtinfo": {"psn_no": RETIREE.psn_no, "insutype": "310", "coner_name": "",
                                             "begntime": now(), "mdtrt_cert_type": "02",
                                             "mdtrt_cert_no": RETIREE.certno, "med_type": "21", "ipt_no": "ZY-C1",
                                             "atddr_no": "D002", "chfpdr_name": "王医生",
                                             "adm_diag_dscr": "急性阑尾炎", "adm_dept_codg": "03",
                                             "adm_dept_name": "外科", "adm_bed": "12", "dscg_maindiag_code": "K35.800",
                                             "dscg_maindiag_name": "急性阑尾炎"}, "diseinfo": []})["result"]
    mdtrt_id = admitted["mdtrt_id"]
    h.call("2301", {"feedetail": [{"feedetl_sn": "1", "init_feedetl_sn": "", "mdtrt_id": mdtrt_id,
                                   "drord_no": "Y1", "psn_no": RETIREE.psn_no, "med_type": "21",
                                   "fee_ocur_time": now(), "med_list_codg": BED, "medins_list_codg": BED,
                                   "det_item_fee_sumamt": 300.0, "cnt": 5, "pric": 60.0, "bilg_dept_codg": "03",
                                   "bilg_dept_name": "外科", "bilg_dr_codg": "D002", "bilg_dr_name": "王医生"}]})
    settle = {"psn_no": RETIREE.psn_no, "mdtrt_cert_type": "02", "mdtrt_cert_no": RETIREE.certno,
              "medfee_sumamt": 300.0, "psn_setlway": "01", "mdtrt_id": mdtrt_id, "insutype": "310",
              "acct_used_flag": "0", "mid_setl_flag": "0"}
    h.call("2303", {"data": settle})
    h.call("2402", {"dscginfo": {"mdtrt_id": mdtrt_id, "psn_no": RETIREE.psn_no, "insutype": "310",
                                 "endtime": now(), "dscg_way": "1", "dscg_dept_codg": "03",
                                 "dscg_dept_name": "外科"}, "diseinfo": []})
    setl = h.call("2304", {"data": settle})["setlinfo"]
    h.call("2305", {"data": {"mdtrt_id": mdtrt_id, "setl_id": setl["setl_id"], "psn_no": RETIREE.psn_no}})


FLOWS = {"outpatient": outpatient, "inpatient": inpatient}
CASES = [pytest.param(q, flow, id=f"{q['id']}-{flow}") for q in QUIRKS for flow in q.get("flows", ["outpatient"])]


def test_the_corpus_is_well_formed() -> None:
    ids = [q["id"] for q in QUIRKS]
    assert len(ids) == len(set(ids))
    for q in QUIRKS:
        assert q["what"] and q["source"] and q["before"] in ("refused", "accepted"), q["id"]
        assert set(q.get("flows", ["outpatient"])) <= set(FLOWS), q["id"]
        for change in q.get("input", []):
            assert ("set" in change) != ("rename" in change), q["id"]
        assert set(q.get("reads", [])) <= set(READERS), q["id"]


@pytest.mark.parametrize("quirk, flow", CASES)
def test_a_real_clients_flow_goes_through(base: str, quirk: dict, flow: str) -> None:
    his = RawHis(base, quirk)
    try:
        FLOWS[flow](his)
    finally:
        his.http.close()
