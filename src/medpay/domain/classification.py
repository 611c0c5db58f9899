"""Fee-line classification (2204/2301 result): how much of each line is in the policy scope.

Order per line: 丙类 → everything fully self-paid; otherwise the part above the unit price limit is
over-limit self-pay; of the rest, a 乙类 item's first self-pay share; what remains is in scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from medpay.domain.model import ChrgitmLv, FeeLine, list_type_of
from medpay.domain.policy import ItemRule, Policy
from medpay.money import round_fen


@dataclass(frozen=True, slots=True)  # one per fee line: slots keep a 300-line bill's memory down
class LineSplit:
    feedetl_sn: str
    det_item_fee_sumamt: int
    fulamt_ownpay_amt: int
    overlmt_amt: int
    preselfpay_amt: int
    inscp_scp_amt: int
    selfpay_prop: Decimal
    chrgitm_lv: str
    med_chrgitm_type: str
    pric_uplmt_amt: int | None
    exact_preselfpay: Decimal  # unrounded, for per-settlement rounding
    list_type: str = ""  # 目录类别 (101 西药中成药, 102 中药饮片, 201 医疗服务, 301 耗材)
    fund_ratio: Decimal | None = None  # an item rule's own fund ratio: paid outside the tier's deductible and bands
    fund_tiers: frozenset[str] = frozenset()  # the basic tiers that pay it so (empty: whichever applies)


@dataclass(frozen=True)
class BillSplit:
    lines: tuple[LineSplit, ...]
    medfee_sumamt: int
    fulamt_ownpay_amt: int
    overlmt_selfpay: int
    preselfpay_amt: int
    inscp_scp_amt: int


_ZERO, _ONE, _NO_TIERS = Decimal(0), Decimal(1), frozenset[str]()  # shared: a bill may have thousands of lines


def selfpay_prop(line: FeeLine, policy: Policy, rule: ItemRule | None = None) -> Decimal:
    item = line.item
    if item.chrgitm_lv == ChrgitmLv.BING:
        return _ONE
    if rule is not None and rule.selfpay_prop is not None:  # the region's rule for this item comes first
        return rule.selfpay_prop
    if item.chrgitm_lv == ChrgitmLv.JIA:
        return _ZERO
    if item.selfpay_prop is not None:
        return item.selfpay_prop
    return policy.yi_selfpay_by_category.get(item.med_chrgitm_type, policy.yi_selfpay_default)


def classify_line(line: FeeLine, policy: Policy) -> LineSplit:
    amount = line.det_item_fee_sumamt
    item = line.item
    list_type = item.list_type or list_type_of(item.med_chrgitm_type)
    rule = policy.item_rule_for(item.med_list_codg, item.med_chrgitm_type, list_type) if policy.item_rules else None
    prop = selfpay_prop(line, policy, rule)
    fulamt = overlmt = 0
    exact_pre = _ZERO
    if item.chrgitm_lv == ChrgitmLv.BING:
        fulamt = amount
    else:
        if item.pric_uplmt_amt is not None:
            allowed = round_fen(Decimal(item.pric_uplmt_amt) * line.cnt, policy.rounding)
            overlmt = max(0, amount - allowed)
        exact_pre = Decimal(amount - overlmt) * prop
    pre = round_fen(exact_pre, policy.rounding)
    return LineSplit(
        feedetl_sn=line.feedetl_sn, det_item_fee_sumamt=amount, fulamt_ownpay_amt=fulamt, overlmt_amt=overlmt,
        preselfpay_amt=pre, inscp_scp_amt=amount - fulamt - overlmt - pre, selfpay_prop=prop,
        chrgitm_lv=item.chrgitm_lv.value, med_chrgitm_type=item.med_chrgitm_type,
        pric_uplmt_amt=item.pric_uplmt_amt, exact_preselfpay=exact_pre,
        list_type=list_type,
        fund_ratio=None if rule is None or item.chrgitm_lv == ChrgitmLv.BING else rule.fund_ratio,
        fund_tiers=rule.tiers if rule is not None else _NO_TIERS,
    )


def classify_bill(lines: list[FeeLine] | tuple[FeeLine, ...], policy: Policy) -> BillSplit:
    splits = tuple(classify_line(line, policy) for line in lines)
    medfee = sum(s.det_item_fee_sumamt for s in splits)
    fulamt = sum(s.fulamt_ownpay_amt for s in splits)
    overlmt = sum(s.overlmt_amt for s in splits)
    if policy.preselfpay_rounding_scope == "per_settlement":
        pre = round_fen(sum((s.exact_preselfpay for s in splits), Decimal(0)), policy.rounding)
    else:
        pre = sum(s.preselfpay_amt for s in splits)
    return BillSplit(splits, medfee, fulamt, overlmt, pre, medfee - fulamt - overlmt - pre)
