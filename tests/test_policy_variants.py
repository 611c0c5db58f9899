"""The policy format's variants (issue 12): each setting's rule, its law where it has one, and its refusals.

The policies here are small inline ones so each test shows the one setting it is about; amounts are worked out by
hand in the docstrings. Published worked examples that need these settings are in tests/test_worked_examples.py and
in the policy files' own [[examples]] (tests/test_policy_examples.py).
"""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from medpay.domain.adjudication import AdjudicationError, adjudicate, identity_violations
from medpay.domain.model import Accumulators, CatalogItem, FeeLine, Institution, VisitContext
from medpay.domain.policy import PolicyError
from medpay.money import parse_yuan
from tests.builders import JIA, YI, person, policy_from_toml, settle

HEAD = """
[policy]
admdvs = "999902"
name = "变体测试"
version = "v"
effective_from = 2020-01-01
{year_start}
[person_classes]
in_service = ["1101"]
retired = ["1201"]
resident = ["1501"]
[med_categories]
outpatient = ["11"]
chronic = ["14"]
inpatient = ["21"]
"""


def policy(tiers: str, *, year_start: str = "", extra: str = "", name: str = "variants"):
    return policy_from_toml(HEAD.format(year_start=year_start) + extra + tiers, name)


def refusal(tiers: str, **kw) -> PolicyError:
    with pytest.raises(PolicyError) as e:
        policy(tiers, **kw)
    return e.value


def fee(yuan: str, lv=JIA, *, code: str = "X", cat: str = "", list_type: str = "", sn: str = "1") -> FeeLine:
    item = CatalogItem(code, code, lv, med_chrgitm_type=cat, list_type=list_type)
    return FeeLine(sn, item, Decimal(1), Decimal(yuan), parse_yuan(yuan))


def at(med_type="21", level="3", *, on=date(2026, 3, 1), seq=1, kind="general", code="H001", admdvs="999902",
       insured="999902", filed=False, referred=False, dise="") -> VisitContext:
    inst = Institution(code, "医院", admdvs, level, inst_kind=kind)
    return VisitContext("M1", med_type, on, inst, admission_seq=seq, dise_codg=dise, filed=filed, referred=referred,
                        insured_admdvs=insured)


def who(insutype="310", psn_type="1101", **facts):
    return dataclasses.replace(person(insutype, psn_type, "999902"), **facts)


def yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


# ----------------------------------------------------------------------------------------- person-dependent ratios

AGE = """
[[tiers]]
code = "res_in"
kind = "basic"
fund_pay_type = "390100"
applies = { insutypes = ["390"] }
ratios = [{ min_age = 60, age_ratio = { base = "0.70", from_age = 60, per_year = "0.01", ceiling = "0.80" } },
          { max_age = 17, ratio = "0.85" }, { ratio = "0.70" }]
"""


def test_age_ratio_grows_by_year_up_to_its_ceiling():
    """70 % at 60, +1 point a year, at most 80 %: 65 → 75 %, 90 → 80 %; a child 85 %, an adult 70 %."""
    pol = policy(AGE)
    bill = [fee("1000.00")]
    for born, ratio in ((date(1961, 1, 1), "750.00"), (date(1936, 1, 1), "800.00"), (date(2016, 1, 1), "850.00"),
                        (date(1986, 1, 1), "700.00")):
        r = settle(pol, who("390", "1501", brdy=born), at(on=date(2026, 3, 1)), bill)
        assert yuan(r.amounts["hifp_pay"]) == ratio, born


def test_age_rule_without_a_birth_date_is_refused_naming_the_field():
    with pytest.raises(AdjudicationError) as e:
        settle(policy(AGE), who("390", "1501"), at(), [fee("100.00")])
    assert e.value.field == "person.brdy"


def test_age_rule_without_a_ceiling_is_refused_at_load():
    err = refusal(AGE.replace(', ceiling = "0.80"', ""))
    assert err.key == "tiers[0].ratios[0].age_ratio.ceiling" and "ceiling" in err.problem


@given(st.integers(0, 110), st.integers(0, 40))
def test_an_older_person_never_gets_a_lower_ratio(age, more):
    pol = policy(AGE.replace('{ max_age = 17, ratio = "0.85" }, ', ""))
    bill = [fee("1000.00")]
    on = date(2026, 6, 1)
    young = settle(pol, who("390", "1501", brdy=date(on.year - age, 1, 1)), at(on=on), bill)
    old = settle(pol, who("390", "1501", brdy=date(on.year - age - more, 1, 1)), at(on=on), bill)
    assert old.amounts["hifp_pay"] >= young.amounts["hifp_pay"]


GRADES = """
[[tiers]]
code = "res_in"
kind = "basic"
fund_pay_type = "390100"
applies = { insutypes = ["390"] }
ratios = [{ grades = ["1"], ratio = "0.85" }, { grades = ["2"], ratio = "0.75" }]
[[tiers]]
code = "emp_in"
kind = "basic"
fund_pay_type = "310100"
applies = { insutypes = ["310"] }
ratios = [{ psn_classes = ["retired"], retired_before = 2014-10-01, ratio = "0.95" }, { ratio = "0.90" }]
"""


def test_resident_payment_grade_and_retirement_cohort():
    pol = policy(GRADES)
    bill = [fee("1000.00")]
    assert settle(pol, who("390", "1501", pay_grade="1"), at(), bill).amounts["hifp_pay"] == 85000
    assert settle(pol, who("390", "1501", pay_grade="2"), at(), bill).amounts["hifp_pay"] == 75000
    early = who("310", "1201", retr_date=date(2010, 5, 1))
    late = who("310", "1201", retr_date=date(2015, 5, 1))
    assert settle(pol, early, at(), bill).amounts["hifp_pay"] == 95000
    assert settle(pol, late, at(), bill).amounts["hifp_pay"] == 90000
    with pytest.raises(AdjudicationError) as e:
        settle(pol, who("390", "1501"), at(), bill)
    assert e.value.field == "person.pay_grade"
    with pytest.raises(AdjudicationError) as e:
        settle(pol, who("310", "1201"), at(), bill)
    assert e.value.field == "person.retr_date"


# ------------------------------------------------------------------------------------------------- institutions

INSTITUTIONS = """
[[tiers]]
code = "emp_in"
kind = "basic"
fund_pay_type = "310100"
deductible = { basis = "per_visit", rules = [
  { fixmedins_codes = ["H-HAICI"], amount = "640.00" },
  { levels = ["1"], amount = "200.00" }, { levels = ["2"], amount = "500.00" }, { levels = ["3"], amount = "800.00" },
], adjustments = [{ inst_kinds = ["tcm"], factor = "0.8" }, { inst_kinds = ["specialist"], level_offset = -1 }] }
ratios = [{ inst_kinds = ["grassroots"], ratio = "0.95" }, { ratio = "0.90" }]
"""


def test_institution_kind_named_institution_and_grassroots():
    """中医院 20 % lower (三级 800 → 640); a named hospital's own 640; one level lower (三级 → 二级 500); 基层 95 %."""
    pol = policy(INSTITUTIONS)
    bill = [fee("10000.00")]
    dedc = {kind: settle(pol, who(), at(kind=kind), bill).amounts["act_pay_dedc"]
            for kind in ("general", "tcm", "specialist")}
    assert dedc == {"general": 80000, "tcm": 64000, "specialist": 50000}
    assert settle(pol, who(), at(code="H-HAICI"), bill).amounts["act_pay_dedc"] == 64000
    assert settle(pol, who(), at("21", "1", kind="grassroots"), bill).amounts["hifp_pay"] == round((1000000 - 20000) * 0.95)


# -------------------------------------------------------------------------------------------------- admissions

ADMISSIONS = """
[[tiers]]
code = "res_in"
kind = "basic"
fund_pay_type = "390100"
deductible.basis = "per_visit"
deductible.rules = [{ levels = ["1"], amount = "200.00" }, { levels = ["3"], amount = "1000.00" }]
deductible.admissions = [{ from = 2, factor = "0.5" }, { from = 3, amount = "100.00" }]
ratios = [{ ratio = "0.70" }]
"""


def test_fixed_deductible_from_the_third_admission():
    pol = policy(ADMISSIONS)
    bill = [fee("5000.00")]
    got = [settle(pol, who("390", "1501"), at(seq=n), bill).amounts["act_pay_dedc"] for n in (1, 2, 3, 4)]
    assert got == [100000, 50000, 10000, 10000]
    # a fixed amount never raises a deductible that is already lower (一级 200 → 100 → 100)
    got = [settle(pol, who("390", "1501"), at(level="1", seq=n), bill).amounts["act_pay_dedc"] for n in (1, 2, 3)]
    assert got == [20000, 10000, 10000]


@given(st.integers(1, 12), st.integers(0, 5), st.sampled_from(["1", "3"]))
def test_a_later_admission_never_raises_the_deductible(seq, later, level):
    pol = policy(ADMISSIONS)
    bill = [fee("5000.00")]
    first = settle(pol, who("390", "1501"), at(level=level, seq=seq), bill).amounts["act_pay_dedc"]
    then = settle(pol, who("390", "1501"), at(level=level, seq=seq + later), bill).amounts["act_pay_dedc"]
    assert then <= first


def test_admission_floor_stops_the_lowering_but_never_raises_a_first_admission():
    pol = policy(ADMISSIONS.replace('deductible.admissions = [{ from = 2, factor = "0.5" }, { from = 3, amount = "100.00" }]',
                                    'deductible.admissions = [{ from = 2, factor = "0.5" }]\ndeductible.admission_floor = "150.00"'))
    bill = [fee("5000.00")]
    got = [settle(pol, who("390", "1501"), at(level="1", seq=n), bill).amounts["act_pay_dedc"] for n in (1, 2)]
    assert got == [20000, 15000]  # 一级 200; the 2nd admission halves it to 100, raised to the floor 150
    got = [settle(pol, who("390", "1501"), at(level="3", seq=n), bill).amounts["act_pay_dedc"] for n in (1, 2)]
    assert got == [100000, 50000]
    err = refusal(ADMISSIONS.replace('deductible.admissions = [{ from = 2, factor = "0.5" }, { from = 3, amount = "100.00" }]',
                                     'deductible.admission_floor = "150.00"'))
    assert err.key == "tiers[0].deductible.admission_floor"


def test_admission_steps_must_rise():
    err = refusal(ADMISSIONS.replace("from = 3", "from = 2"))
    assert err.key == "tiers[0].deductible.admissions[1].from"


# ---------------------------------------------------------------------------------------- periods and shared caps

MONTHLY = """
[[tiers]]
code = "otp"
kind = "basic"
fund_pay_type = "310100"
applies = { med_categories = ["outpatient"] }
deductible = { basis = "per_month", amount = "50.00" }
cap = { basis = "fund", amount = "300.00", period = "quarter" }
ratios = [{ ratio = "0.50" }]
"""


def test_deductible_per_month_and_cap_per_quarter():
    pol = policy(MONTHLY)
    year = Accumulators()
    paid = []
    for on in (date(2026, 1, 5), date(2026, 1, 20), date(2026, 2, 3), date(2026, 3, 3), date(2026, 4, 1)):
        r = settle(pol, who(), at("11", on=on), [fee("400.00")], year=year)
        year = year.plus(r.year_deltas)
        paid.append((r.amounts["act_pay_dedc"], r.amounts["hifp_pay"]))
    # Jan: 50 deducted then 175; again in Jan no deductible, 200 → the quarter's 300 leaves 125; Feb/Mar: cap used up
    assert paid == [(5000, 17500), (0, 12500), (5000, 0), (5000, 0), (5000, 17500)]


SHARED = """
[[tiers]]
code = "maf_otp"
kind = "assistance"
fund_pay_type = "610100"
applies = { identities = ["2201"], med_categories = ["chronic"] }
cap = { basis = "fund", amount = "1000.00", key = "maf_special" }
ratios = [{ ratio = "0.80" }]
[[tiers]]
code = "maf_in"
kind = "assistance"
fund_pay_type = "610100"
applies = { identities = ["2201"], med_categories = ["inpatient"] }
cap = { basis = "fund", amount = "1000.00", key = "maf_special" }
ratios = [{ ratio = "0.80" }]
"""


def test_one_cap_shared_by_special_outpatient_and_inpatient():
    pol = policy("""
[[tiers]]
code = "basic"
kind = "basic"
fund_pay_type = "390100"
ratios = [{ ratio = "0" }]
""" + SHARED)
    poor = who("390", "1501", identities=frozenset({"2201"}))
    r1 = settle(pol, poor, at("14"), [fee("1000.00")])
    assert r1.amounts["maf_pay"] == 80000
    r2 = settle(pol, poor, at("21"), [fee("1000.00")], year=Accumulators().plus(r1.year_deltas))
    assert r2.amounts["maf_pay"] == 20000  # the inpatient tier sees what the outpatient one used


def test_two_tiers_in_one_settlement_share_one_cap():
    """Two tiers of different groups in one settlement, one cap key: the second sees the first's payment."""
    pol = policy("""
[[tiers]]
code = "basic"
kind = "basic"
fund_pay_type = "390100"
cap = { basis = "fund", amount = "500.00", key = "together" }
ratios = [{ ratio = "0.40" }]
[[tiers]]
code = "serious"
kind = "serious_illness"
fund_pay_type = "390200"
cap = { basis = "fund", amount = "500.00", key = "together" }
ratios = [{ ratio = "0.50" }]
""")
    r = settle(pol, who("390", "1501"), at(), [fee("1000.00")])
    assert (r.amounts["hifp_pay"], r.amounts["hifmi_pay"]) == (40000, 10000)


QUARTER_YEAR = """
[[tiers]]
code = "otp"
kind = "basic"
fund_pay_type = "310100"
deductible = { basis = "per_year", amount = "500.00" }
cap = { basis = "fund", amount = "2000.00" }
ratios = [{ ratio = "0.50" }]
"""


@given(st.dates(date(2024, 1, 1), date(2027, 12, 31)))
def test_policy_year_boundary_moves_accumulators_to_the_right_year(on):
    """A 1 July policy year: a date before 1 July counts in the year that began the July before."""
    pol = policy(QUARTER_YEAR, year_start='year_start = "07-01"')
    expected = on.year if on.month >= 7 else on.year - 1
    assert pol.policy_year(on) == expected
    assert pol.policy_year(date(expected, 7, 1)) == expected and pol.policy_year(date(expected + 1, 6, 30)) == expected


def test_year_start_that_is_not_a_date_is_refused():
    for bad in ('"02-30"', '"7-1"', '"13-01"', '"02-29"', "7"):
        err = refusal(QUARTER_YEAR, year_start=f"year_start = {bad}")
        assert err.key == "policy.year_start"
    err = refusal(MONTHLY, year_start='year_start = "07-15"')
    assert err.key == "policy.year_start" and "month" in err.problem


# ------------------------------------------------------------------------------------------------ disease caps

DISEASES = """
[[tiers]]
code = "chronic"
kind = "basic"
fund_pay_type = "310100"
applies = { med_categories = ["chronic"] }
cap = { basis = "fund", per_disease = { M03900 = "300.00", M01600 = "500.00" } }
ratios = [{ ratio = "0.60" }]
"""


def test_each_chronic_disease_has_its_own_cap():
    pol = policy(DISEASES)
    year = Accumulators()
    r1 = settle(pol, who(), at("14", dise="M03900"), [fee("1000.00")], year=year)
    year = year.plus(r1.year_deltas)
    r2 = settle(pol, who(), at("14", dise="M01600"), [fee("1000.00")], year=year)
    year = year.plus(r2.year_deltas)
    r3 = settle(pol, who(), at("14", dise="M03900"), [fee("1000.00")], year=year)
    assert [r.amounts["hifp_pay"] for r in (r1, r2, r3)] == [30000, 50000, 0]
    with pytest.raises(AdjudicationError) as e:
        settle(pol, who(), at("14", dise="M02300"), [fee("100.00")])
    assert e.value.field == "dise_codg"


def test_a_disease_cap_for_a_code_not_in_the_catalog_is_refused():
    err = refusal(DISEASES.replace("M01600", "X99999"))
    assert err.key == "tiers[0].cap.per_disease.X99999" and "catalog" in err.problem


# ------------------------------------------------------------------------------------------------ cross-region

CROSS = """
[[tiers]]
code = "emp_in"
kind = "basic"
fund_pay_type = "310100"
deductible = { basis = "per_visit", rules = [
  { cross_region = ["national"], share = "0.10", floor = "500.00", ceiling = "2000.00" }, { amount = "800.00" }] }
first_share = [{ referred = true, inst_kinds = ["grassroots"], share = "0.05" }, { referred = true, share = "0.15" },
               { cross_region = ["province", "national"], filed = false, share = "0.25" }]
ratios = [{ cross_region = ["province", "national"], filed = false, ratio = "0.60" }, { ratio = "0.90" }]
"""


def test_cross_region_filed_unfiled_referred_and_share_deductible():
    pol = policy(CROSS)
    bill = [fee("10000.00")]
    local = settle(pol, who(), at(), bill)
    assert (local.amounts["act_pay_dedc"], local.amounts["hifp_pay"]) == (80000, 828000)
    # another province, filed: deductible 10 % of the bill (1000, between 500 and 2000), 90 %
    filed = settle(pol, who(), at(admdvs="440300", filed=True), bill)
    assert (filed.amounts["act_pay_dedc"], filed.amounts["hifp_pay"]) == (100000, 810000)
    # unfiled: the patient pays 25 % first (2500), then 10 % deductible of the bill, 60 % of the rest
    unfiled = settle(pol, who(), at(admdvs="440300"), bill)
    assert unfiled.tiers[0].first_share == 250000
    assert unfiled.amounts["hifp_pay"] == round((1000000 - 250000 - 100000) * 0.60)
    # referred to a 基层 clinic in the same city pays 5 % first
    referred = settle(pol, who(), at(kind="grassroots", referred=True, admdvs="999902"), bill)
    assert referred.tiers[0].first_share == 50000
    # a county of the same city is local (宁乡 430182 pools with 长沙 4301xx)
    assert at(admdvs="430182", insured="430100").cross_region == "local"
    assert at(admdvs="431000", insured="430100").cross_region == "province"


def test_share_deductible_keeps_floor_and_ceiling():
    pol = policy(CROSS)
    small = settle(pol, who(), at(admdvs="440300", filed=True), [fee("1000.00")])
    big = settle(pol, who(), at(admdvs="440300", filed=True), [fee("90000.00")])
    assert (small.amounts["act_pay_dedc"], big.amounts["act_pay_dedc"]) == (50000, 200000)


# ------------------------------------------------------------------------------------ assistance and poverty

ASSIST = """
[[tiers]]
code = "res_in"
kind = "basic"
fund_pay_type = "390100"
ratios = [{ ratio = "0.50" }]
[[tiers]]
code = "serious"
kind = "serious_illness"
fund_pay_type = "390200"
deductible = { basis = "per_year", amount = "10000.00", adjustments = [{ identities = ["2201", "2202"], factor = "0.5" }] }
cap = { basis = "fund", amount = "300000.00", rules = [{ identities = ["2201", "2202"], unlimited = true }] }
ratios = [{ identities = ["2201", "2202"], ratio = "0.70" }, { ratio = "0.60" }]
[[tiers]]
code = "maf"
kind = "assistance"
fund_pay_type = "610100"
base_includes_preselfpay = INCLUDES
applies = { identities = ["2201"] }
cap = { basis = "fund", amount = "1000.00" }
ratios = [{ ratio = "0.50" }]
"""


def test_serious_illness_for_people_in_poverty_halved_deductible_higher_ratio_no_cap():
    pol = policy(ASSIST.replace("INCLUDES", "false"))
    bill = [fee("100000.00")]
    year = Accumulators({"serious.fund": parse_yuan("300000.00")})  # the ordinary cap is used up
    poor = settle(pol, who("390", "1501", identities=frozenset({"2202"})), at(), bill, year=year)
    other = settle(pol, who("390", "1501"), at(), bill, year=year)
    # base 50000 left after the basic 50 %; poor: deductible 5000, 70 % of 45000, no cap; others: capped at 0
    assert poor.amounts["hifmi_pay"] == round((5000000 - 500000) * 0.70)
    assert other.amounts["hifmi_pay"] == 0


def test_assistance_base_may_include_the_yi_class_first_selfpay():
    """乙类 1000 with 10 % first self-pay: with the setting, assistance counts the 100 too."""
    extra = '[classification]\nyi_selfpay_default = "0.10"\n'
    bill = [fee("1000.00", YI)]
    poor = who("390", "1501", identities=frozenset({"2201"}))
    without = settle(policy(ASSIST.replace("INCLUDES", "false"), extra=extra), poor, at(), bill)
    with_pre = settle(policy(ASSIST.replace("INCLUDES", "true"), extra=extra), poor, at(), bill)
    # in scope 900: basic 450; serious deductible 5000 not met; assistance 50 % of 450 vs of 450 + 100
    assert (without.amounts["maf_pay"], with_pre.amounts["maf_pay"]) == (22500, 27500)


def test_cap_by_months_of_continuous_enrolment_and_salary_share_deductible():
    pol = policy("""
[[tiers]]
code = "emp_in"
kind = "basic"
fund_pay_type = "310100"
cap = { basis = "fund", amount = "1000.00", rules = [{ min_months_enrolled = 60, amount = "5000.00" }] }
ratios = [{ ratio = "0.90" }]
[[tiers]]
code = "cvl"
kind = "civil_servant"
fund_pay_type = "320100"
applies = { cvlserv = true }
deductible = { basis = "per_year", salary_share = "0.05" }
ratios = [{ ratio = "0.50" }]
""")
    bill = [fee("10000.00")]
    new = settle(pol, who(insu_date=date(2024, 1, 1)), at(on=date(2026, 3, 1)), bill)
    long = settle(pol, who(insu_date=date(2015, 1, 1)), at(on=date(2026, 3, 1)), bill)
    assert (new.amounts["hifp_pay"], long.amounts["hifp_pay"]) == (100000, 500000)
    with pytest.raises(AdjudicationError) as e:
        settle(pol, who(), at(), bill)
    assert e.value.field == "person.insu_date"
    civil = who(cvlserv_flag=True, insu_date=date(2015, 1, 1), salary=parse_yuan("120000.00"))
    r = settle(pol, civil, at(), bill)
    # what the patient still bears 5000; deductible 5 % of 120000 = 6000 not met → nothing
    assert (r.tiers[1].act_pay_dedc, r.amounts["cvlserv_pay"]) == (500000, 0)
    with pytest.raises(AdjudicationError) as e:
        settle(pol, who(cvlserv_flag=True, insu_date=date(2015, 1, 1)), at(), bill)
    assert e.value.field == "person.salary"


# ------------------------------------------------------------------------------------- per-item and category rules

ITEMS = """
[[tiers]]
code = "emp_in"
kind = "basic"
fund_pay_type = "310100"
deductible = { basis = "per_visit", amount = "1000.00" }
cap = { basis = "fund", amount = "100000.00" }
ratios = [{ ratio = "0.80" }]
bonuses = [{ list_types = ["102"], add = "0.05" }]
[[item_rules]]
name = "心脏起搏器"
codes = ["C-PACE"]
selfpay_prop = "0.30"
fund_ratio = "1"
[[item_rules]]
name = "高值耗材"
med_chrgitm_types = ["08"]
selfpay_prop = "0.20"
"""


def test_item_paid_in_full_after_its_own_selfpay_and_tcm_bonus():
    pol = policy(ITEMS)
    bill = [fee("5000.00", sn="1"), fee("10000.00", YI, code="C-PACE", sn="2"), fee("2000.00", YI, cat="08", sn="3"),
            fee("1000.00", list_type="102", sn="4")]
    r = settle(pol, who(), at(), bill)
    basic = r.tiers[0]
    # pacemaker: 30 % first (3000), 7000 paid in full, outside deductible and co-pay
    assert basic.direct_pay == 700000
    # the rest in scope: 5000 + 2000 × 80 % + 1000 = 7600; deductible 1000 → 6600 × 80 %, plus 5 points on the 中药
    # line's share: 0.05 × 1000 × 6600 / 7600
    walk = Decimal(660000) * Decimal("0.80") + Decimal("0.05") * 100000 * 660000 / 760000
    assert r.amounts["hifp_pay"] == 700000 + int(walk.quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    assert r.amounts["preselfpay_amt"] == 300000 + 40000


def test_item_rule_that_changes_nothing_or_names_no_basic_tier_is_refused():
    err = refusal(ITEMS + '[[item_rules]]\nname = "x"\ncodes = ["A"]\n')
    assert err.key == "item_rules[2]" and "nothing" in err.problem
    err = refusal(ITEMS + '[[item_rules]]\ncodes = ["A"]\nfund_ratio = "1"\ntiers = ["nope"]\n')
    assert err.key == "item_rules[2].tiers"


def test_bonus_that_lifts_a_ratio_above_one_is_refused():
    err = refusal(ITEMS.replace('add = "0.05"', 'add = "0.25"'))
    assert err.key == "tiers[0].bonuses[0].add" and "above 1" in err.problem


def test_overlapping_bands_and_ratio_above_one_are_refused():
    err = refusal(ITEMS.replace('ratios = [{ ratio = "0.80" }]',
                                'ratios = [{ bands = [{ upto = "100.00", ratio = "0.5" }, { upto = "50.00", ratio = "0.6" }] }]'))
    assert err.key == "tiers[0].ratios[0].bands[1].upto"
    err = refusal(ITEMS.replace('ratio = "0.80"', 'ratio = "1.2"'))
    assert err.key == "tiers[0].ratios[0].ratio"


def test_the_first_item_rule_in_file_order_wins_whatever_key_names_the_item():
    pol = policy(ITEMS + '[[item_rules]]\nname = "later"\ncodes = ["C-CAT"]\nselfpay_prop = "0.90"\n')
    # C-CAT is named by code in the third rule, but the second rule names its category 08 and comes first
    r = settle(pol, who(), at(), [fee("100.00", YI, code="C-CAT", cat="08")])
    assert r.amounts["preselfpay_amt"] == 2000
    both = policy(ITEMS.replace('med_chrgitm_types = ["08"]', 'med_chrgitm_types = ["08"]\ncodes = ["C-BOTH"]'))
    assert settle(both, who(), at(), [fee("100.00", YI, code="C-BOTH", cat="08")]).amounts["preselfpay_amt"] == 2000


# ------------------------------------------------------------------------------------------ a stay across 1 January

STAY = """
[[tiers]]
code = "emp_in"
kind = "basic"
fund_pay_type = "310100"
pool = "pool"
deductible = { basis = "per_visit", amount = "1000.00" }
cap = { basis = "fund", amount = "5000.00" }
ratios = [{ ratio = "0.80" }]
"""


def dated(yuan_: str, on: date, sn: str) -> FeeLine:
    return dataclasses.replace(fee(yuan_, sn=sn), fee_date=on)


def test_stay_across_1_january_splits_caps_but_keeps_the_deductible_and_admission():
    """Admitted 20 Dec 2026, settled 10 Jan 2027; 3000 of fees in each year; 4500 of 2026's 5000 cap already paid.
    Split: the December part meets the visit's deductible 1000 and gets the 500 left of 2026's cap; the January part
    deducts nothing more and pays 80 % of 3000 under 2027's fresh cap. Unsplit: everything counts in 2027."""
    lines = [dated("3000.00", date(2026, 12, 22), "1"), dated("3000.00", date(2027, 1, 5), "2")]
    y2026 = Accumulators({"pool.fund": parse_yuan("4500.00"), "admissions": 2})
    on = at(on=date(2027, 1, 10), seq=3)
    pol = policy_from_toml(HEAD.format(year_start='stay_across_years = "split_by_fee_date"') + STAY, "stay")
    r = adjudicate(pol, who(), on, lines, Accumulators(), None, (), False, other_years={2026: y2026})
    assert identity_violations(r.amounts, r.setldetail) == []
    assert (r.amounts["act_pay_dedc"], r.amounts["hifp_pay"]) == (100000, 50000 + 240000)
    assert r.year_deltas["2026/pool.fund"] == 50000 and r.year_deltas["pool.fund"] == 240000
    assert r.year_deltas["2026/admissions"] == 1 and "admissions" not in r.year_deltas
    assert r.year_deltas["2026/pool.dedc"] == 100000 and "pool.dedc" not in r.year_deltas
    unsplit = adjudicate(policy(STAY), who(), on, lines, Accumulators(), None, (), False)
    assert (unsplit.amounts["act_pay_dedc"], unsplit.amounts["hifp_pay"]) == (100000, 400000)
    with pytest.raises(AdjudicationError) as e:
        adjudicate(pol, who(), on, lines, Accumulators(), None, (), False)
    assert e.value.field == "fee_ocur_time"


def test_stay_across_years_setting_is_validated():
    with pytest.raises(PolicyError) as e:
        policy_from_toml(HEAD.format(year_start='stay_across_years = "both"') + STAY, "stay")
    assert e.value.key == "policy.stay_across_years"
