"""Who is this patient? Credentials (e-certificate token, ID card, social-security card) → the insured
person (1101), recorded as a presentation at the asking institution."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import and_, delete, or_
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.ledger_store import LedgerStore
from medpay.adapters.db.tables import CredentialPresentationRow, EcTokenRow, PersonRow
from medpay.domain.posting import personal_account
from medpay.local_time import age_on, local_date
from medpay.services import audit, records
from medpay.domain.credentials import TOKEN_TTL
from medpay.services.credentials import Credential, CredentialCheck, token_hash
from medpay.services.errors import Invalid
from medpay.services.unit_of_work import unit_of_work

PRESENTATION_VALID = timedelta(hours=24)  # a visit may be opened this long after the credential was shown


class PersonService:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher, clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.cipher = cipher
        self.clock = clock
        self.credentials = CredentialCheck(cipher, lambda: self.clock())

    def issue_ec_token(self, psn_no: str, fixmedins_code: str | None, business_type: str = "",
                       ttl: timedelta = TOKEN_TTL) -> str:
        """A fresh ecToken for ``psn_no`` (issued after a QR scan or face check); usable as mdtrt_cert_no with type 01."""
        with unit_of_work(self.factory) as uow:
            return self.add_ec_token(uow.session, psn_no, fixmedins_code, business_type, ttl)

    def add_ec_token(self, session: Session, psn_no: str, fixmedins_code: str | None, business_type: str,
                     ttl: timedelta, max_bill_fen: int | None = None) -> str:
        """``issue_ec_token`` inside the caller's transaction (e.g. with the scan that earns it); ``max_bill_fen``:
        the largest bill it may settle (a face match's limit)."""
        token = secrets.token_hex(20)  # 40 characters, the interface's ecToken length
        now = self.clock()
        records.person_row(session, psn_no)
        session.add(EcTokenRow(token_hash=token_hash(token), psn_no=psn_no, fixmedins_code=fixmedins_code,
                               business_type=business_type, issued_at=now, expires_at=now + ttl,
                               max_bill_fen=max_bill_fen))
        return token

    def purge_expired_tokens(self, keep: timedelta = timedelta(days=1)) -> int:
        """Forget ecTokens that can no longer be used: spent, or never bound to a visit and expired, more than
        ``keep`` ago (only their hashes are stored; a presentation made with one is recorded apart). A token bound
        to a visit that is still open lives with the visit."""
        cutoff = self.clock() - keep
        with unit_of_work(self.factory) as uow:
            result = uow.session.execute(delete(EcTokenRow).where(or_(
                EcTokenRow.spent_at < cutoff, and_(EcTokenRow.mdtrt_id.is_(None), EcTokenRow.expires_at < cutoff))))
            return result.rowcount or 0

    def person_info(self, fixmedins_code: str, cert_type: str, cert_no: str, card_sn: str = "",
                    ref: str = "") -> dict[str, Any]:
        """1101: baseinfo, insuinfo, idetinfo — and a presentation record for tenancy, and the disclosure in the
        audit log (``ref``: the request's msgid). The credential is checked first (``services.credentials``)."""
        cred = Credential.of(cert_type, cert_no, card_sn)
        if cred is None:
            raise Invalid("mdtrt_cert_no", "missing")
        with unit_of_work(self.factory) as uow:
            institution = records.institution(uow.session, fixmedins_code)
            row, shown = self.credentials.identify(uow.session, institution, cred)
            now = self.clock()
            uow.session.add(CredentialPresentationRow(fixmedins_code=fixmedins_code, psn_no=row.psn_no,
                                                      mdtrt_cert_type=shown.cert_type, presented_at=now,
                                                      token_hash=shown.token_hash, card_read=shown.card_read))
            audit.record(uow.session, actor_kind="institution", actor=fixmedins_code, action="person_info",
                         psn_no=row.psn_no, fields=audit.IDENTITY, at=now, ref=ref)
            acct = LedgerStore(uow.session).account(personal_account(row.psn_no).id)
            return self.describe(row, balance=acct.balance if acct else 0, now=now)

    def describe(self, row: PersonRow, *, balance: int, now: datetime) -> dict[str, Any]:
        age = age_on(row.brdy, local_date(now))
        return {
            "baseinfo": {"psn_no": row.psn_no, "psn_cert_type": row.psn_cert_type,
                         "certno": self.cipher.decrypt(row.certno_enc, "certno"),
                         "psn_name": self.cipher.decrypt(row.psn_name_enc, "psn_name"), "gend": row.gend,
                         "naty": row.naty, "brdy": row.brdy.isoformat(), "age": age},
            "insuinfo": [{"balc": balance, "insutype": row.insutype, "psn_type": row.psn_type,
                          "psn_insu_stas": row.psn_insu_stas, "psn_insu_date": row.psn_insu_date.isoformat(),
                          "paus_insu_date": None, "cvlserv_flag": "1" if row.cvlserv_flag else "0",
                          "insuplc_admdvs": row.insuplc_admdvs, "emp_name": row.emp_name}],
            "idetinfo": [{"psn_idet_type": code, "psn_type_lv": "", "memo": "", "begntime": None, "endtime": None}
                         for code in row.identities.split(",") if code],
        }
