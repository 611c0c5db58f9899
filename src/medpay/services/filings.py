"""Chronic and special outpatient disease filings (门慢门特病种备案): 2503 files one, 2504 cancels it, 5301 lists a
person's. Rules:

- the institution must have seen the person (a 1101 within the presentation window), as for any visit;
- ``insutype`` and ``insu_optins`` are the person's own (insurance type, region);
- ``begndate`` ≤ ``enddate``; the certification (``hosp_ide_date``) is not in the future;
- one standing filing per person and disease whose period meets another's: a second is refused naming
  ``opsp_dise_code``;
- only the institution that filed it cancels it, once, with a reason (``memo``); another institution's filing is
  refused exactly like an unknown one;
- 2503 and 2504 are exactly once by msgid; 5301 lists every standing filing of the person (they entitle the person
  wherever treated) and is written to the audit log (a disease is personal data).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.base import utcnow
from medpay.adapters.db.filing_tables import DiseaseFilingRow
from medpay.local_time import local_date
from medpay.services import audit, idempotency, records
from medpay.services.errors import Conflict, Invalid, NotFound
from medpay.services.unit_of_work import UnitOfWork, unit_of_work

filings = DiseaseFilingRow.__table__


@dataclass(frozen=True)
class Filing:
    """What 2503 files (``tel``/``addr`` checked by the handler and not kept)."""

    psn_no: str
    insutype: str
    opsp_dise_code: str
    opsp_dise_name: str
    insu_optins: str
    ide_fixmedins_no: str
    ide_fixmedins_name: str
    hosp_ide_date: date
    diag_dr_codg: str
    diag_dr_name: str
    begndate: date
    enddate: date | None = None


class FilingService:
    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime] = utcnow,
                 presentation_window: timedelta | None = None):
        self.factory = factory
        self.clock = clock
        self.presentation_window = presentation_window

    def file(self, fixmedins_code: str, filing: Filing, msgid: str | None = None) -> str:
        """2503: the filing's trt_dcla_detl_sn."""
        if filing.enddate is not None and filing.enddate < filing.begndate:
            raise Invalid("data.enddate", f"{filing.enddate} is before begndate {filing.begndate}")
        if filing.hosp_ide_date > local_date(self.clock()):
            raise Invalid("data.hosp_ide_date", f"{filing.hosp_ide_date} is in the future")
        body = {k: str(v) if isinstance(v, date) else v for k, v in vars(filing).items()}

        def work(uow: UnitOfWork) -> dict:
            person = self._person(uow, fixmedins_code, filing.psn_no)
            if filing.insutype != person.insutype:
                raise Invalid("data.insutype", f"the person is insured as {person.insutype}, not {filing.insutype}")
            if filing.insu_optins != person.insuplc_admdvs:
                raise Invalid("data.insu_optins", f"the person is insured in {person.insuplc_admdvs}, not "
                                                  f"{filing.insu_optins}")
            for other in self._standing(uow, filing.psn_no):
                if other.opsp_dise_code == filing.opsp_dise_code and _meet(other, filing):
                    raise Conflict("data.opsp_dise_code", f"{filing.opsp_dise_code} is filed for this person from "
                                                          f"{other.begndate} ({other.trt_dcla_detl_sn})")
            now = self.clock()
            sn = records.new_id(now)
            uow.session.add(DiseaseFilingRow(trt_dcla_detl_sn=sn, fixmedins_code=fixmedins_code, status="active",
                                             memo="", created_at=now, **vars(filing)))
            return {"trt_dcla_detl_sn": sn}

        return idempotency.write(self.factory, self.clock, fixmedins_code, msgid, "filing", body,
                                 work)["trt_dcla_detl_sn"]

    def cancel(self, fixmedins_code: str, trt_dcla_detl_sn: str, psn_no: str, memo: str,
               msgid: str | None = None) -> None:
        """2504: cancel the institution's standing filing of the person."""
        body = {"trt_dcla_detl_sn": trt_dcla_detl_sn, "psn_no": psn_no, "memo": memo}

        def work(uow: UnitOfWork) -> dict:
            row = uow.session.get(DiseaseFilingRow, trt_dcla_detl_sn, with_for_update=True)
            if row is None or row.fixmedins_code != fixmedins_code:  # another institution's: as if unknown
                raise NotFound("data.trt_dcla_detl_sn", f"no filing {trt_dcla_detl_sn!r} of this institution")
            if row.psn_no != psn_no:
                raise Invalid("data.psn_no", f"filing {trt_dcla_detl_sn!r} is not of person {psn_no!r}")
            if row.status != "active":
                raise Conflict("data.trt_dcla_detl_sn", f"filing {trt_dcla_detl_sn!r} is already cancelled")
            uow.session.execute(update(DiseaseFilingRow).where(DiseaseFilingRow.trt_dcla_detl_sn == trt_dcla_detl_sn)
                                .values(status="cancelled", memo=memo, cancelled_at=self.clock()))
            return {}

        idempotency.write(self.factory, self.clock, fixmedins_code, msgid, "filing_cancel", body, work)

    def of_person(self, fixmedins_code: str, psn_no: str, ref: str = "") -> list[dict[str, Any]]:
        """5301: the person's standing filings, oldest first; the disclosure is audited."""
        with unit_of_work(self.factory) as uow:
            self._person(uow, fixmedins_code, psn_no)
            rows = self._standing(uow, psn_no)
            audit.record(uow.session, actor_kind="institution", actor=fixmedins_code, action="disease_filings",
                         psn_no=psn_no, fields=("opsp_dise_code", "opsp_dise_name"), at=self.clock(), ref=ref)
            return [{"opsp_dise_code": r.opsp_dise_code, "opsp_dise_name": r.opsp_dise_name,
                     "begndate": r.begndate.isoformat(), "enddate": r.enddate.isoformat() if r.enddate else None,
                     "trt_dcla_detl_sn": r.trt_dcla_detl_sn}
                    for r in rows]

    def _person(self, uow: UnitOfWork, fixmedins_code: str, psn_no: str) -> Any:
        since = None if self.presentation_window is None else self.clock() - self.presentation_window
        return records.presented_person(uow.conn, fixmedins_code, psn_no, since, "data.psn_no")

    @staticmethod
    def _standing(uow: UnitOfWork, psn_no: str) -> list[Any]:
        return list(uow.conn.execute(select(filings).where(filings.c.psn_no == psn_no, filings.c.status == "active")
                                     .order_by(filings.c.begndate, filings.c.trt_dcla_detl_sn)))


def _meet(a: Any, b: Any) -> bool:
    """Do two filing periods (an open end: for ever) share a day?"""
    far = date.max
    return a.begndate <= (b.enddate or far) and b.begndate <= (a.enddate or far)
