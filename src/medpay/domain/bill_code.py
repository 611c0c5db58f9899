"""The merchant-presented bill code (reverse scan): the HIS shows it, the patient's app scans it and pays.

``MPBILL1.<b64url(json {v, b (bill id), f (institution), m (mdtrt_id), a (amount due, fen), iat, exp})>.<sig>``,
signed by the platform's Ed25519 key, so an app can trust what it shows before paying and the platform
can trust what comes back. Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medpay.domain.ecert_code import CodeError, _b64d, _b64e, _unix

PREFIX = "MPBILL1"
MAX_TTL_S = 600  # a bill code stays on the window's screen a few minutes
MAX_LENGTH = 512


@dataclass(frozen=True)
class BillClaims:
    bill_id: str
    fixmedins_code: str
    mdtrt_id: str
    amount_fen: int
    issued_at: int
    expires_at: int


def make_bill_payload(key: Ed25519PrivateKey, bill_id: str, fixmedins_code: str, mdtrt_id: str, amount_fen: int,
                      issued_at: datetime | float, ttl_s: int = MAX_TTL_S) -> str:
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be 1..{MAX_TTL_S}")
    iat = int(_unix(issued_at))
    claims = {"v": 1, "b": bill_id, "f": fixmedins_code, "m": mdtrt_id, "a": amount_fen, "iat": iat, "exp": iat + ttl_s}
    signing_input = f"{PREFIX}.{_b64e(json.dumps(claims, separators=(',', ':')).encode())}"
    return f"{signing_input}.{_b64e(key.sign(signing_input.encode('ascii')))}"


def parse_bill(payload: str, public_key: Ed25519PublicKey, now: datetime | float) -> BillClaims:
    if not isinstance(payload, str) or not payload.strip():
        raise CodeError("bill", "empty bill code")
    payload = payload.strip()
    if len(payload) > MAX_LENGTH:
        raise CodeError("bill", "too long to be a bill code")
    parts = payload.split(".")
    if parts[0] != PREFIX or len(parts) != 3:
        raise CodeError("bill", f"not a medpay bill code (expected {PREFIX}.<claims>.<signature>)")
    signature = _b64d(parts[2], "bill")  # garbled or cut short: a malformed code, not a forged one
    try:
        public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
    except (InvalidSignature, ValueError):
        raise CodeError("bill", "signature does not verify: not issued by this platform", "signature") from None
    try:
        c = json.loads(_b64d(parts[1], "bill"))
        claims = BillClaims(str(c["b"]), str(c["f"]), str(c["m"]), int(c["a"]), int(c["iat"]), int(c["exp"]))
    except (KeyError, TypeError, ValueError):
        raise CodeError("bill", "claims are malformed") from None
    if _unix(now) >= claims.expires_at:
        raise CodeError("bill", "the bill code has expired; ask the window for a new one", "expired")
    return claims
