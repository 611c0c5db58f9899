"""Worked examples inside policy files (issue 12): `medpay policy check` runs them to the fen and names the
example and each amount that differs; the shipped policies' examples and the published ones in tests/data pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medpay.adapters.policy_files import BUILTIN_DIR, load_policy_file
from medpay.cli import app
from medpay.domain.policy import PolicyError
from medpay.services.policy_examples import run_examples

runner = CliRunner()
DATA = Path(__file__).parent / "data" / "policies"  # published worked examples written as policy files
PUBLISHED = DATA / "999999-yi-class-2012.toml"
ALL_FILES = sorted(BUILTIN_DIR.glob("*.toml")) + sorted(DATA.glob("*.toml"))


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_example_reproduces(path):
    policy = load_policy_file(path)
    failures = [(r.example.name, r.error, [str(d) for d in r.differences]) for r in run_examples(policy) if not r.passed]
    assert failures == []


@pytest.mark.parametrize("path", sorted(DATA.glob("*.toml")), ids=lambda p: p.name)
def test_published_examples_carry_their_source(path):
    policy = load_policy_file(path)
    assert policy.examples
    assert all(ex.source.startswith("http") and ex.source in policy.references for ex in policy.examples)


def test_policy_check_runs_examples_and_names_the_difference(tmp_path):
    ok = runner.invoke(app, ["policy", "check", str(PUBLISHED)])
    assert ok.exit_code == 0 and "2/2" in ok.output
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(PUBLISHED.read_text(encoding="utf-8").replace('hifp_pay = "70980.64"', 'hifp_pay = "70980.65"'),
                     encoding="utf-8")
    r = runner.invoke(app, ["policy", "check", str(wrong)], env={"COLUMNS": "200"})
    assert r.exit_code == 1
    assert "李先生" in r.output and "hifp_pay" in r.output and "70980.65" in r.output and "70980.64" in r.output
    assert "1/2" in r.output


def test_example_that_cannot_be_settled_is_a_failure_naming_the_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(PUBLISHED.read_text(encoding="utf-8").replace('setl_date = 2012-04-09', 'setl_date = "04/09"', 1),
                   encoding="utf-8")
    r = runner.invoke(app, ["policy", "check", str(bad)], env={"COLUMNS": "200"})
    assert r.exit_code == 1 and "visit.setl_date" in r.output


@pytest.mark.parametrize("change, key", [
    ('name = "吴女士（在职）"\nsource = "http://xiangrikui.com/jiankang/zhuanjia/20120409/205238_2.html"',
     "examples[0].source"),
    ('expect = { medfee_sumamt = "20000.00", act_pay_dedc = "800.00", hifp_pay = "14723.20", psn_part_amt = "5276.80" }',
     "examples[0]"),
])
def test_example_without_source_or_expectation_is_refused_at_load(tmp_path, change, key):
    text = PUBLISHED.read_text(encoding="utf-8")
    replacement = change.split("\n")[0] if "\n" in change else ""
    broken = tmp_path / "broken.toml"
    broken.write_text(text.replace(change, replacement, 1), encoding="utf-8")
    with pytest.raises(PolicyError) as e:
        load_policy_file(broken)
    assert e.value.key == key


def test_expectation_for_an_unknown_tier_is_refused(tmp_path):
    text = PUBLISHED.read_text(encoding="utf-8").replace("expect_tiers = { emp_inpatient", "expect_tiers = { nope")
    broken = tmp_path / "broken.toml"
    broken.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as e:
        load_policy_file(broken)
    assert e.value.key == "examples[1].expect_tiers.nope"
