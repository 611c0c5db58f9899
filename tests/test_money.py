"""Money at the edges: yuan in (number or string) -> integer fen, fen -> yuan text, ratios with named rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medpay.money import (
    MoneyError,
    Rounding,
    div_ratio,
    format_yuan,
    mul_ratio,
    parse_ratio,
    parse_yuan,
    round_fen,
    yuan_number,
)

# --------------------------------------------------------------------------------------------------
# parse_yuan


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        ("4.52", 452),
        ("0", 0),
        ("0.1", 10),
        ("0.01", 1),
        ("18785.39", 1878539),
        (" 12.30 ", 1230),  # whitespace around a string is tolerated
        ("4.520", 452),  # trailing zeros beyond the cent are not extra precision
        ("1e2", 10000),
        (Decimal("99.99"), 9999),
    ],
)
def test_parse_yuan_accepts_numeric_strings_and_decimals(value, fen):
    assert parse_yuan(value) == fen


@pytest.mark.parametrize(("value", "fen"), [(0, 0), (7, 700), (18785, 1878500), (10**12, 10**14)])
def test_parse_yuan_accepts_integers_as_whole_yuan(value, fen):
    assert parse_yuan(value) == fen


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        (4.52, 452),  # 4.52 is 4.5199999999999995737… in binary
        (18785.39, 1878539),  # 18785.389999999999417923390865325927734375 in binary
        (0.29, 29),  # int(0.29 * 100) == 28 with float arithmetic
        (1.15, 115),  # 1.15 * 100 == 114.99999999999999
        (0.07, 7),
        (1234567.89, 123456789),
        (0.0, 0),
        (100.0, 10000),
    ],
)
def test_parse_yuan_floats_carry_no_binary_noise_into_fen(value, fen):
    assert parse_yuan(value) == fen


def test_parse_yuan_refuses_a_float_sum_with_binary_noise_rather_than_rounding_it():
    # 0.1 + 0.2 == 0.30000000000000004: that is not a two-decimal amount and must not become 30 fen silently
    with pytest.raises(MoneyError) as e:
        parse_yuan(0.1 + 0.2, "setl.medfee_sumamt")
    assert e.value.field == "setl.medfee_sumamt"
    assert "more than two decimals" in e.value.problem


@pytest.mark.parametrize("value", ["4.521", "0.001", 4.521, Decimal("1.005"), "1e-3"])
def test_parse_yuan_refuses_more_than_two_decimals_naming_the_field(value):
    with pytest.raises(MoneyError) as e:
        parse_yuan(value, "feedetail[3].det_item_fee_sumamt")
    assert e.value.field == "feedetail[3].det_item_fee_sumamt"
    assert "more than two decimals" in e.value.problem
    assert str(e.value).startswith("feedetail[3].det_item_fee_sumamt: ")


@pytest.mark.parametrize("value", ["-0.01", -5, -4.52, Decimal("-1")])
def test_parse_yuan_refuses_negatives_by_default(value):
    with pytest.raises(MoneyError) as e:
        parse_yuan(value, "acct_pay")
    assert e.value.field == "acct_pay"
    assert "negative" in e.value.problem


@pytest.mark.parametrize(("value", "fen"), [("-0.01", -1), (-5, -500), (-4.52, -452), ("-18785.39", -1878539)])
def test_parse_yuan_accepts_negatives_when_allowed(value, fen):
    assert parse_yuan(value, allow_negative=True) == fen


def test_parse_yuan_negative_zero_is_zero():
    assert parse_yuan("-0.00") == 0


@pytest.mark.parametrize("value", [True, False])
def test_parse_yuan_refuses_booleans(value):
    with pytest.raises(MoneyError) as e:
        parse_yuan(value, "fund_pay_sumamt")
    assert e.value.field == "fund_pay_sumamt"
    assert "boolean" in e.value.problem


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "abc", "4,52", "4.52元", "0x10", "NaN", "Infinity", "-inf",
     float("nan"), float("inf"), [4.52], {"amount": 1}, b"4.52"],
)
def test_parse_yuan_refuses_garbage_with_a_money_error_naming_the_field(value):
    with pytest.raises(MoneyError) as e:
        parse_yuan(value, "psn_cash_pay")
    assert e.value.field == "psn_cash_pay"
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("value", ["1e30", "1E+50", 1e300, Decimal("9" * 40)])
def test_parse_yuan_refuses_absurdly_large_amounts_with_a_money_error(value):
    # Beyond Decimal's working precision the cent check itself fails; that must still be a MoneyError
    # (a ValueError naming the field), not a bare decimal.InvalidOperation.
    with pytest.raises(MoneyError) as e:
        parse_yuan(value, "medfee_sumamt")
    assert e.value.field == "medfee_sumamt"


# --------------------------------------------------------------------------------------------------
# format_yuan / yuan_number


@pytest.mark.parametrize(
    ("fen", "text"),
    [(0, "0.00"), (1, "0.01"), (10, "0.10"), (452, "4.52"), (1878539, "18785.39"), (100, "1.00"),
     (-1, "-0.01"), (-452, "-4.52"), (-100000, "-1000.00")],
)
def test_format_yuan_gives_two_decimals_and_keeps_the_sign(fen, text):
    assert format_yuan(fen) == text


@pytest.mark.parametrize("value", [True, 4.52, Decimal("452"), "452", None])
def test_format_yuan_refuses_anything_but_int_fen(value):
    with pytest.raises(TypeError):
        format_yuan(value)


@pytest.mark.parametrize(("fen", "number"), [(452, 4.52), (0, 0), (1878539, 18785.39), (500, 5), (-452, -4.52)])
def test_yuan_number_is_the_json_number_the_interface_sends(fen, number):
    out = yuan_number(fen)
    assert out == number
    assert type(out) is type(number)


# --------------------------------------------------------------------------------------------------
# mul_ratio / div_ratio / round_fen / parse_ratio


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [(Rounding.HALF_UP, 503), (Rounding.HALF_EVEN, 502), (Rounding.DOWN, 502), (Rounding.UP, 503)],
)
def test_mul_ratio_on_an_exact_half_fen(rounding, expected):
    assert mul_ratio(1005, Decimal("0.5"), rounding) == expected  # 502.5 fen


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [(Rounding.HALF_UP, 504), (Rounding.HALF_EVEN, 504), (Rounding.DOWN, 503), (Rounding.UP, 504)],
)
def test_mul_ratio_on_a_half_fen_with_odd_lower_neighbour(rounding, expected):
    assert mul_ratio(1007, Decimal("0.5"), rounding) == expected  # 503.5 fen: half-even goes up to 504


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [(Rounding.HALF_UP, 1234), (Rounding.HALF_EVEN, 1234), (Rounding.DOWN, 1233), (Rounding.UP, 1234)],
)
def test_mul_ratio_off_the_half(rounding, expected):
    assert mul_ratio(1371, Decimal("0.9"), rounding) == expected  # 1233.9 fen


def test_mul_ratio_default_is_half_up():
    assert mul_ratio(1005, Decimal("0.5")) == 503


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [(Rounding.HALF_UP, -503), (Rounding.HALF_EVEN, -502), (Rounding.DOWN, -502), (Rounding.UP, -503)],
)
def test_mul_ratio_on_negative_amounts_rounds_symmetrically(rounding, expected):
    assert mul_ratio(-1005, Decimal("0.5"), rounding) == expected


def test_mul_ratio_exact_products_are_unchanged_by_every_rule():
    for rounding in Rounding:
        assert mul_ratio(100000, Decimal("0.85"), rounding) == 85000


def test_div_ratio_and_round_fen():
    assert div_ratio(100, Decimal("0.9")) == 111  # 111.11… down
    assert div_ratio(100, Decimal("0.9"), Rounding.UP) == 112
    with pytest.raises(ValueError):
        div_ratio(100, Decimal(0))
    assert round_fen(Decimal("2.5")) == 3
    assert round_fen(Decimal("2.5"), Rounding.HALF_EVEN) == 2


def test_rounding_names_are_the_policy_file_values():
    assert {r.value for r in Rounding} == {"half_up", "half_even", "down", "up"}
    assert Rounding("half_up") is Rounding.HALF_UP


@pytest.mark.parametrize(
    ("value", "ratio"), [("0.85", Decimal("0.85")), (0.05, Decimal("0.05")), (1, Decimal(1)), ("0", Decimal(0))])
def test_parse_ratio_accepts_zero_to_one(value, ratio):
    assert parse_ratio(value) == ratio


@pytest.mark.parametrize("value", ["1.01", -0.1, "x", True])
def test_parse_ratio_refuses_out_of_range_and_garbage(value):
    with pytest.raises(MoneyError) as e:
        parse_ratio(value, "tiers[0].ratio")
    assert e.value.field == "tiers[0].ratio"


# --------------------------------------------------------------------------------------------------
# properties


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_parse_of_format_round_trips(fen):
    assert parse_yuan(format_yuan(fen), allow_negative=True) == fen


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10**13))
def test_parse_of_the_json_number_round_trips(fen):
    # the float the interface carries (e.g. 18785.39) comes back to the same fen
    assert parse_yuan(yuan_number(fen)) == fen


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(list(Rounding)),
       st.decimals(min_value=0, max_value=1, places=4))
def test_mul_ratio_is_within_one_fen_of_the_exact_product_and_never_exceeds_the_amount(fen, rounding, ratio):
    out = mul_ratio(fen, ratio, rounding)
    exact = Decimal(fen) * ratio
    assert abs(Decimal(out) - exact) < 1
    assert 0 <= out <= fen
    if rounding is Rounding.DOWN:
        assert out <= exact
    if rounding is Rounding.UP:
        assert out >= exact
