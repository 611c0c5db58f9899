"""Money: integer fen (分) inside, yuan with two decimals only at the edges.

Amounts arrive from the institution interface as JSON numbers (``4.52``), strings (``"4.52"``) or
integers. They are parsed exactly through ``Decimal`` — never through float arithmetic — and refused
when they carry more than two decimals. Multiplying an amount by a policy ratio goes through a named
rounding rule, so a region's choice is data, not code.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation
from enum import Enum
from typing import Union

Fen = int
YuanInput = Union[str, int, float, Decimal]

_CENT = Decimal("0.01")


class MoneyError(ValueError):
    """A value that is not a valid amount. ``field`` names where it came from."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Rounding(str, Enum):
    """Named rounding rules a policy may choose (to the fen)."""

    HALF_UP = "half_up"  # 四舍五入: the usual rule in published settlement examples
    HALF_EVEN = "half_even"  # banker's rounding
    DOWN = "down"  # truncate toward zero (舍去)
    UP = "up"  # away from zero (进位)

    @property
    def decimal_mode(self) -> str:
        return {
            Rounding.HALF_UP: ROUND_HALF_UP,
            Rounding.HALF_EVEN: ROUND_HALF_EVEN,
            Rounding.DOWN: ROUND_DOWN,
            Rounding.UP: ROUND_UP,
        }[self]


def to_decimal(value: YuanInput, field: str = "amount") -> Decimal:
    """Exact decimal of a JSON number or string; floats go through their shortest repr."""
    if isinstance(value, bool):
        raise MoneyError(field, "must be a number, not a boolean")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        # repr() gives the shortest string that round-trips, e.g. 4.52 -> "4.52", so 0.1+0.2 style
        # binary noise never leaks into fen.
        d = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise MoneyError(field, "is empty")
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise MoneyError(field, f"is not a number: {value!r}") from None
    else:
        raise MoneyError(field, f"must be a number or numeric string, got {type(value).__name__}")
    if not d.is_finite():
        raise MoneyError(field, "must be finite")
    return d


def parse_yuan(value: YuanInput, field: str = "amount", *, allow_negative: bool = False) -> Fen:
    """Yuan (at most two decimals) -> integer fen. Raises MoneyError naming ``field``."""
    d = to_decimal(value, field)
    try:
        cents = d.quantize(_CENT, rounding=ROUND_DOWN)
    except InvalidOperation:  # more digits than Decimal's working precision
        raise MoneyError(field, f"is too large: {value!r}") from None
    if d != cents:
        raise MoneyError(field, f"has more than two decimals: {value!r}")
    if d < 0 and not allow_negative:
        raise MoneyError(field, f"must not be negative: {value!r}")
    return int(d * 100)


def format_yuan(fen: Fen) -> str:
    """Integer fen -> '1234.56' (two decimals, sign kept)."""
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise TypeError(f"fen must be int, got {type(fen).__name__}")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def yuan_number(fen: Fen) -> float | int:
    """Fen -> a JSON number in yuan, as the interface sends them (4.52, 0, 18785.39).

    The float is built from the exact two-decimal string, so it serialises back to that string.
    """
    return float(format_yuan(fen)) if fen % 100 else fen // 100


def mul_ratio(fen: Fen, ratio: Decimal, rounding: Rounding = Rounding.HALF_UP) -> Fen:
    """fen × ratio, rounded to the fen by the named rule."""
    return int((Decimal(fen) * ratio).quantize(Decimal(1), rounding=rounding.decimal_mode))


def div_ratio(fen: Fen, ratio: Decimal, rounding: Rounding = Rounding.DOWN) -> Fen:
    """fen ÷ ratio (the base whose share at ``ratio`` is ``fen``), rounded by the named rule."""
    if ratio <= 0:
        raise ValueError("ratio must be positive")
    return int((Decimal(fen) / ratio).quantize(Decimal(1), rounding=rounding.decimal_mode))


def round_fen(value: Decimal, rounding: Rounding = Rounding.HALF_UP) -> Fen:
    """An exact fractional fen amount -> integer fen by the named rule."""
    return int(value.quantize(Decimal(1), rounding=rounding.decimal_mode))


def parse_ratio(value: YuanInput, field: str = "ratio") -> Decimal:
    """A ratio in [0, 1] from a string or number (e.g. "0.85", 0.05)."""
    d = to_decimal(value, field)
    if d < 0 or d > 1:
        raise MoneyError(field, f"must be between 0 and 1, got {value!r}")
    return d
