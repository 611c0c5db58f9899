"""The merchant-presented bill code (reverse scan): the HIS shows it, the patient's app scans it and pays.

``MPBILL1.<b64url(json {v, b (bill id), f (institution), m (mdtrt_id), a (amount due, fen), iat, exp})>.<sig>``,
signed by the platform's Ed25519 key, so an app can trust what it shows before paying and the platform
can trust what comes back. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medpay.domain.ecert_code import CodeError, _unix, open_document, sign_document

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
    return sign_document(key, PREFIX, claims)


def parse_bill(payload: str, public_key: Ed25519PublicKey, now: datetime | float) -> BillClaims:
    c = open_document(payload, PREFIX, public_key, field="bill", what="bill code", max_length=MAX_LENGTH)
    try:
        claims = BillClaims(str(c["b"]), str(c["f"]), str(c["m"]), int(c["a"]), int(c["iat"]), int(c["exp"]))
    except (KeyError, TypeError, ValueError):
        raise CodeError("bill", "claims are malformed") from None
    if _unix(now) >= claims.expires_at:
        raise CodeError("bill", "the bill code has expired; ask the window for a new one", "expired")
    return claims
