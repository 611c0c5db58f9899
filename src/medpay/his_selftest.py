"""``medpay his selftest``: the check a hospital runs before it goes live, against any NHSA-style platform.

It is a HIS (``medpay.his_client``) walking a whole outpatient and inpatient flow with one test person each:
sign-in when the platform asks for it, 1101, 2201, 2204, 2206, 2207, 5203, 5204, 2208; 2401, 2301, 2303, 2402,
2304, 2305; an admission cancelled (2404) and one reversed (2601); 3201. Every answer is read as the field reads
it: ``infcode`` 0, the output through the strict readers of ``medpay.nhsa_models`` (the spec's types, required
fields never null, 5204 a list of rows), the interface's amount identities, a cancellation the exact negation of
its settlement. The result is one line per transaction: conforms, differs (with the first difference), or not run
(an earlier step it needs failed). Everything it settles it cancels again.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from medpay.domain.adjudication import identity_violations
from medpay.his_client import HisClient, HisError, HisHTTPError, Response
from medpay.money import MoneyError, parse_yuan
from medpay.nhsa_models import FeeResult, FeeRow, PersonInfo, Settlement

TITLES = {
    "9001": "签到", "1101": "人员信息获取", "2201": "门诊挂号", "2204": "门诊费用明细上传", "2206": "门诊预结算",
    "2207": "门诊结算", "5203": "结算信息查询", "5204": "费用明细查询", "2208": "门诊结算撤销", "2401": "入院办理",
    "2301": "住院费用明细上传", "2303": "住院预结算", "2402": "出院办理", "2304": "住院结算", "2305": "住院结算撤销",
    "2404": "入院撤销", "2601": "冲正交易", "3201": "对总账",
}
AMOUNTS = ("medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt",
           "fund_pay_sumamt", "psn_part_amt", "hosp_part_amt", "acct_pay", "psn_cash_pay")
DECLARED = ("fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt")  # 2207/2304 sums of 2204's
_RESULTS = TypeAdapter(list[FeeResult])
_ROWS = TypeAdapter(list[FeeRow])


@dataclass(frozen=True)
class Subjects:
    """Who and what the flows use: the test persons' ID numbers (02) and catalog codes the platform knows."""

    outpatient_certno: str
    inpatient_certno: str
    drug: str
    service: str
    bed: str


@dataclass
class Outcome:
    infno: str
    ok: bool | None  # None: not run
    note: str = ""  # the first difference, or what was found

    @property
    def title(self) -> str:
        return TITLES.get(self.infno, "")


class Differs(Exception):
    """The first difference of a transaction's answer from what the specification (and the field) expects."""


@dataclass
class Selftest:
    client: HisClient
    subjects: Subjects
    sign_in: str = "auto"  # auto: only when a transaction is refused for want of a sign_no; always; never
    outcomes: list[Outcome] = field(default_factory=list)
    booked: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # setl_id → (cancel infno, mdtrt_id, psn_no)

    # -- running

    def run(self) -> list[Outcome]:
        self.outcomes = []
        outpatient = self._step("1101", self._identify, self.subjects.outpatient_certno)
        if outpatient is not None:
            self._outpatient(outpatient)
        else:
            self._skip(("2201", "2204", "2206", "2207", "5203", "5204", "2208"), "1101")
        inpatient = self._step("1101", self._identify, self.subjects.inpatient_certno, label="1101 (住院)")
        if inpatient is not None:
            self._inpatient(inpatient)
        else:
            self._skip(("2401", "2301", "2303", "2402", "2304", "2305", "2404", "2601"), "1101")
        self._step("3201", self._totals)
        self._cancel_what_is_left()
        return self.outcomes

    def _cancel_what_is_left(self) -> None:
        """A settlement the platform booked (infcode 0) whose answer differed was not cancelled by the flow: cancel
        it now, so the self-test leaves nothing booked."""
        for setl_id, (infno, mdtrt_id, psn_no) in list(self.booked.items()):
            try:
                answer = self.client.call(infno, {"data": {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn_no}},
                                          check=False)
                done = answer.infcode == 0
            except HisError:
                done = False
            self.outcomes.append(Outcome(infno, None, f"clean-up of settlement {setl_id}: "
                                                      + ("cancelled" if done else "NOT cancelled — cancel it by hand")))

    def _step(self, infno: str, work: Callable[..., Any], *args: Any, label: str | None = None) -> Any:
        """Run one transaction's check; its outcome is recorded, its result handed on (None when it differed)."""
        try:
            result, note = work(*args)
        except Differs as e:
            self.outcomes.append(Outcome(label or infno, False, str(e)))
            return None
        self.outcomes.append(Outcome(label or infno, True, note))
        return result

    def _skip(self, infnos: tuple[str, ...], needs: str) -> None:
        self.outcomes.extend(Outcome(i, None, f"not run: needs {needs}") for i in infnos)

    def _call(self, infno: str, input_: Mapping[str, Any], *, msgid: str | None = None) -> Response:
        """The answer, or Differs naming how it was not one (refused, HTTP, no answer). Signs in first when the
        platform refuses for want of a sign_no (sign_in "auto"), or before anything ("always")."""
        if self.sign_in == "always" and not self.client.sign_no:
            self._sign_in("required by --sign-in always")
        try:
            response = self.client.call(infno, input_, msgid=msgid, check=False)
            if (response.infcode != 0 and self.sign_in == "auto" and not self.client.sign_no
                    and str(response.err_msg or "").startswith("sign_no")):
                self._sign_in(f"the platform asked for it at {infno}")
                response = self.client.call(infno, input_, msgid=msgid, check=False)
        except HisHTTPError as e:
            raise Differs(f"HTTP {e.status} without an envelope: {e.body[:120]}") from None
        except HisError as e:
            raise Differs(f"no answer: {e}") from None
        if response.http_status != 200:
            raise Differs(f"HTTP {response.http_status}: infcode {response.infcode} {response.err_msg}")
        if response.infcode != 0:
            raise Differs(f"infcode {response.infcode}: {response.err_msg}")
        return response

    def _sign_in(self, why: str) -> None:
        try:
            response = self.client.sign_in()
        except HisError as e:
            self.outcomes.append(Outcome("9001", False, f"sign-in refused: {e}"))
            raise Differs(f"could not sign in: {e}") from None
        sign_no = (response.output.get("signinoutb") or {}).get("sign_no") if isinstance(response.output, dict) else ""
        self.outcomes.append(Outcome("9001", bool(sign_no), f"signed in ({why}): sign_no {sign_no}" if sign_no
                                     else "output.signinoutb.sign_no: missing"))

    # -- the flows

    def _identify(self, certno: str) -> tuple[Any, str]:
        answer = self._call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "card_sn": "",
                                              "begntime": _now(self.client), "psn_cert_type": "01",
                                              "certno": certno, "psn_name": ""}})
        person = _read(PersonInfo, answer.output)
        if not person.insuinfo:
            raise Differs("output.insuinfo: empty")
        return person, f"psn_no {person.baseinfo.psn_no}, insutype {person.insuinfo[0].insutype}"

    def _outpatient(self, person: PersonInfo) -> None:
        psn_no, insutype = person.baseinfo.psn_no, person.insuinfo[0].insutype
        mdtrt_id = self._step("2201", self._open, "2201", person)
        if mdtrt_id is None:
            return self._skip(("2204", "2206", "2207", "5203", "5204", "2208"), "2201")
        lines = [(self.subjects.drug, Decimal("2"), Decimal("30.50")), (self.subjects.service, Decimal("1"),
                                                                         Decimal("200.00"))]
        sums = self._step("2204", self._upload, "2204", mdtrt_id, psn_no, lines)
        if sums is None:
            return self._skip(("2206", "2207", "5203", "5204", "2208"), "2204")
        data = {"psn_no": psn_no, "mdtrt_cert_type": "02", "mdtrt_cert_no": self.subjects.outpatient_certno,
                "med_type": "11", "psn_setlway": "01", "mdtrt_id": mdtrt_id, "chrg_bchno": "ST1",
                "insutype": insutype, "acct_used_flag": "1", "invono": "", **sums}
        quote = self._step("2206", self._settlement, "2206", data, None)
        settled = self._step("2207", self._settlement, "2207", data, quote)
        if settled is None:
            return self._skip(("5203", "5204", "2208"), "2207")
        setl_id = settled.setlinfo.setl_id
        self._step("5203", self._query, settled, psn_no)
        self._step("5204", self._fee_rows, mdtrt_id, psn_no, setl_id, len(lines))
        self._step("2208", self._cancel, "2208", settled, mdtrt_id, psn_no)

    def _inpatient(self, person: PersonInfo) -> None:
        psn_no, insutype = person.baseinfo.psn_no, person.insuinfo[0].insutype
        mdtrt_id = self._step("2401", self._open, "2401", person)
        if mdtrt_id is None:
            self._skip(("2301", "2303", "2402", "2304", "2305"), "2401")
        else:
            sums = self._step("2301", self._upload, "2301", mdtrt_id, psn_no,
                              [(self.subjects.bed, Decimal("5"), Decimal("60.00"))])
            data = {"psn_no": psn_no, "mdtrt_cert_type": "02", "mdtrt_cert_no": self.subjects.inpatient_certno,
                    "med_type": "21", "psn_setlway": "01", "mdtrt_id": mdtrt_id, "insutype": insutype,
                    "acct_used_flag": "0", "mid_setl_flag": "0", "invono": "", **(sums or {})}
            if sums is None:
                self._skip(("2303", "2402", "2304", "2305"), "2301")
            else:
                quote = self._step("2303", self._settlement, "2303", data, None)
                discharged = self._step("2402", self._discharge, mdtrt_id, psn_no, insutype)
                settled = self._step("2304", self._settlement, "2304", data, quote) if discharged else None
                if discharged is None:
                    self._skip(("2304", "2305"), "2402")
                elif settled is None:
                    self._skip(("2305",), "2304")
                else:
                    self._step("2305", self._cancel, "2305", settled, mdtrt_id, psn_no)
        self._step("2404", self._admit_and_cancel, person)
        self._step("2601", self._admit_and_reverse, person)

    # -- one transaction each

    def _open(self, infno: str, person: PersonInfo, msgid: str | None = None) -> tuple[str, str]:
        certno = self.subjects.outpatient_certno if infno == "2201" else self.subjects.inpatient_certno
        begin = {"psn_no": person.baseinfo.psn_no, "insutype": person.insuinfo[0].insutype, "begntime": _now(self.client),
                 "mdtrt_cert_type": "02", "mdtrt_cert_no": certno}
        if infno == "2201":
            answer = self._call("2201", {"data": {**begin, "ipt_otp_no": f"ST{_stamp(self.client)}", "atddr_no": "ST01",
                                                  "dr_name": "自测医生", "dept_code": "ST", "dept_name": "自测科室",
                                                  "caty": "A03"}}, msgid=msgid)
        else:
            answer = self._call("2401", {"mdtrtinfo": {**begin, "med_type": "21", "ipt_no": f"ST{_stamp(self.client)}",
                                                       "atddr_no": "ST01", "chfpdr_name": "自测医生",
                                                       "adm_diag_dscr": "自测", "adm_dept_codg": "ST",
                                                       "adm_dept_name": "自测科室", "adm_bed": "1"},
                                         "diseinfo": []}, msgid=msgid)
        node = _node(answer.output, "data", "result")
        mdtrt_id = node.get("mdtrt_id")
        if not isinstance(mdtrt_id, str) or not mdtrt_id:
            raise Differs("output.mdtrt_id: missing or not text (字符型)")
        return mdtrt_id, f"mdtrt_id {mdtrt_id}"

    def _upload(self, infno: str, mdtrt_id: str, psn_no: str,
                lines: list[tuple[str, Decimal, Decimal]]) -> tuple[dict[str, Decimal], str]:
        feedetail = [{"feedetl_sn": f"ST{i}", "mdtrt_id": mdtrt_id, "psn_no": psn_no, "chrg_bchno": "ST1",
                      "rx_circ_flag": "0", "fee_ocur_time": _now(self.client), "med_list_codg": code,
                      "medins_list_codg": code, "det_item_fee_sumamt": cnt * pric, "cnt": cnt, "pric": pric,
                      "bilg_dept_codg": "ST", "bilg_dept_name": "自测科室", "bilg_dr_codg": "ST01",
                      "bilg_dr_name": "自测医生", "hosp_appr_flag": "1", "med_type": "21" if infno == "2301" else "11"}
                     for i, (code, cnt, pric) in enumerate(lines, start=1)]
        answer = self._call(infno, {"feedetail": feedetail})
        results = _read(_RESULTS, _node(answer.output, "result"), "output.result")
        if sorted(r.feedetl_sn for r in results) != sorted(f["feedetl_sn"] for f in feedetail):
            raise Differs("output.result: not one row per line sent (feedetl_sn)")
        for i, r in enumerate(results):
            parts = sum(getattr(r, k) or 0 for k in ("fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt",
                                                      "inscp_scp_amt"))
            if parts != r.det_item_fee_sumamt:
                raise Differs(f"output.result[{i}]: fulamt_ownpay_amt + overlmt_amt + preselfpay_amt + "
                              f"inscp_scp_amt = {parts}, det_item_fee_sumamt {r.det_item_fee_sumamt}")
        sums = {"medfee_sumamt": sum(r.det_item_fee_sumamt for r in results),
                "fulamt_ownpay_amt": sum(r.fulamt_ownpay_amt or 0 for r in results),
                "overlmt_selfpay": sum(r.overlmt_amt or 0 for r in results),
                "preselfpay_amt": sum(r.preselfpay_amt or 0 for r in results),
                "inscp_scp_amt": sum(r.inscp_scp_amt or 0 for r in results)}
        return sums, f"{len(results)} lines, {sums['medfee_sumamt']} yuan"

    def _settlement(self, infno: str, data: dict[str, Any], quote: Settlement | None) -> tuple[Settlement, str]:
        msgid = self.client.next_msgid()
        answer = self._call(infno, {"data": data}, msgid=msgid)
        if infno in ("2207", "2304"):
            setl_id = ((answer.output or {}).get("setlinfo") or {}).get("setl_id") if isinstance(answer.output, dict) \
                else None
            if setl_id:
                self.booked[str(setl_id)] = ("2208" if infno == "2207" else "2305", data["mdtrt_id"], data["psn_no"])
        settlement = _read(Settlement, answer.output)
        info = settlement.setlinfo
        _identities(info)
        if info.medfee_sumamt != data["medfee_sumamt"]:
            raise Differs(f"setlinfo.medfee_sumamt {info.medfee_sumamt}, the fee lines' {data['medfee_sumamt']}")
        if infno in ("2207", "2304"):
            if info.medins_setl_id != msgid:
                raise Differs(f"setlinfo.medins_setl_id {info.medins_setl_id!r}, not the request's msgid {msgid!r}")
            if quote is not None and _amounts(quote.setlinfo) != _amounts(info):
                raise Differs(f"setlinfo differs from {'2206' if infno == '2207' else '2303'}'s: "
                              + _first_change(_amounts(quote.setlinfo), _amounts(info)))
        return settlement, (f"setl_id {info.setl_id or '—'}: fund {info.fund_pay_sumamt}, account {info.acct_pay}, "
                            f"cash {info.psn_cash_pay}")

    def _query(self, settled: Settlement, psn_no: str) -> tuple[None, str]:
        answer = self._call("5203", {"data": {"setl_id": settled.setlinfo.setl_id, "psn_no": psn_no,
                                              "mdtrt_id": settled.setlinfo.mdtrt_id}})
        found = _read(Settlement, answer.output)
        if _amounts(found.setlinfo) != _amounts(settled.setlinfo) or found.setlinfo.setl_id != settled.setlinfo.setl_id:
            raise Differs("setlinfo differs from 2207's: " + _first_change(_amounts(settled.setlinfo),
                                                                            _amounts(found.setlinfo)))
        return None, f"setl_id {found.setlinfo.setl_id} as settled"

    def _fee_rows(self, mdtrt_id: str, psn_no: str, setl_id: str, count: int) -> tuple[None, str]:
        answer = self._call("5204", {"data": {"mdtrt_id": mdtrt_id, "psn_no": psn_no, "setl_id": setl_id}})
        if isinstance(answer.output, dict):
            raise Differs("output is an object (keys " + ", ".join(sorted(answer.output)) + "); the field reads the "
                          "list of fee rows")
        rows = _read(_ROWS, answer.output, "output")
        if len(rows) != count or {r.setl_id for r in rows} != {setl_id}:
            raise Differs(f"output: {len(rows)} rows of settlement(s) {sorted({r.setl_id for r in rows})}, "
                          f"expected {count} of {setl_id}")
        return None, f"{len(rows)} rows"

    def _cancel(self, infno: str, settled: Settlement, mdtrt_id: str, psn_no: str) -> tuple[None, str]:
        answer = self._call(infno, {"data": {"setl_id": settled.setlinfo.setl_id, "mdtrt_id": mdtrt_id,
                                             "psn_no": psn_no}})
        cancel = _read(Settlement, answer.output)
        _identities(cancel.setlinfo)
        negated = {k: -v for k, v in _amounts(settled.setlinfo).items()}
        if _amounts(cancel.setlinfo) != negated:
            raise Differs("setlinfo is not the settlement negated: " + _first_change(negated, _amounts(cancel.setlinfo)))
        self.booked.pop(settled.setlinfo.setl_id, None)
        if cancel.setlinfo.setl_id == settled.setlinfo.setl_id:
            raise Differs("setlinfo.setl_id: the cancellation needs a setl_id of its own")
        return None, f"setl_id {cancel.setlinfo.setl_id}: the settlement negated"

    def _discharge(self, mdtrt_id: str, psn_no: str, insutype: str) -> tuple[bool, str]:
        self._call("2402", {"dscginfo": {"mdtrt_id": mdtrt_id, "psn_no": psn_no, "insutype": insutype,
                                         "endtime": _now(self.client), "dscg_way": "1", "dscg_dept_codg": "ST",
                                         "dscg_dept_name": "自测科室"}, "diseinfo": []})
        return True, "discharged"

    def _admit_and_cancel(self, person: PersonInfo) -> tuple[None, str]:
        mdtrt_id, _ = self._open("2401", person)
        self._call("2404", {"data": {"mdtrt_id": mdtrt_id, "psn_no": person.baseinfo.psn_no}})
        return None, f"admission {mdtrt_id} cancelled"

    def _admit_and_reverse(self, person: PersonInfo) -> tuple[None, str]:
        msgid = self.client.next_msgid()
        mdtrt_id, _ = self._open("2401", person, msgid)
        self._call("2601", {"data": {"psn_no": person.baseinfo.psn_no, "omsgid": msgid, "oinfno": "2401"}})
        return None, f"admission {mdtrt_id} (2401 msgid {msgid}) reversed"

    def _totals(self) -> tuple[None, str]:
        today = f"{self.client.clock():%Y-%m-%d}"
        answer = self._call("3201", {"data": {"insutype": "310", "clr_type": "11",
                                              "setl_optins": self.client.mdtrtarea_admvs, "stmt_begndate": today,
                                              "stmt_enddate": today, "medfee_sumamt": 0, "fund_pay_sumamt": 0,
                                              "acct_pay": 0, "fixmedins_setl_cnt": 0, "refd_setl_flag": "1"}})
        info = _node(answer.output, "stmtinfo")
        if str(info.get("stmt_rslt")) not in ("0", "1"):
            raise Differs(f"output.stmtinfo.stmt_rslt: {info.get('stmt_rslt')!r}, not 0 (平) or 1 (不平)")
        return None, f"stmt_rslt {info['stmt_rslt']}"


# -- reading answers


def _read(reader: Any, value: Any, where: str = "output") -> Any:
    """``value`` read strictly; Differs naming the first field that is not as the specification types it."""
    try:
        if isinstance(reader, type) and issubclass(reader, BaseModel):
            return reader.model_validate(value)
        return reader.validate_python(value)
    except ValidationError as e:
        first = e.errors()[0]
        path = ".".join(str(p) for p in (where, *first["loc"]))
        raise Differs(f"{path}: {first['msg']} (got {first.get('input')!r})"[:300]) from None


def _node(output: Any, *names: str) -> Any:
    if not isinstance(output, dict):
        raise Differs(f"output: {type(output).__name__}, expected an object")
    for name in names:
        if name in output:
            return output[name]
    raise Differs(f"output.{names[0]}: missing")


def _amounts(info: Any) -> dict[str, Decimal]:
    return {k: getattr(info, k) for k in AMOUNTS}


def _identities(info: Any) -> None:
    try:
        fen = {k: parse_yuan(v, k, allow_negative=True) for k, v in _amounts(info).items()}
    except MoneyError as e:
        raise Differs(f"setlinfo.{e.field}: {e.problem}") from None
    broken = identity_violations({**fen, "act_pay_dedc": 0})
    if broken:
        raise Differs("setlinfo: " + broken[0])


def _first_change(expected: dict[str, Any], got: dict[str, Any]) -> str:
    key = next((k for k in expected if expected[k] != got.get(k)), "")
    return f"{key} {got.get(key)} (expected {expected.get(key)})" if key else "(no field)"


def _now(client: HisClient) -> str:
    return f"{client.clock():%Y-%m-%d %H:%M:%S}"


def _stamp(client: HisClient) -> str:
    now = client.clock()
    return f"{now:%H%M%S}{now.microsecond // 1000:03d}" if isinstance(now, datetime) else "0"


# -- the table


def table(outcomes: list[Outcome]) -> str:
    """The conformance table: one line per transaction, its result and the first difference."""
    marks = {True: "符合 conforms", False: "不符 DIFFERS", None: "未执行 not run"}
    lines = [f"{_pad('交易', 12)}{_pad('名称', 18)}{_pad('结果', 16)}首个差异 / 说明"]
    for o in outcomes:
        lines.append(f"{_pad(o.infno, 12)}{_pad(o.title, 18)}{_pad(marks[o.ok], 16)}{o.note}")
    conforming = sum(1 for o in outcomes if o.ok)
    lines.append(f"{conforming} of {len(outcomes)} conform")
    return "\n".join(lines)


def _pad(text: str, width: int) -> str:
    """``text`` padded to ``width`` terminal columns (a CJK character takes two)."""
    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(1, width - used)
