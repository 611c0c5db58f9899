"""The policy authoring tools (issue 12, part 4): ``policy diff`` (what changed, in words), ``policy explain`` (one
bill's arithmetic tier by tier, with the engine's own amounts), the admin door's policy JSON and its page in a real
browser (Debian's Chromium driven by Playwright), showing a tier and its worked examples' results."""

from __future__ import annotations

import json
import os
import re
import threading
import time
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from medpay.adapters.db import migrate
from medpay.adapters.db.engine import make_engine, session_factory
from medpay.adapters.crypto import FieldCipher
from medpay.adapters.policy_files import BUILTIN_DIR, builtin_policies
from medpay.cli import app
from medpay.domain.policy import Policy, parse_policy
from medpay.domain.policy_diff import diff_policies
from medpay.services import demo
from medpay.services.policy_explain import explain
from medpay.services.quote import quote
from tests.helpers_server import STAFF, free_port

ROOT = Path(__file__).resolve().parents[1]
# the demo policy without its own worked examples: these tests bring theirs
DEMO_TEXT = (BUILTIN_DIR / "999901-demo-2026.toml").read_text(encoding="utf-8").split("\n[[examples]]")[0]
BILL = json.loads((ROOT / "examples" / "inpatient-bill.json").read_text(encoding="utf-8"))
runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # Rich would fold long Chinese lines at 80 columns

# the demo's inpatient bill as a worked example of the policy file (2328.24 is its hifp_pay), and one whose
# expected amount is wrong on purpose, so the page shows a failure too
EXAMPLES = """
[[examples]]
name = "退休职工三级医院住院"
source = "examples/inpatient-bill.json (medpay demo)"
person = { psn_no = "99990100000002", insutype = "310", psn_type = "1201", insuplc_admdvs = "999901" }
visit = { med_type = "21", level = "3", setl_date = "2026-06-15", admission_seq = 1 }
lines = [
  { med_list_codg = "001102000010000", chrgitm_lv = "01", pric_uplmt_amt = "60.00", cnt = 10, pric = "80.00", det_item_fee_sumamt = "800.00" },
  { med_list_codg = "003100000040000", chrgitm_lv = "02", selfpay_prop = "0.20", det_item_fee_sumamt = "3200.00" },
  { med_list_codg = "XM01AEB002", chrgitm_lv = "02", med_chrgitm_type = "09", cnt = 4, pric = "12.35", det_item_fee_sumamt = "49.40" },
  { med_list_codg = "CZF0000000002", chrgitm_lv = "03", det_item_fee_sumamt = "300.00" },
  { med_list_codg = "002100000020000", chrgitm_lv = "01", det_item_fee_sumamt = "280.00" },
]
expect = { hifp_pay = "2328.24", psn_part_amt = "2301.16" }
expect_tiers = { emp_inpatient = { act_pay_dedc = "900.00" } }

[[examples]]
name = "故意写错的算例"
source = "medpay test"
person = { insutype = "310", psn_type = "1101", insuplc_admdvs = "999901" }
visit = { med_type = "21", level = "2", setl_date = "2026-03-01" }
lines = [{ chrgitm_lv = "01", det_item_fee_sumamt = "1600.00" }]
expect = { hifp_pay = "1.00" }
"""

EXTRA_TIER = """
[[tiers]]
code = "maf_extra"
kind = "assistance"
name = "医疗救助(其他)"
fund_pay_type = "610100"
group = "assistance"
pool = "maf"
applies = { identities = ["2209"], med_categories = ["inpatient"] }
ratios = [{ ratio = "0.50" }]
"""


def policy(text: str, name: str = "demo.toml") -> Policy:
    return parse_policy(tomllib.loads(text), name)


def demo_with_examples() -> Policy:
    return policy(DEMO_TEXT + EXAMPLES)


def changed_text() -> str:
    return (DEMO_TEXT.replace('{ levels = ["3"], amount = "900.00" }', '{ levels = ["3"], amount = "800.00" }')
            .replace('{ levels = ["2"], ratio = "0.88" }', '{ levels = ["2"], ratio = "0.89" }')
            + EXTRA_TIER + EXAMPLES.replace('hifp_pay = "2328.24"', 'hifp_pay = "2418.24"'))


# ------------------------------------------------------------------------------------------------------------
# diff


def test_diff_says_each_change_in_words() -> None:
    changes = diff_policies(demo_with_examples(), policy(changed_text()))
    by_path = {c.path: c for c in changes}
    assert set(by_path) == {"tiers.emp_inpatient.deductible.rules[2].amount", "tiers.emp_inpatient.ratios[3].bands[0].ratio",
                            "tiers.maf_extra", "examples.退休职工三级医院住院.expect.hifp_pay"}
    dedc = by_path["tiers.emp_inpatient.deductible.rules[2].amount"]
    assert dedc.zh == "职工住院统筹（emp_inpatient）起付线 第3条规则（医院等级 三级）：900.00 元 → 800.00 元"
    assert dedc.en == "tier emp_inpatient deductible rule 3 (hospital level 3): 900.00 yuan → 800.00 yuan"
    assert (dedc.kind, dedc.old, dedc.new) == ("changed", 90000, 80000)
    assert by_path["tiers.emp_inpatient.ratios[3].bands[0].ratio"].zh == \
        "职工住院统筹（emp_inpatient）第4条比例规则（医院等级 二级）比例：88% → 89%"
    added = by_path["tiers.maf_extra"]
    assert added.kind == "added" and added.zh == \
        "新增医疗救助(其他)（maf_extra）：医疗救助、基金支付类型 610100、计算基数 个人仍负担的政策范围内金额"
    assert added.text("en").startswith("tier maf_extra added: medical assistance")
    assert by_path["examples.退休职工三级医院住院.expect.hifp_pay"].zh == \
        "算例“退休职工三级医院住院” 应得金额 统筹基金支付：2328.24 元 → 2418.24 元"


def test_diff_of_removed_rules_and_the_head() -> None:
    old = demo_with_examples()
    new_text = (DEMO_TEXT.replace('version = "2026.1"', 'version = "2026.2"')
                .replace('  { levels = ["2"], ratio = "0.88" },\n', '')
                .replace('name = "演示统筹区"', 'name = "演示统筹区"\nyear_start = "07-01"\nreferences = ["https://example.org/a"]'))
    changes = [c.zh for c in diff_policies(old, policy(new_text))]
    assert "版本：2026.1 → 2026.2" in changes
    assert "医保年度起始：01-01 → 07-01" in changes
    assert "新增参考文件：https://example.org/a" in changes
    # rules are matched by position: the 4th rule now is the old 5th, and the 5th is gone
    assert "职工住院统筹（emp_inpatient）第4条比例规则（医院等级 二级）适用条件 医院等级：二级 → 不限" not in changes
    assert any(c.startswith("删除职工住院统筹（emp_inpatient）第5条比例规则（其余情形）") for c in changes)
    assert "删除算例“退休职工三级医院住院”：来源 examples/inpatient-bill.json (medpay demo)" in changes
    assert diff_policies(old, demo_with_examples()) == []


# ------------------------------------------------------------------------------------------------------------
# explain: the numbers are the engine's

EMP_LARGE = {  # a civil servant's 400000-yuan stay: the basic tier's cap overflows into the large-amount tier
    "person": {"insutype": "310", "psn_type": "1101", "insuplc_admdvs": "999901", "cvlserv_flag": "1"},
    "visit": {"med_type": "21", "level": "3", "setl_date": "2026-06-01"},
    "lines": [{"chrgitm_lv": "01", "det_item_fee_sumamt": "400000.00"},
              {"chrgitm_lv": "02", "selfpay_prop": "0.10", "det_item_fee_sumamt": "1234.57"}],
    "accumulators": {"emp_pool.fund": "10000.00"}, "accounts": [{"relation": "self", "balance": "800.00"}],
}
RES_SERIOUS = {  # a resident on 低保 past part of the 大病 deductible and into its second band
    "person": {"insutype": "390", "psn_type": "1401", "insuplc_admdvs": "999901", "identities": ["2202"]},
    "visit": {"med_type": "21", "level": "2", "setl_date": "2026-06-01"},
    "lines": [{"chrgitm_lv": "01", "det_item_fee_sumamt": "150000.00"},
              {"chrgitm_lv": "02", "selfpay_prop": "0.10", "det_item_fee_sumamt": "3333.33"}],
    "accumulators": {"res_serious.dedc": "5000.00", "res_serious.elig": "95000.00"},
}
ASSISTANCE = {  # 特困, chronic outpatient: basic, 大病 below its deductible, assistance near its cap
    "person": {"insutype": "390", "psn_type": "1401", "insuplc_admdvs": "999901", "identities": ["2201"]},
    "visit": {"med_type": "14", "level": "1", "setl_date": "2026-09-09"},
    "lines": [{"chrgitm_lv": "01", "det_item_fee_sumamt": "8765.43"}],
    "accumulators": {"maf.fund": "59000.00"},
}
RETIRED_SECOND_ADMISSION = {**BILL, "visit": {**BILL["visit"], "admission_seq": 2},
                            "visit_accumulators": {"emp_pool.elig": "29000.00"}}


@pytest.mark.parametrize("doc", [BILL, EMP_LARGE, RES_SERIOUS, ASSISTANCE, RETIRED_SECOND_ADMISSION],
                         ids=["retired-inpatient", "employee-large-amount", "resident-serious", "assistance",
                              "second-admission"])
def test_explained_payments_are_the_engines(doc) -> None:
    demo_policy = next(p for p in builtin_policies() if p.admdvs == "999901")
    settled = quote(demo_policy, doc)
    for lang in ("zh", "en"):
        ex = explain(demo_policy, doc, lang)
        assert ex.fund_pay_sumamt == settled["setlinfo"]["fund_pay_sumamt"]
        assert all(t.reproduced for t in ex.tiers)  # the band-by-band steps add up to the engine's payment
        paid: dict[str, int] = {}
        for t in ex.tiers:
            if t.fund_payamt:
                tier = next(x for x in demo_policy.tiers if x.code == t.code)
                paid[tier.fund_pay_type] = paid.get(tier.fund_pay_type, 0) + t.fund_payamt
        assert paid == {d["fund_pay_type"]: d["fund_payamt"] for d in settled["setldetail"]
                        if d["fund_pay_type"] != "310200"}


def test_explanation_reads_as_arithmetic() -> None:
    demo_policy = next(p for p in builtin_policies() if p.admdvs == "999901")
    text = explain(demo_policy, EMP_LARGE).text()
    assert "起付线：900.00 元（每次住院（就诊），第 1 次住院 × 100%），本次已付 0.00 元，本次扣除 900.00 元" in text
    assert "30000.00 元 以上段，比例 90%" in text and "（达到封顶" in text
    assert "封顶线：300000.00 元（按基金支付额），本年已支付 10000.00 元，本次可支付限额 290000.00 元" in text
    assert "基数：职工住院统筹（emp_inpatient）封顶后未支付的部分" in text
    assert "个人账户支付 800.00 元" in text
    text = explain(demo_policy, RES_SERIOUS, "en").text()
    assert "already met this policy year 5000.00 yuan, taken now 10000.00 yuan" in text
    assert "band 95000.00 yuan–100000.00 yuan at 60%: 5000.00 yuan × 60% = 3000.00 yuan" in text


def test_explanation_of_an_item_rule_and_an_age_ratio_adds_up() -> None:
    """The published 2012 implant example: the implant's half paid directly, the rest walked; every payment shown
    is reproduced step by step."""
    from medpay.adapters.policy_files import load_policy_file
    from medpay.services.policy_examples import plain_document

    pol = load_policy_file(ROOT / "tests" / "data" / "policies" / "999999-yi-class-2012.toml")
    ex = next(e for e in pol.examples if "李先生" in e.name)
    result = explain(pol, plain_document(ex.doc))
    assert all(t.reproduced for t in result.tiers)
    assert "单列项目按其自身比例由统筹直接支付 25000.00 元" in result.text()
    assert result.amounts["hifp_pay"] == 7098064


# ------------------------------------------------------------------------------------------------------------
# CLI


def test_cli_diff_and_explain(tmp_path: Path) -> None:
    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    old.write_text(DEMO_TEXT + EXAMPLES, encoding="utf-8")
    new.write_text(changed_text(), encoding="utf-8")
    r = runner.invoke(app, ["policy", "diff", str(old), str(new)], env=WIDE)
    assert r.exit_code == 0, r.output
    assert "900.00 元 → 800.00 元" in r.stdout and "新增医疗救助(其他)（maf_extra）" in r.stdout
    r = runner.invoke(app, ["policy", "diff", str(old), str(new), "--lang", "en"], env=WIDE)
    assert r.exit_code == 0 and "tier maf_extra added" in r.stdout
    r = runner.invoke(app, ["policy", "diff", str(old), str(old)], env=WIDE)
    assert r.exit_code == 0 and "no differences" in r.stdout

    bill = tmp_path / "bill.json"
    bill.write_text(json.dumps(BILL), encoding="utf-8")
    r = runner.invoke(app, ["policy", "explain", str(bill)], env=WIDE)
    assert r.exit_code == 0, r.output
    assert "城镇职工基本医疗保险统筹基金支付：2328.24 元" in r.stdout and "现金支付 1801.16 元" in r.stdout
    r = runner.invoke(app, ["policy", "explain", str(bill), "--policy", str(new), "--lang", "en"], env=WIDE)
    assert r.exit_code == 0 and "Deductible: 800.00 yuan" in r.stdout


def test_cli_bad_files_exit_1_naming_the_problem(tmp_path: Path) -> None:
    bill = tmp_path / "bill.json"
    bill.write_text(json.dumps({**BILL, "person": {"insutype": "310", "insuplc_admdvs": "999901"}}), encoding="utf-8")
    r = runner.invoke(app, ["policy", "explain", str(bill)], env=WIDE)
    assert r.exit_code == 1 and "person.psn_type: missing" in r.output and "Traceback" not in r.output
    bill.write_text("{not json", encoding="utf-8")
    r = runner.invoke(app, ["policy", "explain", str(bill)], env=WIDE)
    assert r.exit_code == 1 and "not readable JSON" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[policy]\nadmdvs = "12"\n', encoding="utf-8")
    r = runner.invoke(app, ["policy", "diff", str(bad), str(BUILTIN_DIR / "999901-demo-2026.toml")], env=WIDE)
    assert r.exit_code == 1 and "bad.toml: policy.admdvs" in r.output
    r = runner.invoke(app, ["policy", "explain", str(ROOT / "examples" / "inpatient-bill.json"), "--policy", str(bad)],
                      env=WIDE)
    assert r.exit_code == 1 and "policy.admdvs" in r.output


# ------------------------------------------------------------------------------------------------------------
# the admin door: JSON and page


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory):
    """The platform on a seeded SQLite database, with the demo policy carrying the examples above."""
    from medpay.api.platform import build_platform

    url = f"sqlite:///{tmp_path_factory.mktemp('policy-tools') / 'medpay.db'}"
    cipher = FieldCipher(os.urandom(32))
    engine = make_engine(url)
    migrate.upgrade(engine)
    demo.seed(session_factory(engine), cipher)
    engine.dispose()
    policies = [p for p in builtin_policies() if p.admdvs != "999901"] + [demo_with_examples()]
    p = build_platform(url, policies=policies, cipher=cipher)
    yield p
    p.engine.dispose()


@pytest.fixture(scope="module")
def client(platform):
    from medpay.api.app import create_app

    with TestClient(create_app(platform)) as c:
        yield c


def test_policy_json_needs_the_staff_key(client: TestClient) -> None:
    path = "/api/v1/admin/policies/999901@2026.1"
    assert client.get(path).status_code in (401, 403)
    assert client.get(path, headers={"authorization": "Bearer mpk_nobody_xxxxxxxx"}).status_code in (401, 403)
    r = client.get("/api/v1/admin/policies/000000@nope", headers=STAFF)
    assert r.status_code == 404 and r.json()["error"]["field"] == "policy_id" and "000000@nope" in r.json()["error"]["message"]
    r = client.get(path, headers=STAFF)
    assert r.status_code == 200
    body = r.json()
    assert body["policy_id"] == "999901@2026.1" and body["tiers"][0]["title"] == "职工住院统筹（emp_inpatient）"
    good, bad = body["examples"]
    assert good["passed"] is True and good["amounts"][0] == {
        "field": "hifp_pay", "label": "统筹基金支付", "expected": "2328.24", "computed": "2328.24", "ok": True}
    assert bad["passed"] is False and bad["amounts"][0]["computed"] != "1.00"
    en = client.get(path, params={"lang": "en"}, headers=STAFF).json()
    assert en["tiers"][0]["title"] == "tier emp_inpatient" and "deductible: basis per admission (visit)" in \
        "\n".join(en["tiers"][0]["lines"])
    assert "/api/v1/admin/policies/{policy_id}" in client.get("/openapi.json").json()["paths"]


def test_policy_pages_carry_no_data_and_no_inline_script(client: TestClient) -> None:
    r = client.get("/admin/policies/999901@2026.1")
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    assert "emp_inpatient" not in r.text  # the data comes from the API, with the key
    assert "<script>" not in r.text
    assert 'data-policy-id="999901@2026.1"' in r.text
    r = client.get("/admin/policies/%3Cb%3E?lang=en")
    assert "<b>" not in r.text and "&lt;b&gt;" in r.text and 'lang="en"' in r.text


@pytest.fixture(scope="module")
def served(platform):
    """The app served by uvicorn in a thread (the page needs a real origin for its script and its API calls)."""
    import uvicorn

    from medpay.api.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(platform), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_policy_page_in_a_browser(served: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.helpers_browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="zh-CN")
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{served}/admin/policies")
            page.fill("#staff-key", STAFF["authorization"].removeprefix("Bearer "))
            page.click("#key-form button[type=submit]")
            page.get_by_role("link", name="演示统筹区").click()
            page.wait_for_url(re.compile(r"/admin/policies/999901(@|%40)2026\.1\?lang=zh$"))
            assert "mpk_" not in page.url
            tier = page.locator('[data-tier="emp_inpatient"]')
            expect(tier.locator("h3")).to_have_text("职工住院统筹（emp_inpatient）")
            expect(tier).to_contain_text("第3条规则（医院等级 三级）：900.00 元")
            good = page.locator('[data-example="退休职工三级医院住院"]')
            expect(good.locator(".badge")).to_have_text("通过")
            expect(good.locator('[data-field="hifp_pay"]')).to_contain_text("2328.24")
            expect(page.locator('[data-example="故意写错的算例"] .badge')).to_have_text("不符")
            page.click("#sign-out")
            expect(page.locator("#key-form")).to_be_visible()
            assert errors == []
        finally:
            browser.close()


def test_diff_words_the_new_settings() -> None:
    """Per-disease caps are money, periods and age ratios have their own words (the variants of issue 12)."""
    from benchmarks.core import variants_doc

    demo_policy = next(p for p in builtin_policies() if p.admdvs == "999901")
    words = [c.text("zh") for c in diff_policies(demo_policy, parse_policy(variants_doc(), "variants"))]
    assert "新增职工门诊慢特病（emp_chronic）封顶线 按病种封顶 M03900：1000.00 元" in words
    assert "职工门诊统筹（emp_outpatient）封顶线 累计周期：医保年度 → 季度" in words
    assert "医保年度起始：01-01 → 07-01" in words
    assert any("起算年龄 60" in w and "最高 96%" in w for w in words)


def test_explanation_of_a_ratio_bonus_and_a_first_share_adds_up() -> None:
    """A 中药 bonus and a referral's first share: every tier's steps reproduce the engine's payment."""
    pol = parse_policy(tomllib.loads(DEMO_TEXT.replace(
        'applies = { insutypes = ["310"], med_categories = ["inpatient"] }\ndeductible = { basis = "per_visit", admission_factors',
        'applies = { insutypes = ["310"], med_categories = ["inpatient"] }\nbonuses = [{ med_chrgitm_types = ["11"], add = "0.05" }]\n'
        'first_share = [{ referred = true, share = "0.15" }]\ndeductible = { basis = "per_visit", admission_factors', 1)), "bonus")
    assert pol.tiers[0].bonuses and pol.tiers[0].first_share
    doc = {"person": {"insutype": "310", "psn_type": "1101", "insuplc_admdvs": "999901"},
           "visit": {"med_type": "21", "level": "3", "setl_date": "2026-05-01", "referred": "1"},
           "lines": [{"chrgitm_lv": "01", "det_item_fee_sumamt": "8000.00"},
                     {"chrgitm_lv": "01", "med_chrgitm_type": "11", "det_item_fee_sumamt": "2000.00"}]}
    result = explain(pol, doc)
    assert all(t.reproduced for t in result.tiers), result.text()
    text = result.text()
    assert "比例加成" in text and "先行自付 1500.00 元" in text
