"""Ed25519-signed requests: one scheme, one checker, for every door whose callers hold a key — terminals and the
patient's device. (The institution gateway's ``x-tif-*`` scheme is the interface's own: ``gateway_auth``.)

A signed request carries three headers, plus one naming the key's holder (``X-Terminal-Id``, ``X-Ecert-Id``)::

    X-Timestamp: unix seconds      X-Nonce: 8–64 printable characters, never reused by this key
    X-Signature: Ed25519 of METHOD\\npath\\ntimestamp\\nnonce\\nsha256hex(body), as 128 hex digits or base64

``path`` is the request target as sent: the path, plus ``?query`` when there is one. Signatures travel in
headers, never in a URL (a URL lands in logs, proxies and browser history). The caller records the nonce with
the key that verified it, in the request's own transaction: a replay conflicts on the primary key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medpay.services.errors import ServiceError
from medpay.services.request_headers import collect, printable

HEADER_TIMESTAMP = "X-Timestamp"
HEADER_NONCE = "X-Nonce"
HEADER_SIGNATURE = "X-Signature"
SIGNED_HEADERS = (HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
NONCE_LENGTHS = (8, 64)


def signing_input(method: str, path: str, timestamp: str | int, nonce: str, body: bytes) -> bytes:
    """``METHOD\\npath\\ntimestamp\\nnonce\\nsha256hex(body)``."""
    return "\n".join([method.upper(), path, str(timestamp), nonce, hashlib.sha256(body).hexdigest()]).encode("utf-8")


def sign(key: Ed25519PrivateKey, method: str, path: str, body: bytes = b"", *, timestamp: int | None = None,
         nonce: str | None = None) -> dict[str, str]:
    """The three signature headers of a request (what a terminal or the app sends)."""
    ts = str(int(timestamp if timestamp is not None else time.time()))
    nonce = nonce or secrets.token_hex(16)
    return {HEADER_TIMESTAMP: ts, HEADER_NONCE: nonce,
            HEADER_SIGNATURE: key.sign(signing_input(method, path, ts, nonce, body)).hex()}


def signature_bytes(text: Any, field: str, error: type[ServiceError]) -> bytes:
    """64 signature bytes from 128 hex digits or base64 (standard or url-safe, padded or not) — canonical only:
    a text that decodes but is not what the bytes encode to (changed trailing bits) is refused, so one signature
    has one spelling per alphabet."""
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
        raw = canonical_b64decode(text)
    if raw is None or len(raw) != 64:
        raise error(field, "must be a 64-byte Ed25519 signature, as 128 hex digits or base64")
    return raw


def canonical_b64decode(text: str) -> bytes | None:
    """The bytes of canonical base64 or base64url, padded or not; None for anything else (mixed alphabets, stray
    or short padding, nonzero trailing bits — the spellings that would let one value be written several ways)."""
    if any(c in text for c in "-_") and any(c in text for c in "+/"):
        return None
    std = text.replace("-", "+").replace("_", "/")
    body = std.rstrip("=")
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    encoded = base64.b64encode(raw).decode("ascii")
    if encoded.rstrip("=") != body or (body != std and encoded != std):
        return None
    return raw


def verifies(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def unix_timestamp(value: Any, field: str, now: datetime, skew_s: int, error: type[ServiceError]) -> int:
    """Unix seconds within ±``skew_s`` of ``now`` (digits, or an int; not milliseconds)."""
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
    drift = ts - now.timestamp()
    if abs(drift) > skew_s:
        raise error(field, f"stale: {drift:+.0f} s from server time; allowed ±{skew_s} s")
    return ts


@dataclass(frozen=True)
class SignedRequest:
    """A request's signature headers, well-formed and fresh; whose key verifies them is the caller's question."""

    nonce: str
    signature: bytes
    message: bytes
    holder: str  # the holder header's value ("" when the scheme has none)

    def verifies(self, public_key: Ed25519PublicKey) -> bool:
        return verifies(public_key, self.signature, self.message)


def read_signed(headers: Mapping[str, str], method: str, path: str, body: bytes, *, now: datetime, skew_s: int,
                error: type[ServiceError], holder_header: str | None = None) -> SignedRequest:
    """The signature headers of a request, checked for form and freshness (cheapest first); ``error`` names the
    header at fault. ``holder_header`` (e.g. ``X-Terminal-Id``) must be present when given."""
    names = SIGNED_HEADERS + ((holder_header,) if holder_header else ())
    h = collect(headers, names, error)
    holder = ""
    if holder_header:
        holder = h.get(holder_header.lower(), "")
        if not holder:
            raise error(holder_header, "missing header")
        if len(holder) > 20 or not printable(holder):
            raise error(holder_header, "unknown")
    ts = unix_timestamp(h.get(HEADER_TIMESTAMP.lower(), ""), HEADER_TIMESTAMP, now, skew_s, error)
    nonce = h.get(HEADER_NONCE.lower(), "")
    if not nonce:
        raise error(HEADER_NONCE, "missing header")
    if not NONCE_LENGTHS[0] <= len(nonce) <= NONCE_LENGTHS[1] or not printable(nonce):
        raise error(HEADER_NONCE, "must be 8 to 64 printable ASCII characters (a GUID)")
    signature = signature_bytes(h.get(HEADER_SIGNATURE.lower(), ""), HEADER_SIGNATURE, error)
    return SignedRequest(nonce, signature, signing_input(method, path, ts, nonce, body), holder)
