"""Strict readers of the institution interface's outputs, written from the specification's field tables.

Source: the 深圳 HIS models of ``binzhe12123/Medical`` (``SZSI_Smart/Model/SYB``), which copy the specification's
table for each transaction — name, type (字符型 text, 数值型 number, 日期型 date, 日期时间型 date-time), length,
dictionary, required — into comments: ``YBJS/JS2207.cs`` (setlinfo, setldetail), ``YBJS/ZJ2204.cs`` (2204 result),
``XXCX/FY5204.cs`` (5204 rows), ``JBXX/RY1101.cs`` (1101). A field the table marks required is required here and
never null; 数值型 is a JSON number (a string is refused, as a typed HIS client refuses it), 字符型 a JSON string.
Keys the table does not list are allowed (real platforms send more).

These models are the one statement of the interface's output types: the server conforms what it sends to them
(``medpay.interface_format``: one type per field across every transaction), the tests and ``medpay his selftest``
read answers with them. No project imports.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, StrictStr, StringConstraints


def _json_number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError("must be a number (数值型), not " + type(value).__name__)
    return value if isinstance(value, Decimal) else Decimal(str(value))  # (str: the float as JSON wrote it)


Number = Annotated[Decimal, BeforeValidator(_json_number)]  # 数值型
Text = StrictStr  # 字符型
Date = Annotated[str, StringConstraints(strict=True, pattern=r"^\d{4}-\d{2}-\d{2}$")]  # 日期型 yyyy-MM-dd
DateTime = Annotated[str, StringConstraints(strict=True, pattern=r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")]  # 日期时间型


class SpecModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class SetlInfo(SpecModel):
    """2207 ``setlinfo`` (also 2206, 2208, 2303, 2304, 2305, 5203): JS2207.cs Out2207.SetlInfo."""

    mdtrt_id: Text
    setl_id: Text
    psn_no: Text
    psn_name: Text
    psn_cert_type: Text
    certno: Text
    gend: Text | None = None
    naty: Text | None = None
    brdy: Date | None = None
    age: Number | None = None
    insutype: Text | None = None
    psn_type: Text
    cvlserv_flag: Text
    setl_time: DateTime
    mdtrt_cert_type: Text | None = None
    med_type: Text
    medfee_sumamt: Number
    fulamt_ownpay_amt: Number
    overlmt_selfpay: Number
    preselfpay_amt: Number
    inscp_scp_amt: Number
    act_pay_dedc: Number | None = None
    hifp_pay: Number
    pool_prop_selfpay: Number
    cvlserv_pay: Number
    hifes_pay: Number
    hifmi_pay: Number
    hifob_pay: Number
    maf_pay: Number
    oth_pay: Number
    fund_pay_sumamt: Number
    psn_part_amt: Number
    acct_pay: Number
    psn_cash_pay: Number
    hosp_part_amt: Number
    balc: Number
    acct_mulaid_pay: Number
    medins_setl_id: Text
    clr_optins: Text | None = None
    clr_way: Text | None = None
    clr_type: Text


class SetlDetail(SpecModel):
    """2207 ``setldetail`` rows: JS2207.cs Out2207.SetlDetail."""

    fund_pay_type: Text
    inscp_scp_amt: Number
    crt_payb_lmt_amt: Number
    fund_payamt: Number
    fund_pay_type_name: Text | None = None
    setl_proc_info: Text | None = None


class Settlement(SpecModel):
    """The output of 2206/2207/2208, 2303/2304/2305 and 5203."""

    setlinfo: SetlInfo
    setldetail: list[SetlDetail]


class FeeResult(SpecModel):
    """2204/2301 ``result`` rows: ZJ2204.cs Out2204.Result."""

    feedetl_sn: Text
    det_item_fee_sumamt: Number
    cnt: Number
    pric: Number
    pric_uplmt_amt: Number
    selfpay_prop: Number | None = None
    fulamt_ownpay_amt: Number | None = None
    overlmt_amt: Number | None = None
    preselfpay_amt: Number | None = None
    inscp_scp_amt: Number | None = None
    chrgitm_lv: Text
    med_chrgitm_type: Text
    bas_medn_flag: Text | None = None
    hi_nego_drug_flag: Text | None = None
    chld_medc_flag: Text | None = None
    list_sp_item_flag: Text | None = None
    lmt_used_flag: Text
    drt_reim_flag: Text | None = None
    memo: Text | None = None


class FeeRow(SpecModel):
    """5204 费用明细查询, one row: FY5204.cs Out5204. The field reads ``output`` as the list of these rows."""

    mdtrt_id: Text
    setl_id: Text
    feedetl_sn: Text
    rx_drord_no: Text | None = None
    med_type: Text
    fee_ocur_time: DateTime
    cnt: Number
    pric: Number
    sin_dos_dscr: Text | None = None
    used_frqu_dscr: Text | None = None
    prd_days: Number | None = None
    medc_way_dscr: Text | None = None
    det_item_fee_sumamt: Number
    pric_uplmt_amt: Number
    selfpay_prop: Number | None = None
    fulamt_ownpay_amt: Number | None = None
    overlmt_amt: Number | None = None
    preselfpay_amt: Number | None = None
    inscp_scp_amt: Number | None = None
    chrgitm_lv: Text
    hilist_code: Text
    hilist_name: Text
    list_type: Text
    med_list_codg: Text
    medins_list_codg: Text
    medins_list_name: Text
    med_chrgitm_type: Text
    prodname: Text | None = None
    spec: Text | None = None
    dosform_name: Text
    bilg_dept_codg: Text | None = None
    bilg_dept_name: Text | None = None
    bilg_dr_codg: Text | None = None
    bilg_dr_name: Text | None = None
    acord_dept_codg: Text | None = None
    acord_dept_name: Text | None = None
    orders_dr_code: Text | None = None
    orders_dr_name: Text | None = None
    lmt_used_flag: Text | None = None
    hosp_prep_flag: Text | None = None
    hosp_appr_flag: Text | None = None
    tcmdrug_used_way: Text | None = None
    prodplac_type: Text | None = None
    bas_medn_flag: Text | None = None
    hi_nego_drug_flag: Text | None = None
    chld_medc_flag: Text | None = None
    etip_flag: Text | None = None
    etip_hosp_code: Text | None = None
    dscg_tkdrug_flag: Text | None = None
    list_sp_item_flag: Text | None = None
    matn_fee_flag: Text | None = None
    drt_reim_flag: Text | None = None
    memo: Text | None = None
    opter_id: Text | None = None
    opter_name: Text | None = None
    opt_time: DateTime | None = None


class BaseInfo(SpecModel):
    """1101 ``baseinfo``: RY1101.cs Out1101.BaseInfo."""

    psn_no: Text
    psn_cert_type: Text
    certno: Text
    psn_name: Text
    gend: Text
    naty: Text | None = None
    brdy: Date | None = None
    age: Number


class InsuInfo(SpecModel):
    """1101 ``insuinfo`` rows: RY1101.cs Out1101.InsuInfo."""

    balc: Number
    insutype: Text
    psn_type: Text
    psn_insu_stas: Text | None = None
    psn_insu_date: Date | None = None
    paus_insu_date: Date | None = None
    cvlserv_flag: Text
    insuplc_admdvs: Text
    emp_name: Text | None = None


class IdetInfo(SpecModel):
    """1101 ``idetinfo`` rows: RY1101.cs Out1101.IdetInfo."""

    psn_idet_type: Text
    psn_type_lv: Text | None = None
    memo: Text | None = None
    begntime: DateTime
    endtime: DateTime | None = None


class PersonInfo(SpecModel):
    """The output of 1101."""

    baseinfo: BaseInfo
    insuinfo: list[InsuInfo]
    idetinfo: list[IdetInfo]


class DiseaseFiling(SpecModel):
    """5301 ``feedetail`` rows: newtouch-cloud/openhis Output_5301.cs (门慢门特病种目录代码, 名称, 开始日期 required,
    结束日期)."""

    opsp_dise_code: Text
    opsp_dise_name: Text
    begndate: Date
    enddate: Date | None = None


class DictEntry(SpecModel):
    """1901 ``list`` rows: SZ Dic1901.cs / openhis Output_1901.cs (sort and version 整型)."""

    type: Text
    label: Text
    value: Text
    parent_value: Text
    sort: Number
    vali_flag: Text
    create_user: Text
    create_date: Date
    version: Number


class CatalogEntry(SpecModel):
    """1312 ``data`` rows: newtouch-cloud/openhis Output_1312.cs, SZ ML1312.cs (required: codes, name, region,
    begndate, the flags and types, vali_flag, rid, updt_time, crte_time)."""

    hilist_code: Text
    hilist_name: Text
    insu_admdvs: Text
    begndate: Date
    enddate: Date | None = None
    med_chrgitm_type: Text
    chrgitm_lv: Text
    lmt_used_flag: Text
    list_type: Text
    med_use_flag: Text
    matn_used_flag: Text
    hilist_use_type: Text
    lmt_cpnd_type: Text
    wubi: Text | None = None
    pinyin: Text | None = None
    memo: Text | None = None
    vali_flag: Text
    rid: Text
    updt_time: DateTime
    crte_time: DateTime
    opt_time: DateTime | None = None
    poolarea_no: Text | None = None


class CatalogMatch(SpecModel):
    """1317 ``data`` rows: newtouch-cloud/openhis Output_1317.cs's field table (required: the institution, its code,
    region, list type, catalog code, begndate, vali_flag, rid, updt_time, crte_time)."""

    fixmedins_code: Text
    medins_list_codg: Text
    medins_list_name: Text | None = None
    insu_admdvs: Text
    list_type: Text
    med_list_codg: Text
    begndate: Date
    enddate: Date | None = None
    aprvno: Text | None = None
    dosform: Text | None = None
    exct_cont: Text | None = None
    item_cont: Text | None = None
    prcunt: Text | None = None
    spec: Text | None = None
    pacspec: Text | None = None
    vali_flag: Text
    rid: Text
    updt_time: DateTime
    crte_time: DateTime
    opt_time: DateTime | None = None


class Paged(SpecModel):
    """The counters of a paged output (1312, 1317; openhis Output_1312.cs), every one a number."""

    pageNum: Number
    pageSize: Number
    size: Number
    startRow: Number
    recordCounts: Number
    pages: Number
    firstPage: Number
    lastPage: Number
    data: list[dict]


class VisitInfo(SpecModel):
    """5201 ``mdtrtinfo`` rows: 深圳 JZ5201.cs Out5201 (``endtime`` is null while a visit is open)."""

    mdtrt_id: Text
    psn_no: Text
    psn_cert_type: Text
    certno: Text
    psn_name: Text
    gend: Text
    naty: Text | None = None
    brdy: Date | None = None
    age: Number | None = None
    insutype: Text
    psn_type: Text
    cvlserv_flag: Text
    insu_optins: Text | None = None
    emp_name: Text | None = None
    begntime: DateTime
    endtime: DateTime | None = None
    mdtrt_cert_type: Text | None = None
    med_type: Text
    ipt_otp_no: Text | None = None
    dise_codg: Text | None = None
    dise_name: Text | None = None
    inhosp_stas: Text | None = None
    ipt_days: Number | None = None


class Diagnosis(SpecModel):
    """5202 ``diseinfo`` rows: 深圳 ZD5202.cs Out5202 (诊断排序号 数值型)."""

    diag_info_id: Text
    mdtrt_id: Text
    psn_no: Text
    inout_diag_type: Text
    diag_type: Text
    maindiag_flag: Text
    diag_srt_no: Number
    diag_code: Text
    diag_name: Text
    diag_dept: Text
    dise_dor_no: Text
    dise_dor_name: Text
    diag_time: DateTime


class MedicationRecord(SpecModel):
    """5205 ``feedetail`` rows: 深圳 MBYY5205.cs Out5205."""

    feedetl_sn: Text
    rx_drord_no: Text | None = None
    fixmedins_code: Text | None = None
    fixmedins_name: Text
    psn_no: Text
    med_type: Text
    fee_ocur_time: DateTime
    cnt: Number
    pric: Number
    chrgitm_lv: Text | None = None
    hilist_code: Text
    hilist_name: Text
    list_type: Text
    med_list_codg: Text
    medins_list_codg: Text
    medins_list_name: Text
    med_chrgitm_type: Text
    spec: Text


class Designation(SpecModel):
    """5302 ``psnfixmedin`` rows: 深圳 RY5302.cs Out5302."""

    psn_no: Text
    insutype: Text
    fix_srt_no: Text
    fixmedins_code: Text
    fixmedins_name: Text
    begndate: Date
    enddate: Date | None = None
    memo: Text | None = None


MODELS: tuple[type[SpecModel], ...] = (SetlInfo, SetlDetail, FeeResult, FeeRow, BaseInfo, InsuInfo, IdetInfo,
                                       DiseaseFiling, DictEntry, CatalogEntry, CatalogMatch, VisitInfo, Diagnosis,
                                       MedicationRecord, Designation)


def field_kinds() -> dict[str, str]:
    """Every field of the models, "number" or "text" — one kind per name, whichever model it is in (a name typed
    differently by two tables is a mistake here, raised at once)."""
    kinds: dict[str, str] = {}
    for model in MODELS:
        for name, info in model.model_fields.items():
            kind = "number" if Decimal in _types(info.annotation) else "text"
            if kinds.setdefault(name, kind) != kind:
                raise TypeError(f"{name} is {kinds[name]} in one model and {kind} in {model.__name__}")
    return kinds


def _types(annotation: Any) -> set[Any]:
    args = getattr(annotation, "__args__", None)
    origin = getattr(annotation, "__origin__", None)
    if args and origin is not None and getattr(annotation, "__metadata__", None) is not None:
        return {origin}  # Annotated[X, …]
    if args:
        return set().union(*(_types(a) for a in args))
    return {annotation}
