"""Published worked examples (计算举例) of Chinese regions' reimbursement, reproduced through the engine.

Each test builds a policy (from a file in ``src/medpay/policies`` or a small inline TOML holding exactly
the parameters the example states), the bill, the person, the visit and the year-to-date accumulators
the example describes, then asserts the published fund payments and the patient's share to the fen.
Where the publication's own arithmetic is wrong, the test asserts the correct figure and its docstring
says what was printed and why it is wrong.

Sources are listed in /work/research/examples.md (A1…A18, B1, B2). They are mostly re-posts found by a
search tool; none was checked against the original policy document. ``psn_type`` and identity codes in the
inline policies only route the test person to the category the example talks about.

Where an example starts from "the amount left after basic insurance" or states a tier's payment without
its parameters, the inline policy uses a *stand-in*: a tier with ratio 0 (nothing paid) or ratio 1 capped
at the published payment. The docstring says so each time.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import partial

import pytest

from medpay.adapters.policy_files import BUILTIN_DIR, load_policy_file
from medpay.domain.adjudication import Adjudication
from medpay.domain.model import AccountSource, Accumulators, CatalogItem, ChrgitmLv, FeeLine
from medpay.money import parse_yuan
from tests import builders
from tests.builders import BING, JIA, YI, person, policy_from_toml

# --------------------------------------------------------------------------------------------------
# helpers

# the examples' visits default to a 2024 settlement date; no account pays unless a test says so
visit = partial(builders.visit, on=date(2024, 1, 15))
settle = partial(builders.settle, use_account=False)


def line(sn: str, lv: ChrgitmLv, yuan: str, *, selfpay_prop: str | None = None, name: str = "",
         code: str = "") -> FeeLine:
    item = CatalogItem(
        med_list_codg=code or f"T{sn}", name=name or f"item {sn}", chrgitm_lv=lv,
        selfpay_prop=Decimal(selfpay_prop) if selfpay_prop is not None else None,
    )
    return FeeLine(feedetl_sn=sn, item=item, cnt=Decimal(1), pric=Decimal(yuan), det_item_fee_sumamt=parse_yuan(yuan))


def assert_yuan(result: Adjudication, **expected: str) -> None:
    """Compare amounts in fen; expected values are yuan strings as the example prints them."""
    got = {k: result.amounts[k] for k in expected}
    want = {k: parse_yuan(v) for k, v in expected.items()}
    assert got == want


# ==================================================================================================
# Named regions
# ==================================================================================================

CHENGDU_URL = "http://xiangrikui.com/shehuibaoxian/chaxun/20121204/281311_1.html"

CHENGDU_A1 = f"""
# 成都 (2012 article), 职工 住院, the 40-year-old's parameters. Source: {CHENGDU_URL}
[policy]
admdvs = "510100"
name = "成都市职工住院（2012年举例）"
version = "2012-A1"
effective_from = 2012-01-01
source = "{CHENGDU_URL}"
[person_classes]
in_service = ["1101"]
[med_categories]
inpatient = ["21"]
[[tiers]]
code = "emp_inpatient"
kind = "basic"
fund_pay_type = "310100"
applies = {{ insutypes = ["310"], med_categories = ["inpatient"] }}
deductible = {{ basis = "per_visit", rules = [{{ levels = ["1"], amount = "404.20" }}] }}  # 8084×5%
ratios = [{{ ratio = "0.83" }}]  # (75 + 年龄40×0.2)%: age-linked, not expressible — fixed for this person
"""


def test_chengdu_employee_inpatient_level1():
    """成都, 职工 住院, 一级医院, c. 2012 — deductible a share of the average wage, age-linked ratio.

    Source: http://xiangrikui.com/shehuibaoxian/chaxun/20121204/281311_1.html (research A1).
    Published: "(30000-8084×5%)×[(75+40×0.2)÷100]=29595.8×83%=24564.51元
    个人需要负担的费用就是: 30000-24564.51=5435.49元".
    The ratio (75 + age×0.2)% depends on the person's age, which the policy format cannot match on;
    the inline policy fixes it at 83% for this 40-year-old.
    """
    pol = policy_from_toml(CHENGDU_A1, "chengdu-a1")
    r = settle(pol, person("310", "1101", "510100"), visit("21", "1", "510100"), [line("1", JIA, "30000.00")])
    assert_yuan(r, medfee_sumamt="30000.00", inscp_scp_amt="30000.00", act_pay_dedc="404.20",
                hifp_pay="24564.51", fund_pay_sumamt="24564.51", psn_part_amt="5435.49", psn_cash_pay="5435.49")


CHENGDU_A2 = f"""
# 成都 (2012 article), 职工 住院 三级, the 50-year-old's parameters. Source: {CHENGDU_URL}
[policy]
admdvs = "510100"
name = "成都市职工住院（2012年举例，封顶）"
version = "2012-A2"
effective_from = 2012-01-01
source = "{CHENGDU_URL}"
[person_classes]
in_service = ["1101"]
[med_categories]
inpatient = ["21"]
[[tiers]]
code = "emp_inpatient"
kind = "basic"
fund_pay_type = "310100"
applies = {{ insutypes = ["310"], med_categories = ["inpatient"] }}
deductible = {{ basis = "per_visit", rules = [{{ levels = ["3"], amount = "404.20" }}] }}  # "8084×5%" as printed
cap = {{ basis = "fund", amount = "46336.00" }}  # 上年职工平均工资的4倍, "成都市目前就是46336元"
ratios = [{{ ratio = "0.85" }}]  # (75 + 50×0.2)%
"""


def test_chengdu_employee_inpatient_level3_annual_cap_hit():
    """成都, 职工 住院, 三级医院, c. 2012 — the annual fund cap (4× average wage = 46336) is hit.

    Source: http://xiangrikui.com/shehuibaoxian/chaxun/20121204/281311_1.html (research A2).
    Published: "(60000-8084×5%)×[(75+50×0.2)÷100]=59029.92×85%=50175.43元 ……所以,他这次能报销的实际费用为
    46336元,个人需要承担的费用为: 60000-46336=13664元".
    The first step is inconsistent as printed: 60000−8084×5% = 59595.80, not 59029.92 (which implies a
    deductible of 970.08 = 8084×12%, presumably the real 三级 rate). Either way the computed payment
    (50656.43 with the printed 5%, 50175.43 with 12%) exceeds the cap, so the published final figures —
    fund 46336, patient 13664 — are right and are what is asserted.
    """
    pol = policy_from_toml(CHENGDU_A2, "chengdu-a2")
    r = settle(pol, person("310", "1101", "510100"), visit("21", "3", "510100"), [line("1", JIA, "60000.00")])
    assert_yuan(r, hifp_pay="46336.00", fund_pay_sumamt="46336.00", psn_part_amt="13664.00", psn_cash_pay="13664.00")
    assert r.tiers[0].crt_payb_lmt_amt == parse_yuan("46336.00")
    assert r.tiers[0].overflow > 0  # the cap, not the ratio, decided the payment


SHANGHAI_A3_URL = "https://w.sf024.com/info/299103690.html"

SHANGHAI_2011 = f"""
# 上海 职工 (2011 policy), a retiree of the 2000-12-31前 cohort. Source: {SHANGHAI_A3_URL}
[policy]
admdvs = "310000"
name = "上海市职工住院（2011年举例）"
version = "2011-A3"
effective_from = 2011-07-01
source = "{SHANGHAI_A3_URL}"
[person_classes]
retired = ["1201"]
[med_categories]
inpatient = ["21"]
[account]
payable = ["inscp_selfpay"]   # 历年账户 pays "700+599.08": the deductible and the co-pay
insutypes = ["310"]
[[tiers]]
code = "emp_inpatient"
kind = "basic"
fund_pay_type = "310100"
applies = {{ insutypes = ["310"], med_categories = ["inpatient"] }}
deductible = {{ basis = "per_year", amount = "700.00" }}  # "第二第三次住院,不扣这700元了"
cap = {{ basis = "fund", amount = "280000.00" }}          # "超出28万(2011年的政策)"
ratios = [{{ ratio = "0.92" }}]
[[tiers]]
code = "emp_fujia"
kind = "large_amount"
fund_pay_type = "330100"
overflow_of = "emp_inpatient"
applies = {{ insutypes = ["310"], med_categories = ["inpatient"] }}
ratios = [{{ ratio = "0.80" }}]                             # "以后自己负担20%"
"""


def test_shanghai_retiree_inpatient_per_year_deductible_and_account():
    """上海, 职工 退休 (2000年前退休, 起付线700), 住院 三级, 2011 policy — real bill, per-year deductible,
    历年账户 pays the deductible and the co-pay.

    Source: https://w.sf024.com/info/299103690.html (research A3).
    Published: "先把8590.48—起付线700—自负501.97=7488.51 再把 7488.51*92%=6889.43 由统筹支付
    再把 7488.51* 8%=599.08 由自己历年账户支付 所以历年账户共扣除700+599.08=1299.08".
    ARITHMETIC ERROR: 8590.48 − 700 − 501.97 = 7388.51, not 7488.51 (off by exactly 100), and the later
    lines carry the wrong base. Correct: 7388.51×92% = 6797.4292 → 6797.43 from the fund; 7388.51×8% =
    591.08 (591.0808) co-pay, so the 历年账户 pays 700 + 591.08 = 1291.08 (printed 1299.08); the 自负
    501.97 is paid in cash. The account balance is not published; any balance ≥ 1291.08 gives this split.
    """
    pol = policy_from_toml(SHANGHAI_2011, "shanghai-a3")
    bill = [line("1", JIA, "8088.51", name="政策范围内"), line("2", BING, "501.97", name="自负")]
    r = settle(pol, person("310", "1201", "310000"), visit("21", "3", "310000"), bill,
               accounts=(AccountSource("P001", "self", parse_yuan("10000.00")),), use_account=True)
    assert_yuan(r, medfee_sumamt="8590.48", fulamt_ownpay_amt="501.97", inscp_scp_amt="8088.51",
                act_pay_dedc="700.00", hifp_pay="6797.43", hifob_pay="0", fund_pay_sumamt="6797.43",
                psn_part_amt="1793.05", acct_pay="1291.08", psn_cash_pay="501.97")
    assert r.balc == parse_yuan("10000.00") - parse_yuan("1291.08")


QINGYUAN_URL = "http://senbk.com/techan/465217967e32ea7ff3daefdba3deea84.html"

QINGYUAN = f"""
# 清远 职工: basic (cap 65000) + 职工大额 95% + 职工大病 60% over 14370. Source: {QINGYUAN_URL}
[policy]
admdvs = "441800"
name = "清远市职工住院（举例）"
version = "2023-A4"
effective_from = 2023-01-01
source = "{QINGYUAN_URL}"
[person_classes]
in_service = ["1101"]
[med_categories]
inpatient = ["21"]
[[tiers]]
code = "emp_inpatient"
kind = "basic"
fund_pay_type = "310100"
applies = {{ insutypes = ["310"], med_categories = ["inpatient"] }}
deductible = {{ basis = "per_visit", amount = "1200.00" }}
cap = {{ basis = "fund", amount = "65000.00" }}
ratios = [{{ ratio = "0.91" }}]
[[tiers]]
code = "emp_large"
kind = "large_amount"
fund_pay_type = "330100"
overflow_of = "emp_inpatient"
applies = {{ insutypes = ["310"], med_categories = ["inpatient"] }}
ratios = [{{ ratio = "0.95" }}]   # the 60万/90万 limits are worded too loosely to set a cap
[[tiers]]
code = "emp_serious"
kind = "serious_illness"
fund_pay_type = "999997"          # the NHSA code of 清远's 职工大病保险 was not researched
base = "psn_inscp"
count_prior_dedc = false          # the basic deductible 1200 is excluded from the 大病 base
axis = "year"
applies = {{ insutypes = ["310"], med_categories = ["inpatient"] }}
deductible = {{ basis = "per_year", amount = "14370.00" }}
ratios = [{{ ratio = "0.60" }}]
"""


def test_qingyuan_employee_basic_cap_large_amount_and_serious_illness():
    """清远 (广东), 职工 住院 — basic-fund cap hit, then 职工大额 95%, then 职工大病 60%.

    Source: http://senbk.com/techan/465217967e32ea7ff3daefdba3deea84.html (research A4, re-post 2023).
    Published: "(300000-1200元起付标准)×91%=271908元 即基本医保按上即报销65000元";
    "〔300000-1200-(65000÷91%)〕×95%=216002.86元"; "(300000-1200-65000-216002.86-14370)×60%=2056.28元";
    "报销总额: 65000+216002.86+2056.28=283059.14元 最终个人负担总额为16940.86元".
    All published lines are arithmetically right.
    """
    pol = policy_from_toml(QINGYUAN, "qingyuan-a4")
    r = settle(pol, person("310", "1101", "441800"), visit("21", "3", "441800"), [line("1", JIA, "300000.00")])
    assert_yuan(r, act_pay_dedc="1200.00", hifp_pay="65000.00", hifob_pay="216002.86", hifmi_pay="2056.28",
                fund_pay_sumamt="283059.14", psn_part_amt="16940.86")


BEIJING_URL = "http://qiyebaizhang.gzzwz.com.cn/z/52938.html"

BEIJING = f"""
# 北京 城镇"一老一小"大病医疗保险 (pre-2018 scheme). Source: {BEIJING_URL}
# psn_type codes only route the test persons to the two categories.
[policy]
admdvs = "110000"
name = "北京市城镇一老一小住院（举例）"
version = "yilaoyixiao-A5"
effective_from = 2012-01-01
source = "{BEIJING_URL}"
[person_classes]
urban_elderly = ["1502"]
student_infant = ["1401"]
[med_categories]
inpatient = ["21"]
[[tiers]]
code = "elderly_inpatient"
kind = "basic"
fund_pay_type = "390100"
group = "basic"
applies = {{ insutypes = ["390"], med_categories = ["inpatient"], psn_classes = ["urban_elderly"] }}
# "第一期住院起付标准为1300元,第二次开始往后住院的起付标准都是650元" -> 1300 × 1 / × 0.5
deductible = {{ basis = "per_visit", admission_factors = ["1", "0.5"], amount = "1300.00" }}
cap = {{ basis = "fund", amount = "150000.00" }}
ratios = [{{ ratio = "0.60" }}]
[[tiers]]
code = "child_inpatient"
kind = "basic"
fund_pay_type = "390100"
group = "basic"
applies = {{ insutypes = ["390"], med_categories = ["inpatient"], psn_classes = ["student_infant"] }}
deductible = {{ basis = "per_visit", amount = "650.00" }}
cap = {{ basis = "fund", amount = "170000.00" }}
ratios = [{{ ratio = "0.70" }}]
"""


def test_beijing_urban_elderly_resident_inpatient():
    """北京, 城镇老年人 ("一老一小" 大病医疗保险, residents), 住院, first admission of the year.

    Source: http://qiyebaizhang.gzzwz.com.cn/z/52938.html (research A5; year not stated, pre-2018 scheme).
    Published: "例如,某城镇老年人住院费花了5万元,可以报销的金额是:(50000-1300)×60%=29220元。"
    The patient's 20780 is not printed (by subtraction). The example treats the whole 5万 as in scope.
    """
    pol = policy_from_toml(BEIJING, "beijing-a5")
    r = settle(pol, person("390", "1502", "110000"), visit("21", "3", "110000"), [line("1", JIA, "50000.00")])
    assert_yuan(r, act_pay_dedc="1300.00", hifp_pay="29220.00", fund_pay_sumamt="29220.00", psn_part_amt="20780.00")


def test_beijing_child_resident_inpatient():
    """北京, 学生及婴幼儿 ("一老一小" 大病医疗保险, residents), 住院 — deductible 650, 70%.

    Source: http://qiyebaizhang.gzzwz.com.cn/z/52938.html (research A5).
    Published: "例如一个参保孩子,患病住院花费了10万元,可报销的金额为:(100000-650)×70%=69545元。"
    """
    pol = policy_from_toml(BEIJING, "beijing-a5")
    r = settle(pol, person("390", "1401", "110000"), visit("21", "3", "110000"), [line("1", JIA, "100000.00")])
    assert_yuan(r, act_pay_dedc="650.00", hifp_pay="69545.00", fund_pay_sumamt="69545.00", psn_part_amt="30455.00")


ZIYANG_URL = "https://xuexi.huize.com/study/detal-267548.html"

ZIYANG = f"""
# 资阳 (四川) 新农合/居民 大病保险. Source: {ZIYANG_URL}
# The examples start from the personal burden left after 新农合; the basic tier is a stand-in paying 0.
[policy]
admdvs = "512000"
name = "资阳市大病保险（举例）"
version = "xnh-A11"
effective_from = 2015-01-01
source = "{ZIYANG_URL}"
[person_classes]
resident = ["1501"]
[med_categories]
inpatient = ["21"]
[[tiers]]
code = "res_basic_standin"
kind = "basic"
fund_pay_type = "390100"
applies = {{ insutypes = ["390"] }}
ratios = [{{ ratio = "0" }}]
[[tiers]]
code = "res_serious"
kind = "serious_illness"
fund_pay_type = "390200"
base = "psn_inscp"
axis = "year"
band_origin = "absolute"          # segments on the gross burden: "50000元及以下的部分 50%" …
applies = {{ insutypes = ["390"] }}
deductible = {{ basis = "per_year", amount = "8000.00" }}
ratios = [{{ bands = [{{ upto = "50000.00", ratio = "0.50" }}, {{ upto = "100000.00", ratio = "0.60" }}, {{ ratio = "0.70" }}] }}]
"""


def _ziyang(burden: str) -> Adjudication:
    pol = policy_from_toml(ZIYANG, "ziyang-a11")
    return settle(pol, person("390", "1501", "512000"), visit("21", "2", "512000"), [line("1", JIA, burden)])


def test_ziyang_serious_illness_first_segment():
    """资阳 (四川), 新农合/居民 大病保险 — burden 50000, first segment only.

    Source: https://xuexi.huize.com/study/detal-267548.html (research A11, example 1; year not stated).
    Published: "扣除起付标准8000元后个人负担费用为42000元,其大病保险报销金额为:42000×50%=21000元。"
    """
    r = _ziyang("50000.00")
    assert_yuan(r, hifp_pay="0", hifmi_pay="21000.00", fund_pay_sumamt="21000.00", psn_part_amt="29000.00")


def test_ziyang_serious_illness_two_segments():
    """资阳 (四川), 新农合/居民 大病保险 — burden 80000, second segment.

    Source: https://xuexi.huize.com/study/detal-267548.html (research A11, example 2).
    Published: "个人负担费用为80000元,其大病保险报销金额为:42000元×50%+(80000元-50000元)×60%=39000元。"
    """
    r = _ziyang("80000.00")
    assert_yuan(r, hifmi_pay="39000.00", fund_pay_sumamt="39000.00", psn_part_amt="41000.00")


def test_ziyang_serious_illness_three_segments_published_total_wrong():
    """资阳 (四川), 新农合/居民 大病保险 — burden 120000, all three segments.

    Source: https://xuexi.huize.com/study/detal-267548.html (research A11, example 3).
    Published: "个人负担费用为120000元,其大病保险报销金额为:42000元×50%+(80000元-50000元)×60%+
    (120000元-100000元)×70%=53000元。"
    ARITHMETIC ERROR: for a burden of 120000 the 50000–100000 segment is full, 50000×60% = 30000; the
    page copied "(80000−50000)×60%" = 18000 from example 2. Correct: 21000 + 30000 + 14000 = 65000.
    """
    r = _ziyang("120000.00")
    assert_yuan(r, hifmi_pay="65000.00", fund_pay_sumamt="65000.00", psn_part_amt="55000.00")


QUZHOU_URL = "http://24qzars.icu/874259312.html"

QUZHOU = f"""
# 衢州 职工 退休 门诊. Source (spam-type mirror): {QUZHOU_URL}
[policy]
admdvs = "330800"
name = "衢州市职工门诊（举例）"
version = "otp-A16"
effective_from = 2020-01-01
source = "{QUZHOU_URL}"
[person_classes]
retired = ["1201"]
[med_categories]
outpatient = ["11"]
[[tiers]]
code = "emp_outpatient"
kind = "basic"
fund_pay_type = "310100"
applies = {{ insutypes = ["310"], med_categories = ["outpatient"] }}
deductible = {{ basis = "per_year", amount = "200.00" }}
cap = {{ basis = "fund", amount = "1500.00" }}   # "门诊报销封顶也是1500元"
ratios = [{{ levels = ["3"], ratio = "0.55" }}, {{ levels = ["2"], ratio = "0.65" }}]
"""


def test_quzhou_retiree_outpatient_published_result_wrong():
    """衢州 (浙江), 职工 退休 (retired teacher), 门诊, 三级 55% — year not stated.

    Source: http://24qzars.icu/874259312.html (research A16; an unreliable mirror site).
    Published: "看门诊共花费了1000元,除去200元的起付线,他可以报销(1000-200)* 55%=550元。"
    ARITHMETIC ERROR: (1000 − 200) × 55% = 440, not 550. Correct: fund 440, patient 560.
    """
    pol = policy_from_toml(QUZHOU, "quzhou-a16")
    r = settle(pol, person("310", "1201", "330800"), visit("11", "3", "330800"), [line("1", JIA, "1000.00")])
    assert_yuan(r, act_pay_dedc="200.00", hifp_pay="440.00", fund_pay_sumamt="440.00", psn_part_amt="560.00")


def test_quzhou_retiree_outpatient_cap_hit_published_result_wrong():
    """衢州 (浙江), 职工 退休, 门诊, 二级 65% — the page's own 1500 outpatient cap binds.

    Source: http://24qzars.icu/874259312.html (research A16).
    Published: "若花费1万元,那么可以报销(10000-200)* 65%=6420元。" with, on the same page,
    "门诊报销封顶也是1500元".
    DOUBLY WRONG: (10000 − 200) × 65% = 6370, not 6420; and either figure exceeds the stated 1500 cap.
    Correct: fund 1500 (cap hit), patient 8500. (65% is the page's 二级 ratio, so the visit is 二级.)
    """
    pol = policy_from_toml(QUZHOU, "quzhou-a16")
    r = settle(pol, person("310", "1201", "330800"), visit("11", "2", "330800"), [line("1", JIA, "10000.00")])
    assert_yuan(r, hifp_pay="1500.00", fund_pay_sumamt="1500.00", psn_part_amt="8500.00")
    assert r.tiers[0].overflow > 0


JIANGYIN_URL = "http://www.husay.cn/c/12012K5X2023.html"

JIANGYIN_ASSISTANCE = f"""
# 江阴 (无锡, 江苏) 医疗救助: 住院 个人负担部分 70%, 年度最高限额 30万. Source: {JIANGYIN_URL}
# The basic and 大病 payments are published without their parameters: stand-ins at the published amounts.
# Identity 2202 only routes the test person to "医疗救助对象".
[policy]
admdvs = "320281"
name = "江阴市医疗救助（举例）"
version = "maf-A18"
effective_from = 2023-01-01
source = "{JIANGYIN_URL}"
[person_classes]
resident = ["1501"]
[med_categories]
inpatient = ["21"]
[[tiers]]
code = "res_basic_standin"
kind = "basic"
fund_pay_type = "390100"
cap = {{ basis = "fund", amount = "68828.00" }}
ratios = [{{ ratio = "1" }}]
[[tiers]]
code = "res_serious_standin"
kind = "serious_illness"
fund_pay_type = "390200"
cap = {{ basis = "fund", amount = "37161.80" }}
ratios = [{{ ratio = "1" }}]
[[tiers]]
code = "maf_inpatient"
kind = "assistance"
fund_pay_type = "610100"
applies = {{ identities = ["2202"], med_categories = ["inpatient"] }}
cap = {{ basis = "fund", amount = "300000.00" }}   # "医疗救助的年度最高限额为30万元"
ratios = [{{ ratio = "0.70" }}]                     # "住院医疗费用个人负担部分给予70%的救助"
"""


def test_jiangyin_inpatient_medical_assistance_after_basic_and_serious_illness():
    """江阴 (无锡, 江苏), 医疗救助对象, 住院 — 基本医保 + 大病保险, then 医疗救助 70% of the remaining
    in-scope personal burden, no 救助 deductible. Year not stated (re-post; the rules cite 无锡市规定).

    Source: http://www.husay.cn/c/12012K5X2023.html (research A18; "江阴医疗救助能报销多少钱?").
    Published: "张先生是医疗救助对象,发生住院医疗费用共计15万元,基本医疗保险可以报销68828元,目录内个人
    自付和自理部分为66172元,大病保险可以报销37161.8元,其余为目录外自费部分。…医疗救助金额=(66172-
    37161.8)×70%=20307.14元 住院共计报销=68828元+37161.8元+20307.14元=126296.94元".
    All lines are right: 29010.20 × 70% = 20307.14; the sum is 126296.94; 目录外自费 = 150000 − 68828 −
    66172 = 15000; the patient bears 150000 − 126296.94 = 23703.06 (by subtraction, not printed).
    The 66172 lumps "自付" with "自理" (乙类 first self-pay) and the page's 救助 base includes both. The split
    is not published, so the in-scope 135000 is one 甲类 line here. NOTE: had part of it been 乙类 先行自付,
    the engine's ``psn_inscp`` base (inscp_scp_amt − fund payments) would leave it out of the 救助 base,
    unlike this page. Basic and 大病 parameters are not published: stand-in tiers pay exactly those amounts.
    """
    pol = policy_from_toml(JIANGYIN_ASSISTANCE, "jiangyin-a18")
    bill = [line("1", JIA, "135000.00", name="目录内"), line("2", BING, "15000.00", name="目录外自费")]
    r = settle(pol, person("390", "1501", "320281", "2202"), visit("21", "3", "320281"), bill)
    assert_yuan(r, medfee_sumamt="150000.00", fulamt_ownpay_amt="15000.00", inscp_scp_amt="135000.00",
                hifp_pay="68828.00", hifmi_pay="37161.80", maf_pay="20307.14", fund_pay_sumamt="126296.94",
                psn_part_amt="23703.06")
    maf = next(t for t in r.tiers if t.code == "maf_inpatient")
    assert (maf.base, maf.act_pay_dedc) == (parse_yuan("29010.20"), 0)
    # not a 医疗救助对象: basic and 大病 only
    r2 = settle(pol, person("390", "1501", "320281"), visit("21", "3", "320281"), bill)
    assert r2.amounts["maf_pay"] == 0 and r2.amounts["fund_pay_sumamt"] == parse_yuan("105989.80")


# ==================================================================================================
# Examples whose region the excerpt does not name (kept for coverage: 2nd/3rd admission, 乙类,
# 大病 segment conventions, medical assistance) and one whose region is inferred.
# ==================================================================================================

TIERED_ADMISSION_URL = "https://m.yzwku.com/doc/356336.html"

TIERED_ADMISSION = f"""
# 《城镇居民医疗保险三级医院住院医疗费用分段支付表》 — region and year not in the excerpt.
# Source: {TIERED_ADMISSION_URL}
[policy]
admdvs = "999999"
name = "城镇居民三级医院住院（分段支付表）"
version = "table-A8"
effective_from = 2010-01-01
source = "{TIERED_ADMISSION_URL}"
[person_classes]
resident = ["1501"]
[med_categories]
inpatient = ["21"]
[[tiers]]
code = "res_inpatient"
kind = "basic"
fund_pay_type = "390100"
axis = "visit"
band_origin = "absolute"      # "起付线以上至10000元 80% / 10000元至30000元 85% / 30000元至最高支付限额 90%"
applies = {{ insutypes = ["390"], med_categories = ["inpatient"] }}
# 1st 400, 2nd 280, 3rd 200 -> 400 × 1 / 0.7 / 0.5
deductible = {{ basis = "per_visit", admission_factors = ["1", "0.7", "0.5"], rules = [{{ levels = ["3"], amount = "400.00" }}] }}
cap = {{ basis = "fund", amount = "60000.00" }}   # "统筹支付累计 60000 元"
ratios = [{{ bands = [{{ upto = "10000.00", ratio = "0.80" }}, {{ upto = "30000.00", ratio = "0.85" }}, {{ ratio = "0.90" }}] }}]
"""


def test_resident_second_admission_reduced_deductible():
    """Region not stated (城镇居民 三级 分段支付表), 住院 — SECOND admission of the year, deductible 280.

    Source: https://m.yzwku.com/doc/356336.html (research A8; OCR'd table, region/year not in the excerpt).
    Published row for the 2nd admission: "起付线以上至10000元 80% 7776元 / 10000元至30000元 85% 17000元
    24776元 / …" — i.e. (10000−280)×80% = 7776, +20000×85% = 17000, cumulative 24776 at 30000 of fees.
    The table treats each admission on its own, so no earlier fund payment is carried in the year.
    """
    pol = policy_from_toml(TIERED_ADMISSION, "table-a8")
    r = settle(pol, person("390", "1501", "999999"), visit("21", "3", "999999", admission_seq=2),
               [line("1", JIA, "30000.00")], year=Accumulators({"admissions": 1}))
    assert_yuan(r, act_pay_dedc="280.00", hifp_pay="24776.00", psn_part_amt="5224.00")


def test_resident_third_admission_reduced_deductible_cap_hit():
    """Region not stated (城镇居民 三级 分段支付表), 住院 — THIRD admission, deductible 200, cap 60000 hit.

    Source: https://m.yzwku.com/doc/356336.html (research A8).
    Published row for the 3rd admission: "7840元 / 17000元 24840元 / 35160元 60000元" — (10000−200)×80%
    = 7840, +17000 = 24840 at 30000, then 90% until the fund has paid 60000 (35160 more). A bill of
    80000 is past that point (≈69066.67), so the fund pays exactly the 60000 cap.
    """
    pol = policy_from_toml(TIERED_ADMISSION, "table-a8")
    r = settle(pol, person("390", "1501", "999999"), visit("21", "3", "999999", admission_seq=3),
               [line("1", JIA, "80000.00")], year=Accumulators({"admissions": 2}))
    assert_yuan(r, act_pay_dedc="200.00", hifp_pay="60000.00", psn_part_amt="20000.00")


SERIOUS_3SEG_URL = "http://idiamond.net/wsbs/sb/ynbx/cjwt/202403/t20240304_3495336.shtml"

SERIOUS_3SEG = f"""
# 城乡居民 大病保险, three segments on the gross amount. Source: {SERIOUS_3SEG_URL}
[policy]
admdvs = "999999"
name = "城乡居民大病保险（三段举例）"
version = "2024-A9"
effective_from = 2024-01-01
source = "{SERIOUS_3SEG_URL}"
[person_classes]
resident = ["1501"]
[med_categories]
inpatient = ["21"]
[[tiers]]
code = "res_basic_standin"        # the example starts after basic insurance: stand-in paying 0
kind = "basic"
fund_pay_type = "390100"
ratios = [{{ ratio = "0" }}]
[[tiers]]
code = "res_serious"
kind = "serious_illness"
fund_pay_type = "390200"
base = "psn_inscp"
axis = "year"
band_origin = "absolute"
deductible = {{ basis = "per_year", amount = "12000.00" }}
ratios = [{{ bands = [{{ upto = "30000.00", ratio = "0.60" }}, {{ upto = "100000.00", ratio = "0.65" }}, {{ ratio = "0.75" }}] }}]
"""


def test_resident_serious_illness_segments_on_gross_amount():
    """Region not stated (a government-style FAQ page, 2024-03-04), 城乡居民 大病保险 — three segments.

    Source: http://idiamond.net/wsbs/sb/ynbx/cjwt/202403/t20240304_3495336.shtml (research A9; mirror).
    Published: "经基本医疗保险报销后剩余合规医疗费用为150000元 … 扣除大病保险起付线12000元 第一段:
    18000*0.6=10800元;第二段:70000*0.65=45500元;第三段:50000*0.75=37500元;三段累加合计93800元。"
    """
    pol = policy_from_toml(SERIOUS_3SEG, "serious-a9")
    r = settle(pol, person("390", "1501", "999999"), visit("21", "3", "999999"), [line("1", JIA, "150000.00")])
    assert_yuan(r, hifmi_pay="93800.00", fund_pay_sumamt="93800.00", psn_part_amt="56200.00")


SERIOUS_8SEG_URL = "https://www.51dongshi.net/eedfrcdgagbvc.html"

SERIOUS_8SEG = f"""
# 居民 大病保险, eight segments measured ABOVE the deductible. Source: {SERIOUS_8SEG_URL}
[policy]
admdvs = "999999"
name = "居民大病保险（八段举例）"
version = "2018-A12"
effective_from = 2017-10-01
source = "{SERIOUS_8SEG_URL}"
[person_classes]
resident = ["1501"]
[med_categories]
inpatient = ["21"]
[[tiers]]
code = "res_basic_standin"        # "基本医保报销了4万元": stand-in, ratio 1 capped at the published payment
kind = "basic"
fund_pay_type = "390100"
cap = {{ basis = "fund", amount = "40000.00" }}
ratios = [{{ ratio = "1" }}]
[[tiers]]
code = "res_serious"
kind = "serious_illness"
fund_pay_type = "390200"
base = "psn_inscp"
axis = "year"
band_origin = "deductible"
deductible = {{ basis = "per_year", amount = "20000.00" }}
ratios = [{{ bands = [
  {{ upto = "20000.00", ratio = "0.30" }}, {{ upto = "50000.00", ratio = "0.40" }}, {{ upto = "100000.00", ratio = "0.50" }},
  {{ upto = "200000.00", ratio = "0.60" }}, {{ upto = "300000.00", ratio = "0.65" }}, {{ upto = "400000.00", ratio = "0.70" }},
  {{ upto = "500000.00", ratio = "0.75" }}, {{ ratio = "0.80" }},
] }}]
"""


def test_resident_serious_illness_segments_above_deductible():
    """Region not stated, 居民 大病保险 2017–2018 年度 — segments measured above the 2万 deductible.

    Source: https://www.51dongshi.net/eedfrcdgagbvc.html (research A12).
    Published: "住院医疗总费用为10万元,基本医保报销了4万元,个人支付了6万元(其中非医保费用1万元),则在政策
    范围内个人承担的费用即5万元 … 本次大病报销金额为3万元(5万元-起付标准2万元) … 0~2万元按30%报销:
    2万元×30%=0.6万元。2~5万元按40%报销:1万元×40%=0.4万元。则本次大病报销费用为1万元".
    The arithmetic is right; the period "2018年10月1日至2018年9月30日" is a typo (2017-10-01 start).
    The basic payment's parameters are not published, so a stand-in tier pays exactly the 4万.
    """
    pol = policy_from_toml(SERIOUS_8SEG, "serious-a12")
    bill = [line("1", JIA, "90000.00"), line("2", BING, "10000.00", name="非医保费用")]
    r = settle(pol, person("390", "1501", "999999"), visit("21", "3", "999999"), bill)
    assert_yuan(r, medfee_sumamt="100000.00", fulamt_ownpay_amt="10000.00", hifp_pay="40000.00",
                hifmi_pay="10000.00", fund_pay_sumamt="50000.00", psn_part_amt="50000.00")


ASSISTANCE = """
# 居民医保 + 低保: basic, 大病, 医疗救助 (stand-ins at the published payments) then 倾斜救助.
# Source: URL not returned by the research tool (page "大额医疗费用困难群体能否享受倾斜救助?", 2024-05-28).
# Identity 2202 = 低保对象 (the code the demo data uses).
[policy]
admdvs = "999999"
name = "居民医保 低保 倾斜救助（举例）"
version = "2023-A13"
effective_from = 2023-01-01
source = "research A13 (URL not returned)"
[person_classes]
resident = ["1501"]
[med_categories]
inpatient = ["21"]
[[tiers]]
code = "res_basic_standin"
kind = "basic"
fund_pay_type = "390100"
cap = { basis = "fund", amount = "125790.00" }
ratios = [{ ratio = "1" }]
[[tiers]]
code = "res_serious_standin"
kind = "serious_illness"
fund_pay_type = "390200"
cap = { basis = "fund", amount = "29743.68" }
ratios = [{ ratio = "1" }]
[[tiers]]
code = "maf_standin"
kind = "assistance"
fund_pay_type = "610100"
applies = { identities = ["2202"] }
cap = { basis = "fund", amount = "17126.42" }
ratios = [{ ratio = "1" }]
[[tiers]]
code = "maf_tilt"                  # 表三 倾斜救助标准: 低保 70% of the in-scope self-pay above 3500, 年度 2万
kind = "assistance"
fund_pay_type = "610100"
applies = { identities = ["2202"] }
deductible = { basis = "per_visit", amount = "3500.00" }
cap = { basis = "fund", amount = "20000.00" }
ratios = [{ ratio = "0.70" }]
"""


def test_dibao_resident_tilted_medical_assistance():
    """Region not named ("我市…我区"), 居民医保 + 低保对象, 住院 2023-10 — basic + 大病 + 医疗救助 + 倾斜救助.

    Source: URL NOT RETURNED by the research search tool (page titled "大额医疗费用困难群体能否享受倾斜救助?",
    dated 2024-05-28; research A13). Kept because it is the only numeric 医疗救助 example found.
    Published: "此次住院共花费20万元,医保政策范围内金额18万元,基本医保报销125790元,大病报销29743.68元,
    医疗救助17126.42元 … 医保政策范围内个人自付费用为180000-125790-29743.68-17126.42=7339.9元,达到倾斜
    救助起付标准3500元…故此次老张倾斜救助金额为(7339.9-3500*70%=2687.93元。"
    The closing parenthesis is missing as printed ("(7339.9-3500*70%" would read 4889.9); the intended
    (7339.90 − 3500) × 70% = 2687.93 is right. The parameters behind the first three payments are not
    published, so stand-in tiers pay exactly those amounts; the 倾斜救助 is computed by the engine.
    """
    pol = policy_from_toml(ASSISTANCE, "assistance-a13")
    bill = [line("1", JIA, "180000.00"), line("2", BING, "20000.00", name="政策范围外")]
    r = settle(pol, person("390", "1501", "999999", "2202"), visit("21", "3", "999999", on=date(2023, 10, 20)), bill)
    assert_yuan(r, medfee_sumamt="200000.00", inscp_scp_amt="180000.00", hifp_pay="125790.00",
                hifmi_pay="29743.68", maf_pay="19814.35", fund_pay_sumamt="175348.03", psn_part_amt="24651.97")
    tilt = next(t for t in r.tiers if t.code == "maf_tilt")
    assert (tilt.base, tilt.act_pay_dedc, tilt.fund_payamt) == (parse_yuan("7339.90"), parse_yuan("3500.00"),
                                                                  parse_yuan("2687.93"))
    # without the identity no assistance tier applies
    r2 = settle(pol, person("390", "1501", "999999"), visit("21", "3", "999999"), bill)
    assert r2.amounts["maf_pay"] == 0


YI_URL_RETIREE = "http://xiangrikui.com/jiankang/zhuanjia/20120409/205238.html"
YI_URL_IN_SERVICE = "http://xiangrikui.com/jiankang/zhuanjia/20120409/205238_2.html"

YI_CLASS = f"""
# 职工 住院 三级 (2012 article, region not stated): deductible 800, co-pay 在职 14% / 退休 11.2%,
# 乙类 first self-pay 10%, 放宽项目 30% (item-level selfpay_prop). Sources: {YI_URL_RETIREE} , {YI_URL_IN_SERVICE}
[policy]
admdvs = "999999"
name = "职工住院 乙类先行自付（2012年举例）"
version = "2012-A14"
effective_from = 2012-01-01
source = "{YI_URL_RETIREE}"
references = ["{YI_URL_RETIREE}", "{YI_URL_IN_SERVICE}"]
[person_classes]
in_service = ["1101"]
retired = ["1201"]
[med_categories]
inpatient = ["21"]
[classification]
yi_selfpay_default = "0.10"
[[tiers]]
code = "emp_inpatient"
kind = "basic"
fund_pay_type = "310100"
applies = {{ insutypes = ["310"], med_categories = ["inpatient"] }}
deductible = {{ basis = "per_visit", rules = [{{ levels = ["3"], amount = "800.00" }}] }}
ratios = [{{ psn_classes = ["retired"], ratio = "0.888" }}, {{ psn_classes = ["in_service"], ratio = "0.86" }}]
# "体内置换人工器官50000×50%=25000元": the patient pays half first, the fund pays the other half in full
[[item_rules]]
name = "进口体内置换人工器官"
codes = ["IMPORTED-IMPLANT"]
selfpay_prop = "0.50"
fund_ratio = "1"
"""


def test_employee_yi_class_first_selfpay_in_service():
    """Region not stated (2012 article), 职工 在职 (吴女士), 住院 三级 — 乙类 10% and 放宽项目 30% first self-pay.

    Source: http://xiangrikui.com/jiankang/zhuanjia/20120409/205238_2.html (research A14).
    Published: "甲类药14900×14%=2086元; 乙类药2000×10%+(2000-2000×10%)×14%=452元; 放宽项目600×30%+
    (600-600×30%)×14%=238.8元。 个人负担总费用:5276.8元 医保报销:14723.2元 报销比例:73.62%".
    Total 20000 = 起付线 800 + 自费药 500 + 自理 1200 + 甲类 14900 + 乙类 2000 + 放宽 600; the 800 is
    in-scope cost the article lists only as the deductible (modelled as a 甲类 line).
    """
    pol = policy_from_toml(YI_CLASS, "yi-a14")
    bill = [
        line("1", BING, "500.00", name="自费药"), line("2", BING, "1200.00", name="自理费用"),
        line("3", JIA, "14900.00", name="甲类药"), line("4", YI, "2000.00", name="乙类药"),
        line("5", YI, "600.00", selfpay_prop="0.30", name="放宽项目"), line("6", JIA, "800.00", name="起付线内费用"),
    ]
    r = settle(pol, person("310", "1101", "999999"), visit("21", "3", "999999"), bill)
    assert_yuan(r, medfee_sumamt="20000.00", fulamt_ownpay_amt="1700.00", preselfpay_amt="380.00",
                inscp_scp_amt="17920.00", act_pay_dedc="800.00", hifp_pay="14723.20", psn_part_amt="5276.80")


def test_employee_yi_class_retiree_with_implant():
    """Region not stated (2012 article), 职工 退休 (李先生, 63), 住院 三级 knee replacement — 乙类 10%,
    放宽项目 30%, 进口 implant 50%, retiree co-pay 11.2%.

    Source: http://xiangrikui.com/jiankang/zhuanjia/20120409/205238.html (research A14).
    Published: "完全自付费用:起付线800元+自费药2000元+自理费用3000元=5800元 甲类药34000×11.2%=3808元;
    乙类药18200×10%+(18200-18200×10%)×11.2%=3654.56元; 放宽项目2000×30%+(2000-2000×30%)×11.2%=756.8元;
    体内置换人工器官50000×50%=25000元 个人负担总费用:39019.36元 医保报销:70980.64元".
    All lines are right. The implant is an item rule of the policy: 50 % first self-pay, the other half paid by
    the fund in full, outside the deductible and the retiree's 11.2 % co-pay.
    """
    pol = policy_from_toml(YI_CLASS, "yi-a14")
    bill = [
        line("1", BING, "2000.00", name="自费药"), line("2", BING, "3000.00", name="自理费用"),
        line("3", JIA, "34000.00", name="甲类药"), line("4", YI, "18200.00", name="乙类药"),
        line("5", YI, "2000.00", selfpay_prop="0.30", name="放宽检查"),
        line("6", YI, "50000.00", name="进口人工关节", code="IMPORTED-IMPLANT"),
        line("7", JIA, "800.00", name="起付线内费用"),
    ]
    r = settle(pol, person("310", "1201", "999999"), visit("21", "3", "999999"), bill)
    assert_yuan(r, medfee_sumamt="110000.00", hifp_pay="70980.64", psn_part_amt="39019.36")
    basic = r.tiers[0]
    assert (basic.direct_pay, basic.act_pay_dedc) == (parse_yuan("25000.00"), parse_yuan("800.00"))


HUNAN_URL = "http://m.kidbbs.com/baike/techan/781466.html"

HUNAN = f"""
# 城乡居民 住院 (province inferred: 湖南). Source: {HUNAN_URL}
# "县医院 … 起付线为600元", "市医院 … 起付线为1200元" (county -> level 2, city -> level 3 is this test's reading);
# "累计起付标准以省级定点医疗机构最高起付标准为限额(目前为2300元)" — NOT expressible (no yearly ceiling on
# per-admission deductibles). 市级 60% from the same page.
[policy]
admdvs = "430000"
name = "湖南省城乡居民住院（举例）"
version = "2019-A7"
effective_from = 2019-01-01
source = "{HUNAN_URL}"
[person_classes]
resident = ["1501"]
[med_categories]
inpatient = ["21"]
[[tiers]]
code = "res_inpatient"
kind = "basic"
fund_pay_type = "390100"
pool = "res_pool"
applies = {{ insutypes = ["390"], med_categories = ["inpatient"] }}
deductible = {{ basis = "per_visit", year_cap = "2300.00", rules = [{{ levels = ["2"], amount = "600.00" }}, {{ levels = ["3"], amount = "1200.00" }}] }}
ratios = [{{ levels = ["3"], ratio = "0.60" }}]
"""


def test_resident_third_admission_yearly_deductible_ceiling():
    """Province inferred (湖南, 2019), 城乡居民 住院 — 3rd admission of the year; the yearly total of
    deductibles is capped at the provincial-hospital deductible (2300).

    Source: http://m.kidbbs.com/baike/techan/781466.html (research A7; the province name is not in the
    excerpt — 衡阳 http://hy.bendibao.com/live/2021223/2738.shtm states the same rule).
    Published: "假如小王2019年在县医院住院2次,起付线为600元,报销时扣减起付线2次为1200元,后又在市医院住院1次,
    起付线为1200元,则当次医保报销扣减起付线应扣减1100元,达到省级定点医疗机构最高起付标准".
    Only the deductible is published; the bill (10000 in scope) is this test's, any amount ≥ 1200 deducts
    the same. The fund payment then follows from the page's 市级 60%: (10000 − 1100) × 60% = 5340.
    """
    pol = policy_from_toml(HUNAN, "hunan-a7")
    year = Accumulators({"res_pool.dedc": parse_yuan("1200.00"), "admissions": 2})
    r = settle(pol, person("390", "1501", "430000"), visit("21", "3", "430000", admission_seq=3, on=date(2019, 9, 1)),
               [line("1", JIA, "10000.00")], year=year)
    assert_yuan(r, act_pay_dedc="1100.00", hifp_pay="5340.00")


# ==================================================================================================
# The two real-region files load and express the rules their sources state
# ==================================================================================================


@pytest.mark.parametrize("filename, admdvs", [("370200-qingdao-2025.toml", "370200"),
                                              ("310000-shanghai-2022.toml", "310000")])
def test_region_policy_files_load(filename, admdvs):
    pol = load_policy_file(BUILTIN_DIR / filename)
    assert pol.admdvs == admdvs
    assert pol.source.startswith("http") and pol.references


def test_qingdao_file_admission_deductibles():
    """青岛 2025 职工住院 rules as stated (not a worked example): deductible 一级 200 / 二级 500 / 三级 800,
    "第二次住院的,起付线按照50%执行;第三次及以上住院的,不设置起付线"; 退休 <4万 94% at 二级.

    Source: http://xxg.qdu.edu.cn/info/1096/1806.htm (research B1).
    """
    pol = load_policy_file(BUILTIN_DIR / "370200-qingdao-2025.toml")
    retiree = person("310", "1201", "370200")
    bill = [line("1", JIA, "10000.00")]
    dedc = {}
    for seq in (1, 2, 3, 4):
        r = settle(pol, retiree, visit("21", "2", "370200", admission_seq=seq, on=date(2025, 3, 1)), bill)
        dedc[seq] = r.amounts["act_pay_dedc"]
        assert r.amounts["hifp_pay"] == round((parse_yuan("10000.00") - dedc[seq]) * Decimal("0.94"))
    assert dedc == {1: 50000, 2: 25000, 3: 0, 4: 0}


def test_shanghai_file_deductible_is_per_medical_insurance_year():
    """上海 2022 医保年度 职工住院 rules as stated (not a worked example): 在职 起付线 1500 cumulated over the
    year, 85%; a second admission in the same year deducts only what is left of the 1500.

    Sources: http://m.sh.bendibao.com/zffw/269509.html, https://ruoyo.com/wuxian/yiliao/75518.html (B2).
    """
    pol = load_policy_file(BUILTIN_DIR / "310000-shanghai-2022.toml")
    worker = person("310", "1101", "310000")
    on = date(2022, 9, 1)
    first = settle(pol, worker, visit("21", "3", "310000", on=on), [line("1", JIA, "1000.00")])
    assert_yuan(first, act_pay_dedc="1000.00", hifp_pay="0")
    year = Accumulators().plus(first.year_deltas)
    second = settle(pol, worker, visit("21", "3", "310000", admission_seq=2, on=on), [line("1", JIA, "10000.00")], year=year)
    assert_yuan(second, act_pay_dedc="500.00", hifp_pay="8075.00", psn_part_amt="1925.00")
