"""The payment-time figure (缴费时长): from the bill being available to its being paid, per visit, by door.

Definition: for each settlement, *available* is the last upload (2204) among the fee lines it settled — the moment
the whole bill could first be paid — and *paid* is the settlement's time. Doors: ``window`` (the HIS settles at its
counter, 2207), ``mobile`` (the patient's app), ``scan`` (a terminal's one-scan or the app scanning a bill code).
A cancelled settlement is not a payment and is left out. Quantiles are nearest-rank, in whole seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

DOORS = ("window", "scan", "mobile")


@dataclass(frozen=True)
class PaymentTime:
    setl_id: str
    fixmedins_code: str
    door: str
    available_at: datetime
    paid_at: datetime

    @property
    def seconds(self) -> int:
        return max(0, round((self.paid_at - self.available_at).total_seconds()))


def quantile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank quantile of ascending ``sorted_values`` (non-empty), 0 < q ≤ 1."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def summarize(times: Iterable[PaymentTime]) -> dict[str, dict[str, int]]:
    """Per door: how many payments, and the median and 90th percentile of their payment time (seconds)."""
    by_door: dict[str, list[int]] = {}
    for t in times:
        by_door.setdefault(t.door, []).append(t.seconds)
    out = {}
    for door in sorted(by_door, key=lambda d: (DOORS.index(d) if d in DOORS else len(DOORS), d)):
        values = sorted(by_door[door])
        out[door] = {"count": len(values), "p50_s": quantile(values, 0.5), "p90_s": quantile(values, 0.9)}
    return out
