"""1312 医保目录信息查询: the insurance catalog as the specification's 1312 rows, filtered and paged.

The platform's catalog (``catalog_items``) is its region's: every item is valid (``vali_flag`` 1) from the day it
entered the catalog (``begndate``, ``crte_time``) and says when it last changed (``updt_time``). What the platform
does not model of an item is answered as what it is here: no usage limit (``lmt_used_flag`` 0), usable for medical
care (``med_use_flag`` 1), and empty text where it holds nothing (maternity use, use type, compound-prescription
type, 五笔/拼音 codes, who created it). A filter on such a field matches when it asks for that value and nothing
otherwise, so a filter never widens an answer.

Filters: ``hilist_code``, ``med_chrgitm_type``, ``chrgitm_lv``, ``list_type`` exactly; ``hilist_name`` as a part
of the name; ``updt_time`` (required by the spec: changed at or after it, the incremental download),
``begndate`` (began on or after it), ``query_date`` (in the catalog on that day), ``insu_admdvs`` (the caller's
region: another region's catalog is not kept here), ``vali_flag``. Rows come in code order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.base import utcnow
from medpay.domain.paging import Page
from medpay.local_time import LOCAL_TZ, format_local, local_date
from medpay.services import records
from medpay.services.records import catalog_items as items
from medpay.services.unit_of_work import unit_of_work

# what every item answers for the attributes the platform does not model (see the module's description)
FIXED = {"lmt_used_flag": "0", "med_use_flag": "1", "matn_used_flag": "", "hilist_use_type": "",
         "lmt_cpnd_type": "", "wubi": "", "pinyin": "", "memo": "", "crter_id": "", "crter_name": "",
         "crte_optins_no": "", "opter_id": "", "opter_name": "", "optins_no": ""}


@dataclass(frozen=True)
class Filters:
    """What a catalog query (1312, and 1317 of the mappings) asks for: changed at or after ``updt_time``; ``exact``
    values of columns; ``fixed``: values of the attributes every row answers alike (FIXED); a part of the ``name``;
    began on or after ``begndate``; in force on ``query_date``; of region ``insu_admdvs``; ``vali_flag``."""

    updt_time: datetime
    exact: dict[str, str] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)
    name: str = ""
    begndate: date | None = None
    query_date: date | None = None
    insu_admdvs: str = ""
    vali_flag: str = ""


_COLUMNS = {"hilist_code": items.c.med_list_codg, "med_chrgitm_type": items.c.med_chrgitm_type,
            "chrgitm_lv": items.c.chrgitm_lv, "list_type": items.c.list_type}


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, LOCAL_TZ)


def contains(text: str) -> str:
    """A LIKE pattern (escape ``\\``) matching values that contain ``text``."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class CatalogQueries:
    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.clock = clock

    def query(self, fixmedins_code: str, q: Filters, page: Page) -> dict[str, Any]:
        """The page's rows (``data``) and the paging counters."""
        with unit_of_work(self.factory) as uow:
            admdvs = records.institution(uow.conn, fixmedins_code).admdvs
            if not self._may_match(q, admdvs):
                return {**page.counters(0, 0), "data": []}
            conditions = [items.c.updated_at >= q.updt_time]
            conditions += [_COLUMNS[k] == v for k, v in q.exact.items()]
            if q.name:
                conditions.append(items.c.name.like(contains(q.name), escape="\\"))
            if q.begndate is not None:
                conditions.append(items.c.created_at >= _day_start(q.begndate))
            if q.query_date is not None:
                conditions.append(items.c.created_at < _day_start(q.query_date + timedelta(days=1)))
            total = uow.conn.execute(select(func.count()).select_from(items).where(*conditions)).scalar_one()
            found = uow.conn.execute(select(items).where(*conditions).order_by(items.c.med_list_codg)
                                     .offset(page.offset).limit(page.page_size)).all()
            return {**page.counters(total, len(found)), "data": [catalog_row(r, admdvs) for r in found]}

    @staticmethod
    def _may_match(q: Filters, admdvs: str) -> bool:
        return (q.vali_flag in ("", "1") and q.insu_admdvs in ("", admdvs)
                and all(FIXED[k] == v for k, v in q.fixed.items()))


def catalog_row(r: Any, admdvs: str) -> dict[str, Any]:
    """One 1312 row (newtouch-cloud/openhis Output_1312.cs; SZ ML1312.cs) of a ``catalog_items`` row."""
    return {**FIXED, "hilist_code": r.med_list_codg, "hilist_name": r.name, "insu_admdvs": admdvs,
            "begndate": local_date(r.created_at).isoformat(), "enddate": None,
            "med_chrgitm_type": r.med_chrgitm_type, "chrgitm_lv": r.chrgitm_lv, "list_type": r.list_type,
            "vali_flag": "1", "rid": r.med_list_codg, "updt_time": format_local(r.updated_at),
            "crte_time": format_local(r.created_at), "opt_time": format_local(r.updated_at), "poolarea_no": admdvs}
