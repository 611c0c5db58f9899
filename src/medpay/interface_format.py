"""Fen inside, yuan at the edge: turn stored outputs into interface messages and back."""

from __future__ import annotations

from typing import Any

from medpay.domain.adjudication import AMOUNT_FIELDS
from medpay.money import yuan_number

# every key whose value is an amount in fen, wherever it appears in an output
MONEY_KEYS = frozenset(AMOUNT_FIELDS) | {
    "balc", "fund_payamt", "crt_payb_lmt_amt", "deposit_applied", "deposit_refund", "deposit_total", "amount",
    "det_item_fee_sumamt", "overlmt_amt", "pric_uplmt_amt",
}


def to_yuan(obj: Any) -> Any:
    """Recursively render fen amounts (by key) as yuan JSON numbers."""
    if isinstance(obj, dict):
        return {k: (yuan_number(v) if k in MONEY_KEYS and isinstance(v, int) and not isinstance(v, bool) else to_yuan(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_yuan(v) for v in obj]
    return obj
