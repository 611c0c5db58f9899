"""Loading domain records from rows (with the locks a write needs) and small shared helpers."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.tables import (
    AccumulatorRow,
    CatalogItemRow,
    FamilyLinkRow,
    InstitutionRow,
    PersonRow,
    SettlementRow,
    VisitRow,
)
from medpay.domain.model import Accumulators, CatalogItem, ChrgitmLv, Institution, Person
from medpay.services.errors import Forbidden, NotFound


def new_id(now: datetime) -> str:
    """A 20-digit id: time to the second, then 8 random digits (unique by primary key, readable by date)."""
    return now.strftime("%y%m%d%H%M%S") + f"{secrets.randbelow(10**8):08d}"


def request_hash(body: Any) -> str:
    """Stable hash of a request body for idempotency checks (key order and spacing don't matter)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def institution(session: Session, code: str, field: str = "fixmedins_code") -> Institution:
    row = session.get(InstitutionRow, code)
    if row is None:
        raise NotFound(field, f"unknown institution {code!r}")
    return Institution(row.fixmedins_code, row.fixmedins_name, row.admdvs, row.level)


def person_row(session: Session, psn_no: str, *, lock: bool = False, field: str = "psn_no") -> PersonRow:
    query = select(PersonRow).where(PersonRow.psn_no == psn_no)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        raise NotFound(field, f"unknown person {psn_no!r}")
    return row


def person(row: PersonRow, cipher: FieldCipher) -> Person:
    return Person(
        psn_no=row.psn_no, psn_name=cipher.decrypt(row.psn_name_enc, "psn_name"), insutype=row.insutype,
        psn_type=row.psn_type, insuplc_admdvs=row.insuplc_admdvs, cvlserv_flag=row.cvlserv_flag,
        identities=frozenset(x for x in row.identities.split(",") if x),
    )


def catalog_item(row: CatalogItemRow) -> CatalogItem:
    return CatalogItem(
        med_list_codg=row.med_list_codg, name=row.name, chrgitm_lv=ChrgitmLv(row.chrgitm_lv),
        med_chrgitm_type=row.med_chrgitm_type, pric_uplmt_amt=row.pric_uplmt_amt,
        selfpay_prop=Decimal(row.selfpay_prop) if row.selfpay_prop is not None else None,
    )


def _owned(session: Session, model: type, key_column, key: str, fixmedins_code: str, *, lock: bool,
           field: str, noun: str):
    """A row of ``model`` the calling institution owns (tenancy), optionally locked for update."""
    query = select(model).where(key_column == key)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        raise NotFound(field, f"unknown {noun} {key!r}")
    if row.fixmedins_code != fixmedins_code:
        raise Forbidden(field, f"{noun} {key!r} belongs to another institution")
    return row


def own_visit(session: Session, fixmedins_code: str, mdtrt_id: str, *, lock: bool = False) -> VisitRow:
    return _owned(session, VisitRow, VisitRow.mdtrt_id, mdtrt_id, fixmedins_code, lock=lock, field="mdtrt_id",
                  noun="visit")


def own_settlement(session: Session, fixmedins_code: str, setl_id: str, *, lock: bool = False) -> SettlementRow:
    return _owned(session, SettlementRow, SettlementRow.setl_id, setl_id, fixmedins_code, lock=lock,
                  field="setl_id", noun="settlement")


def year_accumulators(session: Session, psn_no: str, year: int) -> Accumulators:
    rows = session.execute(
        select(AccumulatorRow.key, AccumulatorRow.value).where(AccumulatorRow.psn_no == psn_no, AccumulatorRow.year == year)
    )
    return Accumulators({k: v for k, v in rows})


def add_to_accumulators(session: Session, psn_no: str, year: int, deltas: dict[str, int]) -> None:
    """Caller holds the person's row lock, so read-modify-write is safe on both backends."""
    if not deltas:
        return
    existing = {
        r.key: r
        for r in session.execute(
            select(AccumulatorRow).where(AccumulatorRow.psn_no == psn_no, AccumulatorRow.year == year,
                                         AccumulatorRow.key.in_(list(deltas)))
        ).scalars()
    }
    for key, delta in deltas.items():
        if key in existing:
            existing[key].value += delta
        else:
            session.add(AccumulatorRow(psn_no=psn_no, year=year, key=key, value=delta))


def visit_accumulators(session: Session, mdtrt_id: str) -> Accumulators:
    """Sum of the visit deltas of the visit's standing settlements (a cancelled one and its cancellation net to zero)."""
    acc = Accumulators()
    for deltas in session.execute(select(SettlementRow.visit_deltas).where(
            SettlementRow.mdtrt_id == mdtrt_id, SettlementRow.kind == "settle",
            SettlementRow.cancelled.is_(False))).scalars():
        acc = acc.plus(deltas)
    return acc


def family_payers(session: Session, beneficiary: str) -> list[FamilyLinkRow]:
    return list(
        session.execute(
            select(FamilyLinkRow)
            .where(FamilyLinkRow.beneficiary_psn_no == beneficiary, FamilyLinkRow.active.is_(True))
            .order_by(FamilyLinkRow.priority, FamilyLinkRow.payer_psn_no)
        ).scalars()
    )
