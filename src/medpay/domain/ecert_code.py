"""The dynamic QR code of a medical-insurance e-certificate (医保电子凭证动态码): payload format, signing, checking.

A payload is three dot-separated parts, like a compact JWS::

    MPEC1.<b64url(claims JSON)>.<b64url(Ed25519 signature of "MPEC1.<b64url(claims JSON)>")>

with compact claims ``{"v": 1, "ec": <ecert id>, "bt": <businessType>, "iat": <unix s>, "exp": <unix s>,
"n": <nonce>}``. Base64url without padding: 213 characters with a 10-character ecert id, which fits a
version-10 QR code (57×57 modules) at error-correction level M.

The platform signs; terminals never see the key, they send the scanned string to ``ec.query``. A code lives
at most ``MAX_TTL_S`` (60 s) and names one business type (用码业务类型): the app refreshes it. Single use is
the service's job (the nonce ``n`` is recorded when the code is scanned); this module is pure.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PREFIX = "MPEC1"
VERSION = 1
MAX_TTL_S = 60
FUTURE_SKEW_S = 30  # platform nodes' clocks may differ a little; a code "issued" further ahead is refused
MAX_PAYLOAD_LENGTH = 512  # longer scans are refused before any decoding
NONCE_BYTES = 8  # 11 base64url characters: single use is checked against recorded nonces

# 用码业务类型 (附录A.1), from the JS interface documents in the reference.
BUSINESS_TYPES: dict[str, str] = {
    "01101": "门诊挂号",
    "01102": "住院建档",
    "01103": "入院登记",
    "01104": "缴纳预缴金",
    "01201": "门诊问诊",
    "01202": "预约检查",
    "01203": "检查",
    "01204": "治疗",
    "01301": "门诊结算",
    "01302": "取药",
    "02121": "药店购药",
    "02122": "下载外购处方",
}


class CodeError(ValueError):
    """The payload is refused. ``field`` names the part at fault; ``kind`` is one of
    ``format`` (truncated, garbled), ``version``, ``signature`` (forged or altered), ``expired``, ``not_yet_valid``."""

    def __init__(self, field: str, message: str, kind: str = "format"):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.kind = kind


@dataclass(frozen=True)
class Claims:
    version: int
    ecert_id: str
    business_type: str
    issued_at: int  # unix seconds
    expires_at: int
    nonce: str

    @property
    def expires_at_dt(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, timezone.utc)

    @property
    def issued_at_dt(self) -> datetime:
        return datetime.fromtimestamp(self.issued_at, timezone.utc)


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str, field: str) -> bytes:
    if not text or any(c not in _B64URL for c in text) or len(text) % 4 == 1:
        raise CodeError(field, "not base64url (truncated or garbled code)")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise CodeError(field, "not base64url (truncated or garbled code)") from None
    if _b64e(raw) != text:  # canonical only: changed trailing bits would spell the same bytes another way
        raise CodeError(field, "not canonical base64url (altered code)")
    return raw


def sign_document(key: Ed25519PrivateKey, prefix: str, doc: dict) -> str:
    """``<prefix>.<b64url(json doc)>.<b64url(Ed25519 signature of the first two parts)>``: the form of the
    platform's signed codes that carry claims (bill codes, slip check codes)."""
    signing_input = f"{prefix}.{_b64e(json.dumps(doc, separators=(',', ':')).encode())}"
    return f"{signing_input}.{_b64e(key.sign(signing_input.encode('ascii')))}"


def open_document(payload: object, prefix: str, public_key: Ed25519PublicKey, *, field: str, what: str,
                  max_length: int) -> dict:
    """The claims of a code made by ``sign_document``; ``CodeError`` naming ``field`` otherwise (``kind``
    "signature" for a well-formed code the key did not sign)."""
    if not isinstance(payload, str) or not payload.strip():
        raise CodeError(field, f"empty {what}")
    payload = payload.strip()
    if len(payload) > max_length:
        raise CodeError(field, f"too long to be a {what}")
    parts = payload.split(".")
    if parts[0] != prefix or len(parts) != 3:
        raise CodeError(field, f"not a medpay {what} (expected {prefix}.<claims>.<signature>)")
    signature = _b64d(parts[2], field)  # garbled or cut short: a malformed code, not a forged one
    try:
        public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
    except (InvalidSignature, ValueError):
        raise CodeError(field, "signature does not verify: not issued by this platform", "signature") from None
    try:
        doc = json.loads(_b64d(parts[1], field))
    except ValueError:
        raise CodeError(field, "claims are malformed") from None
    if not isinstance(doc, dict):
        raise CodeError(field, "claims are malformed")
    return doc


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _unix(now: datetime | float | int) -> float:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("naive datetime: use an aware UTC datetime")
        return now.timestamp()
    return float(now)


def new_nonce() -> str:
    return _b64e(secrets.token_bytes(NONCE_BYTES))


def make_payload(signing_key: Ed25519PrivateKey, ecert_id: str, business_type: str, issued_at: datetime | float,
                 ttl_s: int = MAX_TTL_S, nonce: str | None = None) -> str:
    """A signed payload for ``ecert_id`` and ``business_type``, valid ``ttl_s`` (≤ 60) seconds from ``issued_at``."""
    if business_type not in BUSINESS_TYPES:
        raise ValueError(f"unknown business type {business_type!r}")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be 1..{MAX_TTL_S}")
    if not ecert_id or not ecert_id.isascii() or "." in ecert_id:
        raise ValueError("ecert_id must be non-empty ASCII without dots")
    iat = int(_unix(issued_at))
    claims = {"v": VERSION, "ec": ecert_id, "bt": business_type, "iat": iat, "exp": iat + ttl_s,
              "n": nonce or new_nonce()}
    body = _b64e(json.dumps(claims, separators=(",", ":")).encode("ascii"))
    signing_input = f"{PREFIX}.{body}"
    return f"{signing_input}.{_b64e(signing_key.sign(signing_input.encode('ascii')))}"


def parse_and_verify(payload: str, public_key: Ed25519PublicKey, now: datetime | float) -> Claims:
    """The claims of a genuine, unexpired payload; ``CodeError`` otherwise. Cheapest checks first; the
    signature is checked before any claim is believed."""
    if not isinstance(payload, str) or not payload.strip():
        raise CodeError("payload", "empty code")
    payload = payload.strip()
    if len(payload) > MAX_PAYLOAD_LENGTH:
        raise CodeError("payload", f"longer than {MAX_PAYLOAD_LENGTH} characters: not an e-certificate code")
    parts = payload.split(".")
    if not parts[0].startswith("MPEC"):
        raise CodeError("payload", "not a medpay e-certificate code (expected prefix MPEC1)")
    if parts[0] != PREFIX:
        raise CodeError("version", f"unsupported code version {parts[0]!r}; expected {PREFIX}", "version")
    if len(parts) != 3:
        raise CodeError("payload", f"expected 3 dot-separated parts, got {len(parts)} (truncated code?)")
    _, body, sig_text = parts
    raw_claims = _b64d(body, "claims")
    signature = _b64d(sig_text, "signature")
    if len(signature) != 64:
        raise CodeError("signature", f"must be 64 bytes, got {len(signature)} (truncated code?)")
    try:
        public_key.verify(signature, f"{PREFIX}.{body}".encode("ascii"))
    except InvalidSignature:
        raise CodeError("signature", "does not verify: the code was not issued by this platform or was altered",
                        "signature") from None
    # Signed by us from here on; the checks below guard against our own bugs and old formats.
    try:
        doc = json.loads(raw_claims)
    except (UnicodeDecodeError, ValueError):
        raise CodeError("claims", "not JSON") from None
    if not isinstance(doc, dict):
        raise CodeError("claims", "not a JSON object")
    if doc.get("v") != VERSION:
        raise CodeError("version", f"unsupported claims version {doc.get('v')!r}", "version")
    ecert_id, bt, iat, exp, nonce = (doc.get(k) for k in ("ec", "bt", "iat", "exp", "n"))
    if not isinstance(ecert_id, str) or not ecert_id:
        raise CodeError("ec", "missing e-certificate id")
    if not isinstance(bt, str) or bt not in BUSINESS_TYPES:
        raise CodeError("bt", f"unknown business type {bt!r}")
    if not (isinstance(iat, int) and isinstance(exp, int)) or isinstance(iat, bool) or isinstance(exp, bool):
        raise CodeError("iat", "iat and exp must be integers")
    if not 0 < exp - iat <= MAX_TTL_S:
        raise CodeError("exp", f"validity must be 1..{MAX_TTL_S} s, got {exp - iat} s")
    if not isinstance(nonce, str) or not 8 <= len(nonce) <= 32:
        raise CodeError("n", "missing or malformed nonce")
    t = _unix(now)
    if iat > t + FUTURE_SKEW_S:
        raise CodeError("iat", f"issued {iat - t:.0f} s in the future; check the server clocks", "not_yet_valid")
    if t >= exp:
        raise CodeError("exp", f"expired {t - exp:.0f} s ago; ask the patient to refresh the code", "expired")
    return Claims(VERSION, ecert_id, bt, iat, exp, nonce)
