"""The check code printed on a settlement slip (结算单): anyone who scans it can ask the platform whether the slip is
genuine and still stands.

``MPSLIP1.<b64url(json {v, s (setl_id), f (institution), t (settled at, unix), a (total), p (fund), c (personal
account), k (cash) — fen})>.<sig>``, signed by the platform's Ed25519 key. It carries no personal data: a slip's
reader learns the institution, the time and the amounts, which the paper shows anyway. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medpay.domain.ecert_code import CodeError, open_document, sign_document

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
    return sign_document(key, PREFIX, {"v": 1, "s": claims.setl_id, "f": claims.fixmedins_code,
                                       "t": claims.settled_at, "a": claims.medfee_sumamt, "p": claims.fund_pay_sumamt,
                                       "c": claims.acct_pay, "k": claims.psn_cash_pay})


def parse_slip(payload: object, public_key: Ed25519PublicKey) -> SlipClaims:
    """The claims of a genuine check code; ``CodeError`` naming ``code`` otherwise (``kind`` "signature" for a
    well-formed code the platform did not sign)."""
    c = open_document(payload, PREFIX, public_key, field="code", what="slip check code", max_length=MAX_LENGTH)
    try:
        return SlipClaims(str(c["s"]), str(c["f"]), int(c["t"]), int(c["a"]), int(c["p"]), int(c["c"]), int(c["k"]))
    except (KeyError, TypeError, ValueError):
        raise CodeError("code", "claims are malformed") from None
