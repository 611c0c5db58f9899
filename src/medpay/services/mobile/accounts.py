"""The app's accounts: sign in with a phone number and a texted one-time code; browser sessions; the person an
account speaks for.

- **Codes** (``start`` → ``confirm``): 6 digits, texted through the SMS port, stored as a keyed hash, valid
  ``CODE_TTL``, single use, ``MAX_TRIES`` wrong tries. The answer to ``start`` is the same whether or not the
  number has an account (no probing for who uses the app); the account is opened by the first correct code.
- **Rate limits**, counted in the codes' own rows (SQLite and PostgreSQL alone, no extra service): one code per
  number every ``RESEND_AFTER``, ``PHONE_DAILY`` a day per number, ``IP_HOURLY`` an hour per client address.
  With ``MAX_TRIES`` per code, an address can make at most ``IP_HOURLY × MAX_TRIES`` guesses an hour.
- **Sessions**: the cookie carries a random token; the database keeps only its SHA-256. The CSRF token is an HMAC
  of the cookie's token: the page gets it from ``GET /account`` (same origin only) and sends it in a header with
  every state-changing request. A session ends after ``SESSION_IDLE`` without use, ``SESSION_MAX`` after sign-in,
  at sign-out, or when the account signs out everywhere.
- **A recycled number** must not inherit an account: carriers hand a cancelled number to someone else only after
  it lay idle for months, so a sign-in to an account whose number last brought a code more than ``RECYCLE_AFTER``
  ago closes that account (its sessions and links end) and opens a fresh one. A sign-in proves a phone, never a
  person: the account speaks for a person only after a device holding the person's active e-certificate — whose
  activation went to the phone on the person's record — signed the link (``link_self``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher, mask_name
from medpay.adapters.db.account_tables import (
    AccountPersonRow,
    FailedCheckRow,
    MobileAccountRow,
    MobileSessionRow,
    SignInCodeRow,
)
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.ecert_tables import EcertRow
from medpay.adapters.db.tables import FamilyLinkRow, PersonRow
from medpay.adapters.sms.port import SmsError, SmsOutcomeUnknown, SmsSender, mask_phone, valid_phone
from medpay.services import audit
from medpay.services.errors import Conflict, Invalid, NotFound, RateLimited, ServiceError, Unauthorized
from medpay.services.qr.activation import SmsFailed, WrongCode  # the same refusals as an activation's code
from medpay.services.unit_of_work import unit_of_work

log = logging.getLogger("medpay.accounts")

CODE_TTL = timedelta(minutes=5)
MAX_TRIES = 5
RESEND_AFTER = timedelta(seconds=60)
PHONE_DAILY = 10
IP_HOURLY = 20
SESSION_IDLE = timedelta(days=7)
SESSION_MAX = timedelta(days=30)
SEEN_EVERY = timedelta(minutes=5)  # last_seen_at is written at most this often: reading a page costs no write
RECYCLE_AFTER = timedelta(days=90)
CODE_KEEP = timedelta(days=2)  # a code's row, after it expired: the daily limits need a day of them
SESSION_KEEP = timedelta(days=30)  # an ended session's row, for the account's list of sign-ins


class CsrfRefused(ServiceError):
    status = 403
    code = "csrf"


@dataclass(frozen=True)
class CodeSent:
    challenge_id: str
    phone: str  # masked
    expires_at: datetime
    resend_at: datetime


@dataclass(frozen=True)
class SignedIn:
    token: str  # the cookie's value: shown once, never stored
    csrf_token: str
    account_id: str
    expires_at: datetime
    new_account: bool


@dataclass(frozen=True)
class Caller:
    """The account a request's session cookie belongs to."""
    account_id: str
    session_id: str
    csrf_token: str


def session_id_of(token: str) -> str:
    return hashlib.sha256(f"session:{token}".encode()).hexdigest()


def csrf_token_of(token: str) -> str:
    digest = hmac.new(token.encode(), b"csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def session_ends_at(created_at: datetime, last_seen_at: datetime) -> datetime:
    """When a session not used again ends: idle time or its whole life, whichever comes first."""
    return min(last_seen_at + SESSION_IDLE, created_at + SESSION_MAX)


class AccountService:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher, sms: SmsSender | None,
                 clock: Callable[[], datetime] = utcnow, *, phone_daily: int = PHONE_DAILY,
                 ip_hourly: int = IP_HOURLY, recycle_after: timedelta = RECYCLE_AFTER):
        self.factory = factory
        self.cipher = cipher
        self.sms = sms
        self.clock = clock
        self.phone_daily = phone_daily
        self.ip_hourly = ip_hourly
        self.recycle_after = recycle_after

    # -- sign-in -------------------------------------------------------------------------------------------

    def start(self, phone: object, ip: str) -> CodeSent:
        """Text a sign-in code to ``phone``."""
        if not isinstance(phone, str) or not valid_phone(phone.strip()):
            raise Invalid("phone", "an 11-digit mainland mobile number")
        phone = phone.strip()
        if self.sms is None:
            raise SmsFailed("phone", "no SMS service is configured here; sign-in is not available")
        code = f"{secrets.randbelow(10**6):06d}"
        challenge_id = secrets.token_hex(16)
        now = self.clock()
        with unit_of_work(self.factory) as uow:
            s = uow.session
            phone_idx, ip_idx = self._phone_idx(phone), self.cipher.blind_index(ip or "-", "client_ip")
            self._check_limits(s, phone_idx, ip_idx, now)
            s.add(SignInCodeRow(challenge_id=challenge_id, phone_idx=phone_idx, ip_idx=ip_idx,
                                code_hash=self._code_hash(challenge_id, code), status="pending", attempts=0,
                                created_at=now, expires_at=now + CODE_TTL))
        text = (f"【医保便捷支付】您正在登录医保App，验证码{code}，{int(CODE_TTL.total_seconds() // 60)}分钟内有效。"
                "验证码请勿告诉他人；如非本人操作，请忽略本短信。")
        try:
            try:
                self.sms.send(phone, text, ref=f"signin:{challenge_id}")
            except SmsOutcomeUnknown:  # the service sends a ref once: asking again is safe
                self.sms.send(phone, text, ref=f"signin:{challenge_id}")
        except SmsError as e:
            self._set_status(challenge_id, "unsent")  # an unsent code doesn't hold back the next one
            raise SmsFailed("phone", f"the code could not be texted ({e}); try again") from None
        log.info("sign-in code texted to %s", mask_phone(phone))
        return CodeSent(challenge_id, mask_phone(phone), now + CODE_TTL, now + RESEND_AFTER)

    def _check_limits(self, s: Session, phone_idx: str, ip_idx: str, now: datetime) -> None:
        def count(*where) -> int:
            return s.scalar(select(func.count()).select_from(SignInCodeRow).where(*where)) or 0

        last = s.scalar(select(func.max(SignInCodeRow.created_at)).where(
            SignInCodeRow.phone_idx == phone_idx, SignInCodeRow.status != "unsent"))
        if last is not None and last > now - RESEND_AFTER:
            wait = math.ceil((last + RESEND_AFTER - now).total_seconds())
            raise RateLimited("phone", f"a code was just sent to this number; ask again in {wait} s")
        if count(SignInCodeRow.phone_idx == phone_idx, SignInCodeRow.created_at > now - timedelta(days=1)) \
                >= self.phone_daily:
            raise RateLimited("phone", f"at most {self.phone_daily} codes a day go to one number; try tomorrow")
        if count(SignInCodeRow.ip_idx == ip_idx, SignInCodeRow.created_at > now - timedelta(hours=1)) \
                >= self.ip_hourly:
            raise RateLimited("phone", "too many codes were asked for from your network; try again in an hour")

    def confirm(self, challenge_id: object, code: object, phone: object, user_agent: str = "") -> SignedIn:
        """Check the code texted for ``challenge_id`` to ``phone``; open a session (and the account, on its first
        sign-in)."""
        if not isinstance(challenge_id, str) or len(challenge_id) != 32:
            raise Invalid("challenge_id", "the challenge_id the code request answered")
        if not isinstance(code, str) or len(code.strip()) != 6 or not code.strip().isdigit():
            raise Invalid("code", "the 6 digits texted to the phone")
        if not isinstance(phone, str) or not valid_phone(phone.strip()):
            raise Invalid("phone", "an 11-digit mainland mobile number")
        phone = phone.strip()
        wrong: str | None = None  # a wrong try is counted (committed), then refused
        try:
            with unit_of_work(self.factory) as uow:
                s = uow.session
                row = s.execute(select(SignInCodeRow).where(SignInCodeRow.challenge_id == challenge_id)
                                .with_for_update()).scalar()
                now = self.clock()
                if row is None or row.status != "pending" or row.phone_idx != self._phone_idx(phone):
                    raise WrongCode("code", "unknown or no longer valid: ask for a new code")
                if row.expires_at <= now:
                    row.status = "expired"
                    wrong = "expired: ask for a new code"
                elif not hmac.compare_digest(row.code_hash, self._code_hash(challenge_id, code.strip())):
                    row.attempts += 1
                    left = MAX_TRIES - row.attempts
                    if left <= 0:
                        row.status = "failed"
                    wrong = f"wrong code; {left} attempt(s) left" if left > 0 else "wrong code too often: ask again"
                if wrong is None:
                    row.status = "used"
                    return self._open_session(s, phone, now, user_agent)
        except IntegrityError:  # another first sign-in of this number committed at the same moment
            raise Conflict("phone", "another sign-in with this number happened at the same time; ask for a new "
                                    "code") from None
        raise WrongCode("code", wrong)

    def _open_session(self, s: Session, phone: str, now: datetime, user_agent: str) -> SignedIn:
        phone_idx = self._phone_idx(phone)
        account = s.execute(select(MobileAccountRow).where(MobileAccountRow.phone_idx == phone_idx,
                                                           MobileAccountRow.status == "open")
                            .with_for_update()).scalar()
        if account is not None and account.last_code_at < now - self.recycle_after:
            close_account(s, account, now, "number_silent")  # perhaps someone else's number now
            account = None
        new = account is None
        if new:
            account = MobileAccountRow(account_id="MA" + secrets.token_hex(9).upper(), phone_idx=phone_idx,
                                       phone_enc=self.cipher.encrypt(phone, "phone"), status="open",
                                       created_at=now, last_code_at=now)
            s.add(account)
            s.flush()
        account.last_code_at = now
        token = secrets.token_urlsafe(32)
        s.add(MobileSessionRow(session_id=session_id_of(token), account_id=account.account_id, created_at=now,
                               last_seen_at=now, expires_at=now + SESSION_MAX,
                               user_agent=(user_agent or "")[:120]))
        return SignedIn(token, csrf_token_of(token), account.account_id, now + SESSION_MAX, new)

    # -- sessions ------------------------------------------------------------------------------------------

    def caller(self, token: str | None, csrf: str | None = None, *, changes_state: bool = False) -> Caller:
        """The signed-in account of a request's cookie; for a state-changing request, its CSRF header must match.
        A forged, ended or missing cookie is refused alike."""
        if not token or len(token) > 100:
            raise Unauthorized("session", "not signed in: sign in with your phone number")
        now = self.clock()
        with self.factory() as s:
            row = s.get(MobileSessionRow, session_id_of(token))
            if row is None or row.revoked_at is not None or now >= min(
                    row.expires_at, session_ends_at(row.created_at, row.last_seen_at)):
                raise Unauthorized("session", "signed out or the session ended: sign in again")
            expected = csrf_token_of(token)
            if changes_state and not (csrf and hmac.compare_digest(csrf.encode(), expected.encode())):
                raise CsrfRefused("X-CSRF-Token", "missing or wrong: reload the page and try again")
            if now - row.last_seen_at >= SEEN_EVERY:
                s.execute(update(MobileSessionRow).where(MobileSessionRow.session_id == row.session_id)
                          .values(last_seen_at=now))
                s.commit()
            return Caller(row.account_id, row.session_id, expected)

    def sign_out(self, caller: Caller, everywhere: bool = False) -> int:
        """End this session, or every session of the account; how many ended."""
        now = self.clock()
        where = (MobileSessionRow.account_id == caller.account_id) if everywhere else \
            (MobileSessionRow.session_id == caller.session_id)
        with unit_of_work(self.factory) as uow:
            return uow.session.execute(update(MobileSessionRow).where(
                where, MobileSessionRow.revoked_at.is_(None)).values(revoked_at=now)).rowcount or 0

    def account(self, caller: Caller) -> dict:
        """What the account page shows: the number (masked), the persons it speaks for, its live sessions."""
        now = self.clock()
        with self.factory() as s:
            account = s.get(MobileAccountRow, caller.account_id)
            sessions = s.scalars(select(MobileSessionRow).where(
                MobileSessionRow.account_id == caller.account_id, MobileSessionRow.revoked_at.is_(None),
                MobileSessionRow.expires_at > now).order_by(MobileSessionRow.last_seen_at.desc())).all()
            persons = s.execute(select(AccountPersonRow, PersonRow.psn_name_enc).join(
                PersonRow, PersonRow.psn_no == AccountPersonRow.psn_no).where(
                AccountPersonRow.account_id == caller.account_id, AccountPersonRow.revoked_at.is_(None))
                .order_by(AccountPersonRow.linked_at)).all()
            return {
                "account_id": account.account_id,
                "phone": mask_phone(self.cipher.decrypt(account.phone_enc, "phone")),
                "created_at": account.created_at,
                "persons": [{"psn_no": link.psn_no, "relation": link.relation, "status": link.status,
                             "consent": link.consent, "linked_at": link.linked_at,
                             "name": mask_name(self.cipher.decrypt(name_enc, "psn_name"))}
                            for link, name_enc in persons],
                "sessions": [{"current": row.session_id == caller.session_id, "created_at": row.created_at,
                              "last_seen_at": row.last_seen_at, "user_agent": row.user_agent}
                             for row in sessions if now < session_ends_at(row.created_at, row.last_seen_at)],
            }

    # -- the person an account speaks for ------------------------------------------------------------------

    def link_self(self, caller: Caller, ecert_id: str, psn_no: str) -> bool:
        """The device of ``ecert_id`` (the caller's request was signed by it, so it is the person's) makes the
        account speak for its person. A link of the person to another account ends (one account per person);
        returns whether a new link was made (False: it was already there)."""
        now = self.clock()
        try:
            with unit_of_work(self.factory) as uow:
                s = uow.session
                s.execute(select(PersonRow.psn_no).where(PersonRow.psn_no == psn_no).with_for_update())
                current = s.scalars(select(AccountPersonRow).where(
                    AccountPersonRow.psn_no == psn_no, AccountPersonRow.relation == "self",
                    AccountPersonRow.revoked_at.is_(None))).all()
                if any(link.account_id == caller.account_id for link in current):
                    return False
                for link in current:
                    end_link(s, link, now, "linked_elsewhere")
                s.flush()
                # a family link of this account to the same person gives way to speaking for them as themselves
                for link in s.scalars(select(AccountPersonRow).where(
                        AccountPersonRow.account_id == caller.account_id, AccountPersonRow.psn_no == psn_no,
                        AccountPersonRow.revoked_at.is_(None))):
                    end_link(s, link, now, "became_self")
                s.flush()
                s.add(AccountPersonRow(link_id=new_link_id(), account_id=caller.account_id, psn_no=psn_no,
                                       relation="self", status="active", consent="device", linked_at=now,
                                       consent_at=now, proof=ecert_id))
                audit.record(s, actor_kind="patient", actor=ecert_id, action="account.link", psn_no=psn_no,
                             fields=(), at=now, ref=caller.account_id)
                return True
        except IntegrityError:
            raise Conflict("psn_no", "this person was linked to an account at the same time; try again") from None

    def unlink(self, caller: Caller, psn_no: str) -> None:
        now = self.clock()
        with unit_of_work(self.factory) as uow:
            s = uow.session
            link = s.execute(select(AccountPersonRow).where(
                AccountPersonRow.account_id == caller.account_id, AccountPersonRow.psn_no == psn_no,
                AccountPersonRow.revoked_at.is_(None))).scalar()
            if link is None:
                raise NotFound("psn_no", "this account does not speak for such a person")
            end_link(s, link, now, "unlinked")
            audit.record(s, actor_kind="patient", actor=caller.account_id, action="account.unlink", psn_no=psn_no,
                         fields=(), at=now, ref="unlinked")

    def revoke_device(self, caller: Caller, psn_no: str) -> str:
        """A lost phone: the active e-certificate of the account's own person stops working at once (its device is
        told why on its next request; codes it showed are refused). Returns the revoked ecert_id."""
        now = self.clock()
        with unit_of_work(self.factory) as uow:
            s = uow.session
            require_self(s, caller, psn_no)
            ecert = s.execute(select(EcertRow).where(EcertRow.psn_no == psn_no, EcertRow.status == "active")
                              .with_for_update()).scalar()
            if ecert is None:
                raise NotFound("psn_no", "no active e-certificate: nothing to revoke")
            ecert.status, ecert.revoked_at, ecert.revoked_reason = "revoked", now, "lost_device"
            audit.record(s, actor_kind="patient", actor=caller.account_id, action="ecert.revoke", psn_no=psn_no,
                         fields=(), at=now, ref=ecert.ecert_id)
            return ecert.ecert_id

    def persons_of(self, caller: Caller) -> list[str]:
        """The psn_no of every person the account speaks for now (a revoked link counts at once; a pending one
        not yet)."""
        with self.factory() as s:
            return list(s.scalars(select(AccountPersonRow.psn_no).where(
                AccountPersonRow.account_id == caller.account_id, AccountPersonRow.status == "active")))

    # -- internals -----------------------------------------------------------------------------------------

    def _phone_idx(self, phone: str) -> str:
        return self.cipher.blind_index(phone, "phone")

    def _code_hash(self, challenge_id: str, code: str) -> str:
        return self.cipher.blind_index(f"{challenge_id}:{code}", "sign_in_code")

    def _set_status(self, challenge_id: str, status: str) -> None:
        with unit_of_work(self.factory) as uow:
            uow.session.execute(update(SignInCodeRow).where(SignInCodeRow.challenge_id == challenge_id,
                                                            SignInCodeRow.status == "pending").values(status=status))


def close_account(s: Session, account: MobileAccountRow, now: datetime, reason: str) -> None:
    """Close an account: its sessions and links end at once (a recycled number, the person's deletion request)."""
    account.status, account.closed_at, account.closed_reason = "closed", now, reason
    s.execute(update(MobileSessionRow).where(MobileSessionRow.account_id == account.account_id,
                                             MobileSessionRow.revoked_at.is_(None)).values(revoked_at=now))
    for link in s.scalars(select(AccountPersonRow).where(AccountPersonRow.account_id == account.account_id,
                                                         AccountPersonRow.revoked_at.is_(None))):
        end_link(s, link, now, reason)
        audit.record(s, actor_kind="system", actor=account.account_id, action="account.unlink",
                     psn_no=link.psn_no, fields=(), at=now, ref=reason)
    s.flush()


def require_self(s: Session, caller: Caller, psn_no: str) -> None:
    """The signed-in account must speak for ``psn_no`` as themselves (not as a family member)."""
    own = s.scalar(select(AccountPersonRow.link_id).where(
        AccountPersonRow.account_id == caller.account_id, AccountPersonRow.psn_no == psn_no,
        AccountPersonRow.relation == "self", AccountPersonRow.status == "active"))
    if own is None:
        raise NotFound("psn_no", "this account does not speak for such a person as themselves")


def new_link_id() -> str:
    return "AL" + secrets.token_hex(9).upper()


def end_link(s: Session, link: AccountPersonRow, now: datetime, reason: str) -> None:
    """A link ends at once. A family link's mutual aid (家庭共济) ends with it; when the account's own person goes,
    its family links go too (they acted on that person's behalf)."""
    if link.relation == "self":
        for other in s.scalars(select(AccountPersonRow).where(
                AccountPersonRow.account_id == link.account_id, AccountPersonRow.relation != "self",
                AccountPersonRow.revoked_at.is_(None))):
            _end(s, other, now, "self_ended")
    _end(s, link, now, reason)


def _end(s: Session, link: AccountPersonRow, now: datetime, reason: str) -> None:
    if link.status == "active" and link.relation != "self":  # a family link's payer is its proof: who asked
        s.execute(update(FamilyLinkRow).where(FamilyLinkRow.payer_psn_no == link.proof,
                                              FamilyLinkRow.beneficiary_psn_no == link.psn_no).values(active=False))
    link.status, link.revoked_at, link.revoked_reason = "revoked", now, reason


def purge_sign_ins(factory: sessionmaker[Session], now: datetime) -> int:
    """Forget codes and failed checks a day after they could last count, and sessions a while after they ended."""
    with unit_of_work(factory) as uow:
        s = uow.session
        codes = s.execute(delete(SignInCodeRow).where(SignInCodeRow.expires_at < now - CODE_KEEP)).rowcount or 0
        sessions = s.execute(delete(MobileSessionRow).where(or_(
            MobileSessionRow.expires_at < now - SESSION_KEEP,
            MobileSessionRow.revoked_at < now - SESSION_KEEP,
            MobileSessionRow.last_seen_at < now - SESSION_IDLE - SESSION_KEEP))).rowcount or 0
        checks = s.execute(delete(FailedCheckRow).where(FailedCheckRow.at < now - CODE_KEEP)).rowcount or 0
        return codes + sessions + checks
