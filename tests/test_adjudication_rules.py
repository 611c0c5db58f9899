"""The adjudication engine, rule by rule, on hand-computed bills. Every amount is exact fen.

Small purpose-built policies (inline TOML) isolate one knob each; the demo policy checks the knobs
working together. Every settlement is also checked against the four amount identities.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from medpay.domain.adjudication import (
    ACCOUNT_FUND_PAY_TYPE,
    Adjudication,
    AdjudicationError,
    adjudicate,
    negate_deltas,
)
from medpay.domain.model import AccountSource, Accumulators, CatalogItem, ChrgitmLv, FeeLine, Person
from medpay.domain.policy import Policy
from tests.builders import BING, DEMO, JIA, YI, person, policy_from_toml, settle, visit

# --------------------------------------------------------------------------------------------------
# builders

HEADER = """
[policy]
admdvs = "999902"
name = "rule test"
version = "t"
effective_from = 2026-01-01

[rounding]
mode = "{rounding}"
preselfpay = "{preselfpay}"

[person_classes]
in_service = ["1101"]
retired = ["1201"]
resident = ["1501"]

[med_categories]
outpatient = ["11"]
inpatient = ["21"]

[classification]
yi_selfpay_default = "0.10"
[classification.yi_selfpay_by_category]
"09" = "0.05"
"""


def mk_policy(body: str, *, rounding: str = "half_up", preselfpay: str = "per_line") -> Policy:
    text = HEADER.format(rounding=rounding, preselfpay=preselfpay) + body
    return policy_from_toml(text, "inline-test-policy")


# one basic tier paying 80% of the in-scope amount, nothing else
FLAT_80 = """
[[tiers]]
code = "basic"
kind = "basic"
fund_pay_type = "310100"
ratios = [{ ratio = "0.80" }]
"""

_sn = iter(range(1, 10**9))


def line(lv: ChrgitmLv, amount: int, *, cnt: int | str = 1, limit: int | None = None,
         prop: str | None = None, cat: str = "") -> FeeLine:
    """A fee line of ``amount`` fen; ``limit`` is the unit price limit in fen."""
    n = next(_sn)
    c = Decimal(cnt)
    item = CatalogItem(f"X{n:06d}", f"item {n}", lv, cat, limit, None if prop is None else Decimal(prop))
    return FeeLine(f"{n}", item, c, Decimal(amount) / 100 / c, amount)


def jia(amount: int) -> FeeLine:
    return line(JIA, amount)


EMPLOYEE = person("310", "1101", psn_no="P1", psn_name="职工")
RETIREE = person("310", "1201", psn_no="P2", psn_name="退休")
CIVIL_SERVANT = person("310", "1101", psn_no="P3", psn_name="公务员", cvlserv_flag=True)
RESIDENT = person("390", "1501", psn_no="P4", psn_name="居民")


def resident(*identities: str) -> Person:
    return person("390", "1501", "999901", *identities, psn_no="P5", psn_name="居民")


def pay(r: Adjudication, code: str) -> int:
    return next(t.fund_payamt for t in r.tiers if t.code == code)


def tier(r: Adjudication, code: str):
    return next(t for t in r.tiers if t.code == code)


# --------------------------------------------------------------------------------------------------
# classification: 丙类, price limit, 乙类 first self-pay, rounding scope


def test_bing_line_is_fully_self_paid():
    p = mk_policy(FLAT_80)
    r = settle(p, EMPLOYEE, visit("11"), [line(BING, 12345)])
    a = r.amounts
    assert (a["medfee_sumamt"], a["fulamt_ownpay_amt"], a["inscp_scp_amt"]) == (12345, 12345, 0)
    assert (a["fund_pay_sumamt"], a["psn_part_amt"], a["psn_cash_pay"]) == (0, 12345, 12345)


def test_bing_line_ignores_its_price_limit_and_selfpay_ratio():
    p = mk_policy(FLAT_80)
    r = settle(p, EMPLOYEE, visit("11"), [line(BING, 5000, cnt=2, limit=1000, prop="0.2")])
    assert r.bill.lines[0].fulamt_ownpay_amt == 5000
    assert r.bill.lines[0].overlmt_amt == 0 and r.bill.lines[0].preselfpay_amt == 0
    assert r.bill.lines[0].selfpay_prop == 1


def test_amount_over_the_unit_price_limit_is_overlimit_selfpay():
    p = mk_policy(FLAT_80)
    # 3 units at 12.00 against a 10.00 limit: 6.00 over the limit
    r = settle(p, EMPLOYEE, visit("11"), [line(JIA, 3600, cnt=3, limit=1000)])
    a = r.amounts
    assert (a["overlmt_selfpay"], a["preselfpay_amt"], a["inscp_scp_amt"]) == (600, 0, 3000)
    assert a["fund_pay_sumamt"] == 2400 and a["psn_part_amt"] == 1200


def test_amount_within_the_price_limit_has_no_overlimit():
    p = mk_policy(FLAT_80)
    r = settle(p, EMPLOYEE, visit("11"), [line(JIA, 2900, cnt=3, limit=1000)])
    assert r.amounts["overlmt_selfpay"] == 0 and r.amounts["inscp_scp_amt"] == 2900


def test_price_limit_with_a_fractional_count():
    p = mk_policy(FLAT_80)
    # 0.5 unit billed 7.00 against a 10.00/unit limit: allowed 5.00
    r = settle(p, EMPLOYEE, visit("11"), [line(JIA, 700, cnt="0.5", limit=1000)])
    assert r.amounts["overlmt_selfpay"] == 200 and r.amounts["inscp_scp_amt"] == 500


def test_yi_selfpay_ratio_of_the_item_wins_over_category_and_default():
    p = mk_policy(FLAT_80)
    r = settle(p, EMPLOYEE, visit("11"), [line(YI, 10000, prop="0.20", cat="09")])
    assert r.bill.lines[0].selfpay_prop == Decimal("0.20")
    assert r.amounts["preselfpay_amt"] == 2000 and r.amounts["inscp_scp_amt"] == 8000
    assert r.amounts["fund_pay_sumamt"] == 6400


def test_yi_selfpay_ratio_by_category():
    p = mk_policy(FLAT_80)
    r = settle(p, EMPLOYEE, visit("11"), [line(YI, 10000, cat="09")])
    assert r.bill.lines[0].selfpay_prop == Decimal("0.05")
    assert r.amounts["preselfpay_amt"] == 500 and r.amounts["inscp_scp_amt"] == 9500


def test_yi_selfpay_default_ratio_for_an_unlisted_category():
    p = mk_policy(FLAT_80)
    r = settle(p, EMPLOYEE, visit("11"), [line(YI, 10000, cat="01")])
    assert r.bill.lines[0].selfpay_prop == Decimal("0.10")
    assert r.amounts["preselfpay_amt"] == 1000 and r.amounts["inscp_scp_amt"] == 9000


def test_yi_item_with_an_explicit_zero_ratio_has_no_first_selfpay():
    p = mk_policy(FLAT_80)
    r = settle(p, EMPLOYEE, visit("11"), [line(YI, 10000, prop="0", cat="09")])
    assert r.amounts["preselfpay_amt"] == 0


def test_yi_first_selfpay_is_taken_after_the_overlimit_part():
    p = mk_policy(FLAT_80)
    # 36.00 for 3 units limited to 10.00: 6.00 over the limit, then 10% of 30.00
    r = settle(p, EMPLOYEE, visit("11"), [line(YI, 3600, cnt=3, limit=1000)])
    a = r.amounts
    assert (a["overlmt_selfpay"], a["preselfpay_amt"], a["inscp_scp_amt"]) == (600, 300, 2700)
    assert a["fund_pay_sumamt"] == 2160


def test_mixed_bill_sums_each_part():
    p = mk_policy(FLAT_80)
    lines = [line(JIA, 10000), line(YI, 20000, cat="09"), line(BING, 3000), line(JIA, 3600, cnt=3, limit=1000)]
    a = settle(p, EMPLOYEE, visit("11"), lines).amounts
    assert a["medfee_sumamt"] == 36600
    parts = (a["fulamt_ownpay_amt"], a["overlmt_selfpay"], a["preselfpay_amt"], a["inscp_scp_amt"])
    assert parts == (3000, 600, 1000, 32000)
    assert a["fund_pay_sumamt"] == 25600


def test_preselfpay_rounding_per_line_and_per_settlement_differ_on_half_fen_lines():
    # three 乙类 lines of 12.35 at 10%: 123.5 fen each
    def run(scope: str) -> dict[str, int]:
        lines = [line(YI, 1235) for _ in range(3)]
        return settle(mk_policy(FLAT_80, preselfpay=scope), EMPLOYEE, visit("11"), lines).amounts

    per_line, per_settlement = run("per_line"), run("per_settlement")
    assert per_line["preselfpay_amt"] == 372  # 124 × 3
    assert per_settlement["preselfpay_amt"] == 371  # round(370.5)
    assert per_line["inscp_scp_amt"] == 3333 and per_settlement["inscp_scp_amt"] == 3334
    assert per_line["fund_pay_sumamt"] == 2666  # round(2666.4)
    assert per_settlement["fund_pay_sumamt"] == 2667  # round(2667.2)


@pytest.mark.parametrize(
    ("mode", "amount", "pre", "fund"),
    [
        ("half_up", 1235, 124, 889),  # 123.5 -> 124; 80% of 1111 = 888.8 -> 889
        ("down", 1235, 123, 889),  # 123.5 -> 123; 80% of 1112 = 889.6 -> 889
        ("half_up", 1225, 123, 882),  # 122.5 -> 123; 80% of 1102 = 881.6 -> 882
        ("half_even", 1225, 122, 882),  # 122.5 -> 122; 80% of 1103 = 882.4 -> 882
        ("up", 1231, 124, 886),  # 123.1 -> 124; 80% of 1107 = 885.6 -> 886
        ("down", 1231, 123, 886),  # 123.1 -> 123; 80% of 1108 = 886.4 -> 886
    ],
)
def test_rounding_mode_of_the_policy_applies_to_preselfpay_and_fund(mode, amount, pre, fund):
    a = settle(mk_policy(FLAT_80, rounding=mode), EMPLOYEE, visit("11"), [line(YI, amount)]).amounts
    assert a["preselfpay_amt"] == pre
    assert a["inscp_scp_amt"] == amount - pre
    assert a["fund_pay_sumamt"] == fund


def test_fund_rounding_down_truncates_the_fund_share():
    a = settle(mk_policy(FLAT_80, rounding="down"), EMPLOYEE, visit("11"), [jia(1112)]).amounts
    assert a["fund_pay_sumamt"] == 889  # 889.6 truncated; half_up would give 890
    a = settle(mk_policy(FLAT_80, rounding="half_up"), EMPLOYEE, visit("11"), [jia(1112)]).amounts
    assert a["fund_pay_sumamt"] == 890


# --------------------------------------------------------------------------------------------------
# deductibles


@pytest.mark.parametrize(
    ("level", "dedc", "fund"),
    [("1", 30000, 873000),  # 90% of 9700.00
     ("2", 60000, 827200),  # 88% of 9400.00
     ("3", 90000, 773500),  # 85% of 9100.00 (first band)
     ("0", 30000, 873000)],  # unrated: the catch-all rule and ratio
)
def test_demo_per_visit_deductible_by_institution_level(level, dedc, fund):
    r = settle(DEMO, EMPLOYEE, visit("21", level), [jia(1_000_000)])
    assert r.amounts["act_pay_dedc"] == dedc
    assert r.amounts["hifp_pay"] == fund
    assert r.amounts["fund_pay_sumamt"] == fund
    assert r.amounts["psn_part_amt"] == 1_000_000 - fund
    assert r.year_deltas["admissions"] == 1


@pytest.mark.parametrize(("seq", "dedc", "fund"), [(1, 90000, 773500), (2, 45000, 811750), (3, 45000, 811750)])
def test_demo_second_and_later_admissions_halve_the_deductible(seq, dedc, fund):
    r = settle(DEMO, EMPLOYEE, visit("21", "3", admission_seq=seq), [jia(1_000_000)])
    assert r.amounts["act_pay_dedc"] == dedc
    assert r.amounts["hifp_pay"] == fund  # 85% of (10000.00 − deductible)


def test_demo_per_year_deductible_spreads_over_two_visits():
    v = visit("11", "2")
    first = settle(DEMO, EMPLOYEE, v, [jia(30000)])
    assert first.amounts["act_pay_dedc"] == 30000 and first.amounts["fund_pay_sumamt"] == 0
    assert first.year_deltas == {"emp_otp.dedc": 30000}

    year = Accumulators().plus(first.year_deltas)
    second = settle(DEMO, EMPLOYEE, v, [jia(100000)], year)
    assert second.amounts["act_pay_dedc"] == 20000  # the 500.00 year deductible's remaining 200.00
    assert second.amounts["hifp_pay"] == 48000  # 60% of 800.00
    assert second.year_deltas["emp_otp.dedc"] == 20000

    third = settle(DEMO, EMPLOYEE, v, [jia(10000)], year.plus(second.year_deltas))
    assert third.amounts["act_pay_dedc"] == 0 and third.amounts["hifp_pay"] == 6000


def test_demo_interim_then_final_settlement_takes_the_deductible_once():
    # one settlement of 40000.00 at a 3rd-level hospital: 900.00 deductible, 85% up to 30000.00 above it, 90% after
    whole = settle(DEMO, EMPLOYEE, visit("21", "3"), [jia(4_000_000)])
    assert whole.amounts["act_pay_dedc"] == 90000
    assert whole.amounts["hifp_pay"] == 2_550_000 + 819_000

    # the same stay settled as 200.00 … then the rest, and as 20000.00 + 20000.00
    interim = settle(DEMO, EMPLOYEE, visit("21", "3", final=False), [jia(50000)])
    assert interim.amounts["act_pay_dedc"] == 50000 and interim.amounts["hifp_pay"] == 0
    assert "admissions" not in interim.year_deltas
    final = settle(DEMO, EMPLOYEE, visit("21", "3"), [jia(3_950_000)],
                   Accumulators().plus(interim.year_deltas), Accumulators(interim.visit_deltas))
    assert final.amounts["act_pay_dedc"] == 40000
    assert interim.amounts["act_pay_dedc"] + final.amounts["act_pay_dedc"] == whole.amounts["act_pay_dedc"]
    assert interim.amounts["hifp_pay"] + final.amounts["hifp_pay"] == whole.amounts["hifp_pay"]
    assert final.year_deltas["admissions"] == 1

    interim = settle(DEMO, EMPLOYEE, visit("21", "3", final=False), [jia(2_000_000)])
    assert interim.amounts["hifp_pay"] == 1_623_500  # 85% of 19100.00
    final = settle(DEMO, EMPLOYEE, visit("21", "3"), [jia(2_000_000)],
                   Accumulators().plus(interim.year_deltas), Accumulators(interim.visit_deltas))
    assert final.amounts["act_pay_dedc"] == 0
    assert final.amounts["hifp_pay"] == 926_500 + 819_000  # 85% of 10900.00 to the band edge, 90% of 9100.00
    assert interim.amounts["hifp_pay"] + final.amounts["hifp_pay"] == whole.amounts["hifp_pay"]


DEDUCTIBLE_100_AT_80 = """
[[tiers]]
code = "basic"
kind = "basic"
fund_pay_type = "310100"
deductible = {{ basis = "per_visit", mode = "{mode}", amount = "100.00" }}
ratios = [{{ ratio = "0.80" }}]
"""


def test_deductible_before_the_ratio_and_out_of_the_fund_payment_differ():
    before = settle(mk_policy(DEDUCTIBLE_100_AT_80.format(mode="before_ratio")), EMPLOYEE, visit("11"), [jia(100000)])
    from_fund = settle(mk_policy(DEDUCTIBLE_100_AT_80.format(mode="from_fund")), EMPLOYEE, visit("11"), [jia(100000)])
    assert before.amounts["fund_pay_sumamt"] == 72000  # 80% × (1000.00 − 100.00)
    assert from_fund.amounts["fund_pay_sumamt"] == 70000  # 80% × 1000.00 − 100.00
    assert before.amounts["act_pay_dedc"] == from_fund.amounts["act_pay_dedc"] == 10000


def test_deductible_out_of_the_fund_payment_larger_than_the_payment():
    p = mk_policy(DEDUCTIBLE_100_AT_80.format(mode="from_fund"))
    r = settle(p, EMPLOYEE, visit("11"), [jia(5000)])
    # 80% of 50.00 = 40.00, all of it absorbed by the deductible
    assert r.amounts["fund_pay_sumamt"] == 0 and r.amounts["act_pay_dedc"] == 4000


def test_missing_deductible_rule_for_the_level_is_an_adjudication_error():
    p = mk_policy("""
[[tiers]]
code = "basic"
kind = "basic"
fund_pay_type = "310100"
deductible = { basis = "per_visit", rules = [
  { levels = ["1"], amount = "100.00" }, { levels = ["2"], amount = "200.00" },
] }
ratios = [{ ratio = "0.80" }]
""")
    assert settle(p, EMPLOYEE, visit("11", "2"), [jia(100000)]).amounts["act_pay_dedc"] == 20000
    with pytest.raises(AdjudicationError) as e:
        adjudicate(p, EMPLOYEE, visit("11", "3"), [jia(100000)], Accumulators())
    assert e.value.field == "tiers.basic.deductible"
    assert "'3'" in e.value.problem


def test_unknown_med_type_is_an_adjudication_error():
    with pytest.raises(AdjudicationError) as e:
        adjudicate(DEMO, EMPLOYEE, visit("99"), [jia(1000)], Accumulators())
    assert e.value.field == "med_type" and "'99'" in e.value.problem


# --------------------------------------------------------------------------------------------------
# bands and caps


BANDED = """
[[tiers]]
code = "basic"
kind = "basic"
fund_pay_type = "310100"
axis = "{axis}"
ratios = [{{ bands = [{{ upto = "1000.00", ratio = "0.50" }}, {{ ratio = "0.80" }}] }}]
"""


def test_bands_continue_on_the_year_axis_across_settlements():
    p = mk_policy(BANDED.format(axis="year"))
    first = settle(p, EMPLOYEE, visit("11"), [jia(80000)])
    assert first.amounts["fund_pay_sumamt"] == 40000  # 50% of 800.00
    assert first.year_deltas["basic.elig"] == 80000
    year = Accumulators().plus(first.year_deltas)
    second = settle(p, EMPLOYEE, visit("11"), [jia(50000)], year)
    assert second.amounts["fund_pay_sumamt"] == 10000 + 24000  # 50% of 200.00 to the band edge, 80% of 300.00
    assert second.tiers[0].ratio == Decimal("0.80")
    third = settle(p, EMPLOYEE, visit("11"), [jia(10000)], year.plus(second.year_deltas))
    assert third.amounts["fund_pay_sumamt"] == 8000


def test_bands_on_the_visit_axis_start_again_each_visit():
    p = mk_policy(BANDED.format(axis="visit"))
    first = settle(p, EMPLOYEE, visit("11"), [jia(80000)])
    second = settle(p, EMPLOYEE, visit("11"), [jia(50000)], Accumulators().plus(first.year_deltas))
    assert second.amounts["fund_pay_sumamt"] == 25000  # 50% of 500.00: a new visit starts at the bottom


def test_one_settlement_walks_across_a_band_boundary():
    p = mk_policy(BANDED.format(axis="visit"))
    r = settle(p, EMPLOYEE, visit("11"), [jia(150000)])
    assert r.amounts["fund_pay_sumamt"] == 50000 + 40000


CAPPED = """
[[tiers]]
code = "basic"
kind = "basic"
fund_pay_type = "310100"
cap = {{ basis = "{basis}", amount = "1000.00" }}
ratios = [{{ ratio = "{ratio}" }}]
"""


def test_fund_cap_reached_exactly():
    p = mk_policy(CAPPED.format(basis="fund", ratio="0.50"))
    r = settle(p, EMPLOYEE, visit("11"), [jia(80000)], Accumulators({"basic.fund": 60000}))
    t = r.tiers[0]
    assert t.crt_payb_lmt_amt == 40000
    assert t.fund_payamt == 40000 and t.consumed == 80000 and t.overflow == 0
    assert r.year_deltas["basic.fund"] == 40000


def test_fund_cap_reached_partway_leaves_an_overflow():
    p = mk_policy(CAPPED.format(basis="fund", ratio="0.50"))
    r = settle(p, EMPLOYEE, visit("11"), [jia(100000)], Accumulators({"basic.fund": 60000}))
    t = r.tiers[0]
    assert t.fund_payamt == 40000  # the cap's remaining 400.00, not 50% of 1000.00
    assert t.consumed == 80000 and t.overflow == 20000
    assert r.amounts["psn_part_amt"] == 60000


def test_fund_cap_already_used_up_pays_nothing():
    p = mk_policy(CAPPED.format(basis="fund", ratio="0.50"))
    r = settle(p, EMPLOYEE, visit("11"), [jia(100000)], Accumulators({"basic.fund": 100000}))
    assert r.tiers[0].fund_payamt == 0 and r.tiers[0].crt_payb_lmt_amt == 0 and r.tiers[0].overflow == 100000


def test_inscp_cap_limits_the_amount_counted_not_the_payment():
    p = mk_policy(CAPPED.format(basis="inscp", ratio="0.80"))
    r = settle(p, EMPLOYEE, visit("11"), [jia(50000)], Accumulators({"basic.counted": 70000}))
    t = r.tiers[0]
    assert t.crt_payb_lmt_amt == 30000
    assert t.fund_payamt == 24000  # 80% of the 300.00 still countable
    assert t.consumed == 30000 and t.overflow == 20000
    assert r.year_deltas["basic.counted"] == 30000


def test_fund_cap_with_the_deductible_out_of_the_fund_payment_pays_the_whole_remaining_room():
    p = mk_policy("""
[[tiers]]
code = "basic"
kind = "basic"
fund_pay_type = "310100"
deductible = { basis = "per_visit", mode = "from_fund", amount = "100.00" }
cap = { basis = "fund", amount = "1000.00" }
ratios = [{ ratio = "0.80" }]
""")
    r = settle(p, EMPLOYEE, visit("11"), [jia(100_000)], Accumulators({"basic.fund": 60_000}))
    t = r.tiers[0]
    # 80% of 1000.00 = 800.00, less the 100.00 deductible = 700.00, but only 400.00 of the cap is left:
    # the walk may pay 400.00 + 100.00 before the deductible comes off, covering 500.00 / 0.8 = 625.00
    assert t.crt_payb_lmt_amt == 40_000 and t.fund_payamt == 40_000 and t.act_pay_dedc == 10_000
    assert t.consumed == 62_500 and t.overflow == 37_500


def test_a_later_tier_on_the_in_scope_base_only_gets_what_earlier_tiers_left():
    p = mk_policy(FLAT_80 + """
[[tiers]]
code = "supplementary"
kind = "supplementary"
fund_pay_type = "370100"
base = "inscp"
ratios = [{ ratio = "0.50" }]
""")
    r = settle(p, EMPLOYEE, visit("11"), [jia(10_000)])
    assert tier(r, "supplementary").base == 2_000  # not the whole 100.00: the basic tier paid 80.00 of it
    assert r.amounts["hifp_pay"] == 8_000 and r.amounts["hifes_pay"] == 1_000
    assert r.amounts["fund_pay_sumamt"] == 9_000


def test_demo_large_amount_tier_takes_the_basic_tiers_overflow():
    # basic fund cap 300000.00 with 1000.00 left; level 1: 300.00 deductible, 90%
    year = Accumulators({"emp_pool.fund": 29_900_000})
    r = settle(DEMO, EMPLOYEE, visit("21", "1"), [jia(500_000)], year)
    basic, large = tier(r, "emp_inpatient"), tier(r, "emp_large")
    assert basic.crt_payb_lmt_amt == 100_000 and basic.fund_payamt == 100_000
    assert basic.consumed == 111_112  # ⌈1000.00 / 0.9⌉
    assert basic.overflow == 470_000 - 111_112
    # the overflow stays exact (4700.00 − 1000.00/0.9 = 3588.888…), so 90% of it is exactly 3230.00
    assert large.base == 358_888 and large.fund_payamt == 323_000
    a = r.amounts
    assert (a["hifp_pay"], a["hifob_pay"], a["fund_pay_sumamt"]) == (100_000, 323_000, 423_000)
    assert a["psn_part_amt"] == 77_000
    assert {d.fund_pay_type for d in r.setldetail} == {"310100", "330100"}


def test_demo_large_amount_tier_pays_nothing_below_the_basic_cap():
    r = settle(DEMO, EMPLOYEE, visit("21", "1"), [jia(500_000)])
    assert pay(r, "emp_large") == 0 and r.amounts["hifob_pay"] == 0
    assert all(d.fund_pay_type != "330100" for d in r.setldetail)


# --------------------------------------------------------------------------------------------------
# later tiers: civil servant, serious illness, assistance, groups


def test_demo_civil_servant_tier_pays_half_of_what_the_patient_still_bears():
    r = settle(DEMO, CIVIL_SERVANT, visit("21", "1"), [jia(100_000)])
    a = r.amounts
    assert a["hifp_pay"] == 63_000  # 90% of (1000.00 − 300.00)
    assert a["cvlserv_pay"] == 18_500  # 50% of 370.00, deductible included
    assert a["fund_pay_sumamt"] == 81_500 and a["psn_part_amt"] == 18_500


def test_demo_civil_servant_tier_also_covers_outpatient():
    r = settle(DEMO, CIVIL_SERVANT, visit("11", "2"), [jia(100_000)])
    assert r.amounts["hifp_pay"] == 30_000  # 60% of (1000.00 − 500.00)
    assert r.amounts["cvlserv_pay"] == 35_000


def test_demo_non_civil_servant_gets_no_civil_servant_payment():
    r = settle(DEMO, EMPLOYEE, visit("21", "1"), [jia(100_000)])
    assert r.amounts["cvlserv_pay"] == 0
    assert "emp_civil_servant" not in {t.code for t in r.tiers}


def test_demo_retiree_bands_at_a_third_level_hospital():
    r = settle(DEMO, RETIREE, visit("21", "3"), [jia(4_000_000)])
    assert r.amounts["hifp_pay"] == 2_700_000 + 864_500  # 90% of 30000.00, 95% of 9100.00


def test_demo_resident_serious_illness_on_what_the_basic_tier_left():
    r = settle(DEMO, RESIDENT, visit("21", "3"), [jia(10_000_000)])
    assert pay(r, "res_inpatient") == 5_445_000  # 55% of (100000.00 − 1000.00)
    serious = tier(r, "res_serious")
    assert serious.base == 4_555_000 and serious.act_pay_dedc == 1_500_000
    assert serious.fund_payamt == 1_833_000  # 60% of (45550.00 − 15000.00)
    assert r.amounts["hifmi_pay"] == 1_833_000 and r.amounts["fund_pay_sumamt"] == 7_278_000
    assert r.amounts["act_pay_dedc"] == 100_000  # the basic tier's deductible


SERIOUS = """
[[tiers]]
code = "basic"
kind = "basic"
fund_pay_type = "390100"
deductible = {{ basis = "per_visit", amount = "1000.00" }}
ratios = [{{ ratio = "0.50" }}]

[[tiers]]
code = "serious"
kind = "serious_illness"
fund_pay_type = "390200"
count_prior_dedc = {count}
band_origin = "{origin}"
deductible = {{ basis = "per_year", amount = "10000.00" }}
ratios = [{{ bands = [{{ upto = "20000.00", ratio = "0.60" }}, {{ ratio = "0.80" }}] }}]
"""


@pytest.mark.parametrize(
    ("count", "origin", "base", "serious_pay"),
    [
        # basic pays 50% of 49000.00 = 24500.00; the patient bears 25500.00 of which 1000.00 deductible
        ("true", "deductible", 2_550_000, 930_000),  # 60% of 15500.00
        # 60% up to 20000.00 absolute (= 10000.00 above the deductible), then 80% of 5500.00
        ("true", "absolute", 2_550_000, 600_000 + 440_000),
        ("false", "deductible", 2_450_000, 870_000),  # 60% of 14500.00
        ("false", "absolute", 2_450_000, 600_000 + 360_000),  # 60% of 10000.00, 80% of 4500.00
    ],
)
def test_serious_illness_base_and_band_origin(count, origin, base, serious_pay):
    p = mk_policy(SERIOUS.format(count=count, origin=origin))
    r = settle(p, RESIDENT, visit("21"), [jia(5_000_000)])
    assert pay(r, "basic") == 2_450_000
    t = tier(r, "serious")
    assert t.base == base and t.act_pay_dedc == 1_000_000
    assert t.fund_payamt == serious_pay
    assert r.amounts["hifmi_pay"] == serious_pay


def test_serious_illness_deductible_spreads_over_the_year():
    p = mk_policy(SERIOUS.format(count="true", origin="deductible"))
    first = settle(p, RESIDENT, visit("21"), [jia(1_000_000)])
    # basic 50% of 9000.00; the patient bears 5500.00, all of it towards the 10000.00 serious deductible
    assert pay(first, "serious") == 0 and first.year_deltas["serious.dedc"] == 550_000
    second = settle(p, RESIDENT, visit("21"), [jia(2_000_000)], Accumulators().plus(first.year_deltas))
    t = tier(second, "serious")
    assert t.base == 1_050_000 and t.act_pay_dedc == 450_000
    assert t.fund_payamt == 360_000  # 60% of (10500.00 − 4500.00)


@pytest.mark.parametrize(
    ("identities", "tier_code", "maf"),
    [
        (("2202",), "maf_dibao", 116_200),  # 500.00 deductible, 70% of (2160.00 − 500.00)
        (("2203",), "maf_dibao", 116_200),
        (("2201",), "maf_tekun", 194_400),  # 90% of 2160.00
        (("2201", "2202"), "maf_tekun", 194_400),  # one assistance tier only: the first of the group
        (("2202", "2201"), "maf_tekun", 194_400),
    ],
)
def test_demo_medical_assistance_by_identity(identities, tier_code, maf):
    r = settle(DEMO, resident(*identities), visit("21", "1"), [jia(1_000_000)])
    assert pay(r, "res_inpatient") == 784_000  # 80% of (10000.00 − 200.00)
    assert pay(r, "res_serious") == 0  # below the 15000.00 serious-illness deductible
    codes = [t.code for t in r.tiers if t.kind == "assistance"]
    assert codes == [tier_code]
    assert r.amounts["maf_pay"] == maf
    assert r.amounts["fund_pay_sumamt"] == 784_000 + maf


@pytest.mark.parametrize("identities", [(), ("9999",)])
def test_demo_no_assistance_without_an_assistance_identity(identities):
    r = settle(DEMO, resident(*identities), visit("21", "1"), [jia(1_000_000)])
    assert r.amounts["maf_pay"] == 0
    assert not any(t.kind == "assistance" for t in r.tiers)
    assert r.amounts["fund_pay_sumamt"] == 784_000


def test_demo_no_assistance_for_plain_outpatient_visits():
    r = settle(DEMO, resident("2201"), visit("11", "1"), [jia(30_000)])
    assert r.amounts["maf_pay"] == 0


def test_group_falls_through_to_the_next_tier_when_the_first_has_no_matching_ratio():
    p = mk_policy("""
[[tiers]]
code = "third_level"
kind = "basic"
fund_pay_type = "310100"
group = "basic"
ratios = [{ levels = ["3"], ratio = "0.50" }]

[[tiers]]
code = "any_level"
kind = "basic"
fund_pay_type = "310100"
group = "basic"
ratios = [{ ratio = "0.90" }]
""")
    at3 = settle(p, EMPLOYEE, visit("11", "3"), [jia(10_000)])
    at2 = settle(p, EMPLOYEE, visit("11", "2"), [jia(10_000)])
    assert [t.code for t in at3.tiers] == ["third_level"] and at3.amounts["fund_pay_sumamt"] == 5_000
    assert [t.code for t in at2.tiers] == ["any_level"] and at2.amounts["fund_pay_sumamt"] == 9_000


# --------------------------------------------------------------------------------------------------
# personal accounts


NO_BING_FROM_ACCOUNT = FLAT_80 + """
[account]
payable = ["overlmt_selfpay", "preselfpay", "inscp_selfpay"]
"""


def test_account_that_may_not_pay_bing_items():
    p = mk_policy(NO_BING_FROM_ACCOUNT)
    own = (AccountSource("P1", "self", 100_000),)
    r = settle(p, EMPLOYEE, visit("11"), [line(BING, 10_000), jia(20_000)], accounts=own)
    a = r.amounts
    assert a["fund_pay_sumamt"] == 16_000
    assert a["acct_pay"] == 4_000  # the in-scope self-pay only
    assert a["psn_cash_pay"] == 10_000  # the 丙类 item in cash
    assert r.balc == 96_000


def test_account_pays_every_part_when_all_are_payable():
    own = (AccountSource("P1", "self", 100_000),)
    r = settle(mk_policy(FLAT_80), EMPLOYEE, visit("11"), [line(BING, 10_000), jia(20_000)], accounts=own)
    assert r.amounts["acct_pay"] == 14_000 and r.amounts["psn_cash_pay"] == 0 and r.balc == 86_000


def test_demo_own_account_first_then_family_mutual_aid_in_order():
    # employee outpatient, all 200.00 under the 500.00 year deductible
    accounts = (AccountSource("P1", "self", 5_000), AccountSource("S1", "spouse", 8_000),
                AccountSource("F1", "parent", 100_000), AccountSource("C1", "child", 100_000))
    r = settle(DEMO, EMPLOYEE, visit("11", "2"), [jia(20_000)], accounts=accounts)
    assert r.amounts["fund_pay_sumamt"] == 0
    assert [(p.psn_no, p.amount) for p in r.account_payments] == [("P1", 5_000), ("S1", 8_000), ("F1", 7_000)]
    assert r.amounts["acct_pay"] == 20_000 and r.amounts["acct_mulaid_pay"] == 15_000
    assert r.amounts["psn_cash_pay"] == 0 and r.balc == 0
    acct_detail = [d for d in r.setldetail if d.fund_pay_type == ACCOUNT_FUND_PAY_TYPE]
    assert len(acct_detail) == 1 and acct_detail[0].fund_payamt == 20_000


def test_demo_relation_not_allowed_for_mutual_aid_is_skipped():
    accounts = (AccountSource("P1", "self", 5_000), AccountSource("K1", "cousin", 100_000),
                AccountSource("C1", "child", 3_000))
    r = settle(DEMO, EMPLOYEE, visit("11", "2"), [jia(20_000)], accounts=accounts)
    assert [(p.psn_no, p.amount) for p in r.account_payments] == [("P1", 5_000), ("C1", 3_000)]
    assert r.amounts["acct_pay"] == 8_000 and r.amounts["psn_cash_pay"] == 12_000


def test_mutual_aid_off_uses_only_the_own_account():
    p = mk_policy(FLAT_80)  # no [account]: mutual aid off
    accounts = (AccountSource("P1", "self", 1_000), AccountSource("S1", "spouse", 100_000))
    r = settle(p, EMPLOYEE, visit("11"), [jia(20_000)], accounts=accounts)
    assert r.amounts["acct_pay"] == 1_000 and r.amounts["acct_mulaid_pay"] == 0


def test_demo_account_not_used_when_the_patient_declines():
    accounts = (AccountSource("P1", "self", 50_000), AccountSource("S1", "spouse", 50_000))
    r = settle(DEMO, EMPLOYEE, visit("11", "2"), [jia(20_000)], accounts=accounts, use_account=False)
    assert r.amounts["acct_pay"] == 0 and r.account_payments == ()
    assert r.amounts["psn_cash_pay"] == 20_000 and r.balc == 50_000
    assert all(d.fund_pay_type != ACCOUNT_FUND_PAY_TYPE for d in r.setldetail)


def test_demo_resident_without_own_account_uses_a_family_members():
    # resident outpatient at level 1: 100.00 year deductible, then 50%
    r = settle(DEMO, RESIDENT, visit("11", "1"), [jia(30_000)], accounts=(AccountSource("S1", "spouse", 15_000),))
    assert r.amounts["hifp_pay"] == 10_000 and r.amounts["psn_part_amt"] == 20_000
    assert r.amounts["acct_pay"] == 15_000 and r.amounts["acct_mulaid_pay"] == 15_000
    assert r.amounts["psn_cash_pay"] == 5_000 and r.balc == 0


def test_demo_resident_own_account_is_not_an_account_of_a_payable_insurance_type():
    accounts = (AccountSource("P4", "self", 50_000), AccountSource("S1", "spouse", 1_000))
    r = settle(DEMO, RESIDENT, visit("11", "1"), [jia(30_000)], accounts=accounts)
    assert [(p.psn_no, p.amount) for p in r.account_payments] == [("S1", 1_000)]


def test_account_never_pays_more_than_the_patient_part():
    own = (AccountSource("P1", "self", 10**9),)
    r = settle(mk_policy(FLAT_80), EMPLOYEE, visit("11"), [jia(20_000)], accounts=own)
    assert r.amounts["acct_pay"] == 4_000 and r.balc == 10**9 - 4_000


# --------------------------------------------------------------------------------------------------
# cancellation


def test_cancellation_deltas_return_the_accumulators_to_where_they_were():
    year = Accumulators({"emp_otp.dedc": 10_000})
    r = settle(DEMO, EMPLOYEE, visit("11", "2"), [jia(100_000)], year)
    after = year.plus(r.year_deltas).plus(negate_deltas(r.year_deltas))
    assert {k: v for k, v in after.values.items() if v} == year.values
    again = settle(DEMO, EMPLOYEE, visit("11", "2"), [jia(100_000)], after)
    assert again.amounts == r.amounts
