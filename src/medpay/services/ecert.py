"""E-certificates (医保电子凭证): activation on a device, the dynamic QR code, and the terminal's ``ec.query``.

The chain of trust:

1. **Activation** binds an insured person to the Ed25519 key of one device (the app keeps the private key).
   The person gives a separate consent to the processing of personal information (个人信息单独同意) and proves
   who they are with the ID number, checked against the blind index. This service trusts that the app's own
   real-person check (实人认证) ran before it calls ``activate``: psn_no + certno alone are not a secret.
   One active e-certificate per person and per device key; activating again revokes the old one.
2. **A code**: the app signs ``f"{ecert_id}|{business_type}|{timestamp}"`` with the device key (±120 s); the
   platform answers with a payload it signs itself (``medpay.domain.ecert_code``), valid 60 s, for one
   business type. The app shows it as a QR code and asks for a new one before it expires.
3. **ec.query**: a registered terminal (its requests signed with its own Ed25519 key, see
   ``terminal_signing_input``) sends the scanned string or a photo of the code. The platform checks the
   payload (genuine, unexpired, right business type, e-certificate still active, never scanned before),
   records its nonce, and issues an ecToken bound to the terminal's institution (valid 30 min) — usable as
   ``mdtrt_cert_type=01`` in 1101/2201/2207/2401/2304 there and nowhere else.

A code is not tied to an institution: the patient shows it wherever they are. The institution that scans it
first gets the token; the same code cannot be scanned again anywhere. Every refusal is a ``ServiceError``
naming the field at fault, and a refused scan consumes nothing: the patient can show the same code again
(to a terminal asking for the right business type, say) until it expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters import qr_images
from medpay.adapters.crypto import FieldCipher, mask_certno, mask_name
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.ecert_tables import EcertCodeNonceRow, EcertRow, TerminalNonceRow, TerminalRow
from medpay.adapters.db.statements import insert_ignore
from medpay.adapters.db.tables import InstitutionRow, PersonRow
from medpay.adapters.platform_keys import parse_public_key_hex, public_key_hex
from medpay.domain.ecert_code import BUSINESS_TYPES, MAX_TTL_S, CodeError, make_payload, parse_and_verify
from medpay.services import audit
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError, Unauthorized
from medpay.services.persons import PersonService
from medpay.services.request_headers import collect, printable
from medpay.services.unit_of_work import unit_of_work

HEADER_TERMINAL_ID = "X-Terminal-Id"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_NONCE = "X-Nonce"
HEADER_SIGNATURE = "X-Signature"
TERMINAL_HEADERS = (HEADER_TERMINAL_ID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)

DEVICE_SKEW_S = 120
TERMINAL_SKEW_S = 300
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


def device_signing_input(ecert_id: str, business_type: str, timestamp: int) -> bytes:
    return f"{ecert_id}|{business_type}|{int(timestamp)}".encode("utf-8")


def sign_code_request(device_key: Ed25519PrivateKey, ecert_id: str, business_type: str,
                      timestamp: int) -> str:
    """The app's ``device_signature`` (hex) for ``issue_code``."""
    return device_key.sign(device_signing_input(ecert_id, business_type, timestamp)).hex()


def terminal_signing_input(method: str, path: str, timestamp: str | int, nonce: str, body: bytes) -> bytes:
    """``METHOD\\npath\\ntimestamp\\nnonce\\nsha256hex(body)``. ``path`` is the request target as sent: the path,
    plus ``?query`` when there is one."""
    return "\n".join([method.upper(), path, str(timestamp), nonce, hashlib.sha256(body).hexdigest()]).encode("utf-8")


def sign_terminal_request(terminal_key: Ed25519PrivateKey, terminal_id: str, method: str, path: str, body: bytes,
                          timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The four ``X-*`` headers a terminal sends."""
    ts = str(int(timestamp if timestamp is not None else utcnow().timestamp()))
    nonce = nonce or secrets.token_hex(16)
    signature = terminal_key.sign(terminal_signing_input(method, path, ts, nonce, body)).hex()
    return {HEADER_TERMINAL_ID: terminal_id, HEADER_TIMESTAMP: ts, HEADER_NONCE: nonce, HEADER_SIGNATURE: signature}


def signature_bytes(text: Any, field: str, error: type[ServiceError]) -> bytes:
    """64 signature bytes from 128 hex digits or (url-safe) base64."""
    if not isinstance(text, str) or not text.strip():
        raise error(field, "missing signature")
    text = text.strip()
    raw: bytes | None = None
    if len(text) == 128:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None and len(text) <= 90:
        try:
            raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 64:
        raise error(field, "must be a 64-byte Ed25519 signature, as 128 hex digits or base64")
    return raw


def verify_signature(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def purge_nonces(factory: sessionmaker[Session], now: datetime, terminal_skew_s: int = TERMINAL_SKEW_S) -> int:
    """Forget terminal nonces that can no longer pass the timestamp check, and nonces of codes long expired
    (no signing key needed: housekeeping calls this directly)."""
    with unit_of_work(factory) as uow:
        n = uow.session.execute(delete(TerminalNonceRow).where(
            TerminalNonceRow.seen_at < now - timedelta(seconds=2 * terminal_skew_s))).rowcount or 0
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

    # -- activation ----------------------------------------------------------------------------------------

    def activate(self, psn_no: str, certno: str, device_public_key: str, consent: bool) -> str:
        """Bind ``psn_no`` to the device key; the new ecert_id. Revokes the person's previous e-certificate."""
        if consent is not True:
            raise Invalid("consent", "the person's separate consent to the processing of personal information "
                                     "(个人信息处理单独同意) is required to activate an e-certificate")
        try:
            key_hex = public_key_hex(parse_public_key_hex(device_public_key))
        except ValueError as e:
            raise Invalid("device_public_key", f"Ed25519 public key: {e}") from None
        if not isinstance(psn_no, str) or not psn_no.strip():
            raise Invalid("psn_no", "missing")
        if not isinstance(certno, str) or not certno.strip():
            raise Invalid("certno", "missing")
        now = self.clock()
        try:
            with unit_of_work(self.factory) as uow:
                s = uow.session
                person = s.execute(select(PersonRow).where(PersonRow.psn_no == psn_no.strip())
                                   .with_for_update()).scalar_one_or_none()
                # the same answer whether psn_no is unknown or certno is wrong: no probing for who is insured
                if person is None or not hmac.compare_digest(person.certno_idx,
                                                             self.cipher.blind_index(certno, "certno")):
                    raise Invalid("certno", "does not match an insured person with this psn_no")
                holder = s.execute(select(EcertRow).where(EcertRow.device_key == key_hex,
                                                          EcertRow.status == "active")).scalar_one_or_none()
                if holder is not None and holder.psn_no != person.psn_no:
                    raise Conflict("device_public_key", "this device key is bound to another person's active "
                                                        "e-certificate; generate a key per person")
                for old in s.scalars(select(EcertRow).where(EcertRow.psn_no == person.psn_no,
                                                            EcertRow.status == "active")):
                    old.status, old.revoked_at = "revoked", now
                s.flush()
                ecert_id = _new_id("EC")
                while s.get(EcertRow, ecert_id) is not None:
                    ecert_id = _new_id("EC")
                s.add(EcertRow(ecert_id=ecert_id, psn_no=person.psn_no, device_key=key_hex, status="active",
                               consent_at=now, activated_at=now))
                audit.record(s, actor_kind="patient", actor=ecert_id, action="ecert.activate", psn_no=person.psn_no,
                             fields=("certno", *audit.MASKED_IDENTITY), at=now)
        except IntegrityError:
            raise Conflict("device_public_key", "another activation with this device key or for this person "
                                                "happened at the same time; try again") from None
        return ecert_id

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
                row.status, row.revoked_at = "revoked", self.clock()

    # -- the dynamic code ----------------------------------------------------------------------------------

    def issue_code(self, ecert_id: str, business_type: str, device_signature: str,
                   timestamp: int | str) -> tuple[str, datetime]:
        """A signed QR payload for ``business_type`` and when it expires (≤ 60 s). The app proves it holds the
        device key: ``device_signature`` signs ``f"{ecert_id}|{business_type}|{timestamp}"``."""
        bt = _business_type(business_type, "business_type")
        ts = self._timestamp(timestamp, "timestamp", self.device_skew_s, DeviceAuthError)
        signature = signature_bytes(device_signature, "device_signature", DeviceAuthError)
        if not isinstance(ecert_id, str) or not ecert_id.strip():
            raise Invalid("ecert_id", "missing")
        with self.factory() as session:
            row = session.get(EcertRow, ecert_id.strip())
        if row is None:
            raise NotFound("ecert_id", "unknown e-certificate")
        if not verify_signature(parse_public_key_hex(row.device_key), signature, device_signing_input(row.ecert_id, bt, ts)):
            raise DeviceAuthError("device_signature", "does not verify with the device key of this e-certificate")
        if row.status != "active":
            raise EcertRevoked("ecert_id", "this e-certificate was revoked; activate it again on this device")
        now = self.clock()
        payload = make_payload(self.signing_key, row.ecert_id, bt, now, self.code_ttl_s)
        return payload, datetime.fromtimestamp(int(now.timestamp()) + self.code_ttl_s, timezone.utc)

    # -- terminals -----------------------------------------------------------------------------------------

    def register_terminal(self, fixmedins_code: str, public_key_hex_: str, name: str) -> str:
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
                                  name=name.strip(), status="active", registered_at=self.clock()))
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
                        body: bytes) -> tuple[str, str]:
        """(terminal_id, fixmedins_code) of the terminal that signed this request; ``TerminalAuthError`` naming
        the header at fault otherwise. The nonce is recorded only for a request whose signature verified."""
        h = collect(headers, TERMINAL_HEADERS, TerminalAuthError)
        terminal_id, ts_text, nonce, sig_text = (h.get(name.lower(), "") for name in TERMINAL_HEADERS)
        if not terminal_id:
            raise TerminalAuthError(HEADER_TERMINAL_ID, "missing header")
        if len(terminal_id) > 20 or not printable(terminal_id):
            raise TerminalAuthError(HEADER_TERMINAL_ID, "unknown terminal")
        ts = self._timestamp(ts_text, HEADER_TIMESTAMP, self.terminal_skew_s, TerminalAuthError)
        if not nonce:
            raise TerminalAuthError(HEADER_NONCE, "missing header")
        if not 8 <= len(nonce) <= 64 or not printable(nonce):
            raise TerminalAuthError(HEADER_NONCE, "must be 8 to 64 printable ASCII characters (a GUID)")
        signature = signature_bytes(sig_text, HEADER_SIGNATURE, TerminalAuthError)
        message = terminal_signing_input(method, path, ts, nonce, body)
        with unit_of_work(self.factory) as uow:
            row = uow.session.get(TerminalRow, terminal_id)
            if row is None:
                raise TerminalAuthError(HEADER_TERMINAL_ID, "unknown terminal")
            if row.status != "active":
                raise TerminalAuthError(HEADER_TERMINAL_ID, "this terminal is disabled")
            if not verify_signature(parse_public_key_hex(row.public_key), signature, message):
                raise TerminalAuthError(HEADER_SIGNATURE, "does not verify with this terminal's key (signed: "
                                                          "METHOD\\npath\\ntimestamp\\nnonce\\nsha256hex(body))")
            if not insert_ignore(uow.session, TerminalNonceRow,
                                  {"terminal_id": terminal_id, "nonce": nonce, "seen_at": self.clock()},
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

    # -- helpers -------------------------------------------------------------------------------------------

    def _timestamp(self, value: Any, field: str, skew_s: int, error: type[ServiceError]) -> int:
        if isinstance(value, bool):
            raise error(field, "must be unix time in whole seconds")
        if isinstance(value, int):
            ts = value
        else:
            text = value.strip() if isinstance(value, str) else ""
            if not text:
                raise error(field, "missing")
            if not (text.isascii() and text.isdigit()):
                raise error(field, "must be unix time in whole seconds (digits only)")
            if len(text) > 12:
                raise error(field, "must be unix time in seconds, not milliseconds")
            ts = int(text)
        drift = ts - self.clock().timestamp()
        if abs(drift) > skew_s:
            raise error(field, f"stale: {drift:+.0f} s from server time; allowed ±{skew_s} s")
        return ts


def _business_type(value: Any, field: str) -> str:
    if not isinstance(value, str) or value.strip() not in BUSINESS_TYPES:
        known = ", ".join(f"{k} {v}" for k, v in BUSINESS_TYPES.items())
        raise Invalid(field, f"unknown business type {value!r}; one of: {known}")
    return value.strip()
