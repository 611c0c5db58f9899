"""One bill's arithmetic, tier by tier, in words (zh-CN first; ``lang="en"`` for English) — the settlement's
``setl_proc_info`` written out: how each tier's base was formed, the deductible (its amount, what was already met,
what is taken now), the ratio bands walked with the amount in each, the cap and the room left, the payment; then
the personal account and the cash.

The bill is the stand-alone quote document of ``services.quote``, settled by the engine itself
(``adjudicate``); every payment shown is the engine's. The band walk is redone here only to show its steps: when
the steps don't add up to the engine's payment (a setting this explanation doesn't know yet), the tier says so and
shows the engine's figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from medpay.domain.adjudication import TierResult
from medpay.domain.model import VisitContext
from medpay.domain.policy import Band, Policy, Tier
from medpay.domain.policy_words import percent, tier_title, value_label, word, yuan
from medpay.money import round_fen
from medpay.services.quote import adjudicate_document

T = {
    "zh": {
        "bill": "医疗费总额 {total} = 全自费 {ownpay} + 超限价自费 {overlmt} + 乙类先行自付 {pre} + 政策范围内 {inscp}",
        "base_inscp": "基数：政策范围内金额 {base}",
        "base_overflow": "基数：{tier}封顶后未支付的部分 {base}",
        "base_psn": "基数：政策范围内金额 {inscp} − 前面各档基金支付 {fund}{dedc} = {base}（个人仍负担的政策范围内金额）",
        "base_psn_dedc": " − 前面各档起付线 {dedc}",
        "base_clamped": "（不超过政策范围内金额减去已由基金支付的部分，取 {base}）",
        "dedc": "起付线：{total}（{basis}{factor}），{where}已付 {met}，本次扣除 {taken}；扣除后 {eligible}",
        "dedc_factor": "，第 {seq} 次住院 × {factor}",
        "dedc_year_cap": "；年度起付线累计上限 {cap}",
        "dedc_from_fund": "起付线：{total}（{basis}），{where}已付 {met}；从按比例计算的基金支付中扣除 {taken}",
        "dedc_taken": "起付线：本次扣除 {taken}；扣除后 {eligible}",
        "where_year": "本年度", "where_visit": "本次",
        "start": "分段位置：{where}此前已累计 {start}",
        "band": "  {lo}–{hi} 段，比例 {ratio}：{amount} × {ratio} = {pay}",
        "band_open": "  {lo} 以上段，比例 {ratio}：{amount} × {ratio} = {pay}",
        "band_capped": "（达到封顶，只支付 {pay}）",
        "walk_sum": "按比例合计 {exact}，舍入后 {pay}",
        "bonus": "比例加成（指定类别的费用提高比例）{bonus}",
        "first_share": "先行自付 {share}（由个人负担，不进入本档）",
        "direct": "单列项目按其自身比例由统筹直接支付 {pay}（不计起付线和分段比例）",
        "walk_from_fund": "按比例合计 {gross} − 起付线 {dedc} = {pay}",
        "ratio_only": "比例：{ratio}",
        "mismatch": "（分段细算 {mine} 与结算结果不符，以结算结果 {pay} 为准）",
        "cap_fund": "封顶线：{cap}（按基金支付额），本年已支付 {used}，本次可支付限额 {left}",
        "cap_inscp": "封顶线：{cap}（按计入的政策范围内金额），本年已计入 {used}，本次可计入 {left}",
        "overflow": "封顶后未支付 {overflow}，可由承接的下一档支付",
        "pay": "{fund}支付：{pay}",
        "funds": "基金支付合计 {fund}",
        "psn": "个人负担 {psn} = 医疗费总额 {total} − 基金支付 {fund}",
        "acct": "个人账户支付 {acct}",
        "acct_aid": "个人账户支付 {acct}（其中家庭共济 {aid}）",
        "cash": "现金支付 {cash} = 个人负担 {psn} − 个人账户支付 {acct}",
        "no_tier": "没有适用的基金支付档，基金支付 0",
    },
    "en": {
        "bill": "Total {total} = wholly self-paid {ownpay} + above price limits {overlmt} + 乙类 first self-pay {pre} "
                "+ in scope {inscp}",
        "base_inscp": "Base: the in-scope amount {base}",
        "base_overflow": "Base: what {tier} left unpaid above its cap, {base}",
        "base_psn": "Base: in-scope amount {inscp} − earlier tiers' payments {fund}{dedc} = {base} (what the patient "
                    "still bears in scope)",
        "base_psn_dedc": " − earlier tiers' deductibles {dedc}",
        "base_clamped": " (no more than the in-scope amount the funds have not paid: {base})",
        "dedc": "Deductible: {total} ({basis}{factor}); already met {where} {met}, taken now {taken}; base after it "
                "{eligible}",
        "dedc_factor": ", admission {seq} × {factor}",
        "dedc_year_cap": "; yearly limit of deductibles {cap}",
        "dedc_from_fund": "Deductible: {total} ({basis}); already met {where} {met}; {taken} taken out of the fund's "
                          "payment",
        "dedc_taken": "Deductible taken now: {taken}; base after it {eligible}",
        "where_year": "this policy year", "where_visit": "this visit",
        "start": "Band position: {start} already counted {where}",
        "band": "  band {lo}–{hi} at {ratio}: {amount} × {ratio} = {pay}",
        "band_open": "  band above {lo} at {ratio}: {amount} × {ratio} = {pay}",
        "band_capped": " (the cap is reached: only {pay} is paid)",
        "walk_sum": "By the ratios {exact}, rounded {pay}",
        "bonus": "Ratio bonus on the lines it names: {bonus}",
        "first_share": "Paid first by the patient: {share} (left out of this tier)",
        "direct": "Items with their own fund ratio, paid directly: {pay} (outside the deductible and bands)",
        "walk_from_fund": "By the ratios {gross} − deductible {dedc} = {pay}",
        "ratio_only": "Ratio: {ratio}",
        "mismatch": " (the band-by-band figure {mine} differs from the settlement's; the settlement's {pay} stands)",
        "cap_fund": "Cap: {cap} on the fund's payments; paid this year {used}; room left {left}",
        "cap_inscp": "Cap: {cap} on the in-scope amount counted; counted this year {used}; room left {left}",
        "overflow": "Left unpaid above the cap: {overflow}, for a tier that takes the overflow",
        "pay": "{fund} pays {pay}",
        "funds": "Funds pay {fund} in all",
        "psn": "Patient's share {psn} = total {total} − funds {fund}",
        "acct": "Personal account pays {acct}",
        "acct_aid": "Personal account pays {acct} (family mutual aid {aid})",
        "cash": "Cash {cash} = patient's share {psn} − personal account {acct}",
        "no_tier": "No fund tier applies; the funds pay 0",
    },
}


@dataclass(frozen=True)
class TierExplanation:
    code: str
    title: str
    setl_field: str
    fund_payamt: int
    lines: tuple[str, ...]
    reproduced: bool  # the band-by-band steps add up to the engine's payment


@dataclass(frozen=True)
class Explanation:
    policy_id: str
    lang: str
    bill: tuple[str, ...]
    tiers: tuple[TierExplanation, ...]
    payment: tuple[str, ...]  # account and cash
    amounts: Mapping[str, int] = field(default_factory=dict)  # the engine's setlinfo amounts, fen

    @property
    def fund_pay_sumamt(self) -> int:
        return sum(t.fund_payamt for t in self.tiers)

    def text(self) -> str:
        out = list(self.bill)
        for t in self.tiers:
            out.append(t.title)
            out.extend(f"  {line}" for line in t.lines)
        out.extend(self.payment)
        return "\n".join(out)


def explain(policy: Policy, doc: Mapping[str, Any], lang: str = "zh") -> Explanation:
    lang = "en" if lang == "en" else "zh"
    _, visit, adj = adjudicate_document(policy, doc)
    w = _Words(lang)
    b = adj.bill
    bill = (w("bill", total=b.medfee_sumamt, ownpay=b.fulamt_ownpay_amt, overlmt=b.overlmt_selfpay,
              pre=b.preselfpay_amt, inscp=b.inscp_scp_amt),)
    tiers = {t.code: t for t in policy.tiers}
    done: list[TierExplanation] = []
    results: dict[str, TierResult] = {}
    fund_before = dedc_before = 0
    for r in adj.tiers:
        tier = tiers[r.code]
        ex = _Tier(w, policy, tier, r, visit)
        lines = ex.base(b.inscp_scp_amt, results, fund_before, dedc_before, tiers)
        if r.first_share:
            lines.append(w("first_share", share=r.first_share))
        lines += ex.deductible()
        lines += ex.walk()
        lines += ex.cap()
        fund = r.fund_pay_type_name if lang == "zh" else f"Fund {r.fund_pay_type}"
        lines.append(w("pay", fund=fund, pay=r.fund_payamt))
        done.append(TierExplanation(r.code, f"{tier_title(tier, lang)} {r.setl_field}", r.setl_field,
                                    r.fund_payamt, tuple(lines), ex.reproduced))
        results[r.code] = r
        fund_before += r.fund_payamt
        dedc_before += r.act_pay_dedc
    a = adj.amounts
    pay = [w("funds", fund=a["fund_pay_sumamt"]) if done else w("no_tier", fund=0),
           w("psn", psn=a["psn_part_amt"], total=a["medfee_sumamt"], fund=a["fund_pay_sumamt"])]
    if a["acct_pay"]:
        pay.append(w("acct_aid", acct=a["acct_pay"], aid=a["acct_mulaid_pay"]) if a["acct_mulaid_pay"]
                   else w("acct", acct=a["acct_pay"]))
    pay.append(w("cash", cash=a["psn_cash_pay"], psn=a["psn_part_amt"], acct=a["acct_pay"]))
    return Explanation(adj.policy_id, lang, bill, tuple(done), tuple(pay), dict(a))


class _Words:
    def __init__(self, lang: str):
        self.lang = lang

    def __call__(self, key: str, **values: Any) -> str:
        return T[self.lang][key].format(**{k: self.show(v) for k, v in values.items()})

    def show(self, v: Any) -> str:
        if isinstance(v, bool) or not isinstance(v, (int, Decimal)):
            return str(v)
        if isinstance(v, Decimal) and v != v.to_integral_value():  # an exact share between fen (a band, an overflow)
            return word("yuan", self.lang, v=f"{(v / 100).quantize(Decimal('0.0001'))}")
        return yuan(int(v), self.lang)


class _Tier:
    """One tier's steps, from its configuration and the engine's TierResult."""

    def __init__(self, w: _Words, policy: Policy, tier: Tier, r: TierResult, visit: VisitContext):
        self.w, self.policy, self.tier, self.r, self.visit = w, policy, tier, r, visit
        self.reproduced = True
        self.exact_base: Decimal | None = None
        # the deductible as the engine found it: the whole amount, what was met before, what was left to take
        self.dedc_total = r.deductible
        self.remaining = r.deductible_left

    def _factor(self) -> Decimal:
        factors = self.tier.deductible.admission_factors
        seq = max(1, self.visit.admission_seq)
        return factors[min(seq, len(factors)) - 1]

    def base(self, inscp: int, results: dict[str, TierResult], fund: int, dedc: int,
             tiers: Mapping[str, Tier]) -> list[str]:
        w, t, r = self.w, self.tier, self.r
        if t.base == "overflow":
            prior = results.get(t.overflow_of)
            name = tier_title(tiers[t.overflow_of], w.lang) if t.overflow_of in tiers else t.overflow_of
            formed = prior.overflow if prior else 0
            if prior is not None and formed == r.base:
                self.exact_base = prior.overflow_exact
            line = w("base_overflow", tier=name, base=r.base)
        elif t.base == "psn_inscp":
            counted = 0 if t.count_prior_dedc else dedc
            formed = inscp - fund - counted
            line = w("base_psn", inscp=inscp, fund=fund, base=max(0, formed),
                     dedc=w("base_psn_dedc", dedc=counted) if counted else "")
        else:
            formed = inscp
            line = w("base_inscp", base=r.base)
        if formed != r.base:
            line += w("base_clamped", base=r.base)
        return [line]

    def deductible(self) -> list[str]:
        w, t, r = self.w, self.tier, self.r
        ded = t.deductible
        if ded.basis == "none" and not r.act_pay_dedc:
            return []
        if self.dedc_total is None:
            return [w("dedc_taken", taken=r.act_pay_dedc, eligible=r.eligible)]
        where = w("where_visit" if ded.basis == "per_visit" else "where_year")
        basis = value_label("basis", ded.basis, w.lang)
        met = r.deductible_met
        if ded.mode == "from_fund":
            return [w("dedc_from_fund", total=self.dedc_total, basis=basis, where=where, met=met, taken=r.act_pay_dedc)]
        factor = w("dedc_factor", seq=str(max(1, self.visit.admission_seq)), factor=percent(self._factor())) \
            if ded.admission_factors else ""
        line = w("dedc", total=self.dedc_total, basis=basis, factor=factor, where=where, met=met,
                 taken=r.act_pay_dedc, eligible=r.eligible)
        if ded.year_cap is not None:
            line += w("dedc_year_cap", cap=ded.year_cap)
        return [line]

    def _bands(self) -> tuple[Band, ...] | None:
        return self.r.bands or None

    def walk(self) -> list[str]:
        """The bands walked, as the engine walks them (adjudication._walk), with the amount in each."""
        w, t, r = self.w, self.tier, self.r
        bands = self._bands()
        if bands is None or self.dedc_total is None or self.remaining is None:
            return [w("ratio_only", ratio=percent(r.ratio))]
        shift = 0
        if t.band_origin == "absolute":
            shift = self.dedc_total
            bands = tuple(b for b in (Band(None if b.upto is None else b.upto - shift, b.ratio) for b in bands)
                          if b.upto is None or b.upto > 0)
        before_ratio = t.deductible.mode == "before_ratio"
        walkable: Decimal | int = r.eligible
        room: Decimal | None = None
        if t.cap.basis == "inscp":
            walkable = min(r.eligible, r.crt_payb_lmt_amt or 0)
        if t.cap.basis == "fund":
            room = Decimal((r.crt_payb_lmt_amt or 0) + (0 if before_ratio else self.remaining))
        if self.exact_base is not None and r.act_pay_dedc == 0 and t.cap.basis != "inscp":
            walkable = self.exact_base
        start = self.r.walk_start
        lines = [w("start", start=start, where=w("where_year" if t.axis == "year" else "where_visit"))] if start else []
        pay = Decimal(0)
        end = start + walkable
        lower = 0
        for band in bands:
            upper = end if band.upto is None else band.upto
            lo, hi = max(start, lower), min(end, upper)
            lower = upper
            if hi <= lo:
                continue
            seg_pay = Decimal(hi - lo) * band.ratio
            capped = room is not None and pay + seg_pay >= room
            if capped:
                seg_pay = room - pay  # type: ignore[operator]
            key = "band_open" if band.upto is None else "band"
            line = w(key, lo=Decimal(lo + shift), hi=Decimal(upper + shift), ratio=percent(band.ratio),
                     amount=Decimal(hi - lo), pay=seg_pay)
            if capped:
                line += w("band_capped", pay=seg_pay)
            lines.append(line)
            pay += seg_pay
            if capped:
                break
        if r.bonus_exact:
            lines.append(w("bonus", bonus=r.bonus_exact))
            pay += r.bonus_exact
        gross = round_fen(pay, self.policy.rounding)
        mine = gross if before_ratio else gross - min(self.remaining, gross)
        if before_ratio:
            lines.append(w("walk_sum", exact=pay, pay=gross))
        else:
            lines.append(w("walk_from_fund", gross=gross, dedc=r.act_pay_dedc, pay=mine))
        if r.direct_pay:
            lines.append(w("direct", pay=r.direct_pay))
            mine += r.direct_pay
        if mine != r.fund_payamt:
            self.reproduced = False
            lines.append(w("mismatch", mine=mine, pay=r.fund_payamt))
        return lines

    def cap(self) -> list[str]:
        w, t, r = self.w, self.tier, self.r
        lines = []
        if r.cap is not None and t.cap.basis in ("fund", "inscp"):
            left = r.crt_payb_lmt_amt or 0
            lines.append(w(f"cap_{t.cap.basis}", cap=r.cap, used=max(0, r.cap - left), left=left))
        if r.overflow:
            lines.append(w("overflow", overflow=r.overflow_exact if r.overflow_exact != r.overflow else r.overflow))
        return lines
