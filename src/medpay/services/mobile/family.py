"""Family (家庭共济 / 代办): an account adds a family member, and once the link is in force acts for them — sees and
pays their bills — while its own person's personal account may pay for them (``acct_mulaid_pay``).

- **Who may be linked**: the relations whose bills an employee's personal account may pay under the national
  rule for family mutual aid — spouse, parents, children (国办发〔2021〕14号 《关于建立健全职工基本医疗保险门诊共济保障机制的
  指导意见》). The member is named by psn_no and ID number; an unknown person and a wrong ID number are answered
  alike (no probing for who is insured), and an account gets ``DAILY_WRONG`` of those a day.
- **Consent**: the member consents with their own sign-in — their account must speak for them (``self``) —, or a
  parent acts for a minor child (under 18 on the day, from the birth date on record), recorded as
  ``guardian_minor`` — allowed only when the child's record carries the phone the account signed in with. Until then the link is ``pending`` and does nothing.
- **In force**: the account may list and pay the member's bills (``acting_for``), and the bureau's family link
  (``family_links``: payer = the account's own person, with the payer's relation to the member) is set, so the settlement lets that personal account pay
  (the settlement service applies the region's rules to it). Revoking — by the account, or by the member
  declining or withdrawing — ends both at once.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher, mask_name
from medpay.adapters.db.account_tables import AccountPersonRow, FailedCheckRow, MobileAccountRow
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.tables import FamilyLinkRow, PersonRow
from medpay.local_time import age_on, local_date
from medpay.services import audit
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from medpay.services.mobile.accounts import Caller, end_link, new_link_id
from medpay.services.unit_of_work import unit_of_work

DAILY_WRONG = 5  # wrong ID numbers an account may give a day: a family member's number is not to be guessed
RELATIONS = ("spouse", "parent", "child")  # the member is the account holder's …
PAYER_RELATION = {"spouse": "spouse", "parent": "child", "child": "parent"}  # … so the payer is the member's …
ADULT_AGE = 18


class IsYou(Invalid):
    code = "is_self"



class FamilyService:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher, clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.cipher = cipher
        self.clock = clock

    def add(self, caller: Caller, psn_no: object, certno: object, relation: object,
            as_guardian: bool = False) -> dict:
        """Ask to act for a family member; in force at once when a parent acts for a minor child
        (``as_guardian``), else pending the member's consent. Asking again answers the live link."""
        if relation not in RELATIONS:
            raise Invalid("relation", f"one of {', '.join(RELATIONS)}: the member is your spouse, parent or child")
        if not isinstance(psn_no, str) or not psn_no.strip():
            raise Invalid("psn_no", "the member's personal insurance number")
        if not isinstance(certno, str) or not certno.strip():
            raise Invalid("certno", "the member's ID number")
        now = self.clock()
        # a wrong ID number is counted (committed), then refused
        try:
            with unit_of_work(self.factory) as uow:
                s = uow.session
                holder = self._self_psn(s, caller)
                tries = s.scalar(select(func.count()).select_from(FailedCheckRow).where(
                    FailedCheckRow.account_id == caller.account_id, FailedCheckRow.kind == "family_certno",
                    FailedCheckRow.at > now - timedelta(days=1))) or 0
                if tries >= DAILY_WRONG:
                    raise RateLimited("certno", f"{DAILY_WRONG} wrong ID numbers today; try again tomorrow, or add "
                                                 "the member at a counter")
                member = s.execute(select(PersonRow).where(PersonRow.psn_no == psn_no.strip())
                                   .with_for_update()).scalar()
                if member is None or not hmac.compare_digest(member.certno_idx,
                                                             self.cipher.blind_index(certno, "certno")):
                    s.add(FailedCheckRow(account_id=caller.account_id, kind="family_certno", at=now))
                else:
                    return self._add(s, caller, holder, member, relation, as_guardian, now)
        except IntegrityError:
            raise Conflict("psn_no", "this member was added at the same time; look again") from None
        raise Invalid("certno", "does not match an insured person with this psn_no")

    def _add(self, s: Session, caller: Caller, holder: str, member: PersonRow, relation: str, as_guardian: bool,
             now: datetime) -> dict:
        if member.psn_no == holder:
            raise IsYou("psn_no", "this is you: your own bills are already here")
        live = s.execute(select(AccountPersonRow).where(
            AccountPersonRow.account_id == caller.account_id, AccountPersonRow.psn_no == member.psn_no,
            AccountPersonRow.revoked_at.is_(None))).scalar()
        if live is not None:
            return self._shown(live, member)
        if as_guardian:
            self._check_guardian(s, caller, member, relation, now)
        link = AccountPersonRow(link_id=new_link_id(), account_id=caller.account_id, psn_no=member.psn_no,
                                relation=relation, status="pending", linked_at=now, proof=holder)
        s.add(link)
        if as_guardian:
            self._in_force(s, link, holder, "guardian_minor", now)
        audit.record(s, actor_kind="patient", actor=caller.account_id, action="family.add",
                     psn_no=member.psn_no, fields=("psn_name",), at=now, ref=link.link_id)
        return self._shown(link, member)

    def requests(self, caller: Caller) -> list[dict]:
        """Links to the person this account speaks for as themselves, waiting for consent or in force; ``relation``:
        the asker is this person's …"""
        with self.factory() as s:
            me = self._self_psn(s, caller)
            rows = s.execute(select(AccountPersonRow, PersonRow.psn_name_enc).join(
                PersonRow, PersonRow.psn_no == AccountPersonRow.proof).where(
                AccountPersonRow.psn_no == me, AccountPersonRow.relation != "self",
                AccountPersonRow.revoked_at.is_(None)).order_by(AccountPersonRow.linked_at)).all()
            return [{"link_id": link.link_id, "relation": PAYER_RELATION[link.relation], "status": link.status,
                     "linked_at": link.linked_at,
                     "from_name": mask_name(self.cipher.decrypt(name_enc, "psn_name"))} for link, name_enc in rows]

    def answer(self, caller: Caller, link_id: str, consent: bool) -> dict:
        """The member consents to a pending link, or declines or withdraws one (pending or in force)."""
        now = self.clock()
        with unit_of_work(self.factory) as uow:
            s = uow.session
            me = self._self_psn(s, caller)
            link = s.execute(select(AccountPersonRow).where(AccountPersonRow.link_id == link_id)
                             .with_for_update()).scalar()
            if link is None or link.psn_no != me or link.relation == "self" or link.revoked_at is not None:
                raise NotFound("link_id", "no such request to you")
            if consent:
                if link.status == "pending":
                    self._in_force(s, link, link.proof, "member", now)
                    audit.record(s, actor_kind="patient", actor=caller.account_id, action="family.consent",
                                 psn_no=me, fields=(), at=now, ref=link.link_id)
            else:
                end_link(s, link, now, "declined" if link.status == "pending" else "withdrawn")
                audit.record(s, actor_kind="patient", actor=caller.account_id, action="family.withdraw",
                             psn_no=me, fields=(), at=now, ref=link.link_id)
            return {"link_id": link.link_id, "status": link.status}

    def acting_for(self, caller: Caller, psn_no: str) -> str:
        """``psn_no`` when the account speaks for that person now (themselves, or a family link in force); a
        pending, revoked or absent link is refused alike."""
        with self.factory() as s:
            ok = s.scalar(select(AccountPersonRow.link_id).where(
                AccountPersonRow.account_id == caller.account_id, AccountPersonRow.psn_no == psn_no,
                AccountPersonRow.status == "active"))
        if ok is None:
            raise Forbidden("psn_no", "this account does not act for that person (no family link in force)")
        return psn_no

    # -- internals -----------------------------------------------------------------------------------------

    @staticmethod
    def _self_psn(s: Session, caller: Caller) -> str:
        me = s.scalar(select(AccountPersonRow.psn_no).where(
            AccountPersonRow.account_id == caller.account_id, AccountPersonRow.relation == "self",
            AccountPersonRow.status == "active"))
        if me is None:
            raise Conflict("account", "link yourself first, on the phone where your e-certificate is activated")
        return me

    def _check_guardian(self, s: Session, caller: Caller, member: PersonRow, relation: str, now: datetime) -> None:
        """A parent acts for a minor child at once only where the bureau's record of the child carries the phone
        this account signed in with (the number a parent gave when the child was enrolled); anyone else who knows
        a child's numbers goes to a counter with the household register (户口簿)."""
        if relation != "child":
            raise Invalid("as_guardian", "a guardian acts for their own child only")
        if age_on(member.brdy, local_date(now)) >= ADULT_AGE:
            raise Invalid("as_guardian", f"the member is {ADULT_AGE} or older and consents themselves")
        account_phone = self.cipher.decrypt(s.get(MobileAccountRow, caller.account_id).phone_enc, "phone")
        child_phone = self.cipher.decrypt(member.phone_enc, "phone") if member.phone_enc else None
        if child_phone != account_phone:
            raise Forbidden("as_guardian", "the child's insurance record carries another phone number; add the "
                                           "child at a counter with the household register (户口簿)")

    @staticmethod
    def _in_force(s: Session, link: AccountPersonRow, payer: str, consent: str, now: datetime) -> None:
        link.status, link.consent, link.consent_at = "active", consent, now
        row = s.execute(select(FamilyLinkRow).where(FamilyLinkRow.payer_psn_no == payer,
                                                    FamilyLinkRow.beneficiary_psn_no == link.psn_no)).scalar()
        if row is None:
            s.add(FamilyLinkRow(payer_psn_no=payer, beneficiary_psn_no=link.psn_no,
                                relation=PAYER_RELATION[link.relation], priority=1, active=True))
        else:
            row.relation, row.active = PAYER_RELATION[link.relation], True

    def _shown(self, link: AccountPersonRow, member: PersonRow) -> dict:
        return {"link_id": link.link_id, "psn_no": link.psn_no, "relation": link.relation, "status": link.status,
                "consent": link.consent, "name": mask_name(self.cipher.decrypt(member.psn_name_enc, "psn_name"))}
