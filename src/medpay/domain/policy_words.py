"""Policies in words, zh-CN first and English: the labels of a policy's settings, their values (money in yuan,
ratios as percentages, conditions as 险种 / 人员类别 / 医疗类别 / 医院等级 / 身份 …) and a tier described line by line.

Pure, and generic: the policy dataclasses gain settings over time, so everything here walks ``dataclasses.fields``.
A field this module has no label for is still shown, under a readable form of its own name; a value of a type it
doesn't know is shown as text. Used by ``policy_diff`` (what changed), ``services.policy_explain`` (a bill's
arithmetic) and the admin door's policy page.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any

from medpay.money import format_yuan

# field name -> (zh, en). An empty label means the parent's label already says it ("起付线 三级：900.00 元").
LABELS: dict[str, tuple[str, str]] = {
    # the policy's head
    "admdvs": ("医保区划", "region"), "name": ("名称", "name"), "version": ("版本", "version"),
    "effective_from": ("生效日期", "effective from"), "effective_to": ("失效日期", "effective to"),
    "source": ("来源", "source"), "references": ("参考文件", "references"),
    "rounding": ("舍入方式", "rounding"), "preselfpay_rounding_scope": ("乙类先行自付舍入", "pre-self-pay rounding"),
    "person_classes": ("人员类别划分", "person classes"), "med_categories": ("医疗类别划分", "medical categories"),
    "yi_selfpay_default": ("乙类先行自付比例", "乙类 first self-pay ratio"),
    "yi_selfpay_by_category": ("分类乙类先行自付比例", "乙类 first self-pay ratio by charge category"),
    "account": ("个人账户", "personal account"), "tiers": ("支付档", "tiers"), "examples": ("算例", "worked examples"),
    "year_start": ("医保年度起始", "policy year starts"),
    # the account
    "payable": ("可支付部分", "may pay"), "insutypes": ("险种", "insurance types"),
    "mutual_aid": ("家庭共济", "family mutual aid"), "mutual_aid_relations": ("共济亲属关系", "mutual-aid relations"),
    # a tier
    "code": ("代码", "code"), "kind": ("类型", "kind"), "fund_pay_type": ("基金支付类型", "fund payment type"),
    "setl_field": ("结算字段", "settlement field"), "applies": ("适用条件", "applies to"), "base": ("计算基数", "base"),
    "overflow_of": ("承接超限部分的档", "takes the overflow of"),
    "count_prior_dedc": ("基数含前档起付线", "base counts earlier deductibles"),
    "pool": ("累计池", "accumulator pool"), "group": ("互斥组", "group"), "axis": ("分段累计", "band axis"),
    "band_origin": ("分段起点", "bands measured from"), "deductible": ("起付线", "deductible"),
    "ratios": ("比例规则", "ratio rule"), "cap": ("封顶线", "cap"),
    # deductible, cap, rules, bands
    "basis": ("口径", "basis"), "mode": ("扣除方式", "applied"), "rules": ("规则", "rule"), "amount": ("", ""),
    "admission_factors": ("按住院次数的系数", "factors by admission"), "year_cap": ("年度累计上限", "yearly limit"),
    "match": ("", ""), "bands": ("段", "band"), "upto": ("上限", "up to"), "ratio": ("比例", "ratio"),
    # conditions
    "psn_classes": ("人员类别", "person class"), "levels": ("医院等级", "hospital level"),
    "identities": ("身份", "identity"), "dise_codgs": ("病种", "disease"), "cvlserv": ("公务员", "civil servant"),
    # the settings issue 12 added
    "stay_across_years": ("跨医保年度住院", "a stay across policy years"), "item_rules": ("单列项目规则", "item rules"),
    "admissions": ("按住院次数递减", "later admissions"), "from_seq": ("自第几次住院", "from admission"),
    "factor": ("系数", "factor"), "admission_floor": ("递减后最低起付线", "lowest after later admissions"),
    "adjustments": ("起付线调整", "deductible adjustment"), "level_offset": ("按低几级医院", "levels lower"),
    "share": ("比例", "share"), "share_of": ("按何金额", "share of"), "floor": ("最低", "floor"),
    "ceiling": ("最高", "ceiling"), "salary_share": ("工资比例", "share of salary"),
    "age_ratio": ("按年龄的比例", "ratio by age"), "from_age": ("起算年龄", "from age"),
    "per_year": ("每岁增加", "per year of age"), "period": ("累计周期", "period"), "key": ("共用封顶线", "shared cap"),
    "per_disease": ("按病种封顶", "cap per disease"), "base_includes_preselfpay": ("基数含乙类先行自付", "base counts 乙类 first self-pay"),
    "first_share": ("先行自付", "paid first"), "bonuses": ("比例加成", "ratio bonus"), "add": ("提高", "added"),
    "codes": ("项目编码", "item codes"), "med_chrgitm_types": ("收费项目类别", "charge categories"),
    "list_types": ("目录类别", "list types"), "selfpay_prop": ("先行自付比例", "first self-pay"),
    "fund_ratio": ("统筹支付比例", "fund ratio"), "unlimited": ("不封顶", "uncapped"),
    # conditions issue 12 added
    "inst_kinds": ("机构类型", "institution kind"), "fixmedins_codes": ("定点机构", "institution"),
    "cross_region": ("就医地", "where treated"), "filed": ("已备案", "filed"), "referred": ("转诊", "referred"),
    "grades": ("缴费档次", "payment grade"), "min_age": ("最低年龄", "age from"), "max_age": ("最高年龄", "age up to"),
    "retired_before": ("退休早于", "retired before"), "retired_from": ("退休不早于", "retired from"),
    "min_months_enrolled": ("连续参保月数不少于", "months enrolled at least"),
    # examples
    "doc": ("单据", "bill"), "expect": ("应得金额", "expected amount"), "expect_tiers": ("各档应得", "expected by tier"),
    "note": ("说明", "note"), "person": ("人员", "person"), "visit": ("就诊", "visit"), "lines": ("费用明细", "fee line"),
    "accumulators": ("年度累计", "year-to-date totals"), "visit_accumulators": ("本次累计", "this visit's totals"),
    "accounts": ("账户", "accounts"),
    # amounts an example expects (setlinfo and a tier's own)
    "hifp_pay": ("统筹基金支付", "pooled fund"), "hifob_pay": ("大额医疗补助", "large-amount fund"),
    "cvlserv_pay": ("公务员医疗补助", "civil-servant subsidy"), "hifmi_pay": ("大病保险", "serious-illness insurance"),
    "maf_pay": ("医疗救助", "medical assistance"), "hifes_pay": ("企业补充医疗保险", "supplementary insurance"),
    "hifdm_pay": ("伤残人员医疗保障", "disabled persons' fund"), "oth_pay": ("其他支付", "other"),
    "fund_pay_sumamt": ("基金支付总额", "fund total"), "psn_part_amt": ("个人负担总额", "patient's share"),
    "acct_pay": ("个人账户支付", "personal account"), "psn_cash_pay": ("现金支付", "cash"),
    "act_pay_dedc": ("实际支付起付线", "deductible taken"), "fund_payamt": ("基金支付", "fund payment"),
    "eligible": ("扣除起付线后基数", "base after the deductible"), "inscp_scp_amt": ("政策范围内金额", "in-scope amount"),
    "medfee_sumamt": ("医疗费总额", "total"), "acct_mulaid_pay": ("共济支付", "family mutual aid"),
}

# a condition's words where they differ from the policy head's field of the same name
MATCH_LABELS: dict[str, tuple[str, str]] = {"med_categories": ("医疗类别", "medical category"),
                                            "insutypes": ("险种", "insurance type")}

# value labels of enumerated settings: field -> value -> (zh, en)
VALUES: dict[str, dict[str, tuple[str, str]]] = {
    "kind": {"basic": ("基本医疗保险统筹", "basic pooled fund"), "large_amount": ("大额医疗费用补助", "large-amount"),
             "civil_servant": ("公务员医疗补助", "civil-servant subsidy"),
             "serious_illness": ("大病保险", "serious-illness insurance"), "assistance": ("医疗救助", "medical assistance"),
             "supplementary": ("补充医疗保险", "supplementary")},
    "base": {"inscp": ("政策范围内金额", "the in-scope amount"),
             "overflow": ("上一档封顶后未支付的部分", "what a capped tier left unpaid"),
             "psn_inscp": ("个人仍负担的政策范围内金额", "the in-scope amount the patient still bears")},
    "basis": {"none": ("无", "none"), "per_visit": ("每次住院（就诊）", "per admission (visit)"),
              "per_year": ("每年度", "per policy year"), "per_quarter": ("每季度", "per quarter"),
              "per_month": ("每月", "per month"), "fund": ("按基金支付额", "on the fund's payments"),
              "inscp": ("按计入的政策范围内金额", "on the in-scope amount counted")},
    "mode": {"before_ratio": ("先扣起付线再按比例支付", "taken off the base before the ratio"),
             "from_fund": ("从按比例计算的基金支付中扣除", "taken out of the fund's payment")},
    "axis": {"year": ("按年度累计", "accumulated over the year"), "visit": ("按本次累计", "within the visit")},
    "band_origin": {"deductible": ("起付线以上起算", "above the deductible"), "absolute": ("自零起算", "from zero")},
    "preselfpay_rounding_scope": {"per_line": ("逐条舍入", "per fee line"),
                                  "per_settlement": ("按结算舍入", "per settlement")},
    "rounding": {"half_up": ("四舍五入", "half up"), "down": ("舍去", "down"), "up": ("进位", "up"),
                 "half_even": ("银行家舍入", "half even")},
    "insutypes": {"310": ("职工基本医疗保险", "employees' basic insurance"), "320": ("公务员医疗补助", "civil servants"),
                  "330": ("大额医疗费用补助", "large-amount"), "340": ("离休人员医疗保障", "retired cadres"),
                  "390": ("城乡居民基本医疗保险", "residents' basic insurance"),
                  "392": ("城乡居民大病医疗保险", "residents' serious illness")},
    "levels": {"0": ("未定级/基层", "0 (unrated / primary)"), "1": ("一级", "1"), "2": ("二级", "2"),
               "3": ("三级", "3")},
    "psn_classes": {"in_service": ("在职", "in service"), "retired": ("退休", "retired"), "resident": ("居民", "resident"),
                    "child": ("少儿", "child"), "student": ("学生", "student")},
    "med_categories": {"outpatient": ("门诊", "outpatient"), "chronic": ("门诊慢特病", "chronic/special outpatient"),
                       "inpatient": ("住院", "inpatient"), "pharmacy": ("药店购药", "pharmacy purchase")},
    "period": {"year": ("医保年度", "policy year"), "quarter": ("季度", "quarter"), "month": ("月", "month")},
    "stay_across_years": {"settlement_year": ("全部计入结算年度", "all in the year it is settled"),
                          "split_by_fee_date": ("按费用发生年度分别计算封顶线", "caps split by the year each fee arose in")},
    "share_of": {"medfee": ("医疗费总额", "the whole bill"), "inscp": ("政策范围内金额", "the in-scope amount")},
    "inst_kinds": {"general": ("综合医院", "general hospital"), "tcm": ("中医院", "TCM hospital"),
                   "specialist": ("专科医院", "specialist hospital"), "grassroots": ("基层医疗机构", "primary care")},
    "cross_region": {"local": ("统筹区内", "in the pooling region"), "province": ("省内异地", "elsewhere in the province"),
                     "national": ("跨省异地", "in another province")},
    "identities": {"2201": ("特困人员", "extremely poor"), "2202": ("低保对象", "minimum-living-allowance"),
                   "2203": ("防返贫监测对象", "monitored against poverty")},
}
VALUES["payable"] = {"fulamt_ownpay": ("全自费", "wholly self-paid"), "overlmt_selfpay": ("超限价自费", "above price limits"),
                     "preselfpay": ("乙类先行自付", "乙类 first self-pay"), "inscp_selfpay": ("政策范围内自付", "in-scope share")}

# fields whose whole numbers are money (fen); any field below them inherits it (an example's expected amounts)
MONEY_FIELDS = frozenset({"amount", "upto", "year_cap", "expect", "expect_tiers", "per_disease", "floor", "ceiling",
                          "admission_floor"})
MONEY_SUFFIXES = ("amount", "amt", "_cap", "_lmt", "_pay", "payamt", "balance")
PERCENT_FIELDS_NOT = frozenset()  # Decimals are ratios in a policy; a Decimal that isn't would be listed here

WORDS: dict[str, dict[str, str]] = {
    "zh": {"yuan": "{v} 元", "none": "无", "any": "不限", "yes": "是", "no": "否", "open": "以上", "nth": "第{n}条",
           "band": "第{n}段", "empty_list": "（无）", "sep": "、", "list_sep": "；", "colon": "：", "rule_any": "其余情形",
           "tier": "{name}（{code}）", "example": "算例“{name}”", "policy": "政策"},
    "en": {"yuan": "{v} yuan", "none": "none", "any": "any", "yes": "yes", "no": "no", "open": "and above",
           "nth": "rule {n}", "band": "band {n}", "empty_list": "(none)", "sep": ", ", "list_sep": "; ", "colon": ": ",
           "rule_any": "any other case", "tier": "tier {code}", "example": "example “{name}”", "policy": "policy"},
}


def word(key: str, lang: str, **kw: Any) -> str:
    return WORDS["en" if lang == "en" else "zh"][key].format(**kw)


def label(name: str, lang: str) -> str:
    """A field's label; an unknown field's own name made readable ("from_admission" → "from admission")."""
    if name in LABELS:
        return LABELS[name][1 if lang == "en" else 0]
    return name.replace("_", " ")


def value_label(name: str, value: str, lang: str) -> str:
    known = VALUES.get(name, {}).get(value)
    if known is None:
        return value
    zh, en = known
    if lang == "en":
        return en
    return f"{zh}" if name in ("kind", "base", "basis", "mode", "axis", "band_origin", "rounding",
                                 "preselfpay_rounding_scope", "levels", "psn_classes", "med_categories", "payable",
                                 "period", "stay_across_years", "share_of", "inst_kinds", "cross_region") \
        else f"{value}（{zh}）"


def is_money(name: str, money: bool = False) -> bool:
    return money or name in MONEY_FIELDS or name.endswith(MONEY_SUFFIXES)


def yuan(fen: int, lang: str) -> str:
    return word("yuan", lang, v=format_yuan(fen))


def percent(ratio: Decimal) -> str:
    return f"{(ratio * 100).normalize():f}%"


def fmt(value: Any, lang: str, name: str = "", money: bool = False) -> str:
    """One value in words: ``name`` is its field (for units and value labels), ``money`` a unit inherited."""
    if value is None:
        return word("any" if name == "upto" else "none", lang)
    if isinstance(value, bool):
        return word("yes" if value else "no", lang)
    if isinstance(value, Enum):
        return value_label(name, str(value.value), lang)
    if isinstance(value, int):
        return yuan(value, lang) if is_money(name, money) else str(value)
    if isinstance(value, Decimal):
        return percent(value) if name not in PERCENT_FIELDS_NOT else f"{value:f}"
    if isinstance(value, date):
        return value.isoformat()
    if name == "year_start" and isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]:02d}-{value[1]:02d}"
    if isinstance(value, (frozenset, set)):
        if not value:
            return word("any", lang)
        return word("sep", lang).join(value_label(name, str(v), lang) for v in sorted(value, key=str))
    if isinstance(value, str):
        return value_label(name, value, lang) if value else "—"
    if isinstance(value, (tuple, list)):
        if not value:
            return word("empty_list", lang)
        return word("sep", lang).join(fmt(v, lang, name, money) for v in value)
    if dataclasses.is_dataclass(value):
        return summary(value, lang)
    if isinstance(value, Mapping):
        if not value:
            return word("empty_list", lang)
        return word("sep", lang).join(f"{k} {fmt(v, lang, str(k), money or is_money(name))}" for k, v in value.items())
    return str(value)


def _fields(obj: Any) -> list[dataclasses.Field]:
    return list(dataclasses.fields(obj))


def _is_default(f: dataclasses.Field, value: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        return value == f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return value == f.default_factory()  # type: ignore[misc]
    return False


def conditions(match: Any, lang: str) -> str:
    """A Match in words, e.g. "险种 310（职工基本医疗保险）、医院等级 三级"; empty when it accepts anything."""
    parts = []
    for f in _fields(match):
        value = getattr(match, f.name)
        if value is None or value == frozenset() or value == () or value == "":
            continue
        name = MATCH_LABELS[f.name][lang == "en"] if f.name in MATCH_LABELS else label(f.name, lang)
        parts.append(f"{name} {fmt(value, lang, f.name)}")
    return word("sep", lang).join(parts)


def bands(items: tuple, lang: str) -> str:
    """Ratio bands in words: "30000.00 元以下 85%，以上 90%" / a single open band: "90%"."""
    if len(items) == 1 and getattr(items[0], "upto", None) is None:
        return percent(items[0].ratio)
    out = []
    lower = 0
    for b in items:
        if b.upto is None:
            out.append(f"{yuan(lower, lang)} {word('open', lang)} {percent(b.ratio)}" if lang != "en"
                       else f"above {yuan(lower, lang)}: {percent(b.ratio)}")
        else:
            out.append(f"{yuan(lower, lang)}–{yuan(b.upto, lang)} {percent(b.ratio)}" if lang != "en"
                       else f"{yuan(lower, lang)}–{yuan(b.upto, lang)}: {percent(b.ratio)}")
            lower = b.upto
    return word("list_sep", lang).join(out)


def rule_title(index: int, item: Any, lang: str, list_name: str = "rules") -> str:
    """"第3条比例规则（医院等级 三级）" / "ratio rule 3 (hospital level 3)": a rule by its position in its list, with
    the conditions it has; bands as "第2段" / "band 2"."""
    name = label(list_name, lang)
    if lang == "en":
        head = f"{name} {index + 1}"
    else:
        head = f"第{index + 1}段" if list_name == "bands" else f"第{index + 1}条{name}"
    match = getattr(item, "match", None)
    if match is not None and dataclasses.is_dataclass(match):
        cond = conditions(match, lang) or word("rule_any", lang)
        head += f"（{cond}）" if lang != "en" else f" ({cond})"
    return head


def summary(obj: Any, lang: str) -> str:
    """A short description of one policy object (a rule, a band, a deductible …): its settings that aren't at
    their defaults. Rules and bands read as a region's document would say them."""
    names = {f.name for f in _fields(obj)}
    if {"upto", "ratio"} <= names and len(names) == 2:
        upto = getattr(obj, "upto")
        return (f"{word('any', lang) if upto is None else yuan(upto, lang)} {percent(obj.ratio)}")
    parts = []
    for f in _fields(obj):
        value = getattr(obj, f.name)
        if f.name == "match":
            cond = conditions(value, lang)
            if cond:
                parts.append(cond)
            continue
        if f.name == "bands":
            parts.append(bands(value, lang))
            continue
        if _is_default(f, value) and f.name != "amount":
            continue
        if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            text = word("list_sep", lang).join(summary(v, lang) for v in value)
        else:
            text = fmt(value, lang, f.name)
        name = label(f.name, lang)
        parts.append(f"{name} {text}" if name else text)
    return word("sep", lang).join(parts)


def tier_title(tier: Any, lang: str) -> str:
    return word("tier", lang, name=getattr(tier, "name", ""), code=getattr(tier, "code", ""))


def describe_tier(tier: Any, lang: str = "zh") -> list[str]:
    """A tier's settings as lines "label：value", rules one line each; fields left at their defaults are skipped
    (a new setting appears as soon as a tier uses it)."""
    lines: list[str] = []
    colon = word("colon", lang)
    for f in _fields(tier):
        if f.name in ("code", "name"):
            continue
        value = getattr(tier, f.name)
        if value in ("", None) or (_is_default(f, value)):
            continue
        name = label(f.name, lang)
        if dataclasses.is_dataclass(value) and any(
                isinstance(getattr(value, g.name), tuple) and getattr(value, g.name) for g in _fields(value)):
            # a table with rules (the deductible): its own settings on one line, each rule below
            head = [f"{label(g.name, lang)} {fmt(getattr(value, g.name), lang, g.name)}" for g in _fields(value)
                    if not isinstance(getattr(value, g.name), tuple) and not _is_default(g, getattr(value, g.name))]
            tuples = [(g, getattr(value, g.name)) for g in _fields(value) if isinstance(getattr(value, g.name), tuple)
                      and getattr(value, g.name)]
            scalars = [(g, v) for g, v in tuples if not dataclasses.is_dataclass(v[0])]
            head += [f"{label(g.name, lang)} {fmt(v, lang, g.name)}" for g, v in scalars]
            lines.append(name + colon + word("sep", lang).join(head))
            for g, items in tuples:
                if dataclasses.is_dataclass(items[0]):
                    for i, item in enumerate(items):
                        lines.append(f"  {rule_title(i, item, lang, g.name)}{colon}{_rule_value(item, lang)}")
            continue
        if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                lines.append(f"{rule_title(i, item, lang, f.name)}{colon}{_rule_value(item, lang)}")
            continue
        if f.name == "applies":
            lines.append(name + colon + (conditions(value, lang) or word("any", lang)))
            continue
        if dataclasses.is_dataclass(value):
            if getattr(value, "basis", None) == "none":
                continue
            lines.append(name + colon + summary(value, lang))
            continue
        lines.append(name + colon + fmt(value, lang, f.name))
    return lines


def _rule_value(item: Any, lang: str) -> str:
    """A rule's payload without its conditions (they are in its title)."""
    parts = []
    for f in _fields(item):
        if f.name == "match":
            continue
        value = getattr(item, f.name)
        if f.name == "bands":
            parts.append(bands(value, lang))
        elif f.name == "amount" or not _is_default(f, value):
            name = label(f.name, lang)
            text = fmt(value, lang, f.name)
            parts.append(f"{name} {text}" if name else text)
    return word("sep", lang).join(parts)
