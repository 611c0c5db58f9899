"""What a credential (就诊凭证) lets an institution do: pure rules, no I/O.

Three kinds of credential reach the institution interface as ``mdtrt_cert_type`` / ``mdtrt_cert_no``:

- **01 e-certificate token** (ecToken): minted when a terminal scans the patient's dynamic code (or the patient's
  app pays a bill code). It is bound to one person and one institution, and to the first visit it opens (or
  settles). It works for that visit's 1101/2201/2204/2206/2207 (2401/2301/2303/2304) until the visit is settled or
  cancelled; then it is spent, and a later discharge or a new visit needs a fresh code. An unbound token lives
  ``TOKEN_TTL`` from the scan; once bound it lives with its visit.
- **02 ID-card number** and **03 social-security card number**: not secrets — anyone who has seen the card knows
  them. What they may do without a card read is the institution's **assurance** setting (``Assurance``). A card
  read is proven only for 03, by the card's identification code (``card_sn``, 卡识别码) matching the one on record;
  an ID-card number never proves a read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from medpay.domain.interface_settings import Setting
from medpay.money import format_yuan

E_CERTIFICATE, ID_CARD, SOCIAL_SECURITY_CARD = "01", "02", "03"
CERT_TYPES = {E_CERTIFICATE: "医保电子凭证", ID_CARD: "居民身份证", SOCIAL_SECURITY_CARD: "社会保障卡"}
TOKEN_TTL = timedelta(minutes=30)  # from the scan until the token opens or settles a visit
# 用码业务类型 (businessType) of a code shown at a retail pharmacy's POS: 02121 药店购药 (reference/nhsa-interface.md
# §4, the e-certificate decoding spec's appendix A.1)
PHARMACY_PURCHASE = "02121"


class Assurance(Setting):
    """What a 02/03 number without a card read may do at an institution (``institutions.id_assurance``)."""

    COUNTER = "counter"  # identify, open visits and settle: the window checks the card or ID by sight
    LOOKUP = "lookup"  # identify (1101) only; a visit needs an e-certificate, a face check or a card read
    CARD = "card"  # nothing: every use needs a card read (03 with card_sn) or an e-certificate


class Use(str, Enum):
    IDENTIFY = "identify"  # 1101: who is this, what are they insured for
    VISIT = "visit"  # open a visit (2201/2401) or settle it (2207/2304)


@dataclass(frozen=True)
class Refusal:
    """Why a credential may not be used: the field at fault and a message for the caller."""

    field: str
    message: str
    kind: str = "forbidden"  # "forbidden" | "expired" | "unknown"


def number_refusal(assurance: Assurance, cert_type: str, card_read: bool, use: Use) -> Refusal | None:
    """Whether a 02/03 number (read from a card or not) may be used for ``use`` under ``assurance``."""
    if card_read or assurance is Assurance.COUNTER:
        return None
    if assurance is Assurance.LOOKUP and use is Use.IDENTIFY:
        return None
    needs = ("a social-security card read (card_sn) or the patient's e-certificate code"
             if cert_type == SOCIAL_SECURITY_CARD else "the patient's e-certificate code or social-security card read")
    what = "identify a person" if use is Use.IDENTIFY else "open or settle a visit"
    return Refusal("mdtrt_cert_type", f"this institution may not {what} by a {CERT_TYPES[cert_type]} number alone "
                                      f"(assurance {assurance.value}); use {needs}")


@dataclass(frozen=True)
class TokenState:
    """What is stored of an ecToken."""

    psn_no: str
    fixmedins_code: str | None
    expires_at: datetime
    mdtrt_id: str | None  # the visit it opened or settled, once bound
    spent_at: datetime | None  # when that visit was settled or cancelled


def token_refusal(token: TokenState, *, now: datetime, fixmedins_code: str, psn_no: str | None = None,
                  mdtrt_id: str | None = None, opening: bool = False) -> Refusal | None:
    """Whether ``token`` may be used now at ``fixmedins_code`` — for ``psn_no`` when the request names a person,
    for the visit ``mdtrt_id`` when it names one, or to open a new visit (``opening``)."""
    field = "mdtrt_cert_no"
    if token.fixmedins_code not in (None, fixmedins_code):
        return Refusal(field, "e-certificate token was issued for another institution")
    if psn_no is not None and token.psn_no != psn_no:
        return Refusal(field, "e-certificate token is not this person's")
    if token.spent_at is not None:
        return Refusal(field, "e-certificate token was used up: its visit was settled or cancelled; a new visit or "
                              "settlement needs the patient's code again", "expired")
    if token.mdtrt_id is None:
        if token.expires_at <= now:
            return Refusal(field, "e-certificate token has expired; ask the patient to show the code again", "expired")
        return None
    if opening:
        return Refusal(field, f"e-certificate token already opened visit {token.mdtrt_id}; a new visit needs the "
                              "patient's code again")
    if mdtrt_id is not None and token.mdtrt_id != mdtrt_id:
        return Refusal(field, f"e-certificate token belongs to visit {token.mdtrt_id}, not {mdtrt_id}")
    return None


def business_type_refusal(business_type: str, wanted: str) -> Refusal | None:
    """Whether a token minted for ``business_type`` (the code's 用码业务类型) may pay for ``wanted``: a code shown
    for one business is not good for another (one shown to register may not buy at a pharmacy)."""
    if business_type == wanted:
        return None
    return Refusal("mdtrt_cert_no", f"e-certificate token was issued for business type {business_type or '(none)'}, "
                                    f"not {wanted}; ask the patient to show the code for this purchase")


def bill_refusal(limit_fen: int | None, bill_fen: int, field: str = "mdtrt_cert_no") -> Refusal | None:
    """Whether a token may settle a bill of ``bill_fen``: a token earned by a face match only close enough for the
    region's normal threshold carries the region's strict-threshold amount as its limit (``limit_fen``); a bill
    above it needs a closer match (the face verified again) or another credential. None: no limit."""
    if limit_fen is None or bill_fen <= limit_fen:
        return None
    return Refusal(field, f"金额 {format_yuan(bill_fen)} 元超出本次刷脸认证的限额 {format_yuan(limit_fen)} 元，请重新刷脸或改用"
                          f"医保码、身份证 / this token came from a face match good for bills up to "
                          f"{format_yuan(limit_fen)} yuan, the bill is {format_yuan(bill_fen)}: verify the face again "
                          "for this amount, or use the QR code or ID card")
