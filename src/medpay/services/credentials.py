"""Checking the credential a transaction carries, in the caller's transaction (rules: ``domain.credentials``).

Every institution transaction that names a credential has it checked here: 1101 (``identify``), opening a visit
2201/2401 (``for_new_visit``), and pre-settling or settling 2206/2207/2303/2304 and the one-scan payment
(``for_visit``). A transaction that opens a visit without naming a credential is checked against the one the
person last showed this institution (1101), so leaving the credential out of 2201 gains nothing.

ecTokens are bound to the visit they open (or the first visit they settle) and spent with it (``spend``): the
token row is updated in the same transaction as the visit or the settlement, so both happen or neither.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import Row, and_, bindparam, func, select, update

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.tables import CredentialPresentationRow, EcTokenRow, PersonRow
from medpay.domain.credentials import (
    CERT_TYPES,
    E_CERTIFICATE,
    ID_CARD,
    PHARMACY_PURCHASE,
    Assurance,
    Refusal,
    TokenState,
    Use,
    bill_refusal,
    business_type_refusal,
    number_refusal,
    token_refusal,
)
from medpay.domain.model import Institution
from medpay.services import records
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError

Db = records.Db
tokens = EcTokenRow.__table__
persons = PersonRow.__table__
presentations = CredentialPresentationRow.__table__


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Credential:
    """``mdtrt_cert_type`` / ``mdtrt_cert_no`` (and ``card_sn`` for a social-security card) as a request sent them."""

    cert_type: str
    cert_no: str
    card_sn: str = ""

    @classmethod
    def of(cls, cert_type: str, cert_no: str, card_sn: str = "") -> "Credential | None":
        """The credential a request names, or None when it names none (no ``mdtrt_cert_no``)."""
        if not cert_no:
            return None
        if cert_type not in CERT_TYPES:
            raise Invalid("mdtrt_cert_type", "must be 01 (e-certificate), 02 (ID card) or 03 (social-security card); "
                                             f"got {cert_type!r}")
        return cls(cert_type, cert_no, card_sn)


@dataclass(frozen=True)
class Shown:
    """A credential that passed: whose it is, and what to remember of it (the presentation row's columns)."""

    psn_no: str
    cert_type: str
    token_hash: str | None = None
    card_read: bool = False
    mdtrt_id: str | None = None  # the visit a token is bound to already
    business_type: str = ""  # a token's 用码业务类型 (businessType), as the code was shown for


_TOKEN = select(tokens).where(tokens.c.token_hash == bindparam("h"))
_BIND = (update(tokens).where(and_(tokens.c.token_hash == bindparam("h"), tokens.c.mdtrt_id.is_(None),
                                   tokens.c.spent_at.is_(None))).values(mdtrt_id=bindparam("visit")))
_SPEND = (update(tokens).where(and_(tokens.c.mdtrt_id == bindparam("visit"), tokens.c.spent_at.is_(None)))
          .values(spent_at=bindparam("now")))
_VISIT_BILL_LIMIT = select(func.min(tokens.c.max_bill_fen)).where(and_(tokens.c.mdtrt_id == bindparam("mdtrt_id"),
                                                                       tokens.c.spent_at.is_(None)))
_LIVE_FOR_VISIT = select(tokens.c.token_hash).where(and_(tokens.c.mdtrt_id == bindparam("mdtrt_id"),
                                                         tokens.c.spent_at.is_(None))).limit(1)
_LAST_SHOWN = (select(presentations.c.mdtrt_cert_type, presentations.c.token_hash, presentations.c.card_read)
               .where(and_(presentations.c.fixmedins_code == bindparam("code"),
                           presentations.c.psn_no == bindparam("psn_no"),
                           presentations.c.presented_at >= bindparam("since")))
               .order_by(presentations.c.presented_at.desc(), presentations.c.id.desc()).limit(1))
_BY_INDEX = {ID_CARD: select(persons).where(persons.c.certno_idx == bindparam("idx")),
             "03": select(persons).where(persons.c.card_no_idx == bindparam("idx"))}


def _raise(refusal: Refusal) -> None:
    cls: type[ServiceError] = {"expired": Invalid, "unknown": NotFound}.get(refusal.kind, Forbidden)
    raise cls(refusal.field, refusal.message)


def _state(row: Row) -> TokenState:
    return TokenState(row.psn_no, row.fixmedins_code, row.expires_at, row.mdtrt_id, row.spent_at)


def spend(db: Db, mdtrt_id: str, now: datetime) -> None:
    """The visit was settled or cancelled: the tokens bound to it are used up."""
    db.execute(_SPEND, {"visit": mdtrt_id, "now": now})


class CredentialCheck:
    def __init__(self, cipher: FieldCipher, clock: Callable[[], datetime]):
        self.cipher = cipher
        self.clock = clock

    # -- 1101 ----------------------------------------------------------------------------------------------

    def identify(self, db: Db, institution: Institution, cred: Credential) -> tuple[Any, Shown]:
        """The person a credential names, for 1101 (who is this); refused if it may not be used here now."""
        if cred.cert_type == E_CERTIFICATE:
            row = self._token(db, cred.cert_no)
            refusal = token_refusal(_state(row), now=self.clock(), fixmedins_code=institution.fixmedins_code)
            if refusal:
                _raise(refusal)
            return (records.person_row(db, row.psn_no, field="mdtrt_cert_no"),
                    Shown(row.psn_no, E_CERTIFICATE, token_hash=row.token_hash))
        prow = db.execute(_BY_INDEX[cred.cert_type],
                          {"idx": self.cipher.blind_index(cred.cert_no, _index_kind(cred.cert_type))}).one_or_none()
        if prow is None:
            raise NotFound("mdtrt_cert_no", f"no insured person with this {CERT_TYPES[cred.cert_type]}")
        card_read = self._card_read(prow, cred)
        refusal = number_refusal(Assurance(institution.id_assurance), cred.cert_type, card_read, Use.IDENTIFY)
        if refusal:
            _raise(refusal)
        return prow, Shown(prow.psn_no, cred.cert_type, card_read=card_read)

    # -- 2201 / 2401 ---------------------------------------------------------------------------------------

    def for_new_visit(self, db: Db, institution: Institution, prow: Any, cred: Credential | None,
                      shown_since: datetime) -> Shown:
        """The credential that lets ``institution`` open a visit for the person ``prow``: the one the request
        names, else the one last shown here since ``shown_since`` (1101). ``bind`` the result to the new visit."""
        if cred is None:
            last = db.execute(_LAST_SHOWN, {"code": institution.fixmedins_code, "psn_no": prow.psn_no,
                                            "since": shown_since}).one_or_none()
            if last is None:
                raise Forbidden("psn_no", "this person has not presented a credential here (1101 first)")
            if last.mdtrt_cert_type == E_CERTIFICATE:
                return self._usable_token(db, institution, prow.psn_no, None, opening=True, hashed=last.token_hash)
            self._allowed_number(institution, last.mdtrt_cert_type, bool(last.card_read))
            return Shown(prow.psn_no, last.mdtrt_cert_type, card_read=bool(last.card_read))
        if cred.cert_type == E_CERTIFICATE:
            return self._usable_token(db, institution, prow.psn_no, None, opening=True, token=cred.cert_no)
        return self._number_of(institution, prow, cred)

    @staticmethod
    def bind(db: Db, shown: Shown, mdtrt_id: str, *, new_visit: bool = False) -> None:
        """Tie the token that opened (or first settles) ``mdtrt_id`` to it, and mark the visit as one held by an
        e-certificate (its settlement spends the token). A token bound meanwhile by a concurrent transaction is
        refused rather than shared."""
        if shown.token_hash is None:
            return
        if db.execute(_BIND, {"h": shown.token_hash, "visit": mdtrt_id}).rowcount != 1:
            raise Conflict("mdtrt_cert_no", "e-certificate token was used for another visit at the same time")
        if not new_visit:
            records.set_visit(db, mdtrt_id, mdtrt_cert_type=E_CERTIFICATE)

    # -- 2206/2207, 2303/2304, one-scan ----------------------------------------------------------------------

    def for_visit(self, db: Db, institution: Institution, visit: Any, prow: Any, cred: Credential | None, *,
                  settling: bool) -> Shown | None:
        """Check the credential a (pre-)settlement names, against the visit. A visit opened with an e-certificate
        is settled only with a token that is still live for it: once a settlement spent its token, the next one
        (a discharge after an interim settlement, a new settlement after a cancellation) needs a fresh credential
        (a new code, or a number the institution's assurance allows).
        Returns an unbound token to ``bind`` to the visit."""
        if cred is not None and cred.cert_type == E_CERTIFICATE:
            shown = self._usable_token(db, institution, prow.psn_no, visit.mdtrt_id, token=cred.cert_no)
            return None if shown.mdtrt_id == visit.mdtrt_id else shown
        if cred is not None:
            self._number_of(institution, prow, cred)  # a number allowed here is a fresh credential too
        elif settling and visit.mdtrt_cert_type == E_CERTIFICATE and \
                db.execute(_LIVE_FOR_VISIT, {"mdtrt_id": visit.mdtrt_id}).first() is None:
            raise Forbidden("mdtrt_cert_no", "this visit was opened with an e-certificate whose token is used up; "
                                             "send a fresh ecToken (the patient shows the code again)")
        return None

    # -- 2101/2102 -------------------------------------------------------------------------------------------

    @staticmethod
    def for_purchase(shown: Shown) -> None:
        """A pharmacy purchase also needs an e-certificate code shown for it (02121 药店购药); a card or ID number
        passed ``for_new_visit`` already."""
        if shown.cert_type == E_CERTIFICATE:
            refusal = business_type_refusal(shown.business_type, PHARMACY_PURCHASE)
            if refusal:
                _raise(refusal)

    def check_bill(self, db: Db, visit: Any, cred: Credential | None, bill_fen: int) -> None:
        """A settlement of ``bill_fen`` resting on a token with a bill limit (a face match only good enough for the
        region's normal threshold) is refused above it: the token the request names, else the live tokens of a
        visit opened with an e-certificate. A number credential carries no such limit."""
        if cred is not None and cred.cert_type == E_CERTIFICATE:
            limit = self._token(db, cred.cert_no).max_bill_fen
        elif cred is None and visit.mdtrt_cert_type == E_CERTIFICATE:
            limit = db.execute(_VISIT_BILL_LIMIT, {"mdtrt_id": visit.mdtrt_id}).scalar()
        else:
            return
        refusal = bill_refusal(limit, bill_fen)
        if refusal:
            _raise(refusal)

    # -- internals -----------------------------------------------------------------------------------------

    def _token(self, db: Db, token: str, hashed: str | None = None) -> Row:
        row = db.execute(_TOKEN, {"h": hashed or token_hash(token)}).one_or_none()
        if row is None:
            raise NotFound("mdtrt_cert_no", "unknown e-certificate token")
        return row

    def _usable_token(self, db: Db, institution: Institution, psn_no: str, mdtrt_id: str | None, *,
                      opening: bool = False, token: str = "", hashed: str | None = None) -> Shown:
        row = self._token(db, token, hashed)
        refusal = token_refusal(_state(row), now=self.clock(), fixmedins_code=institution.fixmedins_code,
                                psn_no=psn_no, mdtrt_id=mdtrt_id, opening=opening)
        if refusal:
            _raise(refusal)
        return Shown(psn_no, E_CERTIFICATE, token_hash=row.token_hash, mdtrt_id=row.mdtrt_id,
                     business_type=row.business_type or "")

    def _number_of(self, institution: Institution, prow: Any, cred: Credential) -> Shown:
        """A 02/03 number sent with a visit's transaction: it must be this person's, and allowed here."""
        column = prow.certno_idx if cred.cert_type == ID_CARD else prow.card_no_idx
        if not column or not hmac.compare_digest(column, self.cipher.blind_index(cred.cert_no,
                                                                                 _index_kind(cred.cert_type))):
            raise Forbidden("mdtrt_cert_no", f"this {CERT_TYPES[cred.cert_type]} number is not psn_no's")
        card_read = self._card_read(prow, cred)
        self._allowed_number(institution, cred.cert_type, card_read)
        return Shown(prow.psn_no, cred.cert_type, card_read=card_read)

    @staticmethod
    def _allowed_number(institution: Institution, cert_type: str, card_read: bool) -> None:
        refusal = number_refusal(Assurance(institution.id_assurance), cert_type, card_read, Use.VISIT)
        if refusal:
            _raise(refusal)

    def _card_read(self, prow: Any, cred: Credential) -> bool:
        """A social-security card's identification code proves the card was read; a wrong one is refused (a copied
        number, or a card reported lost and replaced). An ID-card number proves nothing."""
        if cred.cert_type == ID_CARD or not cred.card_sn:
            return False
        if not prow.card_sn_idx:
            return False  # nothing on record to check it against
        if not hmac.compare_digest(prow.card_sn_idx, self.cipher.blind_index(cred.card_sn, "card_sn")):
            raise Forbidden("card_sn", "does not match the card on record (a replaced or copied card?)")
        return True


def _index_kind(cert_type: str) -> str:
    return "certno" if cert_type == ID_CARD else "card_no"
