"""OpenAPI material for the institution interface: the request envelope's schema, a titled example per infno (the
answers and the security scheme: ``medpay.api.described``)."""

from __future__ import annotations

from typing import Any

from medpay.api.institution.envelope import MAX_LENGTHS, REQUIRED, STRING_FIELDS

TITLES = {
    "9001": "签到 sign in", "9002": "签退 sign out", "1101": "人员信息获取 person info", "2001": "人员待遇享受检查 eligibility",
    "2201": "门诊挂号 registration", "2202": "挂号撤销 registration cancel", "2203": "就诊信息上传 visit info",
    "2204": "门诊费用明细上传 fee upload", "2205": "门诊费用明细撤销 fee cancel", "2206": "门诊预结算 pre-settle",
    "2207": "门诊结算 settle", "2208": "门诊结算撤销 settlement cancel", "2301": "住院费用明细上传 inpatient fees",
    "2302": "住院费用明细撤销 inpatient fee cancel", "2303": "住院预结算 inpatient pre-settle",
    "2304": "住院结算 inpatient settle", "2305": "住院结算撤销 inpatient settlement cancel", "2401": "入院办理 admission",
    "2402": "出院办理 discharge", "2404": "入院撤销 admission cancel", "2405": "出院撤销 discharge cancel",
    "2601": "冲正交易 reversal", "3201": "对总账 totals reconciliation", "3202": "对明细账 detail reconciliation",
    "5203": "结算信息查询 settlement query", "5204": "费用明细查询 fee query", "5206": "人员累计信息查询 accumulators",
    "9101": "文件上传 file upload", "9102": "文件下载 file download",
    "2503": "门慢门特病种备案 chronic/special disease filing", "2504": "备案撤销 filing cancel",
    "5301": "人员慢特病备案查询 disease filings", "1901": "字典表查询 dictionary",
    "1312": "医保目录信息查询 insurance catalog query", "1317": "医药机构目录匹配信息查询 catalog mapping query",
    "3301": "目录对照上传 catalog mapping upload", "3302": "目录对照撤销 catalog mapping cancel",
    "5201": "就诊信息查询 visits", "5202": "诊断信息查询 diagnoses", "5205": "人员慢特病用药记录查询 chronic medication",
    "5302": "人员定点信息查询 designated institutions", "4101": "医疗保障基金结算清单信息上传 settlement list",
    "2101": "药店预结算 pharmacy pre-settle", "2102": "药店结算 pharmacy settle", "2103": "药店结算撤销 pharmacy cancel",
}

# The envelope as the parser takes it (envelope.py): text fields may arrive as numbers or null (what real HIS
# send); the required ones must say something; input is an object, or a JSON string of one (some HIS send that).
_DESCRIPTIONS = {
    "infno": "交易编号 (on a per-transaction path: optional, and if given the path's)",
    "msgid": "发送方报文ID: 机构编号+yyyyMMddHHmmss+顺序号; a retry reuses it",
    "mdtrtarea_admvs": "就医地医保区划", "insuplc_admdvs": "参保地医保区划 (from 1101)",
    "recer_sys_code": "YBXT / LXXT / GSXT", "signtype": "SM2: the body is signed (cainfo); required for an "
                                                       "institution with a registered SM2 key",
    "fixmedins_code": "定点医药机构编号; must match the gateway credentials",
    "sign_no": "from 9001; required for every transaction but 9001/9002 unless the institution's sign-in is "
               "optional (then \"\" passes; a value given is always checked)",
}


def _text_field(name: str) -> dict[str, Any]:
    field: dict[str, Any] = {"type": ["string", "number"] if name in REQUIRED else ["string", "number", "null"]}
    if name in REQUIRED:
        field["minLength"] = 1
    if name in MAX_LENGTHS:
        field["maxLength"] = MAX_LENGTHS[name]
    if name in _DESCRIPTIONS:
        field["description"] = _DESCRIPTIONS[name]
    return field


ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [*REQUIRED, "input"],  # on a transaction's own path, infno may be left out
    "properties": {
        **{name: _text_field(name) for name in STRING_FIELDS},
        "input": {"type": ["object", "string"],
                  "description": "交易输入: node name depends on infno (data, feedetail, mdtrtinfo, …); or that object "
                                 "as a JSON string"},
    },
}


def _env(infno: str, node: str, value: Any, *, more: dict[str, Any] | None = None,
         institution: tuple[str, str] = ("H99990100001", "演示市第一人民医院")) -> dict[str, Any]:
    """``more``: other input nodes; ``institution``: the sender's code and name."""
    return {"summary": f"{infno} {TITLES.get(infno, '')}", "value": {
        "infno": infno, "msgid": "H99990100001202611231000000001", "mdtrtarea_admvs": "999901",
        "insuplc_admdvs": "999901", "recer_sys_code": "YBXT", "infver": "V1.0", "opter_type": "1", "opter": "1001",
        "opter_name": "收费员", "inf_time": "2026-11-23 10:00:00", "fixmedins_code": institution[0],
        "fixmedins_name": institution[1], "sign_no": "260000000000000000000000000001",
        "input": {node: value, **(more or {})}}}


MDTRT = "26112310000012345678"
PSN = "99990100000001"


def _diseinfo(code: str, name: str, when: str, **more: str) -> list[dict[str, Any]]:
    """A one-row diagnosis list (``diseinfo``) as 2203, 2401 and 2402 carry it."""
    return [{"diag_type": "1", "diag_srt_no": 1, "diag_code": code, "diag_name": name, "diag_dept": "内科",
             "dise_dor_no": "D001", "dise_dor_name": "李医生", "diag_time": when, "vali_flag": "1", **more}]
PHARMACY = ("P99990100001", "演示大药房")
# a purchase at the pharmacy's POS (2101/2102): the e-certificate shown for 02121 药店购药, the basket's lines
PURCHASE = {"psn_no": PSN, "mdtrt_cert_type": "01", "mdtrt_cert_no": "3f9a0c…(ecToken, 40 characters)",
            "med_type": "41", "insutype": "310", "begntime": "2026-11-23 10:00:00", "psn_setlway": "01",
            "acct_used_flag": "1", "medfee_sumamt": 99.40, "fulamt_ownpay_amt": 0, "overlmt_selfpay": 0,
            "preselfpay_amt": 3.05, "inscp_scp_amt": 96.35, "ipt_otp_no": "XS20261123001"}
DRUGDETAIL = [{"feedetl_sn": "1", "fee_ocur_time": "2026-11-23 10:00:00", "med_list_codg": "XM01AEB002",
               "medins_list_codg": "YD0001", "cnt": 2, "pric": 30.5, "det_item_fee_sumamt": 61.0},
              {"feedetl_sn": "2", "fee_ocur_time": "2026-11-23 10:00:00", "med_list_codg": "ZA01AAA004",
               "medins_list_codg": "YD0002", "cnt": 3, "pric": 12.8, "det_item_fee_sumamt": 38.4}]
EXAMPLES = {
    "9001": _env("9001", "signIn", {"opter_no": "1001", "mac": "00:16:3e:00:00:01", "ip": "10.0.0.8"}),
    "9002": _env("9002", "signOut", {"sign_no": "260000000000000000000000000001", "opter_no": "1001"}),
    "1101": _env("1101", "data", {"mdtrt_cert_type": "02", "mdtrt_cert_no": "999901198001010011", "card_sn": "",
                                  "psn_cert_type": "01", "certno": "999901198001010011", "psn_name": ""}),
    "2001": _env("2001", "data", {"psn_no": PSN, "insutype": "310", "med_type": "11"}),
    "2201": _env("2201", "data", {"psn_no": PSN, "insutype": "310", "begntime": "2026-11-23 10:00:00",
                                  "mdtrt_cert_type": "02", "mdtrt_cert_no": "999901198001010011",
                                  "ipt_otp_no": "MZ0001", "atddr_no": "D001", "dr_name": "李医生", "dept_code": "01",
                                  "dept_name": "内科", "caty": "A03"}),
    "2202": _env("2202", "data", {"psn_no": PSN, "mdtrt_id": MDTRT, "ipt_otp_no": "MZ0001"}),
    "2203": _env("2203", "mdtrtinfo", {"mdtrt_id": MDTRT, "psn_no": PSN, "med_type": "11",
                                       "begntime": "2026-11-23 10:00:00", "dise_codg": "J06.900", "dise_name": "急性上呼吸道感染"},
                 more={"diseinfo": _diseinfo("J06.900", "急性上呼吸道感染", "2026-11-23 10:05:00")}),
    "2204": _env("2204", "feedetail", [{"feedetl_sn": "1", "mdtrt_id": MDTRT, "psn_no": PSN, "chrg_bchno": "B1",
                                        "fee_ocur_time": "2026-11-23 10:05:00", "med_list_codg": "XM01AEB002",
                                        "medins_list_codg": "YP0001", "det_item_fee_sumamt": 61.0, "cnt": 2,
                                        "pric": 30.5}]),
    "2205": _env("2205", "data", {"mdtrt_id": MDTRT, "chrg_bchno": "B1", "psn_no": PSN}),
    "2206": _env("2206", "data", {"psn_no": PSN, "mdtrt_cert_type": "02", "mdtrt_cert_no": "999901198001010011",
                                  "med_type": "11", "medfee_sumamt": 61.0, "psn_setlway": "01", "mdtrt_id": MDTRT,
                                  "chrg_bchno": "B1", "insutype": "310", "acct_used_flag": "1"}),
    "2207": _env("2207", "data", {"psn_no": PSN, "mdtrt_cert_type": "02", "mdtrt_cert_no": "999901198001010011",
                                  "med_type": "11", "medfee_sumamt": 61.0, "psn_setlway": "01", "mdtrt_id": MDTRT,
                                  "chrg_bchno": "B1", "insutype": "310", "acct_used_flag": "1", "invono": "",
                                  "fulamt_ownpay_amt": 0, "overlmt_selfpay": 0, "preselfpay_amt": 3.05,
                                  "inscp_scp_amt": 57.95}),
    "2208": _env("2208", "data", {"setl_id": "26112310000087654321", "mdtrt_id": MDTRT, "psn_no": PSN}),
    "2301": _env("2301", "feedetail", [{"feedetl_sn": "1", "mdtrt_id": MDTRT, "psn_no": PSN, "med_type": "21",
                                        "fee_ocur_time": "2026-11-23 10:05:00", "med_list_codg": "001102000010000",
                                        "det_item_fee_sumamt": 300, "cnt": 5, "pric": 60}]),
    "2302": _env("2302", "data", {"feedetl_sn": "0000", "mdtrt_id": MDTRT, "psn_no": PSN}),
    "2303": _env("2303", "data", {"psn_no": PSN, "mdtrt_cert_type": "02", "mdtrt_cert_no": "999901198001010011",
                                  "medfee_sumamt": 300, "psn_setlway": "01", "mdtrt_id": MDTRT, "insutype": "310",
                                  "acct_used_flag": "1", "mid_setl_flag": "0"}),
    "2304": _env("2304", "data", {"psn_no": PSN, "mdtrt_cert_type": "02", "mdtrt_cert_no": "999901198001010011",
                                  "medfee_sumamt": 300, "psn_setlway": "01", "mdtrt_id": MDTRT, "insutype": "310",
                                  "acct_used_flag": "1", "mid_setl_flag": "0", "dscg_time": "2026-11-28 10:00:00"}),
    "2305": _env("2305", "data", {"mdtrt_id": MDTRT, "setl_id": "26112310000087654321", "psn_no": PSN}),
    "2401": _env("2401", "mdtrtinfo", {"psn_no": PSN, "insutype": "310", "begntime": "2026-11-23 10:00:00",
                                       "mdtrt_cert_type": "02", "mdtrt_cert_no": "999901198001010011", "med_type": "21",
                                       "ipt_no": "ZY0001", "atddr_no": "D001", "adm_diag_dscr": "急性阑尾炎",
                                       "adm_dept_codg": "03", "adm_dept_name": "普外科", "adm_bed": "12",
                                       "dise_codg": "K35.800", "dise_name": "急性阑尾炎"},
                 more={"diseinfo": _diseinfo("K35.800", "急性阑尾炎", "2026-11-23 10:00:00", maindiag_flag="1",
                                             inout_diag_type="1")}),
    "2402": _env("2402", "dscginfo", {"mdtrt_id": MDTRT, "psn_no": PSN, "insutype": "310",
                                      "endtime": "2026-11-28 10:00:00", "dscg_way": "1"},
                 more={"diseinfo": _diseinfo("K35.800", "急性阑尾炎", "2026-11-28 09:00:00", maindiag_flag="1",
                                             inout_diag_type="2")}),
    "2404": _env("2404", "data", {"mdtrt_id": MDTRT, "psn_no": PSN}),
    "2405": _env("2405", "data", {"mdtrt_id": MDTRT, "psn_no": PSN}),
    "2601": _env("2601", "data", {"psn_no": PSN, "omsgid": "H99990100001202611231000000001", "oinfno": "2207"}),
    "5203": _env("5203", "data", {"psn_no": PSN, "mdtrt_id": MDTRT, "setl_id": "26112310000087654321"}),
    "5204": _env("5204", "data", {"psn_no": PSN, "mdtrt_id": MDTRT, "setl_id": ""}),
    "5206": _env("5206", "data", {"psn_no": PSN, "cum_ym": "202611"}),
    "3201": _env("3201", "data", {"insutype": "310", "clr_type": "11", "setl_optins": "999901",
                                  "stmt_begndate": "2026-11-01", "stmt_enddate": "2026-11-30", "medfee_sumamt": 123.20,
                                  "fund_pay_sumamt": 0, "acct_pay": 123.20, "fixmedins_setl_cnt": 2,
                                  "refd_setl_flag": "0"}),
    "9101": _env("9101", "fsUploadIn", {"in": "UEsDBBQAAAAIAA…(base64 of a zip holding one tab-separated .txt)",
                                        "filename": "H99990100001_202611.zip", "fixmedins_code": "H99990100001"}),
    "3202": _env("3202", "data", {"file_qury_no": "2026113009000522dad5bd07fb7682", "setl_optins": "999901",
                                  "clr_type": "11", "stmt_begndate": "2026-11-01", "stmt_enddate": "2026-11-30",
                                  "medfee_sumamt": 372.00, "fund_pay_sumamt": 83.59, "cash_payamt": 226.91,
                                  "fixmedins_setl_cnt": 4}),
    "9102": _env("9102", "fsDownloadIn", {"file_qury_no": "20261130090007a1b2c3d4e5f60718",
                                          "filename": "20261130090007a1b2c3d4e5f60718.zip",
                                          "fixmedins_code": "H99990100001"}),
    "2503": _env("2503", "data", {"psn_no": PSN, "insutype": "310", "opsp_dise_code": "M03900",
                                  "opsp_dise_name": "高血压", "tel": "", "addr": "", "insu_optins": "999901",
                                  "ide_fixmedins_no": "H99990100001", "ide_fixmedins_name": "演示市第一人民医院",
                                  "hosp_ide_date": "2026-11-20", "diag_dr_codg": "D001", "diag_dr_name": "李医生",
                                  "begndate": "2026-11-23", "enddate": ""}),
    "2504": _env("2504", "data", {"trt_dcla_detl_sn": "26112310000012345678", "psn_no": PSN, "memo": "备案有误"}),
    "5301": _env("5301", "data", {"psn_no": PSN}),
    "1901": _env("1901", "data", {"type": "MED_TYPE", "parent_value": "", "admdvs": "999901",
                                  "date": "2026-11-23", "vali_flag": "1"}),
    "1312": _env("1312", "data", {"query_date": "", "hilist_code": "", "insu_admdvs": "999901", "begndate": "",
                                  "hilist_name": "布洛芬", "wubi": "", "pinyin": "", "med_chrgitm_type": "",
                                  "chrgitm_lv": "", "lmt_used_flag": "", "list_type": "101", "med_use_flag": "",
                                  "matn_used_flag": "", "hilist_use_type": "", "lmt_cpnd_type": "", "vali_flag": "1",
                                  "updt_time": "2000-01-01 00:00:00", "page_num": 1, "page_size": 100}),
    "3301": _env("3301", "data", {"fixmedins_hilist_id": "YP0001", "fixmedins_hilist_name": "布洛芬缓释胶囊(院内)",
                                  "list_type": "101", "med_list_codg": "XM01AEB002", "begndate": "2026-11-01",
                                  "enddate": "2099-12-31", "aprvno": "国药准字H10900089", "dosform": "胶囊剂",
                                  "exct_cont": "", "item_cont": "", "prcunt": "盒", "spec": "0.3g*20粒",
                                  "pacspec": "盒", "memo": ""}),
    "3302": _env("3302", "data", {"fixmedins_code": "H99990100001", "fixmedins_hilist_id": "YP0001",
                                  "list_type": "101", "med_list_codg": "XM01AEB002"}),
    "1317": _env("1317", "data", {"query_date": "", "fixmedins_code": "H99990100001", "medins_list_codg": "",
                                  "medins_list_name": "", "insu_admdvs": "999901", "list_type": "",
                                  "med_list_codg": "", "begndate": "", "vali_flag": "1",
                                  "updt_time": "2000-01-01 00:00:00", "page_num": 1, "page_size": 100}),
    "5201": _env("5201", "data", {"psn_no": PSN, "begntime": "2026-11-01 00:00:00", "endtime": "2026-11-30 23:59:59",
                                  "med_type": "", "mdtrt_id": ""}),
    "5202": _env("5202", "data", {"mdtrt_id": MDTRT, "psn_no": PSN}),
    "5205": _env("5205", "data", {"psn_no": PSN, "begntime": "2026-11-01 00:00:00", "endtime": ""}),
    "5302": _env("5302", "data", {"psn_no": PSN, "biz_appy_type": "03"}),
    "4101": _env("4101", "setlinfo", {
        "mdtrt_id": MDTRT, "setl_id": "26112310000087654321", "fixmedins_name": "演示市第一人民医院",
        "fixmedins_code": "H99990100001", "hi_no": PSN, "medcasno": "BA0001", "psn_name": "王建国", "gend": "1",
        "brdy": "1980-01-01", "age": 46, "ntly": "CHN", "naty": "01", "patn_cert_type": "01",
        "certno": "999901198001010011", "prfs": "17", "coner_name": "王建国", "patn_rlts": "0", "coner_addr": "演示市",
        "coner_tel": "13800000001", "hi_type": "310", "insuplc": "999901", "maindiag_flag": "1",
        "setl_begn_date": "2026-11-23", "setl_end_date": "2026-11-23", "psn_selfpay": 3.05, "psn_ownpay": 0,
        "acct_pay": 3.05, "psn_cashpay": 0, "hi_paymtd": "1", "hsorg": "演示市医疗保障局", "hsorg_opter": "经办员",
        "medins_fill_dept": "医保办", "medins_fill_psn": "填报员", "bill_code": "PJ01", "bill_no": "000001",
        "biz_sn": "LS000001"}),
    "2101": _env("2101", "druginfo", PURCHASE, more={"drugdetail": DRUGDETAIL}, institution=PHARMACY),
    "2102": _env("2102", "druginfo", PURCHASE, more={"drugdetail": DRUGDETAIL}, institution=PHARMACY),
    "2103": _env("2103", "data", {"setl_id": "26112310000087654321", "mdtrt_id": MDTRT, "psn_no": PSN},
                 institution=PHARMACY),
}
EXAMPLES["4101"]["value"]["input"].update(  # the funds' payments; the other lists of table 155–160 alike
    payinfo=[{"fund_pay_type": "310200", "fund_payamt": 3.05}],
    diseinfo=[{"diag_type": "1", "diag_code": "J06.900", "diag_name": "急性上呼吸道感染", "maindiag_flag": "1"}])
