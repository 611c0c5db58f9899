"""The catalog (目录) and an institution's mapping to it (``medpay.services.catalog_query``,
``medpay.services.catalog_mapping``):

- 1312 医保目录信息查询 ``data{query_date, hilist_code, insu_admdvs, begndate, hilist_name, wubi, pinyin,
  med_chrgitm_type, chrgitm_lv, lmt_used_flag, list_type, med_use_flag, matn_used_flag, hilist_use_type,
  lmt_cpnd_type, vali_flag, updt_time, page_num, page_size}`` → a page: ``{pageNum, pageSize, size, startRow,
  recordCounts, pages, firstPage, lastPage, data: [{hilist_code, hilist_name, insu_admdvs, begndate, enddate, …}]}``
- 3301 目录对照上传 ``data{fixmedins_hilist_id, fixmedins_hilist_name, list_type, med_list_codg, begndate, enddate,
  aprvno, dosform, exct_cont, item_cont, prcunt, spec, pacspec, memo}`` (the node is also read as
  ``catalogcompin``) → ``{}``
- 3302 目录对照撤销 ``data{fixmedins_code, fixmedins_hilist_id, list_type, med_list_codg}`` → ``{}``
- 1317 医药机构目录匹配信息查询 ``data{query_date, fixmedins_code, medins_list_codg, medins_list_name, insu_admdvs,
  list_type, med_list_codg, begndate, vali_flag, updt_time, page_num, page_size}`` → a page of ``{fixmedins_code,
  medins_list_codg, medins_list_name, insu_admdvs, list_type, med_list_codg, begndate, enddate, …}``

Fields, lengths and which are required as newtouch-cloud/openhis's models copy the specification (Input_1312.cs,
Output_1312.cs, Input_1317.cs, Output_1317.cs, Input_3301.cs, Input_3302.cs; SZ ML1312.cs): ``updt_time``,
``page_num`` and ``page_size`` are required in both queries; 3301's ``enddate`` may be left out (open-ended).
"""

from __future__ import annotations

from collections.abc import Mapping as Node
from datetime import date, datetime
from typing import Any

from medpay.api.institution.transactions import Call, day, handler, node, text, timestamp
from medpay.domain.paging import MAX_PAGE_SIZE, Page
from medpay.services.catalog_mapping import CatalogMappings, Mapping
from medpay.services.catalog_query import FIXED, CatalogQueries, Filters
from medpay.services.errors import Forbidden, Invalid

FILTERS_1312 = {"hilist_code": 50, "hilist_name": 200, "wubi": 30, "pinyin": 30, "med_chrgitm_type": 6,
                "chrgitm_lv": 3, "lmt_used_flag": 3, "list_type": 30, "med_use_flag": 3, "matn_used_flag": 3,
                "hilist_use_type": 3, "lmt_cpnd_type": 3, "vali_flag": 3, "insu_admdvs": 6}
FILTERS_1317 = {"fixmedins_code": 30, "medins_list_codg": 50, "medins_list_name": 200, "insu_admdvs": 6,
                "list_type": 30, "med_list_codg": 50, "vali_flag": 3}
FIELDS_3301 = {"fixmedins_hilist_id": 30, "fixmedins_hilist_name": 200, "list_type": 30, "med_list_codg": 50}
DETAILS_3301 = {"aprvno": 30, "dosform": 200, "exct_cont": 2000, "item_cont": 2000, "prcunt": 100, "spec": 200,
                "pacspec": 100, "memo": 500}
FIELDS_3302 = {"fixmedins_code": 30, "fixmedins_hilist_id": 30, "list_type": 30, "med_list_codg": 50}


def _given(d: Node[str, Any], path: str, lengths: dict[str, int], required: bool = False) -> dict[str, str]:
    """The fields of ``lengths`` that say something (all of them when ``required``), each within its length."""
    out = {}
    for key, limit in lengths.items():
        value = text(d, key, path, required=required)
        if len(value) > limit:
            raise Invalid(f"{path}.{key}", f"longer than {limit} characters")
        if value:
            out[key] = value
    return out


def _whole(d: Node[str, Any], key: str, path: str) -> int:
    """A required whole number (数值型), sent as a number or as digits."""
    value = d.get(key)
    if value is None or value == "":
        raise Invalid(f"{path}.{key}", "missing")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        value = text(d, key, path).strip()
        if not value.isascii() or not value.isdigit() or len(value) > 9:
            raise Invalid(f"{path}.{key}", f"must be a whole number; got {value!r}")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{path}.{key}", f"must be a whole number; got {value!r}")
    return value


def _page(d: Node[str, Any]) -> Page:
    page_num, page_size = _whole(d, "page_num", "data"), _whole(d, "page_size", "data")
    if page_num < 1 or page_num > 10**6:
        raise Invalid("data.page_num", f"must be from 1 to 1000000; got {page_num}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise Invalid("data.page_size", f"must be from 1 to {MAX_PAGE_SIZE}; got {page_size}")
    return Page(page_num, page_size)


def _since(d: Node[str, Any]) -> datetime:
    when = timestamp(d, "updt_time", "data")
    if when is None:
        raise Invalid("data.updt_time", "missing (rows changed at or after it are listed; send an early time for all)")
    return _in_range(when, "updt_time")


def _on(d: Node[str, Any], key: str) -> date | None:
    found = day(d, key, "data", required=False)
    return found if found is None else _in_range(found, key)


def _in_range(value: Any, key: str) -> Any:
    """A query's time or date, within the years a database compares (and a day can be added to)."""
    if not 1900 <= value.year <= 9998:
        raise Invalid(f"data.{key}", f"must be in the years 1900 to 9998; got {value.year}")
    return value


@handler("1312")
def query_catalog(call: Call) -> dict:
    d = node(call, "data")
    given = _given(d, "data", FILTERS_1312)
    q = Filters(
        updt_time=_since(d), exact={k: v for k, v in given.items() if k in ("hilist_code", "med_chrgitm_type",
                                                                           "chrgitm_lv", "list_type")},
        fixed={k: v for k, v in given.items() if k in FIXED}, name=given.get("hilist_name", ""),
        begndate=_on(d, "begndate"), query_date=_on(d, "query_date"),
        insu_admdvs=given.get("insu_admdvs", ""), vali_flag=given.get("vali_flag", ""))
    page = _page(d)
    return CatalogQueries(call.platform.factory, call.platform.settlement.clock).query(call.fixmedins_code, q, page)


def _mapping_node(call: Call) -> tuple[Node[str, Any], str]:
    name = "catalogcompin" if "data" not in call.env.input and "catalogcompin" in call.env.input else "data"
    return node(call, name), name


@handler("3301")
def map_catalog_item(call: Call) -> dict:
    d, path = _mapping_node(call)
    fields = _given(d, path, FIELDS_3301, required=True)
    m = Mapping(**fields, begndate=day(d, "begndate", path), enddate=day(d, "enddate", path, required=False),
                details=_given(d, path, DETAILS_3301))
    opter = (str(call.env.get("opter") or ""), str(call.env.get("opter_name") or ""))
    CatalogMappings(call.platform.factory, call.platform.settlement.clock).upload(call.fixmedins_code, m, opter=opter,
                                                                                 msgid=call.env.msgid)
    return {}


@handler("3302")
def unmap_catalog_item(call: Call) -> dict:
    d = node(call, "data")
    f = _given(d, "data", FIELDS_3302, required=True)
    CatalogMappings(call.platform.factory, call.platform.settlement.clock).cancel(
        call.fixmedins_code, f["fixmedins_code"], f["fixmedins_hilist_id"], f["list_type"], f["med_list_codg"],
        msgid=call.env.msgid)
    return {}


@handler("1317")
def query_mappings(call: Call) -> dict:
    d = node(call, "data")
    given = _given(d, "data", FILTERS_1317)
    if given.get("fixmedins_code", call.fixmedins_code) != call.fixmedins_code:
        raise Forbidden("data.fixmedins_code", f"an institution lists only its own mappings; this is "
                                               f"{call.fixmedins_code}, not {given['fixmedins_code']!r}")
    q = Filters(
        updt_time=_since(d), exact={k: v for k, v in given.items() if k in ("medins_list_codg", "list_type",
                                                                           "med_list_codg")},
        name=given.get("medins_list_name", ""), begndate=_on(d, "begndate"), query_date=_on(d, "query_date"),
        insu_admdvs=given.get("insu_admdvs", ""),
        vali_flag=given.get("vali_flag", ""))
    page = _page(d)
    return CatalogMappings(call.platform.factory, call.platform.settlement.clock).listing(call.fixmedins_code, q, page)
