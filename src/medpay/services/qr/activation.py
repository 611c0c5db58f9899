"""Activating an e-certificate on a device: a second proof besides the ID number, which is no secret.

psn_no and the ID number are printed on cards and forms, so knowing them proves nothing. Activation therefore
takes two steps, the second of which brings a one-time code the caller can only have by being the person:

1. **start** — by the patient (``start``): the ID number is checked, and a 6-digit code is texted to the phone
   number on the insured person's record (never to a number the caller gives). Or **at a counter**
   (``start_at_counter``): a staff member, authenticated by a staff key, has seen the ID card and hands over a
   10-character counter code; this overrides any pending activation, so nobody who knows a person's numbers can
   block them.
2. **confirm** (``confirm``) — the app sends the code with its device's public key, the request signed by that key
   (``signed_requests``: proof it holds the private key). The e-certificate is bound to that key; an earlier one of
   the person is revoked and its device is told why on its next request, and the phone gets a notice.

While one activation is pending for a person, another ``start`` is refused; a pending activation expires after
``SMS_TTL`` (``COUNTER_TTL`` at a counter), a wrong code counts against ``MAX_ATTEMPTS``, and a person gets at most
``DAILY_STARTS`` texted codes a day. Codes are stored as keyed hashes (the data key's index key): a database
reader can't try the million 6-digit codes offline.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher, mask_certno, mask_name
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.ecert_tables import EcertActivationRow, EcertRow
from medpay.adapters.db.tables import PersonRow
from medpay.adapters.sms.port import SmsError, SmsOutcomeUnknown, SmsSender, mask_phone
from medpay.local_time import format_local
from medpay.services import audit
from medpay.services.errors import Conflict, Invalid, RateLimited, ServiceError
from medpay.services.unit_of_work import unit_of_work

log = logging.getLogger("medpay.activation")

SMS_TTL = timedelta(minutes=5)
COUNTER_TTL = timedelta(minutes=15)
MAX_ATTEMPTS = 5
ACTIVATION_KEEP = timedelta(days=7)  # an activation's row, after it could last be used
DAILY_STARTS = 5  # texted codes per person per 24 h: no one can turn the platform into an SMS cannon
COUNTER_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U to misread
COUNTER_CODE_LENGTH = 10  # 50 bits: looked up by itself, so it must not be guessable
HOTLINE = "12393"  # the national medical-insurance service hotline


class ActivationPending(Conflict):
    code = "activation_pending"


class TooManyStarts(RateLimited):
    pass


class SmsFailed(ServiceError):
    status = 503
    code = "sms_unavailable"


class WrongCode(Invalid):
    code = "code_wrong"


@dataclass(frozen=True)
class Started:
    activation_id: str
    channel: str  # sms | counter
    expires_at: datetime
    phone: str | None = None  # masked: where the code went
    counter_code: str | None = None  # shown once, to the staff member who hands it over
    holder: dict[str, str] | None = None  # masked name and ID number, for the counter's screen


@dataclass(frozen=True)
class Activated:
    ecert_id: str
    psn_no: str
    replaced: bool  # an earlier e-certificate of the person was revoked


def _new_id(prefix: str, length: int = 8) -> str:
    return prefix + "".join(secrets.choice(COUNTER_ALPHABET) for _ in range(length))


class ActivationService:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher, sms: SmsSender | None,
                 clock: Callable[[], datetime] = utcnow, *, daily_starts: int = DAILY_STARTS):
        self.factory = factory
        self.cipher = cipher
        self.sms = sms
        self.clock = clock
        self.daily_starts = daily_starts

    # -- start -----------------------------------------------------------------------------------------------

    def start(self, psn_no: str, certno: str, consent: bool) -> Started:
        """The patient asks: a code goes to the phone on the person's record."""
        _check_consent(consent)
        if self.sms is None:
            raise SmsFailed("sms", "no SMS service is configured here; activate at a counter with your ID card")
        code = f"{secrets.randbelow(10**6):06d}"
        try:
            phone, activation_id, now = self._record_start(psn_no, certno, code)
        except IntegrityError:  # a concurrent start for the same person won (the partial unique index)
            raise ActivationPending("psn_no", "an activation for this person is already under way") from None
        text = (f"【医保便捷支付】您正在激活医保电子凭证，验证码{code}，{int(SMS_TTL.total_seconds() // 60)}分钟内有效。"
                f"验证码请勿告诉他人；如非本人操作，请忽略并致电{HOTLINE}。")
        try:
            self._text(phone, text, activation_id)
        except SmsError as e:
            self._settle_status(activation_id, "failed")  # the person is not left blocked by a code never sent
            raise SmsFailed("sms", f"the code could not be texted ({e}); try again") from None
        return Started(activation_id, "sms", now + SMS_TTL, phone=mask_phone(phone))

    def _record_start(self, psn_no: str, certno: str, code: str) -> tuple[str, str, datetime]:
        with unit_of_work(self.factory) as uow:
            s = uow.session
            person = self._person(s, psn_no, certno)
            if person.phone_enc is None:
                raise Conflict("phone", "no mobile number is on record for this person; activate at a counter "
                                        "with your ID card, or have your number recorded there")
            now = self.clock()
            self._expire_stale(s, person.psn_no, now)
            pending = s.execute(select(EcertActivationRow).where(EcertActivationRow.psn_no == person.psn_no,
                                                                 EcertActivationRow.status == "pending")).scalar()
            if pending is not None:
                raise ActivationPending("psn_no", f"an activation for this person is already under way until "
                                                  f"{format_local(pending.expires_at)[11:16]}; enter the code sent "
                                                  "to the phone, wait, or activate at a counter")
            starts = s.scalar(select(func.count()).select_from(EcertActivationRow).where(
                EcertActivationRow.psn_no == person.psn_no, EcertActivationRow.channel == "sms",
                EcertActivationRow.created_at > now - timedelta(days=1)))
            if starts >= self.daily_starts:
                raise TooManyStarts("psn_no", f"at most {self.daily_starts} codes a day are texted to one person; "
                                              "try tomorrow or activate at a counter")
            activation_id = _new_id("AC")
            s.add(EcertActivationRow(activation_id=activation_id, psn_no=person.psn_no, channel="sms",
                                     code_hash=self._code_hash(f"{activation_id}:{code}"), status="pending",
                                     attempts=0, created_by="patient", created_at=now, expires_at=now + SMS_TTL,
                                     consent_at=now))
            audit.record(s, actor_kind="patient", actor=activation_id, action="ecert.activation_start",
                         psn_no=person.psn_no, fields=("certno", "phone"), at=now)
            return self.cipher.decrypt(person.phone_enc, "phone"), activation_id, now

    def start_at_counter(self, psn_no: str, certno: str, consent: bool, staff: str) -> Started:
        """A staff member saw the ID card: a counter code for the person to enter on their phone. Overrides (and
        cancels) an activation pending by SMS."""
        _check_consent(consent)
        code = "".join(secrets.choice(COUNTER_ALPHABET) for _ in range(COUNTER_CODE_LENGTH))
        with unit_of_work(self.factory) as uow:
            s = uow.session
            person = self._person(s, psn_no, certno)
            now = self.clock()
            s.execute(update(EcertActivationRow).where(EcertActivationRow.psn_no == person.psn_no,
                                                       EcertActivationRow.status == "pending")
                      .values(status="cancelled"))
            activation_id = _new_id("AC")
            s.add(EcertActivationRow(activation_id=activation_id, psn_no=person.psn_no, channel="counter",
                                     code_hash=self._code_hash(f"counter:{code}"), status="pending", attempts=0,
                                     created_by=staff[:40], created_at=now, expires_at=now + COUNTER_TTL,
                                     consent_at=now))
            audit.record(s, actor_kind="operator", actor=staff, action="ecert.counter_activation",
                         psn_no=person.psn_no, fields=("certno", *audit.MASKED_IDENTITY), at=now, ref=activation_id)
            holder = {"userName": mask_name(self.cipher.decrypt(person.psn_name_enc, "psn_name")),
                      "idNo": mask_certno(self.cipher.decrypt(person.certno_enc, "certno"))}
        return Started(activation_id, "counter", now + COUNTER_TTL, counter_code=_grouped(code), holder=holder)

    # -- confirm ---------------------------------------------------------------------------------------------

    def confirm(self, device_key: str, *, activation_id: str | None = None, code: str | None = None,
                counter_code: str | None = None) -> Activated:
        """Bind the person of a pending activation to ``device_key`` (the caller proved it holds it), given the
        code texted for ``activation_id`` or a counter code."""
        lookup, field = self._lookup(activation_id, code, counter_code)
        try:
            return self._confirm(lookup, field, activation_id, code, device_key)
        except IntegrityError:  # another activation of this person or this key committed meanwhile
            raise Conflict("device_public_key", "another activation with this device key or for this person "
                                                "happened at the same time; try again") from None

    def _confirm(self, lookup, field: str, activation_id: str | None, code: str | None, device_key: str) -> Activated:
        wrong: str | None = None  # a wrong code is counted (committed), then refused
        with unit_of_work(self.factory) as uow:
            s = uow.session
            row = s.execute(lookup).scalar()
            if row is not None:  # the person first, then the activation: the order every start takes too
                s.execute(select(PersonRow.psn_no).where(PersonRow.psn_no == row.psn_no).with_for_update())
                row = s.execute(lookup.with_for_update().execution_options(populate_existing=True)).scalar()
            now = self.clock()
            if row is None or row.status != "pending":
                raise WrongCode(field, "unknown or no longer valid: start the activation again")
            if row.expires_at <= now:
                row.status = "expired"
                wrong = "expired: start the activation again"
            elif activation_id is not None and not hmac.compare_digest(
                    row.code_hash, self._code_hash(f"{activation_id}:{(code or '').strip()}")):
                row.attempts += 1
                left = MAX_ATTEMPTS - row.attempts
                if left <= 0:
                    row.status = "failed"
                wrong = f"wrong code; {left} attempt(s) left" if left > 0 else "wrong code too often: start again"
            if wrong is None:
                return self._bind(s, row, device_key, now)
        raise WrongCode(field, wrong)

    def _bind(self, s: Session, row: EcertActivationRow, device_key: str, now: datetime) -> Activated:
        holder = s.execute(select(EcertRow).where(EcertRow.device_key == device_key,
                                                  EcertRow.status == "active")).scalar_one_or_none()
        if holder is not None and holder.psn_no != row.psn_no:
            raise Conflict("device_public_key", "this device key is bound to another person's active "
                                                "e-certificate; generate a key per person")
        replaced = False
        for old in s.scalars(select(EcertRow).where(EcertRow.psn_no == row.psn_no, EcertRow.status == "active")):
            old.status, old.revoked_at, old.revoked_reason = "revoked", now, "reactivated"
            replaced = True
        s.flush()
        ecert_id = _new_id("EC")
        s.add(EcertRow(ecert_id=ecert_id, psn_no=row.psn_no, device_key=device_key, status="active",
                       consent_at=row.consent_at, activated_at=now))
        row.status, row.ecert_id = "done", ecert_id
        audit.record(s, actor_kind="patient", actor=ecert_id, action="ecert.activate", psn_no=row.psn_no,
                     fields=("certno", *audit.MASKED_IDENTITY), at=now, ref=row.activation_id)
        return Activated(ecert_id, row.psn_no, replaced)

    def notify_replaced(self, activated: Activated) -> None:
        """Text the person that their e-certificate now lives on another device (best effort, after the commit:
        a lost notice must not undo an activation)."""
        if not activated.replaced or self.sms is None:
            return
        with self.factory() as s:
            phone_enc = s.execute(select(PersonRow.phone_enc).where(PersonRow.psn_no == activated.psn_no)).scalar()
        if phone_enc is None:
            return
        text = (f"【医保便捷支付】您的医保电子凭证已于{format_local(self.clock())[:16]}在新设备上激活，原设备上的凭证已失效。"
                f"如非本人操作，请立即致电{HOTLINE}。")
        try:
            self._text(self.cipher.decrypt(phone_enc, "phone"), text, f"{activated.ecert_id}:replaced")
        except SmsError as e:
            log.warning("activation notice for %s not sent: %s", activated.ecert_id, e)

    # -- internals -------------------------------------------------------------------------------------------

    def _person(self, s: Session, psn_no: str, certno: str) -> PersonRow:
        """The person, locked; the same answer whether psn_no is unknown or certno wrong (no probing for who is
        insured)."""
        if not isinstance(psn_no, str) or not psn_no.strip():
            raise Invalid("psn_no", "missing")
        if not isinstance(certno, str) or not certno.strip():
            raise Invalid("certno", "missing")
        person = s.execute(select(PersonRow).where(PersonRow.psn_no == psn_no.strip()).with_for_update()).scalar()
        if person is None or not hmac.compare_digest(person.certno_idx, self.cipher.blind_index(certno, "certno")):
            raise Invalid("certno", "does not match an insured person with this psn_no")
        return person

    @staticmethod
    def _expire_stale(s: Session, psn_no: str, now: datetime) -> None:
        s.execute(update(EcertActivationRow).where(EcertActivationRow.psn_no == psn_no,
                                                   EcertActivationRow.status == "pending",
                                                   EcertActivationRow.expires_at <= now).values(status="expired"))
        s.flush()

    def _lookup(self, activation_id: str | None, code: str | None, counter_code: str | None):
        if counter_code is not None and activation_id is None:
            normal = counter_code.replace("-", "").replace(" ", "").upper() if isinstance(counter_code, str) else ""
            if len(normal) != COUNTER_CODE_LENGTH or any(c not in COUNTER_ALPHABET for c in normal):
                raise Invalid("counter_code", f"{COUNTER_CODE_LENGTH} letters and digits, as given at the counter")
            return (select(EcertActivationRow).where(EcertActivationRow.code_hash == self._code_hash(f"counter:{normal}"),
                                                     EcertActivationRow.channel == "counter"), "counter_code")
        if activation_id is None or counter_code is not None:
            raise Invalid("activation_id", "send activation_id with the texted code, or a counter_code")
        if not isinstance(code, str) or len(code.strip()) != 6 or not code.strip().isdigit():
            raise Invalid("code", "the 6 digits texted to the phone")
        return (select(EcertActivationRow).where(EcertActivationRow.activation_id == activation_id,
                                                 EcertActivationRow.channel == "sms"), "code")

    def _code_hash(self, text: str) -> str:
        return self.cipher.blind_index(text, "activation_code")

    def _settle_status(self, activation_id: str, status: str) -> None:
        with unit_of_work(self.factory) as uow:
            uow.session.execute(update(EcertActivationRow).where(EcertActivationRow.activation_id == activation_id,
                                                                 EcertActivationRow.status == "pending")
                                .values(status=status))

    def _text(self, phone: str, text: str, ref: str) -> None:
        """Send once; an unknown outcome is asked again with the same ref (the service sends a ref once)."""
        assert self.sms is not None
        try:
            self.sms.send(phone, text, ref=ref)
        except SmsOutcomeUnknown:
            self.sms.send(phone, text, ref=ref)


def purge_activations(factory: sessionmaker[Session], now: datetime, keep: timedelta = ACTIVATION_KEEP) -> int:
    """Forget activations whose code expired more than ``keep`` ago, whatever became of them (the audit log keeps
    who activated what, and a pending one that old blocks nobody)."""
    with unit_of_work(factory) as uow:
        return uow.session.execute(delete(EcertActivationRow).where(
            EcertActivationRow.expires_at < now - keep)).rowcount or 0


def _check_consent(consent: object) -> None:
    if consent is not True:
        raise Invalid("consent", "the person's separate consent to the processing of personal information "
                                 "(个人信息处理单独同意) is required to activate an e-certificate")


def _grouped(code: str) -> str:
    return f"{code[:5]}-{code[5:]}"
