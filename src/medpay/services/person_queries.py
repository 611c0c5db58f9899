"""What an institution may read back of a person it treated (5201 visits, 5202 diagnoses, 5205 chronic-disease
medication). Rules:

- only the institution's own visits, never another institution's (DESIGN §6, tenancy); a person the
  institution has neither seen (1101) nor treated is refused exactly like an unknown one;
- cancelled visits (2202/2404) and cancelled fee lines (2205/2302) are not listed;
- every answer that shows personal data is written to the audit log in the transaction that reads it
  (5201: name and ID number; 5202: diagnoses; 5205: medication), with the request's msgid.

Amounts stay in fen here; the handler turns them into yuan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, select

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.base import utcnow
from medpay.domain.diagnoses import ADMISSION, DISCHARGE, MAIN
from medpay.domain.person_records import is_chronic_or_special, is_inpatient, is_medication
from medpay.local_time import age_on, format_local, local_date
from medpay.services import audit, records, visit_diagnoses
from medpay.services.errors import Invalid, NotFound
from medpay.services.unit_of_work import unit_of_work

visits, persons, fee_lines = records.visits, records.persons, records.fee_lines
catalog_items, presentations = records.catalog_items, records.presentations
CANCELLED_VISIT = "cancelled"


@dataclass(frozen=True)
class Period:
    """A time range of a query (either end open)."""

    begin: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if self.begin is not None and self.end is not None and self.end < self.begin:
            raise Invalid("data.endtime", f"{format_local(self.end)} is before begntime {format_local(self.begin)}")


class PersonQueries:
    def __init__(self, factory: Any, cipher: FieldCipher, clock: Callable[[], datetime] = utcnow):
        self.factory, self.cipher, self.clock = factory, cipher, clock

    # ---------------------------------------------------------------- 5201

    def visits(self, fixmedins_code: str, psn_no: str, period: Period = Period(), *, med_type: str = "",
               mdtrt_id: str = "", ref: str = "") -> list[dict[str, Any]]:
        """The person's visits at this institution, oldest first (begntime within ``period``), each with the
        person's identity as the specification's 5201 row gives it."""
        with unit_of_work(self.factory) as uow:
            person = self._person_seen_here(uow.conn, fixmedins_code, psn_no)
            if mdtrt_id:
                visit = records.own_visit(uow.conn, fixmedins_code, mdtrt_id)
                if visit.psn_no != psn_no:
                    raise Invalid("data.mdtrt_id", f"visit {mdtrt_id!r} is not of person {psn_no!r}")
            query = select(visits).where(*self._own(fixmedins_code, psn_no), *_in(visits.c.begntime, period))
            if med_type:
                query = query.where(visits.c.med_type == med_type)
            if mdtrt_id:
                query = query.where(visits.c.mdtrt_id == mdtrt_id)
            rows = list(uow.conn.execute(query.order_by(visits.c.begntime, visits.c.mdtrt_id)))
            if not rows:
                return []
            audit.record(uow.conn, actor_kind="institution", actor=fixmedins_code, action="visit_info",
                         psn_no=psn_no, fields=audit.IDENTITY, at=self.clock(), ref=ref)
            identity = self._identity(person)
            return [self._visit_row(v, identity) for v in rows]

    def _identity(self, person: Any) -> dict[str, Any]:
        return {"psn_no": person.psn_no, "psn_cert_type": person.psn_cert_type,
                "certno": self.cipher.decrypt(person.certno_enc, "certno"),
                "psn_name": self.cipher.decrypt(person.psn_name_enc, "psn_name"), "gend": person.gend,
                "naty": person.naty, "brdy": person.brdy.isoformat(), "insutype": person.insutype,
                "psn_type": person.psn_type, "cvlserv_flag": "1" if person.cvlserv_flag else "0",
                "insu_optins": person.insuplc_admdvs, "emp_name": person.emp_name,
                "age": age_on(person.brdy, local_date(self.clock()))}

    @staticmethod
    def _visit_row(v: Any, identity: dict[str, Any]) -> dict[str, Any]:
        inpatient = is_inpatient(v.med_type)
        row = {"mdtrt_id": v.mdtrt_id, **identity, "insutype": v.insutype, "med_type": v.med_type,
               "begntime": format_local(v.begntime), "endtime": format_local(v.endtime) if v.endtime else None,
               "mdtrt_cert_type": v.mdtrt_cert_type, "ipt_otp_no": v.ipt_otp_no, "dise_codg": v.dise_codg,
               "dise_name": v.dise_name,
               # 在院状态: 1 in hospital (an admission not yet discharged), 0 otherwise
               "inhosp_stas": "1" if inpatient and v.endtime is None else "0"}
        if inpatient and v.endtime is not None:
            row["ipt_days"] = max((local_date(v.endtime) - local_date(v.begntime)).days, 1)
        return row

    # ---------------------------------------------------------------- 5202

    def diagnoses(self, fixmedins_code: str, mdtrt_id: str, psn_no: str, ref: str = "") -> list[dict[str, Any]]:
        """The diagnoses of the institution's visit: every row of the lists its 2203/2401/2402 sent (the
        admission or outpatient list, then the discharge list, each in the order sent); a visit whose HIS sent
        no list answers the main diagnosis 2201/2401/2203 recorded on it, and a visit without one answers none."""
        with unit_of_work(self.factory) as uow:
            visit = records.own_visit(uow.conn, fixmedins_code, mdtrt_id)
            if visit.psn_no != psn_no:
                raise Invalid("data.psn_no", f"visit {mdtrt_id!r} is not of person {psn_no!r}")
            stored = visit_diagnoses.of_visit(uow.conn, mdtrt_id)
            if not stored and not visit.dise_codg:
                return []
            audit.record(uow.conn, actor_kind="institution", actor=fixmedins_code, action="diagnoses",
                         psn_no=psn_no, fields=("diag_code", "diag_name"), at=self.clock(), ref=ref)
            if stored:
                return [_diagnosis_row(visit, r) for r in stored]
            discharged = is_inpatient(visit.med_type) and visit.endtime is not None
            return [{"diag_info_id": f"{visit.mdtrt_id}01", "mdtrt_id": visit.mdtrt_id, "psn_no": visit.psn_no,
                     # 出入院诊断类别: 1 入院 (an outpatient visit's, or an admission's), 2 出院 once discharged
                     "inout_diag_type": DISCHARGE if discharged else ADMISSION, "diag_type": "1",
                     "maindiag_flag": MAIN, "diag_srt_no": 1, "diag_code": visit.dise_codg,
                     "diag_name": visit.dise_name, "diag_dept": "", "dise_dor_no": "", "dise_dor_name": "",
                     "diag_time": format_local(visit.begntime)}]

    # ---------------------------------------------------------------- 5205

    def chronic_medication(self, fixmedins_code: str, psn_no: str, period: Period, ref: str = "",
                           ) -> list[dict[str, Any]]:
        """The drug lines (``is_medication``) of the person's chronic or special disease visits here
        (``is_chronic_or_special``), fee time within ``period``, oldest first; each as 2204 classified it."""
        with unit_of_work(self.factory) as uow:
            self._person_seen_here(uow.conn, fixmedins_code, psn_no)
            institution = records.institution(uow.conn, fixmedins_code)
            query = (select(fee_lines, visits.c.med_type, visits.c.psn_no, catalog_items.c.name,
                            catalog_items.c.list_type)
                     .join(visits, visits.c.mdtrt_id == fee_lines.c.mdtrt_id)
                     .join(catalog_items, catalog_items.c.med_list_codg == fee_lines.c.med_list_codg)
                     .where(*self._own(fixmedins_code, psn_no), fee_lines.c.status == "active",
                            *_in(fee_lines.c.fee_ocur_time, period))
                     .order_by(fee_lines.c.fee_ocur_time, fee_lines.c.id))
            rows = [r for r in uow.conn.execute(query)
                    if is_chronic_or_special(r.med_type) and is_medication(r.list_type)]
            if rows:
                audit.record(uow.conn, actor_kind="institution", actor=fixmedins_code, action="chronic_medication",
                             psn_no=psn_no, fields=("med_list_codg", "cnt"), at=self.clock(), ref=ref)
            return [dict(r.result, mdtrt_id=r.mdtrt_id, setl_id=r.setl_id or "", psn_no=r.psn_no, med_type=r.med_type,
                         fixmedins_code=institution.fixmedins_code, fixmedins_name=institution.fixmedins_name,
                         fee_ocur_time=r.fee_ocur_time, med_list_codg=r.med_list_codg,
                         medins_list_codg=r.medins_list_codg, hilist_name=r.name, list_type=r.list_type,
                         details=r.details or {})
                    for r in rows]

    # ---------------------------------------------------------------- tenancy

    @staticmethod
    def _own(fixmedins_code: str, psn_no: str) -> tuple[Any, ...]:
        return (visits.c.fixmedins_code == fixmedins_code, visits.c.psn_no == psn_no,
                visits.c.status != CANCELLED_VISIT)

    @staticmethod
    def _person_seen_here(conn: Connection, fixmedins_code: str, psn_no: str) -> Any:
        """The person, if they showed this institution a credential or were treated here; else refused as if
        unknown (an institution can't learn who is insured elsewhere)."""
        seen = select(exists().where(and_(presentations.c.fixmedins_code == fixmedins_code,
                                          presentations.c.psn_no == psn_no))
                      | exists().where(and_(visits.c.fixmedins_code == fixmedins_code, visits.c.psn_no == psn_no)))
        row = conn.execute(select(persons).where(persons.c.psn_no == psn_no)).one_or_none()
        if row is None or not conn.execute(seen).scalar():
            raise NotFound("data.psn_no", f"no person {psn_no!r} seen at this institution")
        return row


def _diagnosis_row(visit: Any, r: Any) -> dict[str, Any]:
    """A stored ``diseinfo`` row as 5202 answers it (诊断信息ID: the row's own id, new with each list)."""
    return {"diag_info_id": str(r.id), "mdtrt_id": visit.mdtrt_id, "psn_no": visit.psn_no,
            "inout_diag_type": r.inout_diag_type, "diag_type": r.diag_type, "maindiag_flag": r.maindiag_flag,
            "diag_srt_no": r.diag_srt_no, "diag_code": r.diag_code, "diag_name": r.diag_name, "diag_dept": r.diag_dept,
            "dise_dor_no": r.dise_dor_no, "dise_dor_name": r.dise_dor_name, "diag_time": format_local(r.diag_time),
            "vali_flag": r.vali_flag}


def _in(column: Any, period: Period) -> list[Any]:
    return [c for c in ((column >= period.begin) if period.begin else None,
                        (column <= period.end) if period.end else None) if c is not None]
