"""The ``diseinfo`` list a visit's transaction carries (2203, 2401, 2402), read into ``domain.diagnoses.Diagnosis``
rows. Each row's fields as the specification's 2203 table gives them (深圳 ZJ2203.cs: 诊断类别, 排序号, 代码, 名称,
科室, 医生编码, 医生姓名 and 诊断时间 required; 诊断排序号 数值型 2; 诊断时间 日期时间型), except 有效标志 ``vali_flag``, which
the table also marks required but is taken as 1 (有效) when a row leaves it out, since 2401/2402 rows are not
known to carry it. 2401/2402 rows may add ``maindiag_flag`` and ``inout_diag_type``, the latter only as the
transaction's own. Any fault is refused naming ``diseinfo[i].field``; the service then stores nothing.

A transaction without ``diseinfo`` (or with an empty list) sends no list: the visit's stored one stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medpay.api.institution.transactions import Call, text, timestamp
from medpay.domain.diagnoses import Diagnosis
from medpay.services.errors import Invalid

# text field → longest (the specification's length; diag_name as the longest of the tables that carry it)
LENGTHS = {"diag_type": 3, "diag_code": 20, "diag_name": 255, "diag_dept": 50, "dise_dor_no": 30,
           "dise_dor_name": 50, "vali_flag": 3, "maindiag_flag": 3, "inout_diag_type": 3}
REQUIRED = ("diag_type", "diag_code", "diag_name", "diag_dept", "dise_dor_no", "dise_dor_name")
FLAGS = ("0", "1")
MAX_ROWS = 100
LARGEST_SRT_NO = 99  # 数值型 2


def diagnoses(call: Call, inout_diag_type: str | None = None) -> tuple[Diagnosis, ...]:
    """The checked rows of ``input.diseinfo`` (none: ``()``). ``inout_diag_type``: the list's type, which a row
    may repeat but not contradict (None: rows don't carry it, as 2203's)."""
    value = call.env.input.get("diseinfo")
    if value is None or value == []:
        return ()
    if isinstance(value, Mapping):  # a single row sent as an object
        value = [value]
    if not isinstance(value, list):
        raise Invalid("input.diseinfo", "must be a list")
    if len(value) > MAX_ROWS:
        raise Invalid("input.diseinfo", f"more than {MAX_ROWS} rows")
    return tuple(_row(r, f"diseinfo[{i}]", inout_diag_type) for i, r in enumerate(value))


def _row(d: Any, path: str, inout_diag_type: str | None) -> Diagnosis:
    if not isinstance(d, Mapping):
        raise Invalid(path, "must be an object")
    fields = {k: _text(d, k, path, required=k in REQUIRED) for k in LENGTHS}
    for key in ("vali_flag", "maindiag_flag"):
        if fields[key] and fields[key] not in FLAGS:
            raise Invalid(f"{path}.{key}", f"must be 0 or 1; got {fields[key]!r}")
    if fields["inout_diag_type"] and inout_diag_type is not None and fields["inout_diag_type"] != inout_diag_type:
        raise Invalid(f"{path}.inout_diag_type",
                      f"must be {inout_diag_type} in this transaction; got {fields['inout_diag_type']!r}")
    diag_time = timestamp(d, "diag_time", path)
    if diag_time is None:
        raise Invalid(f"{path}.diag_time", "missing")
    return Diagnosis(diag_type=fields["diag_type"], diag_srt_no=_srt_no(d, path), diag_code=fields["diag_code"],
                     diag_name=fields["diag_name"], diag_dept=fields["diag_dept"],
                     dise_dor_no=fields["dise_dor_no"], dise_dor_name=fields["dise_dor_name"], diag_time=diag_time,
                     vali_flag=fields["vali_flag"] or "1", maindiag_flag=fields["maindiag_flag"])


def _text(d: Mapping[str, Any], key: str, path: str, *, required: bool) -> str:
    value = text(d, key, path, required=required)
    if len(value) > LENGTHS[key]:
        raise Invalid(f"{path}.{key}", f"longer than {LENGTHS[key]} characters")
    return value


def _srt_no(d: Mapping[str, Any], path: str) -> int:
    """诊断排序号: a whole number 1–99, sent as a number or as its digits."""
    value = text(d, "diag_srt_no", path)
    if not value.isdecimal() or not value.isascii() or not 1 <= int(value) <= LARGEST_SRT_NO:
        raise Invalid(f"{path}.diag_srt_no", f"must be a whole number from 1 to {LARGEST_SRT_NO}; got {value!r}")
    return int(value)
