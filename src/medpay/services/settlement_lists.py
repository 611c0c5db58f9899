"""医疗保障基金结算清单 upload (4101). Rules:

- the list names a settlement of this institution that stands (not cancelled, not itself a cancellation), and
  that settlement's visit (``mdtrt_id``) and person (``hi_no``, when given);
- what the list repeats of the settlement agrees to the fen (``domain.person_records.disagreement``);
- exactly once by msgid: the same msgid answers the first answer (another body with it is refused);
- a list uploaded again for the same settlement under another msgid is a correction: it **replaces** the
  standing one (which is kept, marked replaced) and the replacement is written to the audit log. Institutions
  correct lists after coding review until the bureau's deadline, so refusing would leave a wrong list standing;
  the settlement's row lock orders two corrections sent at once;
- the list carries the patient's name, ID number and contacts: the whole input is stored encrypted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.settlement_list_tables import SettlementListRow
from medpay.domain.person_records import ListAmounts, disagreement
from medpay.services import audit, idempotency, records
from medpay.services.errors import Conflict, Invalid, NotFound
from medpay.services.unit_of_work import UnitOfWork

lists = SettlementListRow.__table__
STANDING, REPLACED = "standing", "replaced"


@dataclass(frozen=True)
class SettlementList:
    setl_id: str
    mdtrt_id: str
    hi_no: str  # 医保编号 (the person's psn_no), optional in the list
    amounts: ListAmounts
    body: Mapping[str, Any]  # the whole input, as sent: stored encrypted


class SettlementLists:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher, clock: Callable[[], datetime] = utcnow):
        self.factory, self.cipher, self.clock = factory, cipher, clock

    def upload(self, fixmedins_code: str, msgid: str, lst: SettlementList) -> dict[str, str]:
        """4101: the list's ``setl_list_id`` (清单流水号)."""

        def work(uow: UnitOfWork) -> dict:
            settlement = self._standing_settlement(uow, fixmedins_code, lst.setl_id)
            if lst.mdtrt_id != settlement.mdtrt_id:
                raise Invalid("setlinfo.mdtrt_id", f"settlement {lst.setl_id!r} is of visit {settlement.mdtrt_id!r}")
            if lst.hi_no and lst.hi_no != settlement.psn_no:
                raise Invalid("setlinfo.hi_no", f"settlement {lst.setl_id!r} is not of person {lst.hi_no!r}")
            wrong = disagreement(lst.amounts, settlement.output["setlinfo"], settlement.output["setldetail"])
            if wrong is not None:
                raise Invalid(*wrong)
            now = self.clock()
            previous = uow.conn.execute(select(lists.c.setl_list_id, lists.c.version).where(
                lists.c.setl_id == lst.setl_id, lists.c.status == STANDING)).one_or_none()
            if previous is not None:
                uow.conn.execute(update(lists).where(lists.c.setl_list_id == previous.setl_list_id)
                                 .values(status=REPLACED, replaced_at=now))
                audit.record(uow.conn, actor_kind="institution", actor=fixmedins_code,
                             action="settlement_list_replaced", psn_no=settlement.psn_no,
                             fields=("settlement_list",), at=now, ref=msgid)
            setl_list_id = records.new_id(now)
            uow.conn.execute(lists.insert().values(
                setl_list_id=setl_list_id, setl_id=lst.setl_id, version=(previous.version + 1) if previous else 1,
                fixmedins_code=fixmedins_code, mdtrt_id=settlement.mdtrt_id, psn_no=settlement.psn_no, msgid=msgid,
                status=STANDING, created_at=now, replaced_at=None,
                body_enc=self.cipher.encrypt(json.dumps(lst.body, ensure_ascii=False, sort_keys=True),
                                             "settlement_list")))
            return {"setl_list_id": setl_list_id}

        return idempotency.write(self.factory, self.clock, fixmedins_code, msgid, "settlement_list",
                                 dict(lst.body), work)

    @staticmethod
    def _standing_settlement(uow: UnitOfWork, fixmedins_code: str, setl_id: str) -> Any:
        """The institution's settlement, locked (two lists for it at once take turns); another institution's is
        refused like an unknown one."""
        try:
            settlement = records.own_settlement(uow.conn, fixmedins_code, setl_id, lock=True)
        except NotFound:
            raise NotFound("setlinfo.setl_id", f"no settlement {setl_id!r} at this institution") from None
        if settlement.kind != "settle":
            raise Invalid("setlinfo.setl_id", f"{setl_id!r} is a cancellation; a list belongs to the settlement")
        if settlement.cancelled:
            raise Conflict("setlinfo.setl_id", f"settlement {setl_id!r} was cancelled (2208/2305); it has no list")
        return settlement
