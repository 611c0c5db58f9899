"""The check code printed on a settlement slip (结算单): anyone who scans it can ask the platform whether the slip is
genuine and still stands.

``MPSLIP1.<b64url(json {v, s (setl_id), f (institution), t (settled at, unix), a (total), p (fund), c (personal
account), k (cash) — fen})>.<sig>``, signed by the platform's Ed25519 key. It carries no personal data: a slip's
reader learns the institution, the time and the amounts, which the paper shows anyway. Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medpay.domain.ecert_code import CodeError, _b64d, _b64e

PREFIX = "MPSLIP1"
MAX_LENGTH = 600


@dataclass(frozen=True)
class SlipClaims:
    setl_id: str
    fixmedins_code: str
    settled_at: int  # unix seconds
    medfee_sumamt: int
    fund_pay_sumamt: int
    acct_pay: int
    psn_cash_pay: int


def make_slip_payload(key: Ed25519PrivateKey, claims: SlipClaims) -> str:
    doc = {"v": 1, "s": claims.setl_id, "f": claims.fixmedins_code, "t": claims.settled_at,
           "a": claims.medfee_sumamt, "p": claims.fund_pay_sumamt, "c": claims.acct_pay, "k": claims.psn_cash_pay}
    signing_input = f"{PREFIX}.{_b64e(json.dumps(doc, separators=(',', ':')).encode())}"
    return f"{signing_input}.{_b64e(key.sign(signing_input.encode('ascii')))}"


def parse_slip(payload: object, public_key: Ed25519PublicKey) -> SlipClaims:
    """The claims of a genuine check code; ``CodeError`` naming ``code`` otherwise (``reason`` "signature" for a
    well-formed code the platform did not sign)."""
    if not isinstance(payload, str) or not payload.strip():
        raise CodeError("code", "empty check code")
    payload = payload.strip()
    if len(payload) > MAX_LENGTH:
        raise CodeError("code", "too long to be a slip's check code")
    parts = payload.split(".")
    if parts[0] != PREFIX or len(parts) != 3:
        raise CodeError("code", f"not a settlement slip's check code (expected {PREFIX}.<claims>.<signature>)")
    signature = _b64d(parts[2], "code")
    try:
        public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
    except (InvalidSignature, ValueError):
        raise CodeError("code", "signature does not verify: this slip was not issued by the platform",
                        "signature") from None
    try:
        c = json.loads(_b64d(parts[1], "code"))
        return SlipClaims(str(c["s"]), str(c["f"]), int(c["t"]), int(c["a"]), int(c["p"]), int(c["c"]), int(c["k"]))
    except (KeyError, TypeError, ValueError):
        raise CodeError("code", "claims are malformed") from None
