"""A person's designated institutions (人员定点信息, 5302): which institutions the region binds the person to for
a business (``biz_appy_type``), in the person's order of choice (``fix_srt_no``).

The region enters them (``designate``; the demo seeds some); an institution reads them for a person standing in
front of it (a 1101 within the presentation window, as for 5301): they entitle the person wherever treated, so
every institution of the person's designation is listed, and each disclosure is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.base import utcnow
from medpay.adapters.db.designation_tables import PersonDesignationRow
from medpay.local_time import local_date
from medpay.services import audit, records
from medpay.services.errors import Invalid
from medpay.services.unit_of_work import unit_of_work

designations = PersonDesignationRow.__table__


class Designations:
    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime] = utcnow,
                 presentation_window: timedelta | None = None):
        self.factory, self.clock, self.presentation_window = factory, clock, presentation_window

    def designate(self, psn_no: str, insutype: str, biz_appy_type: str, fix_srt_no: str, fixmedins_code: str,
                  begndate: date, enddate: date | None = None, memo: str = "") -> None:
        """Enter one designation; the same one again (person, business, choice, institution, start) changes
        nothing."""
        if enddate is not None and enddate < begndate:
            raise Invalid("enddate", f"{enddate} is before begndate {begndate}")
        with unit_of_work(self.factory) as uow:
            records.person_row(uow.session, psn_no)
            records.institution(uow.session, fixmedins_code)
            same = uow.session.execute(select(PersonDesignationRow).where(
                PersonDesignationRow.psn_no == psn_no, PersonDesignationRow.biz_appy_type == biz_appy_type,
                PersonDesignationRow.fix_srt_no == fix_srt_no, PersonDesignationRow.fixmedins_code == fixmedins_code,
                PersonDesignationRow.begndate == begndate)).scalar_one_or_none()
            if same is None:
                uow.session.add(PersonDesignationRow(
                    psn_no=psn_no, insutype=insutype, biz_appy_type=biz_appy_type, fix_srt_no=fix_srt_no,
                    fixmedins_code=fixmedins_code, begndate=begndate, enddate=enddate, memo=memo,
                    created_at=self.clock()))

    def of_person(self, fixmedins_code: str, psn_no: str, biz_appy_type: str, ref: str = "") -> list[dict[str, Any]]:
        """5302: the person's designations for ``biz_appy_type`` standing today, in order of choice."""
        today = local_date(self.clock())
        with unit_of_work(self.factory) as uow:
            since = None if self.presentation_window is None else self.clock() - self.presentation_window
            records.presented_person(uow.conn, fixmedins_code, psn_no, since, "data.psn_no")
            institutions = records.institutions
            rows = list(uow.conn.execute(
                select(designations, institutions.c.fixmedins_name)
                .join(institutions, institutions.c.fixmedins_code == designations.c.fixmedins_code)
                .where(designations.c.psn_no == psn_no, designations.c.biz_appy_type == biz_appy_type,
                       designations.c.begndate <= today,
                       or_(designations.c.enddate.is_(None), designations.c.enddate >= today))
                .order_by(designations.c.fix_srt_no, designations.c.id)))
            if rows:  # an empty answer discloses nothing
                audit.record(uow.conn, actor_kind="institution", actor=fixmedins_code, action="designations",
                             psn_no=psn_no, fields=("fixmedins_code",), at=self.clock(), ref=ref)
            return [{"psn_no": r.psn_no, "insutype": r.insutype, "fix_srt_no": r.fix_srt_no,
                     "fixmedins_code": r.fixmedins_code, "fixmedins_name": r.fixmedins_name,
                     "begndate": r.begndate.isoformat(), "enddate": r.enddate.isoformat() if r.enddate else None,
                     "memo": r.memo}
                    for r in rows]
