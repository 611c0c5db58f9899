"""Policy documents: the demo loads; every kind of bad document is refused with a PolicyError naming
the source, the key and the problem."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from medpay.adapters.policy_files import builtin_policies, load_policy_dir, load_policy_file
from medpay.domain.policy import Band, PolicyError, parse_policy, select_policy
from medpay.money import Rounding
from tests.builders import DEMO_DOC, DEMO_PATH, demo_doc

DEMO_TEXT = DEMO_PATH.read_text(encoding="utf-8")
SOURCE = "bad-policy.toml"


def tier_index(doc: dict, code: str) -> int:
    return next(i for i, t in enumerate(doc["tiers"]) if t["code"] == code)


def refuse(doc: dict) -> PolicyError:
    with pytest.raises(PolicyError) as e:
        parse_policy(doc, SOURCE)
    err = e.value
    assert err.source == SOURCE
    assert str(err) == f"{SOURCE}: {err.key}: {err.problem}"
    return err


# --------------------------------------------------------------------------------------------------
# the demo policy


def test_demo_policy_file_loads_with_its_declared_shape():
    p = load_policy_file(DEMO_PATH)
    assert p.admdvs == "999901"
    assert p.version == "2026.1"
    assert p.policy_id == "999901@2026.1"
    assert p.effective_from == date(2026, 1, 1) and p.effective_to is None
    assert p.rounding is Rounding.HALF_UP
    assert p.preselfpay_rounding_scope == "per_line"
    assert [t.code for t in p.tiers] == [
        "emp_inpatient", "emp_chronic", "emp_outpatient", "emp_large", "emp_civil_servant",
        "res_inpatient", "res_chronic", "res_outpatient", "res_serious", "maf_tekun", "maf_dibao",
    ]
    assert p.psn_class("1201") == "retired" and p.psn_class("1501") == "resident" and p.psn_class("9999") == ""
    assert p.med_category("21") == "inpatient" and p.med_category("14") == "chronic"
    assert p.yi_selfpay_default == Decimal("0.10")
    assert p.yi_selfpay_by_category == {"09": Decimal("0.05"), "11": Decimal("0.10")}
    assert p.account.mutual_aid and "spouse" in p.account.mutual_aid_relations
    assert p.account.insutypes == frozenset({"310"})


def test_demo_policy_tier_knobs_are_read_exactly():
    p = load_policy_file(DEMO_PATH)
    tiers = {t.code: t for t in p.tiers}
    inpatient = tiers["emp_inpatient"]
    assert inpatient.kind == "basic" and inpatient.setl_field == "hifp_pay" and inpatient.base == "inscp"
    assert inpatient.deductible.basis == "per_visit" and inpatient.deductible.mode == "before_ratio"
    assert inpatient.deductible.admission_factors == (Decimal("1"), Decimal("0.5"))
    assert [r.amount for r in inpatient.deductible.rules] == [30000, 60000, 90000, 30000]
    assert inpatient.cap.basis == "fund" and inpatient.cap.amount == 30_000_000
    assert inpatient.ratios[0].bands == (Band(3_000_000, Decimal("0.90")), Band(None, Decimal("0.95")))
    large = tiers["emp_large"]
    assert large.base == "overflow" and large.overflow_of == "emp_inpatient" and large.setl_field == "hifob_pay"
    assert large.axis == "year" and large.pool == "emp_large"
    assert tiers["emp_civil_servant"].applies.cvlserv is True
    assert tiers["maf_dibao"].group == "assistance" and tiers["maf_dibao"].applies.identities == {"2202", "2203"}


def test_builtin_policies_include_the_demo_and_select_by_date():
    policies = list(builtin_policies())
    assert select_policy(policies, "999901", date(2026, 6, 1)).policy_id == "999901@2026.1"
    with pytest.raises(LookupError):
        select_policy(policies, "999901", date(2025, 12, 31))


def test_parsing_does_not_mutate_the_document():
    doc = demo_doc()
    parse_policy(doc, SOURCE)
    assert doc == DEMO_DOC


# --------------------------------------------------------------------------------------------------
# bad documents: the [policy] head


@pytest.mark.parametrize("key", ["admdvs", "name", "version", "effective_from"])
def test_missing_policy_key(key):
    doc = demo_doc()
    del doc["policy"][key]
    err = refuse(doc)
    assert err.key == f"policy.{key}"
    assert err.problem == "missing"


def test_missing_policy_table():
    doc = demo_doc()
    del doc["policy"]
    err = refuse(doc)
    assert (err.key, err.problem) == ("policy", "missing")


@pytest.mark.parametrize("admdvs", ["99990", "9999011", "abcdef", "99-901"])
def test_bad_admdvs(admdvs):
    doc = demo_doc()
    doc["policy"]["admdvs"] = admdvs
    err = refuse(doc)
    assert err.key == "policy.admdvs"
    assert "6 digits" in err.problem and repr(admdvs) in err.problem


def test_admdvs_that_is_not_a_string():
    doc = demo_doc()
    doc["policy"]["admdvs"] = 999901
    err = refuse(doc)
    assert err.key == "policy.admdvs" and "string" in err.problem


def test_effective_to_before_effective_from():
    doc = demo_doc()
    doc["policy"]["effective_to"] = date(2025, 12, 31)
    err = refuse(doc)
    assert err.key == "policy.effective_to"
    assert "before effective_from" in err.problem


def test_effective_from_that_is_not_a_date():
    doc = demo_doc()
    doc["policy"]["effective_from"] = "2026-13-01"
    err = refuse(doc)
    assert err.key == "policy.effective_from" and "YYYY-MM-DD" in err.problem


def test_effective_to_equal_to_effective_from_is_a_one_day_policy():
    doc = demo_doc()
    doc["policy"]["effective_to"] = date(2026, 1, 1)
    p = parse_policy(doc, SOURCE)
    assert p.in_force(date(2026, 1, 1)) and not p.in_force(date(2026, 1, 2))


def test_unknown_rounding_mode():
    doc = demo_doc()
    doc["rounding"]["mode"] = "nearest"
    err = refuse(doc)
    assert err.key == "rounding.mode" and "half_up" in err.problem and "'nearest'" in err.problem


# --------------------------------------------------------------------------------------------------
# bad documents: tiers


def test_no_tiers():
    doc = demo_doc()
    doc["tiers"] = []
    err = refuse(doc)
    assert err.key == "tiers" and "at least one tier" in err.problem


def test_no_basic_tier():
    doc = demo_doc()
    doc["tiers"] = [t for t in doc["tiers"] if t["kind"] == "assistance"]
    err = refuse(doc)
    assert err.key == "tiers" and "basic" in err.problem


def test_unknown_tier_kind():
    doc = demo_doc()
    doc["tiers"][0]["kind"] = "dental"
    err = refuse(doc)
    assert err.key == "tiers[0].kind"
    assert "'dental'" in err.problem and "large_amount" in err.problem


def test_duplicate_tier_code():
    doc = demo_doc()
    doc["tiers"][1]["code"] = doc["tiers"][0]["code"]
    err = refuse(doc)
    assert err.key == "tiers[1].code"
    assert "duplicate" in err.problem and "'emp_inpatient'" in err.problem


def test_personal_account_fund_type_as_a_tier():
    doc = demo_doc()
    doc["tiers"][2]["fund_pay_type"] = "310200"
    err = refuse(doc)
    assert err.key == "tiers[2].fund_pay_type"
    assert "310200" in err.problem and "personal account" in err.problem


@pytest.mark.parametrize("code", ["31010", "3101000", "31O100"])
def test_fund_pay_type_not_six_digits(code):
    doc = demo_doc()
    doc["tiers"][0]["fund_pay_type"] = code
    err = refuse(doc)
    assert err.key == "tiers[0].fund_pay_type" and "6-digit" in err.problem


def test_overflow_of_an_unknown_tier():
    doc = demo_doc()
    i = tier_index(doc, "emp_large")
    doc["tiers"][i]["overflow_of"] = "emp_hospital"
    err = refuse(doc)
    assert err.key == f"tiers[{i}].overflow_of"
    assert "'emp_hospital'" in err.problem and "no earlier tier" in err.problem


def test_overflow_of_a_later_tier():
    doc = demo_doc()
    i = tier_index(doc, "emp_large")
    doc["tiers"][i]["overflow_of"] = "res_inpatient"  # exists, but only after emp_large
    err = refuse(doc)
    assert err.key == f"tiers[{i}].overflow_of" and "no earlier tier" in err.problem


def test_overflow_of_an_uncapped_tier():
    doc = demo_doc()
    del doc["tiers"][tier_index(doc, "emp_inpatient")]["cap"]
    i = tier_index(doc, "emp_large")
    err = refuse(doc)
    assert err.key == f"tiers[{i}].overflow_of"
    assert "'emp_inpatient'" in err.problem and "no cap" in err.problem


def test_overflow_base_without_overflow_of():
    doc = demo_doc()
    i = tier_index(doc, "emp_large")
    del doc["tiers"][i]["overflow_of"]
    err = refuse(doc)
    assert (err.key, err.problem) == (f"tiers[{i}].overflow_of", "missing")


def test_bands_not_rising():
    doc = demo_doc()
    doc["tiers"][0]["ratios"][0]["bands"] = [
        {"upto": "30000.00", "ratio": "0.90"}, {"upto": "20000.00", "ratio": "0.92"}, {"ratio": "0.95"},
    ]
    err = refuse(doc)
    assert err.key == "tiers[0].ratios[0].bands[1].upto"
    assert "rise" in err.problem


def test_bands_with_an_equal_limit_do_not_rise():
    doc = demo_doc()
    doc["tiers"][0]["ratios"][0]["bands"] = [
        {"upto": "30000.00", "ratio": "0.90"}, {"upto": "30000.00", "ratio": "0.92"}, {"ratio": "0.95"},
    ]
    err = refuse(doc)
    assert err.key == "tiers[0].ratios[0].bands[1].upto" and "rise" in err.problem


def test_open_band_not_last():
    doc = demo_doc()
    doc["tiers"][0]["ratios"][0]["bands"] = [{"ratio": "0.90"}, {"upto": "30000.00", "ratio": "0.95"}]
    err = refuse(doc)
    assert err.key == "tiers[0].ratios[0].bands[0].upto"
    assert "last band" in err.problem


def test_band_without_ratio():
    doc = demo_doc()
    doc["tiers"][0]["ratios"][0]["bands"] = [{"upto": "30000.00"}, {"ratio": "0.95"}]
    err = refuse(doc)
    assert (err.key, err.problem) == ("tiers[0].ratios[0].bands[0].ratio", "missing")


@pytest.mark.parametrize("ratio", ["1.5", "1.0001", 2, "-0.1"])
def test_ratio_outside_zero_to_one(ratio):
    doc = demo_doc()
    doc["tiers"][1]["ratios"][1]["ratio"] = ratio
    err = refuse(doc)
    assert err.key == "tiers[1].ratios[1].ratio"
    assert "between 0 and 1" in err.problem


def test_band_ratio_above_one():
    doc = demo_doc()
    doc["tiers"][0]["ratios"][0]["bands"][1]["ratio"] = "1.05"
    err = refuse(doc)
    assert err.key == "tiers[0].ratios[0].bands[1].ratio" and "between 0 and 1" in err.problem


def test_ratio_that_is_not_a_number():
    doc = demo_doc()
    doc["tiers"][1]["ratios"][1]["ratio"] = "85%"
    err = refuse(doc)
    assert err.key == "tiers[1].ratios[1].ratio" and "not a number" in err.problem


def test_both_ratio_and_bands():
    doc = demo_doc()
    doc["tiers"][0]["ratios"][0]["ratio"] = "0.90"
    err = refuse(doc)
    assert err.key == "tiers[0].ratios[0]"
    assert "not both" in err.problem


def test_ratio_rule_with_neither_ratio_nor_bands():
    doc = demo_doc()
    doc["tiers"][1]["ratios"][1] = {}
    err = refuse(doc)
    assert err.key == "tiers[1].ratios[1].ratio" and "missing" in err.problem


def test_tier_without_ratios():
    doc = demo_doc()
    del doc["tiers"][1]["ratios"]
    err = refuse(doc)
    assert err.key == "tiers[1].ratios" and "missing" in err.problem


@pytest.mark.parametrize("basis", ["per_visit", "per_year"])
def test_deductible_basis_without_amount(basis):
    doc = demo_doc()
    i = tier_index(doc, "emp_outpatient")
    doc["tiers"][i]["deductible"] = {"basis": basis}
    err = refuse(doc)
    assert err.key == f"tiers[{i}].deductible.amount"
    assert "missing" in err.problem and repr(basis) in err.problem


def test_unknown_deductible_basis():
    doc = demo_doc()
    i = tier_index(doc, "emp_outpatient")
    doc["tiers"][i]["deductible"]["basis"] = "per_week"
    err = refuse(doc)
    assert err.key == f"tiers[{i}].deductible.basis" and "'per_week'" in err.problem


def test_deductible_amount_with_more_than_two_decimals():
    doc = demo_doc()
    i = tier_index(doc, "emp_outpatient")
    doc["tiers"][i]["deductible"]["amount"] = "500.001"
    err = refuse(doc)
    assert err.key == f"tiers[{i}].deductible.amount" and "two decimals" in err.problem


def test_deductible_rule_without_amount():
    doc = demo_doc()
    del doc["tiers"][0]["deductible"]["rules"][1]["amount"]
    err = refuse(doc)
    assert (err.key, err.problem) == ("tiers[0].deductible.rules[1].amount", "missing")


def test_admission_factors_without_per_visit():
    doc = demo_doc()
    i = tier_index(doc, "emp_outpatient")
    doc["tiers"][i]["deductible"]["admission_factors"] = ["1", "0.5"]
    err = refuse(doc)
    assert err.key == f"tiers[{i}].deductible.admission_factors"
    assert "per_visit" in err.problem


def test_admission_factor_above_one():
    doc = demo_doc()
    doc["tiers"][0]["deductible"]["admission_factors"] = ["1", "1.5"]
    err = refuse(doc)
    assert err.key == "tiers[0].deductible.admission_factors[1]" and "between 0 and 1" in err.problem


def test_absolute_bands_contradict_a_deductible_taken_from_the_fund():
    doc = demo_doc()
    doc["tiers"][0]["band_origin"] = "absolute"
    doc["tiers"][0]["deductible"]["mode"] = "from_fund"
    err = refuse(doc)
    assert err.key == "tiers[0].deductible.mode"
    assert "from_fund" in err.problem and "absolute" in err.problem


def test_absolute_bands_on_a_year_axis_with_a_per_visit_deductible():
    doc = demo_doc()
    doc["tiers"][0]["band_origin"] = "absolute"
    doc["tiers"][0]["axis"] = "year"
    err = refuse(doc)
    assert err.key == "tiers[0].band_origin" and "per_year" in err.problem


def test_absolute_bands_are_fine_on_their_own():
    doc = demo_doc()
    doc["tiers"][0]["band_origin"] = "absolute"
    assert parse_policy(doc, SOURCE).tiers[0].band_origin == "absolute"


def test_unknown_cap_basis():
    doc = demo_doc()
    doc["tiers"][0]["cap"]["basis"] = "visit"
    err = refuse(doc)
    assert err.key == "tiers[0].cap.basis" and "'visit'" in err.problem


def test_cap_amount_beyond_decimal_precision():
    doc = demo_doc()
    doc["tiers"][0]["cap"]["amount"] = "1e30"
    err = refuse(doc)
    assert err.key == "tiers[0].cap.amount" and "too large" in err.problem


def test_unknown_tier_axis_and_setl_field():
    doc = demo_doc()
    doc["tiers"][0]["axis"] = "month"
    assert refuse(doc).key == "tiers[0].axis"
    doc = demo_doc()
    doc["tiers"][0]["setl_field"] = "acct_pay"
    err = refuse(doc)
    assert err.key == "tiers[0].setl_field" and "'acct_pay'" in err.problem


def test_count_prior_dedc_must_be_boolean():
    doc = demo_doc()
    i = tier_index(doc, "res_serious")
    doc["tiers"][i]["count_prior_dedc"] = "yes"
    err = refuse(doc)
    assert err.key == f"tiers[{i}].count_prior_dedc" and "true or false" in err.problem


def test_cvlserv_match_must_be_boolean():
    doc = demo_doc()
    i = tier_index(doc, "emp_civil_servant")
    doc["tiers"][i]["applies"]["cvlserv"] = "1"
    err = refuse(doc)
    assert err.key == f"tiers[{i}].applies.cvlserv"


# --------------------------------------------------------------------------------------------------
# bad documents: classes, account


def test_code_in_two_person_classes():
    doc = demo_doc()
    doc["person_classes"]["retired"].append("1101")
    err = refuse(doc)
    assert err.key == "person_classes.retired"
    assert "'1101'" in err.problem and "'in_service'" in err.problem


def test_code_in_two_med_categories():
    doc = demo_doc()
    doc["med_categories"]["inpatient"].append("14")
    err = refuse(doc)
    assert err.key == "med_categories.inpatient"
    assert "'14'" in err.problem and "'chronic'" in err.problem


def test_tier_using_an_undefined_med_category():
    doc = demo_doc()
    doc["tiers"][0]["applies"]["med_categories"] = ["inpatient", "daycare"]
    err = refuse(doc)
    assert err.key == "tiers.emp_inpatient.applies.med_categories"
    assert "'daycare'" in err.problem and "undefined" in err.problem


def test_tier_using_an_undefined_person_class():
    doc = demo_doc()
    doc["tiers"][0]["applies"]["psn_classes"] = ["veteran"]
    err = refuse(doc)
    assert err.key == "tiers.emp_inpatient.applies.psn_classes" and "'veteran'" in err.problem


def test_ratio_rule_using_an_undefined_person_class():
    doc = demo_doc()
    doc["tiers"][0]["ratios"][1]["psn_classes"] = ["retird"]
    err = refuse(doc)
    assert "psn_classes" in err.key and "'retird'" in err.problem


def test_deductible_rule_using_an_undefined_med_category():
    doc = demo_doc()
    doc["tiers"][0]["deductible"]["rules"][0]["med_categories"] = ["inpatent"]
    err = refuse(doc)
    assert "med_categories" in err.key and "'inpatent'" in err.problem


def test_missing_med_categories_table():
    doc = demo_doc()
    del doc["med_categories"]
    err = refuse(doc)
    assert (err.key, err.problem) == ("med_categories", "missing")


def test_mutual_aid_without_relations():
    doc = demo_doc()
    del doc["account"]["mutual_aid_relations"]
    err = refuse(doc)
    assert err.key == "account.mutual_aid_relations"
    assert "missing" in err.problem and "mutual aid" in err.problem


def test_mutual_aid_must_be_boolean():
    doc = demo_doc()
    doc["account"]["mutual_aid"] = "true"
    err = refuse(doc)
    assert err.key == "account.mutual_aid"


def test_unknown_account_part():
    doc = demo_doc()
    doc["account"]["payable"] = ["fulamt_ownpay", "registration_fee"]
    err = refuse(doc)
    assert err.key == "account.payable"
    assert "registration_fee" in err.problem and "inscp_selfpay" in err.problem


def test_yi_selfpay_default_above_one():
    doc = demo_doc()
    doc["classification"]["yi_selfpay_default"] = "1.2"
    err = refuse(doc)
    assert err.key == "classification.yi_selfpay_default" and "between 0 and 1" in err.problem


def test_yi_selfpay_by_category_above_one():
    doc = demo_doc()
    doc["classification"]["yi_selfpay_by_category"]["09"] = "5"
    err = refuse(doc)
    assert err.key == "classification.yi_selfpay_by_category.09"


# --------------------------------------------------------------------------------------------------
# files on disk


def test_toml_syntax_error_names_the_file(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text(DEMO_TEXT.replace('admdvs = "999901"', 'admdvs = "999901'), encoding="utf-8")
    with pytest.raises(PolicyError) as e:
        load_policy_file(path)
    assert e.value.source == str(path)
    assert e.value.key == "(syntax)"
    assert "line 7" in e.value.problem


def test_file_that_is_not_utf8(tmp_path: Path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(DEMO_TEXT.replace("演示统筹区", "r\u00e9gion").encode("latin-1", errors="replace"))
    with pytest.raises(PolicyError) as e:
        load_policy_file(path)
    assert (e.value.source, e.value.key) == (str(path), "(file)")
    assert "UTF-8" in e.value.problem


def test_missing_file(tmp_path: Path):
    path = tmp_path / "nope.toml"
    with pytest.raises(PolicyError) as e:
        load_policy_file(path)
    assert (e.value.source, e.value.key) == (str(path), "(file)")
    assert "cannot be read" in e.value.problem


def test_semantic_error_in_a_file_names_the_file(tmp_path: Path):
    path = tmp_path / "999901-bad.toml"
    path.write_text(DEMO_TEXT.replace('admdvs = "999901"', 'admdvs = "9999"'), encoding="utf-8")
    with pytest.raises(PolicyError) as e:
        load_policy_file(path)
    assert (e.value.source, e.value.key) == ("999901-bad.toml", "policy.admdvs")


def test_same_policy_version_twice_in_a_folder(tmp_path: Path):
    (tmp_path / "a.toml").write_text(DEMO_TEXT, encoding="utf-8")
    (tmp_path / "b.toml").write_text(DEMO_TEXT, encoding="utf-8")
    with pytest.raises(PolicyError) as e:
        load_policy_dir(tmp_path)
    assert e.value.key == "policy.version" and "twice" in e.value.problem
