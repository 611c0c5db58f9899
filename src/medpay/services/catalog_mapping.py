"""An institution's catalog mapping (目录对照): 3301 maps one of its own item codes to an insurance catalog code,
3302 cancels it, 1317 lists them; 2204/2301 use a standing mapping for a fee line the catalog does not know.

Rules:

- the catalog code must be in the catalog, and the mapping's ``list_type`` must be the item's own (a drug's code
  uploaded as a service is refused naming ``list_type``); ``begndate`` ≤ ``enddate`` (no ``enddate``: open-ended);
- one standing mapping per institution code: a 3301 for a code already mapped replaces the standing mapping,
  which is kept as ``replaced`` with the msgid that replaced it, and the change is written to the audit log;
  uploading the standing mapping again changes nothing;
- 3302 cancels the caller's own standing mapping, once: it must name this institution, and the catalog code and
  list type the code is mapped to; a second cancellation is refused as already done;
- 3301 and 3302 are exactly once by msgid; every refusal writes nothing;
- 1317 lists the caller's mappings only (``vali_flag`` 1 the standing ones, 0 the replaced and cancelled ones).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.base import utcnow
from medpay.adapters.db.catalog_tables import CatalogMappingRow
from medpay.domain.model import LIST_TYPES, CatalogItem
from medpay.domain.paging import Page
from medpay.local_time import format_local, local_date
from medpay.services import audit, idempotency, records
from medpay.services.catalog_query import Filters, contains
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound
from medpay.services.unit_of_work import UnitOfWork, unit_of_work

mappings = CatalogMappingRow.__table__
DETAILS = ("aprvno", "dosform", "exct_cont", "item_cont", "prcunt", "spec", "pacspec", "memo")


@dataclass(frozen=True)
class Mapping:
    """What 3301 uploads."""

    fixmedins_hilist_id: str
    fixmedins_hilist_name: str
    list_type: str
    med_list_codg: str
    begndate: date
    enddate: date | None = None
    details: dict[str, str] = field(default_factory=dict)  # DETAILS that were given


_EXACT = {"medins_list_codg": mappings.c.fixmedins_hilist_id, "list_type": mappings.c.list_type,
          "med_list_codg": mappings.c.med_list_codg}


def _standing(db: Any, fixmedins_code: str, code: str, *, lock: bool = False) -> Any:
    query = select(mappings).where(mappings.c.fixmedins_code == fixmedins_code,
                                   mappings.c.fixmedins_hilist_id == code, mappings.c.status == "active")
    return db.execute(query.with_for_update() if lock else query).one_or_none()


class CatalogMappings:
    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.clock = clock

    def upload(self, fixmedins_code: str, m: Mapping, *, opter: tuple[str, str] = ("", ""),
               msgid: str | None = None) -> dict[str, str]:
        """3301: map ``m.fixmedins_hilist_id``; the standing mapping's ``rid``."""
        if m.list_type not in LIST_TYPES:
            raise Invalid("data.list_type", f"must be one of {', '.join(LIST_TYPES)} (目录类别); got {m.list_type!r}")
        if m.enddate is not None and m.enddate < m.begndate:
            raise Invalid("data.enddate", f"{m.enddate} is before begndate {m.begndate}")
        body = {**vars(m), "begndate": str(m.begndate), "enddate": str(m.enddate or "")}

        def work(uow: UnitOfWork) -> dict:
            item = records.catalog(uow.conn, [m.med_list_codg]).get(m.med_list_codg)
            if item is None:
                raise NotFound("data.med_list_codg", f"unknown catalog item {m.med_list_codg!r} "
                                                     "(1312 lists the catalog)")
            if item.list_type != m.list_type:
                raise Invalid("data.list_type", f"catalog item {m.med_list_codg} is list type {item.list_type} "
                                                f"({LIST_TYPES.get(item.list_type, '')}), not {m.list_type}")
            old = _standing(uow.conn, fixmedins_code, m.fixmedins_hilist_id, lock=True)
            if old is not None and _same(old, m):
                return {"rid": old.rid}
            now = self.clock()
            if old is not None:
                uow.conn.execute(update(mappings).where(mappings.c.id == old.id)
                                 .values(status="replaced", ended_msgid=msgid or "", updated_at=now))
                audit.record(uow.conn, actor_kind="institution", actor=fixmedins_code, action="catalog_remap",
                             psn_no="", fields=("med_list_codg",), at=now, ref=msgid or "")
            rid = records.new_id(now)
            try:
                uow.conn.execute(mappings.insert().values(
                    rid=rid, fixmedins_code=fixmedins_code, fixmedins_hilist_id=m.fixmedins_hilist_id,
                    fixmedins_hilist_name=m.fixmedins_hilist_name, list_type=m.list_type,
                    med_list_codg=m.med_list_codg, begndate=m.begndate, enddate=m.enddate, details=m.details,
                    status="active", opter_id=opter[0], opter_name=opter[1], msgid=msgid or "", created_at=now,
                    updated_at=now, ended_msgid=""))
            except IntegrityError:  # a concurrent 3301 mapped the same code first (the unit of work rolls back)
                raise Conflict("data.fixmedins_hilist_id", f"{m.fixmedins_hilist_id!r} is being mapped by another "
                                                           "request; send it again") from None
            return {"rid": rid}

        return idempotency.write(self.factory, self.clock, fixmedins_code, msgid, "catalog_map", body, work)

    def cancel(self, fixmedins_code: str, named_code: str, hilist_id: str, list_type: str, med_list_codg: str,
               msgid: str | None = None) -> None:
        """3302: cancel the caller's standing mapping of ``hilist_id``."""
        if named_code != fixmedins_code:
            raise Forbidden("data.fixmedins_code", f"an institution cancels only its own mappings; this is "
                                                   f"{fixmedins_code}, not {named_code!r}")
        body = {"fixmedins_hilist_id": hilist_id, "list_type": list_type, "med_list_codg": med_list_codg}

        def work(uow: UnitOfWork) -> dict:
            row = _standing(uow.conn, fixmedins_code, hilist_id, lock=True)
            if row is None:
                ended = uow.conn.execute(select(mappings.c.status).where(
                    mappings.c.fixmedins_code == fixmedins_code, mappings.c.fixmedins_hilist_id == hilist_id)
                    .order_by(mappings.c.id.desc()).limit(1)).scalar()
                if ended == "cancelled":
                    raise Conflict("data.fixmedins_hilist_id", f"the mapping of {hilist_id!r} is already cancelled")
                raise NotFound("data.fixmedins_hilist_id", f"{hilist_id!r} has no standing mapping here")
            if row.med_list_codg != med_list_codg:
                raise Invalid("data.med_list_codg", f"{hilist_id!r} is mapped to {row.med_list_codg}, not "
                                                    f"{med_list_codg!r}")
            if row.list_type != list_type:
                raise Invalid("data.list_type", f"{hilist_id!r} is mapped as list type {row.list_type}, not "
                                                f"{list_type!r}")
            now = self.clock()
            uow.conn.execute(update(mappings).where(mappings.c.id == row.id)
                             .values(status="cancelled", ended_msgid=msgid or "", updated_at=now))
            audit.record(uow.conn, actor_kind="institution", actor=fixmedins_code, action="catalog_unmap",
                         psn_no="", fields=("med_list_codg",), at=now, ref=msgid or "")
            return {}

        idempotency.write(self.factory, self.clock, fixmedins_code, msgid, "catalog_unmap", body, work)

    def listing(self, fixmedins_code: str, q: Filters, page: Page) -> dict[str, Any]:
        """1317: a page of the caller's mappings (``data``) and the paging counters."""
        with unit_of_work(self.factory) as uow:
            admdvs = records.institution(uow.conn, fixmedins_code).admdvs
            if q.insu_admdvs not in ("", admdvs) or q.vali_flag not in ("", "0", "1"):
                return {**page.counters(0, 0), "data": []}
            conditions = [mappings.c.fixmedins_code == fixmedins_code, mappings.c.updated_at >= q.updt_time]
            conditions += [_EXACT[k] == v for k, v in q.exact.items()]
            if q.vali_flag:
                conditions.append((mappings.c.status == "active") if q.vali_flag == "1"
                                  else (mappings.c.status != "active"))
            if q.name:
                conditions.append(mappings.c.fixmedins_hilist_name.like(contains(q.name), escape="\\"))
            if q.begndate is not None:
                conditions.append(mappings.c.begndate >= q.begndate)
            if q.query_date is not None:
                conditions += [mappings.c.begndate <= q.query_date,
                               or_(mappings.c.enddate.is_(None), mappings.c.enddate >= q.query_date)]
            total = uow.conn.execute(select(func.count()).select_from(mappings).where(*conditions)).scalar_one()
            found = uow.conn.execute(select(mappings).where(*conditions).order_by(
                mappings.c.fixmedins_hilist_id, mappings.c.id).offset(page.offset).limit(page.page_size)).all()
            return {**page.counters(total, len(found)), "data": [mapping_row(r, admdvs) for r in found]}


def resolve(db: Any, fixmedins_code: str, lines: Iterable[Any], catalog: dict[str, CatalogItem],
            now: datetime) -> tuple[list[str], dict[str, CatalogItem]]:
    """Each fee line's catalog code — its ``med_list_codg`` when the catalog has it, else the standing mapping of
    its ``medins_list_codg`` in force on the day of the fee, else ``med_list_codg`` as sent (unknown: the caller
    refuses it) — and ``catalog`` with the mapped items added."""
    lines = list(lines)
    wanted = {ln.medins_list_codg for ln in lines if ln.med_list_codg not in catalog and ln.medins_list_codg}
    if not wanted:
        return [ln.med_list_codg for ln in lines], catalog
    standing = {r.fixmedins_hilist_id: r for r in db.execute(select(mappings).where(and_(
        mappings.c.fixmedins_code == fixmedins_code, mappings.c.status == "active",
        mappings.c.fixmedins_hilist_id.in_(sorted(wanted)))))}
    codes = []
    for ln in lines:
        m = standing.get(ln.medins_list_codg) if ln.med_list_codg not in catalog else None
        day = local_date(ln.fee_ocur_time or now)
        in_force = m is not None and m.begndate <= day and (m.enddate is None or day <= m.enddate)
        codes.append(m.med_list_codg if in_force else ln.med_list_codg)
    missing = {c for c in codes if c not in catalog}
    return codes, {**catalog, **(records.catalog(db, missing) if missing else {})}


def _same(row: Any, m: Mapping) -> bool:
    return (row.fixmedins_hilist_name, row.list_type, row.med_list_codg, row.begndate, row.enddate,
            row.details) == (m.fixmedins_hilist_name, m.list_type, m.med_list_codg, m.begndate, m.enddate, m.details)


def mapping_row(r: Any, admdvs: str) -> dict[str, Any]:
    """One 1317 row (newtouch-cloud/openhis Output_1317.cs's field table)."""
    return {"fixmedins_code": r.fixmedins_code, "medins_list_codg": r.fixmedins_hilist_id,
            "medins_list_name": r.fixmedins_hilist_name, "insu_admdvs": admdvs, "list_type": r.list_type,
            "med_list_codg": r.med_list_codg, "begndate": r.begndate.isoformat(),
            "enddate": r.enddate.isoformat() if r.enddate else None,
            **{k: r.details.get(k, "") for k in DETAILS},
            "vali_flag": "1" if r.status == "active" else "0", "rid": r.rid,
            "updt_time": format_local(r.updated_at), "crter_id": r.opter_id, "crter_name": r.opter_name,
            "crte_time": format_local(r.created_at), "crte_optins_no": r.fixmedins_code, "opter_id": r.opter_id,
            "opter_name": r.opter_name, "opt_time": format_local(r.updated_at), "optins_no": r.fixmedins_code,
            "poolarea_no": admdvs}
