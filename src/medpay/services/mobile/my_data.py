"""A person's own data, exported; and their request to have it deleted (个人信息保护法 PIPL 第四十五条 copy,
第四十七条 deletion).

- **Export**: everything the platform holds about the person that the app can show them — their registration as the
  insurance bureau keeps it, e-certificates and devices, the app account and its signed-in browsers, family links,
  settlements (all years, fund by fund), bookings, deposits, face-payment consent (never the template itself, which
  no one reads) and who was shown their data. One JSON document; the export is itself audited.
- **Deletion request**: erased at once, in one transaction — what exists only because the person chose to use the app
  (the app account, its sessions and family links, e-certificates and their device keys, the bound payment method, the
  face template and its consents). **Kept**, and said so plainly: the insurance fund's records of each settlement and
  the ledger (settlements, visits, fee lines, money movements), which the medical-insurance fund's rules keep for at
  least 15 years (《医疗保障基金使用监督管理条例》 has such records kept no less than 15 years), the audit log of who saw the
  data, and the person's insurance registration, which is the bureau's record, not the app's. PIPL 第四十七条 says that
  where a law sets a retention period, processing stops except storage and security: the kept records are used only
  for the fund's settlement, clearing, audits and the person's own requests.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.account_tables import (
    AccountPersonRow,
    DeletionRequestRow,
    MobileAccountRow,
    MobileSessionRow,
)
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.booking_tables import BookingRow, BookingSlotRow
from medpay.adapters.db.ecert_tables import EcertRow
from medpay.adapters.db.face_tables import FaceConsentRow, FaceTemplateRow
from medpay.adapters.db.payment_tables import PaymentMethodRow
from medpay.adapters.db.stay_tables import DepositPaymentRow
from medpay.adapters.db.tables import InstitutionRow, PersonRow, SettlementRow
from medpay.services import audit
from medpay.services.errors import NotFound
from medpay.services.face.enrolment import erase_face
from medpay.services.mobile.accounts import Caller, close_account, end_link, require_self
from medpay.services.unit_of_work import unit_of_work

ERASED = ("app_account", "sessions", "family_links", "e_certificates", "payment_method", "face_template")
KEPT = ("settlements_and_ledger", "audit_log", "insurance_registration")
FORMAT = "medpay-my-data/1"


class MyDataService:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher, clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.cipher = cipher
        self.clock = clock

    def export(self, psn_no: str, by: str) -> dict[str, Any]:
        """The person's own data as one document (``by``: the e-certificate whose device asked; audited)."""
        now = self.clock()
        with unit_of_work(self.factory) as uow:
            s = uow.session
            p = s.get(PersonRow, psn_no)
            if p is None:
                raise NotFound("psn_no", "unknown person")
            dec = self.cipher.decrypt
            names = dict(s.execute(select(InstitutionRow.fixmedins_code, InstitutionRow.fixmedins_name)).all())
            links = list(s.scalars(select(AccountPersonRow).where(AccountPersonRow.psn_no == psn_no)))
            accounts = {a.account_id: a for a in s.scalars(select(MobileAccountRow).where(
                MobileAccountRow.account_id.in_({link.account_id for link in links})))}
            doc = {
                "format": FORMAT, "exported_at": now, "psn_no": psn_no,
                "person": {"psn_name": dec(p.psn_name_enc, "psn_name"), "certno": dec(p.certno_enc, "certno"),
                           "phone": dec(p.phone_enc, "phone") if p.phone_enc else None, "gend": p.gend,
                           "brdy": p.brdy, "insutype": p.insutype, "psn_type": p.psn_type,
                           "insuplc_admdvs": p.insuplc_admdvs, "psn_insu_date": p.psn_insu_date,
                           "emp_name": p.emp_name, "pay_grade": p.pay_grade},
                "e_certificates": [{"ecert_id": e.ecert_id, "status": e.status, "device_key": e.device_key,
                                    "consent_at": e.consent_at, "activated_at": e.activated_at,
                                    "revoked_at": e.revoked_at, "revoked_reason": e.revoked_reason}
                                   for e in s.scalars(select(EcertRow).where(EcertRow.psn_no == psn_no))],
                "app_accounts": [{"account_id": a.account_id, "phone": dec(a.phone_enc, "phone"), "status": a.status,
                                  "created_at": a.created_at, "closed_at": a.closed_at,
                                  "sessions": [{"created_at": x.created_at, "last_seen_at": x.last_seen_at,
                                                "revoked_at": x.revoked_at, "user_agent": x.user_agent}
                                               for x in s.scalars(select(MobileSessionRow).where(
                                                   MobileSessionRow.account_id == a.account_id))]}
                                 for a in accounts.values()],
                "links": [{"account_id": link.account_id, "relation": link.relation, "status": link.status,
                           "consent": link.consent, "linked_at": link.linked_at, "consent_at": link.consent_at,
                           "revoked_at": link.revoked_at} for link in links],
                "settlements": [{"setl_id": r.setl_id, "kind": r.kind, "orig_setl_id": r.orig_setl_id,
                                 "fixmedins_code": r.fixmedins_code, "fixmedins_name": names.get(r.fixmedins_code, ""),
                                 "mdtrt_id": r.mdtrt_id, "med_type": r.med_type, "setl_time": r.setl_time,
                                 "policy_id": r.policy_id, "cancelled": r.cancelled, "channel": r.channel,
                                 "setlinfo": r.output.get("setlinfo", {}), "setldetail": r.output.get("setldetail", [])}
                                for r in s.scalars(select(SettlementRow).where(SettlementRow.psn_no == psn_no)
                                                   .order_by(SettlementRow.setl_time))],
                "bookings": [{"booking_id": b.booking_id, "state": b.state, "queue_no": b.queue_no,
                              "mdtrt_id": b.mdtrt_id, "fixmedins_code": slot.fixmedins_code,
                              "dept_name": slot.dept_name, "doctor_name": slot.doctor_name,
                              "begntime": slot.starts_at, "created_at": b.created_at}
                             for b, slot in s.execute(select(BookingRow, BookingSlotRow).join(BookingSlotRow)
                                                      .where(BookingRow.psn_no == psn_no))],
                "deposits": [{"payment_id": d.payment_id, "mdtrt_id": d.mdtrt_id, "amount": d.amount,
                              "state": d.state, "refund_amt": d.refunded, "created_at": d.created_at}
                             for d in s.scalars(select(DepositPaymentRow).where(DepositPaymentRow.psn_no == psn_no))],
                "payment_method": {"bound": s.get(PaymentMethodRow, psn_no) is not None},
                "face": {"enrolled": s.get(FaceTemplateRow, psn_no) is not None,
                         "consents": [{"given_at": c.given_at, "text_version": c.text_version, "channel": c.channel,
                                       "withdrawn_at": c.withdrawn_at}
                                      for c in s.scalars(select(FaceConsentRow).where(FaceConsentRow.psn_no == psn_no))]},
                "deletion_requests": [{"request_id": d.request_id, "requested_at": d.requested_at,
                                       "erased": d.erased.split(","), "kept": d.kept.split(",")}
                                      for d in s.scalars(select(DeletionRequestRow).where(
                                          DeletionRequestRow.psn_no == psn_no))],
            }
            audit.record(s, actor_kind="patient", actor=by, action="pipl.export", psn_no=psn_no,
                         fields=("all",), at=now)
        doc["accesses"] = [{"at": e.at, "actor_kind": e.actor_kind, "actor": e.actor, "action": e.action,
                            "fields": [f for f in e.fields.split(",") if f]}
                           for e in audit.AuditLog(self.factory, self.clock).of_person(psn_no, limit=10_000)]
        return doc

    def request_deletion(self, caller: Caller, psn_no: str) -> dict[str, Any]:
        """Erase at once what exists because the person used the app; keep what the law requires, and say so.
        Only the account's own person (``self``) may ask, from a signed-in session on its own device."""
        now = self.clock()
        with unit_of_work(self.factory) as uow:
            s = uow.session
            require_self(s, caller, psn_no)
            for ecert in s.scalars(select(EcertRow).where(EcertRow.psn_no == psn_no, EcertRow.status == "active")):
                ecert.status, ecert.revoked_at, ecert.revoked_reason = "revoked", now, "deletion"
            s.execute(delete(PaymentMethodRow).where(PaymentMethodRow.psn_no == psn_no))
            erase_face(s, psn_no, now, "app:deletion")
            for link in s.scalars(select(AccountPersonRow.account_id).where(
                    AccountPersonRow.psn_no == psn_no, AccountPersonRow.relation == "self")):
                account = s.get(MobileAccountRow, link)
                if account is not None and account.status == "open":
                    close_account(s, account, now, "deletion")
            for member_link in s.scalars(select(AccountPersonRow).where(  # others acting for the person stop too
                    AccountPersonRow.psn_no == psn_no, AccountPersonRow.revoked_at.is_(None))):
                end_link(s, member_link, now, "deletion")
            row = DeletionRequestRow(request_id="DR" + secrets.token_hex(9).upper(), psn_no=psn_no,
                                     account_id=caller.account_id, requested_at=now, erased=",".join(ERASED),
                                     kept=",".join(KEPT))
            s.add(row)
            audit.record(s, actor_kind="patient", actor=caller.account_id, action="pipl.deletion", psn_no=psn_no,
                         fields=ERASED, at=now, ref=row.request_id)
        return {"request_id": row.request_id, "requested_at": now, "erased": list(ERASED), "kept": list(KEPT)}
