"""Chronic and special outpatient disease filings (``medpay.services.filings``):

- 2503 门慢门特病种备案 ``data{psn_no, insutype, opsp_dise_code, opsp_dise_name, tel, addr, insu_optins,
  ide_fixmedins_no, ide_fixmedins_name, hosp_ide_date, diag_dr_codg, diag_dr_name, begndate, enddate}`` →
  ``{"result": {"trt_dcla_detl_sn"}}``
- 2504 备案撤销 ``data{trt_dcla_detl_sn, psn_no, memo (the reason)}`` → ``{}``
- 5301 人员慢特病备案查询 ``data{psn_no}`` → ``{"feedetail": [{opsp_dise_code, opsp_dise_name, begndate, enddate,
  trt_dcla_detl_sn}]}``

Fields and lengths as newtouch-cloud/openhis's models copy the specification (Input_2503.cs, Input_2504.cs,
Output_2503.cs, Output_5301.cs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medpay.api.institution.transactions import Call, day, handler, node, text
from medpay.services.errors import Invalid
from medpay.services.filings import Filing, FilingService
from medpay.services.persons import PRESENTATION_VALID

LENGTHS_2503 = {"psn_no": 30, "insutype": 6, "opsp_dise_code": 30, "opsp_dise_name": 300, "tel": 50, "addr": 200,
                "insu_optins": 6, "ide_fixmedins_no": 30, "ide_fixmedins_name": 200, "diag_dr_codg": 30,
                "diag_dr_name": 50}
OPTIONAL_2503 = {"tel", "addr"}


def _service(call: Call) -> FilingService:
    return FilingService(call.platform.factory, call.platform.settlement.clock, PRESENTATION_VALID)


def _texts(d: Mapping[str, Any], lengths: dict[str, int], optional: set[str] = frozenset()) -> dict[str, str]:
    values = {}
    for key, limit in lengths.items():
        value = text(d, key, "data", required=key not in optional)
        if len(value) > limit:
            raise Invalid(f"data.{key}", f"longer than {limit} characters")
        values[key] = value
    return values


@handler("2503")
def file_disease(call: Call) -> dict:
    d = node(call, "data")
    values = _texts(d, LENGTHS_2503, OPTIONAL_2503)
    for contact in OPTIONAL_2503:  # checked, not kept
        values.pop(contact)
    filing = Filing(**values, hosp_ide_date=day(d, "hosp_ide_date", "data"), begndate=day(d, "begndate", "data"),
                    enddate=day(d, "enddate", "data", required=False))
    return {"result": {"trt_dcla_detl_sn": _service(call).file(call.fixmedins_code, filing, msgid=call.env.msgid)}}


@handler("2504")
def cancel_filing(call: Call) -> dict:
    d = node(call, "data")
    values = _texts(d, {"trt_dcla_detl_sn": 30, "psn_no": 30, "memo": 500})
    _service(call).cancel(call.fixmedins_code, values["trt_dcla_detl_sn"], values["psn_no"], values["memo"],
                          msgid=call.env.msgid)
    return {}


@handler("5301")
def query_filings(call: Call) -> dict:
    d = node(call, "data")
    psn_no = _texts(d, {"psn_no": 30})["psn_no"]
    return {"feedetail": _service(call).of_person(call.fixmedins_code, psn_no, ref=call.env.msgid)}
