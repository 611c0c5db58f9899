"""Reconciliation transactions: 3201 totals, 9101 upload, 3202 detail reconciliation, 9102 download.

Rules (which settlements count, refd_setl_flag, file formats): ``medpay.services.reconciliation``.

- 3201 ``data{insutype, clr_type, setl_optins, stmt_begndate, stmt_enddate, medfee_sumamt, fund_pay_sumamt,
  acct_pay, fixmedins_setl_cnt, refd_setl_flag}`` (refd_setl_flag optional: MEDPAY_STMT_REFD_SETL_FLAG) → ``{"stmtinfo": {setl_optins, stmt_rslt, stmt_rslt_dscr}}``
- 9101 ``fsUploadIn{in (base64 of the file; a JSON array of bytes is accepted too), filename, fixmedins_code}``
  → ``{"file_qury_no", "filename"}``
- 3202 ``data{file_qury_no, setl_optins, clr_type, stmt_begndate, stmt_enddate, medfee_sumamt, fund_pay_sumamt,
  cash_payamt, fixmedins_setl_cnt}`` → ``{"fileinfo": {file_qury_no, filename, dld_endtime},
  "stmtinfo": {setl_optins, stmt_rslt, stmt_rslt_dscr}}`` (stmtinfo: the header totals and a row count summary)
- 9102 ``fsDownloadIn{file_qury_no, filename?, fixmedins_code?}`` → ``{"file_qury_no", "filename", "dld_endtime",
  "file_size", "content"}``, ``content`` the file as base64 (the national platform streams the bytes; a JSON
  envelope carries them as base64).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from medpay.local_time import format_local
from medpay.api.institution.transactions import Call, handler, node, text
from medpay.services.errors import Forbidden, Invalid
from medpay.services.reconciliation import MAX_FILE_BYTES, ReconciliationService


def _service(call: Call) -> ReconciliationService:
    return ReconciliationService(call.platform.factory, call.platform.settlement.clock)


def _own_code(call: Call, d: Mapping[str, Any], path: str) -> None:
    code = text(d, "fixmedins_code", path, required=False)
    if code and code != call.fixmedins_code:
        raise Forbidden(f"{path}.fixmedins_code", "is not the calling institution")


def _raw(d: Mapping[str, Any], key: str, path: str) -> Any:
    value = d.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise Invalid(f"{path}.{key}", "missing")
    return value


@handler("3201")
def stmt_total(call: Call) -> dict:
    d = node(call, "data")
    return _service(call).totals(
        call.fixmedins_code, text(d, "insutype", "data"), text(d, "clr_type", "data"),
        text(d, "setl_optins", "data"), text(d, "stmt_begndate", "data"), text(d, "stmt_enddate", "data"),
        _raw(d, "medfee_sumamt", "data"), _raw(d, "fund_pay_sumamt", "data"), _raw(d, "acct_pay", "data"),
        _raw(d, "fixmedins_setl_cnt", "data"),
        # 深圳's 3201 has no refd_setl_flag: what its absence means is the region's setting
        text(d, "refd_setl_flag", "data", required=False, default=call.platform.stmt_refd_setl_flag))


@handler("9101")
def file_upload(call: Call) -> dict:
    d = node(call, "fsUploadIn")
    _own_code(call, d, "fsUploadIn")
    content = d.get("in")
    if isinstance(content, list):  # some HIS serialise byte[] as an array of numbers
        if len(content) > MAX_FILE_BYTES:
            raise Invalid("fsUploadIn.in", f"the file is larger than {MAX_FILE_BYTES // 2**20} MB")
        if not all(isinstance(b, int) and not isinstance(b, bool) and -128 <= b <= 255 for b in content):
            raise Invalid("fsUploadIn.in", "an array must hold bytes (0..255)")
        content = base64.b64encode(bytes(b & 0xFF for b in content)).decode()
    filename = text(d, "filename", "fsUploadIn")
    file_qury_no = _service(call).upload(call.fixmedins_code, filename, content, msgid=call.env.msgid)
    return {"file_qury_no": file_qury_no, "filename": filename}


@handler("3202")
def stmt_detail(call: Call) -> dict:
    d = node(call, "data")
    return _service(call).details(
        call.fixmedins_code, text(d, "file_qury_no", "data"), text(d, "setl_optins", "data"),
        text(d, "clr_type", "data"), text(d, "stmt_begndate", "data"), text(d, "stmt_enddate", "data"),
        _raw(d, "medfee_sumamt", "data"), _raw(d, "fund_pay_sumamt", "data"), _raw(d, "cash_payamt", "data"),
        _raw(d, "fixmedins_setl_cnt", "data"), msgid=call.env.msgid)


@handler("9102")
def file_download(call: Call) -> dict:
    d = node(call, "fsDownloadIn")
    _own_code(call, d, "fsDownloadIn")
    stored = _service(call).file(call.fixmedins_code, text(d, "file_qury_no", "fsDownloadIn"))
    filename = text(d, "filename", "fsDownloadIn", required=False)
    if filename and filename != stored.filename:
        raise Invalid("fsDownloadIn.filename", f"file {stored.file_qury_no!r} is {stored.filename!r}, not {filename!r}")
    return {"file_qury_no": stored.file_qury_no, "filename": stored.filename,
            "dld_endtime": format_local(stored.dld_endtime),
            "file_size": len(stored.content), "content": base64.b64encode(stored.content).decode("ascii")}
