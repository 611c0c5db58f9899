"""Fen inside, yuan at the edge; and every field in the type the specification gives it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from medpay.domain.adjudication import AMOUNT_FIELDS
from medpay.money import yuan_number
from medpay.nhsa_models import field_kinds

# every key whose value is an amount in fen, wherever it appears in an output
MONEY_KEYS = frozenset(AMOUNT_FIELDS) | {
    "balc", "fund_payamt", "crt_payb_lmt_amt", "deposit_applied", "deposit_refund", "deposit_total", "amount",
    "det_item_fee_sumamt", "overlmt_amt", "pric_uplmt_amt", "reg_fee", "fee_sumamt", "own_share", "refund_amt", "deposit_balc",
}


def to_yuan(obj: Any) -> Any:
    """Recursively render fen amounts (by key) as yuan JSON numbers."""
    if isinstance(obj, dict):
        return {k: (yuan_number(v) if k in MONEY_KEYS and isinstance(v, int) and not isinstance(v, bool) else to_yuan(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_yuan(v) for v in obj]
    return obj


_KINDS = field_kinds()
NUMBER_FIELDS = frozenset(k for k, kind in _KINDS.items() if kind == "number")
TEXT_FIELDS = frozenset(k for k, kind in _KINDS.items() if kind == "text")


def conform(obj: Any) -> Any:
    """An institution-interface output with every field ``medpay.nhsa_models`` types in that type, in every
    transaction: a number kept as text (a ratio, a quantity) goes out as a number, a code or id that is a number
    goes out as text. Typed HIS clients refuse anything else. Idempotent; anything else is left as it is."""
    if isinstance(obj, dict):
        return {k: _conformed(k, v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [conform(v) for v in obj]
    return obj


def _conformed(key: str, value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return conform(value)
    if key in NUMBER_FIELDS and isinstance(value, str):
        return _number(value)
    if key in TEXT_FIELDS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _number(text: str) -> Any:
    try:
        d = Decimal(text)
    except InvalidOperation:
        return text  # not a number at all: left for the reader to refuse, never guessed
    return int(d) if d == d.to_integral_value() and abs(d) < 2**53 else float(d)
