"""One handler per ``infno``: read the input node(s), call a service, shape the output (yuan).

Handlers raise ``ServiceError`` (→ infcode −2 naming the field); the route turns anything else into −1.
Every write passes the envelope's ``msgid`` down, so the service applies it exactly once.
"""

from __future__ import annotations

import logging
import re

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from collections.abc import Callable, Mapping
from typing import Any

from medpay.api.institution.envelope import Envelope, EnvelopeError, as_text
from medpay.api.platform import Platform
from medpay.domain.diagnoses import Diagnosis
from medpay.interface_format import to_yuan
from medpay.local_time import INTERFACE_FORMAT, LOCAL_TZ, format_local
from medpay.services.credentials import Credential
from medpay.services.errors import Invalid
from medpay.services.mobile.stay import refund_released
from medpay.services.settlement import DECLARED_AMOUNTS, FeeLineInput, SettleRequest

log = logging.getLogger("medpay.institution")


@dataclass
class Call:
    env: Envelope
    fixmedins_code: str
    platform: Platform


Handler = Callable[[Call], Any]
HANDLERS: dict[str, Handler] = {}
# transactions that need no active sign-in (sign_no) first
NO_SIGN_IN = {"9001", "9002"}


def handler(*infnos: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for infno in infnos:
            HANDLERS[infno] = fn
        return fn

    return register


# ------------------------------------------------------------------------------------------ input access

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def node(call: Call, name: str) -> Mapping[str, Any]:
    value = call.env.input.get(name)
    if value is None:  # a HIS that turns its keys from camelCase to snake_case sends signIn as sign_in
        value = call.env.input.get(_CAMEL.sub(r"_\1", name).lower())
    if value is None:
        raise Invalid(f"input.{name}", "missing")
    if not isinstance(value, Mapping):
        raise Invalid(f"input.{name}", "must be an object")
    return value


def rows(call: Call, name: str) -> list[Mapping[str, Any]]:
    value = call.env.input.get(name)
    if isinstance(value, Mapping):  # a single row sent as an object
        value = [value]
    if not isinstance(value, list) or not value:
        raise Invalid(f"input.{name}", "must be a non-empty list")
    for i, row in enumerate(value):
        if not isinstance(row, Mapping):
            raise Invalid(f"input.{name}[{i}]", "must be an object")
    return value


# longest value of input fields that are stored (the column's length; PostgreSQL refuses longer values)
MAX_LENGTHS = {"mdtrt_cert_type": 3, "insutype": 6, "med_type": 6, "ipt_otp_no": 30, "ipt_no": 30, "dise_codg": 30,
               "dise_name": 200, "feedetl_sn": 30, "chrg_bchno": 30, "medins_list_codg": 50, "med_list_codg": 50,
               "omsgid": 30, "mdtrt_cert_no": 64, "card_sn": 64, "psn_no": 30, "mdtrt_id": 30, "setl_id": 30,
               "opter_no": 30, "sign_no": 30, "mac": 64, "ip": 64, "oinfno": 10, "cum_ym": 6,
               "exct_cont": 2000, "item_cont": 2000}
TEXT_LIMIT = 1000  # any other text field: nothing the interface names is longer


def text(d: Mapping[str, Any], key: str, path: str, *, required: bool = True, default: str = "") -> str:
    try:
        value = as_text(d.get(key), f"{path}.{key}")
    except EnvelopeError as e:
        raise Invalid(e.field, e.message) from None
    if not value:
        if required:
            raise Invalid(f"{path}.{key}", "missing")
        return default
    limit = MAX_LENGTHS.get(key, TEXT_LIMIT)
    if len(value) > limit:
        raise Invalid(f"{path}.{key}", f"longer than {limit} characters")
    return value


def flag(d: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    value = text(d, key, path, required=False)
    if not value:
        return default
    if value not in ("0", "1"):
        raise Invalid(f"{path}.{key}", f"must be 0 or 1; got {value!r}")
    return value == "1"


def timestamp(d: Mapping[str, Any], key: str, path: str) -> datetime | None:
    value = text(d, key, path, required=False)
    if not value:
        return None
    for fmt in (INTERFACE_FORMAT, "%Y-%m-%d", "%Y%m%d%H%M%S"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=LOCAL_TZ)
        except ValueError:
            continue
    raise Invalid(f"{path}.{key}", f"must be a time yyyy-MM-dd HH:mm:ss; got {value!r}")


def day(d: Mapping[str, Any], key: str, path: str, *, required: bool = True) -> date | None:
    """A date yyyy-MM-dd (a date-time's day is taken too, as HIS send both)."""
    value = text(d, key, path, required=required)
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10]) if len(value) in (10, 19) else date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{path}.{key}", f"must be a date yyyy-MM-dd; got {value!r}") from None


def target_visit(call: Call, name: str = "data") -> tuple[Mapping[str, Any], str, str]:
    """The input node, the visit it names and the person it names ("" if none: the service checks that a
    named person is the visit's, and that the visit is this institution's)."""
    d = node(call, name)
    return d, text(d, "mdtrt_id", name), text(d, "psn_no", name, required=False)


# ------------------------------------------------------------------------------------------ 9xxx, 1101, 2001


@handler("9001")
def sign_in(call: Call) -> dict:
    d = node(call, "signIn")
    sign_no, sign_time = call.platform.sign_in.sign_in(call.fixmedins_code, text(d, "opter_no", "signIn"),
                                                       text(d, "mac", "signIn", required=False),
                                                       text(d, "ip", "signIn", required=False),
                                                       msgid=call.env.msgid)
    return {"signinoutb": {"sign_no": sign_no, "sign_time": format_local(sign_time)}}


@handler("9002")
def sign_out(call: Call) -> dict:
    d = node(call, "signOut")
    when = call.platform.sign_in.sign_out(call.fixmedins_code, text(d, "sign_no", "signOut"),
                                          text(d, "opter_no", "signOut", required=False), msgid=call.env.msgid)
    return {"signoutoutb": {"sign_time": format_local(when)}}


@handler("1101")
def person_info(call: Call) -> dict:
    d = node(call, "data")
    cert_type = text(d, "mdtrt_cert_type", "data")
    cert_no = text(d, "mdtrt_cert_no", "data", required=False) or (text(d, "certno", "data") if cert_type == "02" else "")
    if not cert_no:
        raise Invalid("data.mdtrt_cert_no", "missing")
    out = call.platform.persons.person_info(call.fixmedins_code, cert_type, cert_no,
                                            text(d, "card_sn", "data", required=False), ref=call.env.msgid)
    return to_yuan(out)


@handler("2001")
def eligibility(call: Call) -> dict:
    d = node(call, "data")
    psn_no = text(d, "psn_no", "data")
    med_type = text(d, "med_type", "data", required=False, default="11")
    row = call.platform.settlement.eligibility(call.fixmedins_code, psn_no)
    insured = row.psn_insu_stas == "1"
    return {"trtinfo": [{"fund_pay_type": "310100" if row.insutype.startswith("31") else "390100",
                         "trt_chk_type": "1", "trt_enjymnt_flag": "1" if insured else "0", "med_type": med_type,
                         "memo": "" if insured else "参保状态非正常参保缴费"}]}


# ------------------------------------------------------------------------------------------ visits


def credential(d: Mapping[str, Any], path: str) -> Credential | None:
    """The credential a visit's transaction names (``mdtrt_cert_type``/``mdtrt_cert_no``, ``card_sn``), if any."""
    return Credential.of(text(d, "mdtrt_cert_type", path, required=False), text(d, "mdtrt_cert_no", path, required=False),
                         text(d, "card_sn", path, required=False))


def open_visit(call: Call, d: Mapping[str, Any], path: str, med_type: str, diagnoses: tuple[Diagnosis, ...] = (),
               ) -> dict:
    psn_no = text(d, "psn_no", path)
    visit = call.platform.settlement.register_visit(
        call.fixmedins_code, psn_no, med_type, insutype=text(d, "insutype", path, required=False) or None,
        begntime=timestamp(d, "begntime", path), dise_codg=text(d, "dise_codg", path, required=False),
        dise_name=text(d, "dise_name", path, required=False),
        mdtrt_cert_type=text(d, "mdtrt_cert_type", path, required=False),
        ipt_otp_no=text(d, "ipt_otp_no", path, required=False) or text(d, "ipt_no", path, required=False),
        msgid=call.env.msgid, credential=credential(d, path), diagnoses=diagnoses)
    return {"mdtrt_id": visit.mdtrt_id, "psn_no": visit.psn_no, "ipt_otp_no": visit.ipt_otp_no}


@handler("2201")
def register(call: Call) -> dict:
    d = node(call, "data")
    return {"data": open_visit(call, d, "data", text(d, "med_type", "data", required=False, default="11"))}


@handler("2202", "2404")
def visit_cancel(call: Call) -> dict:
    """Registration cancel (2202) and admission cancel (2404)."""
    _d, mdtrt_id, psn_no = target_visit(call)
    call.platform.settlement.cancel_visit(call.fixmedins_code, mdtrt_id, msgid=call.env.msgid, psn_no=psn_no)
    return {}


# 2203 visit information, 2401 admission and 2402 discharge, with their diagnosis lists: visit_info_handlers


@handler("2405")
def discharge_cancel(call: Call) -> dict:
    _d, mdtrt_id, psn_no = target_visit(call)
    call.platform.settlement.undo_discharge(call.fixmedins_code, mdtrt_id, msgid=call.env.msgid, psn_no=psn_no)
    return {}


# ------------------------------------------------------------------------------------------ fee lines

LINE_DEFAULTS = {"bas_medn_flag": "0", "hi_nego_drug_flag": "0", "chld_medc_flag": "0", "list_sp_item_flag": "0",
                 "lmt_used_flag": "0", "drt_reim_flag": "0", "memo": ""}


# What else a fee line may say of itself, kept for 5204 (longest length as the spec's 2204 table gives it; ZJ2204.cs):
# prescription or order, dosage, departments and doctors, flags. rxno (2204) and drord_no (2301) become rx_drord_no.
LINE_DETAILS = {"sin_dos_dscr": 200, "used_frqu_dscr": 200, "medc_way_dscr": 200, "bilg_dept_codg": 30,
                "bilg_dept_name": 100, "bilg_dr_codg": 30, "bilg_dr_name": 50, "acord_dept_codg": 30,
                "acord_dept_name": 100, "orders_dr_code": 30, "orders_dr_name": 50, "hosp_appr_flag": 3,
                "tcmdrug_used_way": 6, "etip_flag": 3, "etip_hosp_code": 30, "dscg_tkdrug_flag": 3, "matn_fee_flag": 6,
                "medins_list_name": 100}


def _line_details(call: Call, r: Mapping[str, Any], path: str) -> dict[str, Any]:
    details: dict[str, Any] = {}
    for key, limit in LINE_DETAILS.items():
        value = text(r, key, path, required=False)
        if len(value) > limit:
            raise Invalid(f"{path}.{key}", f"longer than {limit} characters")
        if value:
            details[key] = value
    order = text(r, "rxno", path, required=False) or text(r, "drord_no", path, required=False)
    if len(order) > 30:
        raise Invalid(f"{path}.rxno", "longer than 30 characters")
    if order:
        details["rx_drord_no"] = order
    if r.get("prd_days") not in (None, ""):
        details["prd_days"] = _decimal(r, "prd_days", path, places=2, limit=Decimal(10000))
    details["opter_id"], details["opter_name"] = call.env.get("opter"), call.env.get("opter_name")
    return details


def _decimal(d: Mapping[str, Any], key: str, path: str, *, places: int, limit: Decimal) -> str:
    """A decimal number (number or text) with at most ``places`` decimals, 0 ≤ value < ``limit``, as text."""
    value = _number(d, key, path)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise Invalid(f"{path}.{key}", f"must be a number; got {value!r}") from None
    if not number.is_finite() or not 0 <= number < limit or number.as_tuple().exponent < -places:
        raise Invalid(f"{path}.{key}", f"must be a number from 0 to below {limit} with at most {places} decimals")
    return str(number)


@handler("2204", "2301")
def upload_fees(call: Call) -> dict:
    lines = rows(call, "feedetail")
    mdtrt_ids = {text(r, "mdtrt_id", f"feedetail[{i}]") for i, r in enumerate(lines)}
    if len(mdtrt_ids) != 1:
        raise Invalid("feedetail.mdtrt_id", "all lines of one upload must belong to one visit")
    mdtrt_id = mdtrt_ids.pop()
    inputs = [fee_line_input(call, r, f"feedetail[{i}]") for i, r in enumerate(lines)]
    result = call.platform.settlement.upload_fees(call.fixmedins_code, mdtrt_id, inputs, msgid=call.env.msgid,
                                                  psn_no=text(lines[0], "psn_no", "feedetail[0]", required=False))
    return {"result": line_results(result)}


def fee_line_input(call: Call, r: Mapping[str, Any], path: str) -> FeeLineInput:
    """One fee line as 2204/2301 send it (a pharmacy's drug line of 2101/2102 alike)."""
    return FeeLineInput(
        feedetl_sn=text(r, "feedetl_sn", path), med_list_codg=text(r, "med_list_codg", path, required=False),
        cnt=_number(r, "cnt", path), pric=_number(r, "pric", path),
        det_item_fee_sumamt=_number(r, "det_item_fee_sumamt", path),
        fee_ocur_time=timestamp(r, "fee_ocur_time", path), chrg_bchno=text(r, "chrg_bchno", path, required=False),
        medins_list_codg=text(r, "medins_list_codg", path, required=False),
        details=_line_details(call, r, path))


def line_results(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each line's split (fen) as 2204's ``result`` rows give it: numbers typed as the spec's table, yuan."""
    return [to_yuan({**LINE_DEFAULTS, **row, "cnt": float(row["cnt"]), "pric": float(row["pric"]),
                     "selfpay_prop": float(row["selfpay_prop"]),
                     "pric_uplmt_amt": row["pric_uplmt_amt"] if row["pric_uplmt_amt"] is not None else 999999_00})
            for row in result]


def _number(d: Mapping[str, Any], key: str, path: str) -> Any:
    value = d.get(key)
    if value is None or value == "":
        raise Invalid(f"{path}.{key}", "missing")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Invalid(f"{path}.{key}", "must be a number")
    if isinstance(value, str):
        text(d, key, path)  # no NUL, no unpaired surrogate
    return value


@handler("2205")
def cancel_fees_outpatient(call: Call) -> dict:
    d, mdtrt_id, psn_no = target_visit(call)
    call.platform.settlement.cancel_fees(call.fixmedins_code, mdtrt_id, chrg_bchno=text(d, "chrg_bchno", "data"),
                                         msgid=call.env.msgid, psn_no=psn_no)
    return {}


@handler("2302")
def cancel_fees_inpatient(call: Call) -> dict:
    d, mdtrt_id, psn_no = target_visit(call)
    call.platform.settlement.cancel_fees(call.fixmedins_code, mdtrt_id, feedetl_sn=text(d, "feedetl_sn", "data"),
                                         msgid=call.env.msgid, psn_no=psn_no)
    return {}


# ------------------------------------------------------------------------------------------ settlement


def _settle_input(call: Call) -> tuple[Mapping[str, Any], str, str, dict[str, Any]]:
    d, mdtrt_id, psn_no = target_visit(call)
    return d, mdtrt_id, psn_no, declared_sums(d)


def declared_sums(d: Mapping[str, Any]) -> dict[str, Any]:
    """The sums a (pre-)settlement declares (``DECLARED_AMOUNTS``), after its ``psn_setlway`` is checked."""
    setlway = text(d, "psn_setlway", "data", required=False, default="01")
    if setlway == "02":  # honoured once policies carry quotas per disease; until then refused, never ignored
        raise Invalid("data.psn_setlway", "02 按定额结算 (settlement by a disease's quota) is not possible: the "
                                          "region's policy defines no quota for any disease; settle 01 按项目结算")
    if setlway != "01":
        raise Invalid("data.psn_setlway", f"must be 01 (按项目结算) or 02 (按定额结算); got {setlway!r}")
    declared = {k: d[k] for k in DECLARED_AMOUNTS if d.get(k) not in (None, "")}
    for k in declared:
        if isinstance(declared[k], str):
            text(d, k, "data", required=False)  # no NUL, no unpaired surrogate
    return declared


@handler("2206", "2206A", "2303")
def presettle(call: Call) -> dict:
    d, mdtrt_id, psn_no, declared = _settle_input(call)
    quote = call.platform.settlement.presettle(
        call.fixmedins_code, mdtrt_id, acct_used_flag=flag(d, "acct_used_flag", "data", True),
        mid_setl_flag=flag(d, "mid_setl_flag", "data", False), declared=declared, psn_no=psn_no, with_identity=True,
        ref=call.env.msgid, credential=credential(d, "data"))
    return to_yuan({"setlinfo": quote.setlinfo, "setldetail": quote.setldetail})


@handler("2207", "2207A", "2304")
def settle(call: Call) -> dict:
    d, mdtrt_id, psn_no, declared = _settle_input(call)
    out = call.platform.settlement.settle(SettleRequest(
        call.fixmedins_code, call.env.msgid, mdtrt_id, acct_used_flag=flag(d, "acct_used_flag", "data", True),
        mid_setl_flag=flag(d, "mid_setl_flag", "data", False), declared=declared, psn_no=psn_no,
        credential=credential(d, "data")), with_identity=True)
    if out["setlinfo"].get("deposit_refund") and call.platform.one_scan is not None:
        # what is left of deposits paid in the app goes back through the gateway (原路退回); the settlement stands
        # whatever the gateway answers now — a refund not made here is made by the payments' recovery
        try:
            refund_released(call.platform.factory, call.platform.one_scan.gateway, call.platform.settlement.clock,
                            mdtrt_id)
        except Exception:
            log.exception("deposit refund of %s after 2304 not made; recovery retries it", mdtrt_id)
    return to_yuan(out)


@handler("2208", "2305")
def cancel_settlement(call: Call) -> dict:
    d = node(call, "data")
    setl_id = text(d, "setl_id", "data")
    out = call.platform.settlement.cancel(call.fixmedins_code, call.env.msgid, setl_id,
                                          text(d, "psn_no", "data", required=False) or None, with_identity=True)
    if call.platform.one_scan is not None:  # paid through the gateway (app, scan): the cash goes back the same way
        call.platform.one_scan.refund_cancelled(setl_id)
    return to_yuan(out)


@handler("2601")
def reverse(call: Call) -> dict:
    d = node(call, "data")
    out = call.platform.settlement.reverse(call.fixmedins_code, call.env.msgid, text(d, "omsgid", "data"),
                                           text(d, "oinfno", "data"), text(d, "psn_no", "data", required=False))
    return {"data": out}
