"""E-certificates (医保电子凭证): activation on a device, the dynamic QR code, and the terminal's ``ec.query``.

The chain of trust:

1. **Activation** (``services.qr.activation``) binds an insured person to the Ed25519 key of one device (the app
   keeps the private key), after a second proof besides the ID number: a code texted to the phone on record, or
   handed over at a counter by staff. One active e-certificate per person and per device key; activating again
   revokes the old one, and its device hears why (``verify_device``).
2. **A code**: the app asks with a request signed by the device key (``signed_requests``: headers, a single-use
   nonce, ±120 s); the platform answers with a payload it signs itself (``medpay.domain.ecert_code``), valid
   60 s, for one business type. The app shows it as a QR code and asks for a new one before it expires.
3. **ec.query**: a registered terminal (its requests signed with its own Ed25519 key, the same scheme) sends the
   scanned string or a photo of the code. The platform checks the
   payload (genuine, unexpired, right business type, e-certificate still active, never scanned before),
   records its nonce, and issues an ecToken bound to the person and the terminal's institution, usable there
   as ``mdtrt_cert_type=01`` for one visit (what it may do: ``medpay.domain.credentials``).

A code is not tied to an institution: the patient shows it wherever they are. The institution that scans it
first gets the token; the same code cannot be scanned again anywhere. Every refusal is a ``ServiceError``
naming the field at fault, and a refused scan consumes nothing: the patient can show the same code again
(to a terminal asking for the right business type, say) until it expires.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters import qr_images
from medpay.adapters.crypto import FieldCipher, mask_certno, mask_name
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.ecert_tables import (
    DeviceNonceRow,
    EcertCodeNonceRow,
    EcertRow,
    TerminalNonceRow,
    TerminalRow,
)
from medpay.adapters.db.statements import insert_ignore
from medpay.adapters.db.tables import InstitutionRow, PersonRow
from medpay.adapters.platform_keys import parse_public_key_hex, public_key_hex
from medpay.domain.ecert_code import BUSINESS_TYPES, MAX_TTL_S, CodeError, make_payload, parse_and_verify
from medpay.local_time import format_local
from medpay.services import audit
from medpay.services.qr.activation import HOTLINE
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError, Unauthorized
from medpay.services.persons import PersonService
from medpay.services.signed_requests import HEADER_NONCE, HEADER_SIGNATURE, SIGNED_HEADERS, read_signed, sign
from medpay.services.unit_of_work import unit_of_work

HEADER_TERMINAL_ID = "X-Terminal-Id"
HEADER_ECERT_ID = "X-Ecert-Id"
TERMINAL_HEADERS = (HEADER_TERMINAL_ID, *SIGNED_HEADERS)
DEVICE_HEADERS = (HEADER_ECERT_ID, *SIGNED_HEADERS)

DEVICE_SKEW_S = 120
TERMINAL_SKEW_S = 300
TERMINAL_KINDS = ("scanner", "face")
TOKEN_TTL = timedelta(minutes=30)
CODE_NONCE_KEEP = timedelta(minutes=10)  # a scanned code's nonce is kept well past the code's 60 s life
MAX_SCANNED_LENGTH = 1024
_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


# -- errors --------------------------------------------------------------------------------------------------


class CodeInvalid(Invalid):
    """Truncated, garbled, of another version, or not a medpay code."""

    code = "code_invalid"


class CodeForged(CodeInvalid):
    """The signature doesn't verify: not issued by this platform, or altered."""

    code = "code_forged"


class CodeExpired(Invalid):
    code = "code_expired"


class CodeReplayed(Conflict):
    code = "code_used"


class EcertRevoked(Forbidden):
    code = "ecert_revoked"


class BusinessTypeMismatch(Invalid):
    code = "business_type_mismatch"


class ImageRejected(Invalid):
    """No QR code, two or more codes, or not an image at all."""

    code = "image_invalid"


class DeviceAuthError(Unauthorized):
    """The app did not prove it holds the e-certificate's device key."""


class TerminalAuthError(Unauthorized):
    """The terminal's request signature headers are missing, stale, wrong or replayed."""


def decode_photo(image: bytes, field: str = "image") -> str:
    """The text of the one QR code in a photo; ``ImageRejected`` naming ``field`` otherwise."""
    try:
        return qr_images.decode(image, field)
    except qr_images.ImageError as e:
        raise ImageRejected(e.field, e.message) from None


def refused_code(error: CodeError, field: str, message: str | None = None) -> ServiceError:
    """The service error for a code (e-certificate or bill) that ``error`` refused: forged, expired or malformed."""
    cls = {"signature": CodeForged, "expired": CodeExpired}.get(error.kind, CodeInvalid)
    return cls(field, message or error.message)


# -- signing inputs (clients use these too) --------------------------------------------------------------------


def sign_terminal_request(terminal_key: Ed25519PrivateKey, terminal_id: str, method: str, path: str, body: bytes,
                          timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The four ``X-*`` headers a terminal sends."""
    return {HEADER_TERMINAL_ID: terminal_id, **sign(terminal_key, method, path, body, timestamp=timestamp, nonce=nonce)}


def sign_device_request(device_key: Ed25519PrivateKey, ecert_id: str | None, method: str, path: str,
                        body: bytes = b"", timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The headers the app sends: ``X-Ecert-Id`` (none while activating) and the signature of the request."""
    return {**({HEADER_ECERT_ID: ecert_id} if ecert_id else {}),
            **sign(device_key, method, path, body, timestamp=timestamp, nonce=nonce)}


# a fixed key that verifies nothing: an unknown e-certificate costs the same check as a known one (no probing)
_NOBODY = Ed25519PrivateKey.from_private_bytes(b"\x00" * 32).public_key()


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def purge_nonces(factory: sessionmaker[Session], now: datetime, terminal_skew_s: int = TERMINAL_SKEW_S,
                 device_skew_s: int = DEVICE_SKEW_S) -> int:
    """Forget terminal and device nonces that can no longer pass the timestamp check, and nonces of codes long
    expired (no signing key needed: housekeeping calls this directly)."""
    with unit_of_work(factory) as uow:
        n = uow.session.execute(delete(TerminalNonceRow).where(
            TerminalNonceRow.seen_at < now - timedelta(seconds=2 * terminal_skew_s))).rowcount or 0
        n += uow.session.execute(delete(DeviceNonceRow).where(
            DeviceNonceRow.seen_at < now - timedelta(seconds=2 * device_skew_s))).rowcount or 0
        n += uow.session.execute(delete(EcertCodeNonceRow).where(
            EcertCodeNonceRow.used_at < now - CODE_NONCE_KEEP)).rowcount or 0
    return n


class EcertService:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher, signing_key: Ed25519PrivateKey,
                 persons: PersonService, clock: Callable[[], datetime] = utcnow, *, code_ttl_s: int = MAX_TTL_S,
                 device_skew_s: int = DEVICE_SKEW_S, terminal_skew_s: int = TERMINAL_SKEW_S,
                 token_ttl: timedelta = TOKEN_TTL):
        if not 0 < code_ttl_s <= MAX_TTL_S:
            raise ValueError(f"code_ttl_s must be 1..{MAX_TTL_S}")
        self.factory = factory
        self.cipher = cipher
        self.signing_key = signing_key
        self.public_key = signing_key.public_key()
        self.persons = persons
        self.clock = clock
        self.code_ttl_s = code_ttl_s
        self.device_skew_s = device_skew_s
        self.terminal_skew_s = terminal_skew_s
        self.token_ttl = token_ttl

    # -- the e-certificate ---------------------------------------------------------------------------------

    def holder(self, ecert_id: str) -> dict[str, str]:
        """Whose e-certificate this is, masked (``userName``, ``idNo``): what the app may show its own user."""
        with self.factory() as session:
            row = session.get(EcertRow, ecert_id)
            if row is None:
                raise NotFound("ecert_id", "unknown e-certificate")
            return self._masked(session.get(PersonRow, row.psn_no))

    def _masked(self, person: PersonRow) -> dict[str, str]:
        return {"userName": mask_name(self.cipher.decrypt(person.psn_name_enc, "psn_name")),
                "idNo": mask_certno(self.cipher.decrypt(person.certno_enc, "certno"))}

    def revoke(self, ecert_id: str) -> None:
        """Revoke an e-certificate (lost phone, the person's request). Its codes stop working at once."""
        with unit_of_work(self.factory) as uow:
            row = uow.session.get(EcertRow, ecert_id, with_for_update=True)
            if row is None:
                raise NotFound("ecert_id", "unknown e-certificate")
            if row.status == "active":
                row.status, row.revoked_at, row.revoked_reason = "revoked", self.clock(), "revoked"

    # -- the dynamic code ----------------------------------------------------------------------------------

    def verify_device(self, headers: Mapping[str, str], method: str, path: str, body: bytes) -> tuple[str, str]:
        """(ecert_id, psn_no) of the e-certificate whose device signed this request; ``DeviceAuthError`` naming the
        header at fault otherwise. An unknown e-certificate is refused exactly like a wrong signature, so ids can't
        be probed; a revoked one is told why, once its device proved itself. The nonce is used up."""
        signed = read_signed(headers, method, path, body, now=self.clock(), skew_s=self.device_skew_s,
                             error=DeviceAuthError, holder_header=HEADER_ECERT_ID)
        with unit_of_work(self.factory) as uow:
            row = uow.session.get(EcertRow, signed.holder)
            key = parse_public_key_hex(row.device_key) if row is not None else _NOBODY
            if not signed.verifies(key) or row is None:
                raise DeviceAuthError(HEADER_SIGNATURE, "does not verify with this e-certificate's device key "
                                                        "(signed: METHOD\\npath\\ntimestamp\\nnonce\\nsha256hex(body))")
            if row.status != "active":
                raise EcertRevoked(HEADER_ECERT_ID, _revoked_message(row))
            self._use_nonce(uow.session, row.device_key, signed.nonce)
            return row.ecert_id, row.psn_no

    def device_headers(self, headers: Mapping[str, str], method: str, path: str, body: bytes) -> None:
        """The signature headers of a request that brings its own key, checked for form and freshness — before its
        body is read for the key."""
        read_signed(headers, method, path, body, now=self.clock(), skew_s=self.device_skew_s, error=DeviceAuthError)

    def verify_device_key(self, headers: Mapping[str, str], method: str, path: str, body: bytes,
                          device_key: str) -> str:
        """The device key (64 hex digits) that signed this request, when the request brings its own key (an
        activation): proof of possession. The nonce is used up."""
        try:
            key_hex = public_key_hex(parse_public_key_hex(device_key))
        except ValueError as e:
            raise Invalid("device_public_key", f"Ed25519 public key: {e}") from None
        signed = read_signed(headers, method, path, body, now=self.clock(), skew_s=self.device_skew_s,
                             error=DeviceAuthError)
        if not signed.verifies(parse_public_key_hex(key_hex)):
            raise DeviceAuthError(HEADER_SIGNATURE, "does not verify with device_public_key")
        with unit_of_work(self.factory) as uow:
            self._use_nonce(uow.session, key_hex, signed.nonce)
        return key_hex

    def _use_nonce(self, session: Session, device_key: str, nonce: str) -> None:
        if not insert_ignore(session, DeviceNonceRow, {"device_key": device_key, "nonce": nonce,
                                                       "seen_at": self.clock()}, DeviceNonceRow.nonce):
            raise DeviceAuthError(HEADER_NONCE, "nonce already used: replayed request refused")

    def member_ecert(self, psn_no: str, shown_by: str) -> str:
        """The active e-certificate of a family member whose code a linked account's device shows (家庭代办: the
        caller checked the link), the showing audited; a member who never activated one has none to show."""
        with unit_of_work(self.factory) as uow:
            row = uow.session.execute(select(EcertRow).where(EcertRow.psn_no == psn_no,
                                                             EcertRow.status == "active")).scalar_one_or_none()
            if row is None:
                raise Conflict("for", "this family member has no activated e-certificate: they activate it on their "
                                      "own phone, or at a counter with their ID")
            audit.record(uow.session, actor_kind="patient", actor=shown_by, action="ecert.code_for_member",
                         psn_no=psn_no, fields=("ecert_code",), at=self.clock(), ref=row.ecert_id)
            return row.ecert_id

    def issue_code(self, ecert_id: str, business_type: str) -> tuple[str, datetime]:
        """A signed QR payload for ``business_type`` and when it expires (≤ 60 s), for an e-certificate whose
        device just signed the request (``verify_device``)."""
        bt = _business_type(business_type, "business_type")
        now = self.clock()
        payload = make_payload(self.signing_key, ecert_id, bt, now, self.code_ttl_s)
        return payload, datetime.fromtimestamp(int(now.timestamp()) + self.code_ttl_s, timezone.utc)

    # -- terminals -----------------------------------------------------------------------------------------

    def register_terminal(self, fixmedins_code: str, public_key_hex_: str, name: str, kind: str = "scanner") -> str:
        """A terminal of ``kind``: ``scanner`` (QR codes: windows, scanners) or ``face`` (a face kiosk, which may
        scan codes too — its fallback)."""
        if kind not in TERMINAL_KINDS:
            raise Invalid("kind", f"one of {', '.join(TERMINAL_KINDS)}")
        try:
            key_hex = public_key_hex(parse_public_key_hex(public_key_hex_))
        except ValueError as e:
            raise Invalid("public_key", f"Ed25519 public key: {e}") from None
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
            raise Invalid("name", "1 to 100 characters")
        try:
            with unit_of_work(self.factory) as uow:
                s = uow.session
                if s.get(InstitutionRow, fixmedins_code) is None:
                    raise NotFound("fixmedins_code", f"unknown institution {fixmedins_code!r}")
                if s.execute(select(TerminalRow.terminal_id).where(TerminalRow.public_key == key_hex)).first():
                    raise Conflict("public_key", "already registered for another terminal; one key per terminal")
                terminal_id = _new_id("TM")
                while s.get(TerminalRow, terminal_id) is not None:
                    terminal_id = _new_id("TM")
                s.add(TerminalRow(terminal_id=terminal_id, fixmedins_code=fixmedins_code, public_key=key_hex,
                                  name=name.strip(), status="active", kind=kind, registered_at=self.clock()))
        except IntegrityError:
            raise Conflict("public_key", "already registered for another terminal; one key per terminal") from None
        return terminal_id

    def disable_terminal(self, terminal_id: str) -> None:
        with unit_of_work(self.factory) as uow:
            row = uow.session.get(TerminalRow, terminal_id)
            if row is None:
                raise NotFound("terminal_id", "unknown terminal")
            row.status = "disabled"

    def verify_terminal(self, headers: Mapping[str, str], method: str, path: str,
                        body: bytes, kind: str | None = None) -> tuple[str, str]:
        """(terminal_id, fixmedins_code) of the terminal that signed this request; ``TerminalAuthError`` naming
        the header at fault otherwise. The nonce is recorded only for a request whose signature verified. With
        ``kind``, a terminal of another kind is refused (once it proved its key)."""
        signed = read_signed(headers, method, path, body, now=self.clock(), skew_s=self.terminal_skew_s,
                             error=TerminalAuthError, holder_header=HEADER_TERMINAL_ID)
        with unit_of_work(self.factory) as uow:
            row = uow.session.get(TerminalRow, signed.holder)
            # an unknown terminal is refused exactly like a wrong signature: terminal ids can't be probed
            key = parse_public_key_hex(row.public_key) if row is not None else _NOBODY
            if not signed.verifies(key) or row is None:
                raise TerminalAuthError(HEADER_SIGNATURE, "does not verify with this terminal's key (signed: "
                                                          "METHOD\\npath\\ntimestamp\\nnonce\\nsha256hex(body))")
            if row.status != "active":
                raise TerminalAuthError(HEADER_TERMINAL_ID, "this terminal is disabled")
            if kind is not None and row.kind != kind:
                raise Forbidden(HEADER_TERMINAL_ID, f"this terminal is registered as a {row.kind}, not a {kind} "
                                                    "terminal")
            if not insert_ignore(uow.session, TerminalNonceRow,
                                  {"terminal_id": row.terminal_id, "nonce": signed.nonce, "seen_at": self.clock()},
                                  TerminalNonceRow.nonce):
                raise TerminalAuthError(HEADER_NONCE, "nonce already used: replayed request refused")
            return row.terminal_id, row.fixmedins_code

    def purge_nonces(self) -> int:
        return purge_nonces(self.factory, self.clock(), self.terminal_skew_s)

    # -- ec.query ------------------------------------------------------------------------------------------

    def query(self, terminal_id: str, fixmedins_code: str, scanned: str | None, image: bytes | None,
              business_type: str) -> dict[str, Any]:
        """ec.query: the masked identity of the code's holder and an ecToken bound to ``fixmedins_code``."""
        bt = _business_type(business_type, "businessType")
        if scanned is not None and image is not None:
            raise Invalid("image", "send either the scanned string (qrCode) or an image, not both")
        if image is not None:
            source = "image"
            payload = decode_photo(image)
        else:
            source = "qrCode"
            if not isinstance(scanned, str) or not scanned.strip():
                raise Invalid("qrCode", "missing: send the scanned string, or an image of the code")
            if len(scanned) > MAX_SCANNED_LENGTH:
                raise CodeInvalid("qrCode", "too long to be an e-certificate code")
            payload = scanned
        try:
            claims = parse_and_verify(payload, self.public_key, self.clock())
        except CodeError as e:
            raise refused_code(e, source, f"{e.field}: {e.message}") from None
        if claims.business_type != bt:
            raise BusinessTypeMismatch(
                "businessType",
                f"this code was made for {claims.business_type} {BUSINESS_TYPES[claims.business_type]}, not for "
                f"{bt} {BUSINESS_TYPES[bt]}; ask the patient to show a code for {BUSINESS_TYPES[bt]}")

        with unit_of_work(self.factory) as uow:
            s = uow.session
            ecert = s.get(EcertRow, claims.ecert_id)
            if ecert is None:
                raise NotFound(source, "unknown e-certificate")
            if ecert.status != "active":
                raise EcertRevoked(source, "this e-certificate was revoked (activated again on another device?); "
                                           "the patient must show the code of the active one")
            person = s.get(PersonRow, ecert.psn_no)
            if person is None:  # foreign key: can't happen
                raise NotFound(source, "unknown person")
            if not insert_ignore(s, EcertCodeNonceRow, {"nonce": claims.nonce, "ecert_id": ecert.ecert_id,
                                                         "terminal_id": terminal_id, "used_at": self.clock()},
                                  EcertCodeNonceRow.nonce):
                raise CodeReplayed(source, "this code was already scanned; ask the patient to refresh the code")
            identity = {
                **self._masked(person),
                "idType": person.psn_cert_type,
                "insuOrg": person.insuplc_admdvs,
                "ecIndexNo": ecert.ecert_id,
                "gender": person.gend,
                "birthday": person.brdy.isoformat(),
            }
            # the code is used up and the token issued in one transaction: both or neither
            token = self.persons.add_ec_token(s, person.psn_no, fixmedins_code, bt, self.token_ttl)
            audit.record(s, actor_kind="terminal", actor=terminal_id, action="ec.query", psn_no=person.psn_no,
                         fields=audit.MASKED_IDENTITY, at=self.clock(), ref=claims.nonce)
        return {**identity, "ecToken": token, "businessType": bt}


def _revoked_message(row: EcertRow) -> str:
    when = format_local(row.revoked_at)[:16] if row.revoked_at else ""
    if row.revoked_reason == "reactivated":
        return (f"this e-certificate was activated on another device at {when}; if that wasn't you, call "
                f"{HOTLINE} and activate it again here (at a counter with your ID card if need be)")
    if row.revoked_reason == "lost_device":
        return (f"this e-certificate was revoked at {when} from its holder's account (a lost phone); if this is "
                "your phone, activate it again here")
    return f"this e-certificate was revoked at {when}; activate it again on this device"


def _business_type(value: Any, field: str) -> str:
    if not isinstance(value, str) or value.strip() not in BUSINESS_TYPES:
        known = ", ".join(f"{k} {v}" for k, v in BUSINESS_TYPES.items())
        raise Invalid(field, f"unknown business type {value!r}; one of: {known}")
    return value.strip()
