"""The transactions that describe a visit and carry its diagnosis lists (``diseinfo``, read by
``diagnosis_input``; kept by ``medpay.services.visit_diagnoses``, answered by 5202):

- 2203/2203A 门诊就诊信息上传 ``mdtrtinfo{mdtrt_id, psn_no, med_type, dise_codg, dise_name…}`` + ``diseinfo[]``: the
  visit's medical type and main diagnosis; the list replaces the visit's outpatient list;
- 2401 入院办理 ``mdtrtinfo{psn_no, insutype, begntime, med_type, ipt_no, dise_codg…}`` + ``diseinfo[]`` →
  ``{"result": {mdtrt_id, psn_no, ipt_otp_no}}``: opens the admission with its admission list (入院诊断);
- 2402 出院办理 ``dscginfo{mdtrt_id, psn_no, endtime…}`` + ``diseinfo[]``: the discharge and its list (出院诊断).

Each list is stored in the transaction's own unit of work, once per msgid; a refused row stores nothing.
"""

from __future__ import annotations

from medpay.api.institution.diagnosis_input import diagnoses
from medpay.api.institution.transactions import Call, handler, node, open_visit, target_visit, text, timestamp
from medpay.domain.diagnoses import ADMISSION, DISCHARGE


@handler("2203", "2203A")
def visit_info(call: Call) -> dict:
    d, mdtrt_id, psn_no = target_visit(call, "mdtrtinfo")
    call.platform.settlement.update_visit(
        call.fixmedins_code, mdtrt_id, med_type=text(d, "med_type", "mdtrtinfo", required=False) or None,
        dise_codg=text(d, "dise_codg", "mdtrtinfo", required=False),
        dise_name=text(d, "dise_name", "mdtrtinfo", required=False), msgid=call.env.msgid, psn_no=psn_no,
        diagnoses=diagnoses(call))
    return {}


@handler("2401")
def admit(call: Call) -> dict:
    d = node(call, "mdtrtinfo")
    return {"result": open_visit(call, d, "mdtrtinfo", text(d, "med_type", "mdtrtinfo", required=False, default="21"),
                                 diagnoses(call, ADMISSION))}


@handler("2402")
def discharge(call: Call) -> dict:
    d, mdtrt_id, psn_no = target_visit(call, "dscginfo")
    call.platform.settlement.discharge(call.fixmedins_code, mdtrt_id, timestamp(d, "endtime", "dscginfo"),
                                       msgid=call.env.msgid, psn_no=psn_no, diagnoses=diagnoses(call, DISCHARGE))
    return {}
