"""Reading and writing the settlement's rows with SQLAlchemy Core, and small shared helpers.

Reads return read-only ``Row`` objects (attribute access like ``row.status``); writes are explicit statements.
Every function takes a ``Connection`` (``uow.conn``) or a ``Session`` — both execute Core statements in the
caller's transaction. Statements are built once at import: executing a prepared construct skips rebuilding
and re-hashing it on every request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable

from sqlalchemy import Connection, Row, and_, bindparam, insert, select, update
from sqlalchemy.orm import Session

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.statements import INSERTS, dialect_name, insert_ignore
from medpay.adapters.db.tables import (
    AccumulatorRow,
    CatalogItemRow,
    CredentialPresentationRow,
    FamilyLinkRow,
    FeeLineRow,
    IdempotencyRow,
    InstitutionRow,
    PersonRow,
    SettlementRow,
    VisitRow,
)
from medpay.domain.model import Accumulators, CatalogItem, ChrgitmLv, Institution, Person
from medpay.services.errors import Forbidden, NotFound

Db = Connection | Session

institutions = InstitutionRow.__table__
persons = PersonRow.__table__
catalog_items = CatalogItemRow.__table__
visits = VisitRow.__table__
fee_lines = FeeLineRow.__table__
settlements = SettlementRow.__table__
accumulators = AccumulatorRow.__table__
family_links = FamilyLinkRow.__table__
presentations = CredentialPresentationRow.__table__
idempotency_keys = IdempotencyRow.__table__


def new_id(now: datetime) -> str:
    """A 20-digit id: time to the second, then 8 random digits (unique by primary key, readable by date)."""
    return now.strftime("%y%m%d%H%M%S") + f"{secrets.randbelow(10**8):08d}"


def request_hash(body: Any) -> str:
    """Stable hash of a request body for idempotency checks (key order and spacing don't matter)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


# ------------------------------------------------------------------------------------------ institutions, persons

_INSTITUTION = select(institutions).where(institutions.c.fixmedins_code == bindparam("code"))
_PERSON = select(persons).where(persons.c.psn_no == bindparam("psn_no"))
_PERSON_LOCKED = _PERSON.with_for_update()


def institution(db: Db, code: str, field: str = "fixmedins_code") -> Institution:
    row = db.execute(_INSTITUTION, {"code": code}).one_or_none()
    if row is None:
        raise NotFound(field, f"unknown institution {code!r}")
    return Institution(row.fixmedins_code, row.fixmedins_name, row.admdvs, row.level, row.id_assurance,
                       row.fee_query_shape, row.fixmedins_type, inst_kind=row.inst_kind)


def person_row(db: Db, psn_no: str, *, lock: bool = False, field: str = "psn_no") -> Row:
    row = db.execute(_PERSON_LOCKED if lock else _PERSON, {"psn_no": psn_no}).one_or_none()
    if row is None:
        raise NotFound(field, f"unknown person {psn_no!r}")
    return row


def person(row: Any, cipher: FieldCipher) -> Person:
    """The person as the rules see them, with the facts some regions' rules need (the salary decrypted)."""
    return Person(
        psn_no=row.psn_no, psn_name=cipher.decrypt(row.psn_name_enc, "psn_name"), insutype=row.insutype,
        psn_type=row.psn_type, insuplc_admdvs=row.insuplc_admdvs, cvlserv_flag=row.cvlserv_flag,
        identities=frozenset(x for x in row.identities.split(",") if x),
        brdy=row.brdy, retr_date=row.retr_date, pay_grade=row.pay_grade, insu_date=row.psn_insu_date,
        salary=salary(row, cipher),
    )


def salary(row: Any, cipher: FieldCipher) -> int | None:
    """The person's yearly salary base in fen (stored encrypted: personal data), None if not on record."""
    return None if row.salary_enc is None else int(cipher.decrypt(row.salary_enc, "salary"))


_PRESENTED = (select(presentations.c.id).where(and_(
    presentations.c.fixmedins_code == bindparam("code"), presentations.c.psn_no == bindparam("psn_no"),
    presentations.c.presented_at >= bindparam("since"))).limit(1))


def presented_since(db: Db, fixmedins_code: str, psn_no: str, since: datetime) -> bool:
    """Did the person show this institution a credential (1101) since ``since``?"""
    return db.execute(_PRESENTED, {"code": fixmedins_code, "psn_no": psn_no, "since": since}).first() is not None


def presented_person(db: Db, fixmedins_code: str, psn_no: str, since: datetime | None, field: str = "psn_no") -> Row:
    """The person, if they showed this institution a credential since ``since`` (None: no tenancy check)."""
    row = person_row(db, psn_no, field=field)
    if since is not None and not presented_since(db, fixmedins_code, psn_no, since):
        raise Forbidden(field, "this person has not presented a credential here (1101 first)")
    return row


_FAMILY_PAYERS = (select(family_links).where(and_(family_links.c.beneficiary_psn_no == bindparam("psn_no"),
                                                  family_links.c.active.is_(True)))
                  .order_by(family_links.c.priority, family_links.c.payer_psn_no))


def family_payers(db: Db, beneficiary: str) -> list[Row]:
    return list(db.execute(_FAMILY_PAYERS, {"psn_no": beneficiary}))


# ------------------------------------------------------------------------------------------ catalog

_CATALOG = select(catalog_items).where(catalog_items.c.med_list_codg.in_(bindparam("codes", expanding=True)))


def catalog_item(row: Any) -> CatalogItem:
    return CatalogItem(
        med_list_codg=row.med_list_codg, name=row.name, chrgitm_lv=ChrgitmLv(row.chrgitm_lv),
        med_chrgitm_type=row.med_chrgitm_type, pric_uplmt_amt=row.pric_uplmt_amt,
        selfpay_prop=Decimal(row.selfpay_prop) if row.selfpay_prop is not None else None,
        list_type=row.list_type,
    )


def catalog(db: Db, codes: Iterable[str]) -> dict[str, CatalogItem]:
    return {row.med_list_codg: catalog_item(row) for row in db.execute(_CATALOG, {"codes": sorted(set(codes))})}


# ------------------------------------------------------------------------------------------ visits, settlements

def _of(table: Any, key_column: Any) -> Any:
    """A row by key, only if it is the institution's: another institution's row is never locked or read."""
    return select(table).where(key_column == bindparam("key"), table.c.fixmedins_code == bindparam("code"))


_VISIT = _of(visits, visits.c.mdtrt_id)
_VISIT_LOCKED = _VISIT.with_for_update()
_SETTLEMENT = _of(settlements, settlements.c.setl_id)
_SETTLEMENT_LOCKED = _SETTLEMENT.with_for_update()


def _owned(db: Db, query: Any, key: str, fixmedins_code: str, *, field: str, noun: str) -> Row:
    """A row the calling institution owns (tenancy). Another institution's row is refused exactly like one that
    doesn't exist: an institution can't probe which ids exist elsewhere."""
    row = db.execute(query, {"key": key, "code": fixmedins_code}).one_or_none()
    if row is None:
        raise NotFound(field, f"no {noun} {key!r} at this institution")
    return row


def own_visit(db: Db, fixmedins_code: str, mdtrt_id: str, *, lock: bool = False) -> Row:
    return _owned(db, _VISIT_LOCKED if lock else _VISIT, mdtrt_id, fixmedins_code, field="mdtrt_id", noun="visit")


_PERSON_COLUMNS = [c.label(f"person_{c.name}") for c in persons.c]
_VISIT_WITH_PERSON = (select(visits, *_PERSON_COLUMNS).join(persons, persons.c.psn_no == visits.c.psn_no)
                      .where(visits.c.mdtrt_id == bindparam("key"), visits.c.fixmedins_code == bindparam("code")))
_VISIT_WITH_PERSON_LOCKED = {True: _VISIT_WITH_PERSON.with_for_update(),  # both rows
                             False: _VISIT_WITH_PERSON.with_for_update(of=visits)}  # the visit's only


class _Prefixed:
    """One table's columns of a joined row, by their own names."""

    __slots__ = ("_row", "_prefix")

    def __init__(self, row: Row, prefix: str):
        self._row, self._prefix = row, prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, self._prefix + name)


def own_visit_and_person(db: Db, fixmedins_code: str, mdtrt_id: str, *, lock_person: bool) -> tuple[Row, Any]:
    """The institution's visit, locked, and its person — locked too with ``lock_person`` (what a write to
    the visit's money needs: the person's accumulators and accounts) — in one statement."""
    visit = _owned(db, _VISIT_WITH_PERSON_LOCKED[lock_person], mdtrt_id, fixmedins_code, field="mdtrt_id",
                   noun="visit")
    return visit, _Prefixed(visit, "person_")


def own_settlement(db: Db, fixmedins_code: str, setl_id: str, *, lock: bool = False) -> Row:
    return _owned(db, _SETTLEMENT_LOCKED if lock else _SETTLEMENT, setl_id, fixmedins_code, field="setl_id",
                  noun="settlement")


_SET_VISIT: dict[tuple[str, ...], Any] = {}


def set_visit(db: Db, mdtrt_id: str, **values: Any) -> None:
    names = tuple(sorted(values))
    stmt = _SET_VISIT.get(names)
    if stmt is None:  # one prepared statement per set of columns
        stmt = _SET_VISIT[names] = (update(visits).where(visits.c.mdtrt_id == bindparam("key"))
                                    .values({n: bindparam(n) for n in names}))
    db.execute(stmt, {"key": mdtrt_id, **values})


def insert_visit(db: Db, values: dict[str, Any]) -> None:
    db.execute(insert(visits), values)


_SET_SETTLEMENT_CANCELLED = (update(settlements).where(settlements.c.setl_id == bindparam("key"))
                             .values(cancelled=bindparam("cancelled")))


def set_cancelled(db: Db, setl_id: str, cancelled: bool) -> None:
    db.execute(_SET_SETTLEMENT_CANCELLED, {"key": setl_id, "cancelled": cancelled})


def insert_settlement(db: Db, values: dict[str, Any]) -> None:
    db.execute(insert(settlements), values)


_LIVE_SETTLEMENTS = (select(settlements).where(and_(
    settlements.c.mdtrt_id == bindparam("mdtrt_id"), settlements.c.kind == "settle",
    settlements.c.cancelled.is_(False))).order_by(settlements.c.setl_time))


def live_settlements(db: Db, mdtrt_id: str) -> list[Row]:
    """The visit's settlements that stand (neither cancelled nor themselves cancellations), oldest first."""
    return list(db.execute(_LIVE_SETTLEMENTS, {"mdtrt_id": mdtrt_id}))


# ------------------------------------------------------------------------------------------ fee lines

_ACTIVE_LINES = (select(fee_lines).where(and_(fee_lines.c.mdtrt_id == bindparam("mdtrt_id"),
                                              fee_lines.c.status == "active")).order_by(fee_lines.c.id))
_ACTIVE_LINE_SNS = select(fee_lines.c.feedetl_sn).where(and_(fee_lines.c.mdtrt_id == bindparam("mdtrt_id"),
                                                             fee_lines.c.status == "active"))
_UNSETTLED_LINES = (select(fee_lines.c.id, fee_lines.c.feedetl_sn, fee_lines.c.med_list_codg, fee_lines.c.cnt,
                           fee_lines.c.pric, fee_lines.c.det_item_fee_sumamt, fee_lines.c.fee_ocur_time,
                           catalog_items.c.name,
                           catalog_items.c.chrgitm_lv, catalog_items.c.med_chrgitm_type, catalog_items.c.pric_uplmt_amt,
                           catalog_items.c.selfpay_prop, catalog_items.c.list_type)
                    .join(catalog_items, catalog_items.c.med_list_codg == fee_lines.c.med_list_codg)
                    .where(and_(fee_lines.c.mdtrt_id == bindparam("mdtrt_id"), fee_lines.c.status == "active",
                                fee_lines.c.setl_id.is_(None))).order_by(fee_lines.c.id))
_ALL_LINES = (select(fee_lines, catalog_items.c.name, catalog_items.c.list_type)
              .join(catalog_items, catalog_items.c.med_list_codg == fee_lines.c.med_list_codg)
              .where(fee_lines.c.mdtrt_id == bindparam("mdtrt_id")).order_by(fee_lines.c.id))
_SET_LINES_SETTLED = (update(fee_lines).where(fee_lines.c.id.in_(bindparam("ids", expanding=True)))
                      .values(setl_id=bindparam("setl_id")))
_SET_LINES_STATUS = (update(fee_lines).where(fee_lines.c.id.in_(bindparam("ids", expanding=True)))
                     .values(status=bindparam("status")))
_SET_SETTLED_LINES_STATUS = (update(fee_lines).where(fee_lines.c.setl_id == bindparam("w_setl_id"))
                             .values(status=bindparam("status")))


def active_lines(db: Db, mdtrt_id: str) -> list[Row]:
    return list(db.execute(_ACTIVE_LINES, {"mdtrt_id": mdtrt_id}))


def active_line_numbers(db: Db, mdtrt_id: str) -> set[str]:
    return set(db.execute(_ACTIVE_LINE_SNS, {"mdtrt_id": mdtrt_id}).scalars())


def unsettled_lines(db: Db, mdtrt_id: str) -> list[Row]:
    """The visit's lines not yet settled, each with its catalog item's columns (``catalog_item(row)``)."""
    return list(db.execute(_UNSETTLED_LINES, {"mdtrt_id": mdtrt_id}))


def all_lines(db: Db, mdtrt_id: str) -> list[Row]:
    """Every line of the visit, cancelled ones included, with its catalog item's name and list type."""
    return list(db.execute(_ALL_LINES, {"mdtrt_id": mdtrt_id}))


def insert_lines(db: Db, rows: list[dict[str, Any]]) -> None:
    db.execute(insert(fee_lines), rows)


def mark_lines_settled(db: Db, line_ids: list[int], setl_id: str) -> None:
    db.execute(_SET_LINES_SETTLED, {"ids": line_ids, "setl_id": setl_id})


def set_lines_status(db: Db, line_ids: list[int], status: str) -> None:
    if line_ids:
        db.execute(_SET_LINES_STATUS, {"ids": line_ids, "status": status})


def set_settled_lines_status(db: Db, setl_id: str, status: str) -> None:
    db.execute(_SET_SETTLED_LINES_STATUS, {"w_setl_id": setl_id, "status": status})


# ------------------------------------------------------------------------------------------ accumulators

_YEAR_ACCUMULATORS = select(accumulators.c.key, accumulators.c.value).where(and_(
    accumulators.c.psn_no == bindparam("psn_no"), accumulators.c.year == bindparam("year")))
_VISIT_DELTAS = select(settlements.c.visit_deltas).where(and_(
    settlements.c.mdtrt_id == bindparam("mdtrt_id"), settlements.c.kind == "settle",
    settlements.c.cancelled.is_(False)))
def _add_accumulators(variant: Any) -> Any:
    stmt = variant(accumulators).values(psn_no=bindparam("psn_no"), year=bindparam("year"), key=bindparam("key"),
                                        value=bindparam("value"))
    return stmt.on_conflict_do_update(index_elements=["psn_no", "year", "key"],
                                      set_={"value": accumulators.c.value + stmt.excluded.value})


_ADD_ACCUMULATORS = {name: _add_accumulators(variant) for name, variant in INSERTS.items()}


def year_accumulators(db: Db, psn_no: str, year: int) -> Accumulators:
    return Accumulators({k: v for k, v in db.execute(_YEAR_ACCUMULATORS, {"psn_no": psn_no, "year": year})})


def add_to_accumulators(db: Db, psn_no: str, year: int, deltas: dict[str, int]) -> None:
    """Add ``deltas`` to the person's ``year`` totals in one statement (insert or increment each key); a key that
    names its own policy year ("2025/emp_pool.fund", a stay across years) goes to that year. The caller holds the
    person's row lock, so no other settlement of this person reads the totals meanwhile."""
    if deltas:
        rows = []
        for k, v in sorted(deltas.items()):
            key_year, key = Accumulators.year_of(k, year)
            rows.append({"psn_no": psn_no, "year": key_year, "key": key, "value": v})
        db.execute(_ADD_ACCUMULATORS[dialect_name(db)], rows)


def visit_accumulators(db: Db, mdtrt_id: str) -> Accumulators:
    """Sum of the visit deltas of the visit's standing settlements (a cancelled one and its cancellation net to zero)."""
    acc = Accumulators()
    for deltas in db.execute(_VISIT_DELTAS, {"mdtrt_id": mdtrt_id}).scalars():
        acc = acc.plus(deltas)
    return acc


# ------------------------------------------------------------------------------------------ idempotency records

_IDEMPOTENCY = select(idempotency_keys).where(and_(idempotency_keys.c.scope == bindparam("scope"),
                                                   idempotency_keys.c.key == bindparam("key")))
_IDEMPOTENCY_LOCKED = _IDEMPOTENCY.with_for_update()
_SET_OPERATION = (update(idempotency_keys).where(and_(idempotency_keys.c.scope == bindparam("w_scope"),
                                                      idempotency_keys.c.key == bindparam("w_key")))
                  .values(operation=bindparam("operation")))


def idempotency_record(db: Db, scope: str, key: str, *, lock: bool = False) -> Row | None:
    return db.execute(_IDEMPOTENCY_LOCKED if lock else _IDEMPOTENCY, {"scope": scope, "key": key}).one_or_none()


def record_idempotency(db: Db, scope: str, key: str, request_hash: str, operation: str, response: Any,
                       now: datetime) -> bool:
    """Store the first answer to ``key``; False when the key is taken (by a committed or concurrent request)."""
    return insert_ignore(db, idempotency_keys, {"scope": scope, "key": key, "request_hash": request_hash,
                                                "operation": operation, "response": response, "created_at": now},
                         idempotency_keys.c.key)


def set_operation(db: Db, scope: str, key: str, operation: str) -> None:
    db.execute(_SET_OPERATION, {"w_scope": scope, "w_key": key, "operation": operation})
