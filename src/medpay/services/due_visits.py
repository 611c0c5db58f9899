"""What a patient has to pay at an institution, for a self-service terminal (a face kiosk) that identified them:
the visits of the person an ecToken names, at the terminal's institution, with fee lines no settlement covers
yet, each pre-settled as it would settle now (fund, personal account, family mutual aid, cash).

Reads only: the token is checked (this institution, live), not bound or spent — ``POST /api/v1/terminal/settle``
binds it to the visit the patient confirms. Reading a person's bills is an access to their data, and is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.base import utcnow
from medpay.adapters.db.tables import FeeLineRow, InstitutionRow, VisitRow
from medpay.domain.credentials import E_CERTIFICATE
from medpay.services import audit, records
from medpay.services.credentials import Credential
from medpay.services.errors import ServiceError
from medpay.services.settlement import SettlementService
from medpay.services.unit_of_work import unit_of_work

BREAKDOWN = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "acct_mulaid_pay", "psn_cash_pay")
MAX_VISITS = 10  # a kiosk's screen lists a few; older unpaid visits are the window's business


class DueVisits:
    def __init__(self, factory: sessionmaker[Session], settlement: SettlementService,
                 clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.settlement = settlement
        self.clock = clock

    def for_token(self, terminal_id: str, fixmedins_code: str, ec_token: str) -> dict[str, Any]:
        """{fixmedins_name, visits: [{mdtrt_id, med_type, begntime, <BREAKDOWN in fen>}]}, newest first."""
        credential = Credential(E_CERTIFICATE, ec_token)
        with unit_of_work(self.factory) as uow:
            s = uow.session
            institution = records.institution(s, fixmedins_code)
            try:
                person, _shown = self.settlement.credentials.identify(s, institution, credential)
            except ServiceError as e:
                raise type(e)("ecToken" if e.field == "mdtrt_cert_no" else e.field, e.message) from None
            unpaid = exists().where(FeeLineRow.mdtrt_id == VisitRow.mdtrt_id, FeeLineRow.status == "active",
                                    FeeLineRow.setl_id.is_(None))
            visits = s.execute(select(VisitRow.mdtrt_id, VisitRow.med_type, VisitRow.begntime).where(
                VisitRow.fixmedins_code == fixmedins_code, VisitRow.psn_no == person.psn_no,
                VisitRow.status.in_(("open", "discharged")), unpaid)
                .order_by(VisitRow.begntime.desc()).limit(MAX_VISITS)).all()
            name = s.get(InstitutionRow, fixmedins_code).fixmedins_name
            psn_no = person.psn_no
        due = []
        for visit in visits:
            quote = self.settlement.presettle(fixmedins_code, visit.mdtrt_id, credential=credential)
            due.append({"mdtrt_id": visit.mdtrt_id, "med_type": visit.med_type, "begntime": visit.begntime,
                        **{k: int(quote.setlinfo.get(k) or 0) for k in BREAKDOWN}})
        with unit_of_work(self.factory) as uow:
            audit.record(uow.session, actor_kind="terminal", actor=terminal_id, action="terminal.due_visits",
                         psn_no=psn_no, fields=("mdtrt_id", *BREAKDOWN), at=self.clock(),
                         ref=",".join(v["mdtrt_id"] for v in due))
        return {"fixmedins_name": name, "visits": due}
