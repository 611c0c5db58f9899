"""4101 医疗保障基金结算清单信息上传 (``medpay.services.settlement_lists``):

``input{setlinfo{…}, payinfo[{fund_pay_type, fund_payamt}], opspdiseinfo[…], diseinfo[…], iteminfo[…],
oprninfo[…], icuinfo[…]}`` → ``{"setl_list_id"}`` (清单流水号).

``setlinfo``'s fields, lengths and required marks as the specification's table 154 gives them (newtouch-cloud/
openhis Input_4101.cs); the fields an inpatient stay alone has (admission, discharge, wards) are not required, so
an outpatient chronic-disease list passes. The lists are checked to be lists of objects and kept as sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from medpay.api.institution.transactions import Call, day, handler, node, text
from medpay.domain.person_records import ListAmounts
from medpay.money import MoneyError, parse_yuan
from medpay.services.errors import Invalid
from medpay.services.settlement_lists import SettlementList, SettlementLists

# setlinfo text fields: name → (longest, required)
SETLINFO_TEXT = {
    "mdtrt_id": (30, True), "setl_id": (30, True), "fixmedins_name": (200, True), "fixmedins_code": (12, True),
    "hi_setl_lv": (3, False), "hi_no": (30, False), "medcasno": (40, True), "psn_name": (50, True),
    "gend": (6, True), "ntly": (6, True), "naty": (3, True), "patn_cert_type": (3, True), "certno": (50, True),
    "prfs": (6, True), "curr_addr": (200, False), "emp_name": (200, False), "emp_addr": (200, False),
    "emp_tel": (50, False), "poscode": (6, False), "coner_name": (50, True), "patn_rlts": (6, True),
    "coner_addr": (200, True), "coner_tel": (50, True), "hi_type": (3, True), "insuplc": (6, True),
    "sp_psn_type": (6, False), "ipt_med_type": (3, False), "adm_caty": (6, False), "dscg_caty": (6, False),
    "otp_wm_dise": (200, False), "wm_dise_code": (20, False), "otp_tcm_dise": (200, False),
    "tcm_dise_code": (20, False), "maindiag_flag": (3, True), "bill_code": (50, True), "bill_no": (30, True),
    "biz_sn": (50, True), "hi_paymtd": (3, True), "hsorg": (100, True), "hsorg_opter": (50, True),
    "medins_fill_dept": (100, True), "medins_fill_psn": (50, True),
}
SETLINFO_AMOUNTS = ("psn_selfpay", "psn_ownpay", "acct_pay", "psn_cashpay")  # 数值型 16,2, required
LISTS = ("payinfo", "opspdiseinfo", "diseinfo", "iteminfo", "oprninfo", "icuinfo")


def _amount(d: Mapping[str, Any], key: str, path: str) -> int:
    value = d.get(key)
    if value is None or value == "":
        raise Invalid(f"{path}.{key}", "missing")
    try:
        return parse_yuan(value, f"{path}.{key}")
    except MoneyError as e:
        raise Invalid(e.field, e.problem) from None


def _plain(value: Any, path: str) -> None:
    """What is stored as sent must be storable: text without NUL or unpaired surrogates, finite numbers."""
    if isinstance(value, str):
        if "\x00" in value:
            raise Invalid(path, "contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Invalid(path, "is not valid text (an unpaired surrogate)") from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise Invalid(path, "must be a finite number")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _plain(k, path)
            _plain(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _plain(v, f"{path}[{i}]")


def _list(call: Call, name: str) -> list[Mapping[str, Any]]:
    value = call.env.input.get(name)
    if value is None:
        return []
    if isinstance(value, Mapping):  # a single row sent as an object
        value = [value]
    if not isinstance(value, list) or not all(isinstance(row, Mapping) for row in value):
        raise Invalid(f"input.{name}", "must be a list of objects")
    return value


@handler("4101")
def upload_settlement_list(call: Call) -> dict:
    info = node(call, "setlinfo")
    for key, (limit, required) in SETLINFO_TEXT.items():
        if len(text(info, key, "setlinfo", required=required)) > limit:
            raise Invalid(f"setlinfo.{key}", f"longer than {limit} characters")
    if text(info, "fixmedins_code", "setlinfo") != call.fixmedins_code:
        raise Invalid("setlinfo.fixmedins_code", "is not the institution sending the list")
    day(info, "brdy", "setlinfo")
    begin, end = day(info, "setl_begn_date", "setlinfo"), day(info, "setl_end_date", "setlinfo")
    if end < begin:
        raise Invalid("setlinfo.setl_end_date", f"{end} is before setl_begn_date {begin}")
    amounts = {key: _amount(info, key, "setlinfo") for key in SETLINFO_AMOUNTS}
    lists = {name: _list(call, name) for name in LISTS}
    payments = tuple((_fund_type(row, f"payinfo[{i}]"), _amount(row, "fund_payamt", f"payinfo[{i}]"))
                     for i, row in enumerate(lists["payinfo"]))
    body = {"setlinfo": dict(info), **lists}
    _plain(body, "input")
    service = SettlementLists(call.platform.factory, call.platform.cipher, call.platform.settlement.clock)
    return service.upload(call.fixmedins_code, call.env.msgid, SettlementList(
        setl_id=text(info, "setl_id", "setlinfo"), mdtrt_id=text(info, "mdtrt_id", "setlinfo"),
        hi_no=text(info, "hi_no", "setlinfo", required=False),
        amounts=ListAmounts(**amounts, fund_payments=payments), body=body))


def _fund_type(row: Mapping[str, Any], path: str) -> str:
    code = text(row, "fund_pay_type", path)
    if len(code) > 6:
        raise Invalid(f"{path}.fund_pay_type", "longer than 6 characters")
    return code
