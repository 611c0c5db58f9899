"""Bill + policy + accumulators → the split (setlinfo, setldetail). Pure: nothing is read or written.

Each tier pays a ratio of its *base* after its *deductible*, walking ratio *bands* from where the
person already stands on the tier's axis (the year or this visit), until its *cap* is reached. The
amount a capped tier could not pay is its *overflow*, which a large-amount tier may take as its base.
Later tiers (civil servant, serious illness, assistance) take what the patient still bears of the
in-scope amount. Every tier returns accumulator deltas for both the year and the visit, so a settlement
and its cancellation move the same keys by opposite amounts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, Decimal

from medpay.domain.classification import BillSplit, classify_bill
from medpay.domain.model import AccountSource, Accumulators, FeeLine, Person, VisitContext
from medpay.domain.policy import Band, Facts, MissingFact, Policy, Tier
from medpay.money import Rounding, format_yuan, round_fen

ACCOUNT_FUND_PAY_TYPE = "310200"
ACCOUNT_FUND_NAME = "城镇职工基本医疗保险个人账户基金"
FUND_NAMES = {
    "310100": "城镇职工基本医疗保险统筹基金",
    "320100": "公务员医疗补助基金",
    "330100": "大额医疗费用补助基金",
    "340100": "离休人员医疗保障基金",
    "370100": "企业补充医疗保险基金",
    "390100": "城乡居民基本医疗保险基金",
    "390200": "城乡居民大病医疗保险基金",
    "610100": "医疗救助基金",
    "999997": "其他基金",
}
ADMISSIONS_KEY = "admissions"
INPATIENT_CATEGORY = "inpatient"

AMOUNT_FIELDS = (
    "medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt", "act_pay_dedc",
    "hifp_pay", "cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "hifdm_pay", "maf_pay", "oth_pay",
    "fund_pay_sumamt", "psn_part_amt", "acct_pay", "psn_cash_pay", "hosp_part_amt", "acct_mulaid_pay",
)


class AdjudicationError(ValueError):
    """The policy can't settle this bill (e.g. no deductible rule for the institution's level)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class TierResult:
    code: str
    kind: str
    fund_pay_type: str
    fund_pay_type_name: str
    setl_field: str
    base: int
    act_pay_dedc: int
    eligible: int  # base after the deductible
    consumed: int  # eligible amount the tier covered before its cap
    overflow: int  # eligible amount its cap left unpaid
    overflow_exact: Decimal  # the same before rounding to the fen, so the next tier's ratio applies to it exactly
    fund_payamt: int
    crt_payb_lmt_amt: int | None  # what the cap still allowed before this settlement
    ratio: Decimal
    proc_info: str
    direct_pay: int = 0  # paid for items with their own fund ratio, outside the deductible and bands (in fund_payamt)
    first_share: int = 0  # the share of the base the patient paid first (转外就医 先行自付)
    # how the figures came about, for explanations (medpay policy explain): the whole deductible, what the visit or
    # period had met before, what was left to take; the bands of the rule that applied (before an absolute shift)
    # and where the walk started on them
    deductible: int = 0
    deductible_met: int = 0
    deductible_left: int = 0
    bands: tuple[Band, ...] = ()
    walk_start: int = 0
    cap: int | None = None  # the cap that applied (by person, disease or the tier's own); None: uncapped
    bonus_exact: Decimal = Decimal(0)  # what the ratio bonuses added, before rounding (in fund_payamt)


@dataclass(frozen=True)
class AccountPayment:
    psn_no: str
    relation: str
    amount: int


@dataclass(frozen=True)
class SetlDetail:
    fund_pay_type: str
    fund_pay_type_name: str
    inscp_scp_amt: int
    crt_payb_lmt_amt: int  # 本次可支付限额 (required): a capped tier's room, an uncapped tier's payment, the balance of the accounts that paid
    fund_payamt: int
    setl_proc_info: str


@dataclass(frozen=True)
class Adjudication:
    policy_id: str
    bill: BillSplit
    tiers: tuple[TierResult, ...]
    amounts: dict[str, int]  # AMOUNT_FIELDS, fen
    pool_prop_selfpay: Decimal
    balc: int  # own personal-account balance after the payment
    account_payments: tuple[AccountPayment, ...]
    setldetail: tuple[SetlDetail, ...]
    year_deltas: dict[str, int] = field(default_factory=dict)
    visit_deltas: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------


def _walk(bands: tuple[Band, ...], start: int, amount: int | Decimal, room: Decimal | None) -> tuple[Decimal, Decimal, Decimal]:
    """Walk ``amount`` from ``start`` on the band axis. Stop paying when ``room`` (exact fen) is used up.

    Returns (exact pay, exact amount covered, ratio of the band where the walk ended).
    """
    pay = Decimal(0)
    covered = Decimal(0)
    end = start + amount
    ratio = bands[0].ratio
    lower = 0
    for band in bands:
        upper = end if band.upto is None else band.upto
        seg_lo, seg_hi = max(start, lower), min(end, upper)
        if start >= lower:
            ratio = band.ratio  # the band the walk starts in (reported even when nothing is walked)
        lower = upper
        if seg_hi <= seg_lo:
            continue
        ratio = band.ratio
        seg = Decimal(seg_hi - seg_lo)
        seg_pay = seg * ratio
        if room is not None and pay + seg_pay >= room:
            left = room - pay
            covered += (left / ratio) if ratio > 0 else seg
            return room, covered, ratio
        pay += seg_pay
        covered += seg
    return pay, covered, ratio


def _shift_bands(bands: tuple[Band, ...], by: int) -> tuple[Band, ...]:
    """Absolute band limits → limits above a deductible of ``by`` (bands wholly below it vanish)."""
    out = [Band(None if b.upto is None else b.upto - by, b.ratio) for b in bands]
    return tuple(b for b in out if b.upto is None or b.upto > 0)


@dataclass
class _Context:
    policy: Policy
    person: Person
    visit: VisitContext
    facts: Facts
    year: Accumulators
    visit_acc: Accumulators
    bill: BillSplit
    year_d: dict[str, int] = field(default_factory=dict)  # this settlement's deltas so far: tiers sharing a cap see them
    visit_d: dict[str, int] = field(default_factory=dict)
    _suffixes: dict[str, str] = field(default_factory=dict)

    def year_total(self, key: str) -> int:
        return self.year.get(key) + self.year_d.get(key, 0)

    def visit_total(self, key: str) -> int:
        return self.visit_acc.get(key) + self.visit_d.get(key, 0)

    def period(self, period: str) -> str:
        """Accumulator-key suffix of the settlement's quarter or month ("" for the policy year)."""
        suffix = self._suffixes.get(period)
        if suffix is None:
            on = self.visit.setl_date
            if period in ("per_month", "month"):
                suffix = f"@{on.year}-{on.month:02d}"
            elif period in ("per_quarter", "quarter"):
                suffix = f"@{on.year}Q{(on.month - 1) // 3 + 1}"
            else:
                suffix = ""
            self._suffixes[period] = suffix
        return suffix


def _facts(policy: Policy, person: Person, visit: VisitContext) -> Facts:
    on = visit.setl_date
    return Facts(
        insutype=person.insutype, psn_class=policy.psn_class(person.psn_type), med_category=policy.med_category(visit.med_type),
        level=visit.institution.level, identities=person.identities, dise_codg=visit.dise_codg,
        cvlserv=person.cvlserv_flag, age=person.age_on(on), retr_date=person.retr_date, pay_grade=person.pay_grade,
        inst_kind=visit.institution.inst_kind, fixmedins_code=visit.institution.fixmedins_code,
        cross_region=visit.cross_region, filed=visit.filed, referred=visit.referred,
        months_enrolled=person.months_enrolled(on), salary=person.salary,
    )


def _shift_level(level: str, offset: int) -> str:
    if not offset or not level.isdigit():
        return level
    return str(min(3, max(1, int(level) + offset)))


def _deductible_amount(tier: Tier, ctx: _Context) -> int:
    ded = tier.deductible
    if ded.basis == "none":
        return 0
    rounding = ctx.policy.rounding
    offset, factor = 0, Decimal(1)
    for adj in ded.adjustments:
        if adj.match.accepts(ctx.facts):
            offset += adj.level_offset
            factor *= adj.factor
    facts = replace(ctx.facts, level=_shift_level(ctx.facts.level, offset)) if offset else ctx.facts
    rule = next((rule for rule in ded.rules if rule.match.accepts(facts)), None)
    if rule is None:
        raise AdjudicationError(
            f"tiers.{tier.code}.deductible",
            f"no rule for level {facts.level!r}, person class {facts.psn_class!r}, medical category {facts.med_category!r}",
        )
    if rule.salary_share is not None:
        if ctx.person.salary is None:
            raise MissingFact("person.salary", f"tier {tier.code}'s deductible is a share of the salary")
        amount = round_fen(Decimal(ctx.person.salary) * rule.salary_share, rounding)
    elif rule.share is not None:
        of = ctx.bill.medfee_sumamt if rule.share_of == "medfee" else ctx.bill.inscp_scp_amt
        amount = max(rule.floor, round_fen(Decimal(of) * rule.share, rounding))
        amount = amount if rule.ceiling is None else min(rule.ceiling, amount)
    else:
        amount = rule.amount
    seq = max(1, ctx.visit.admission_seq)
    unlowered = amount
    if ded.admission_factors:
        amount = round_fen(Decimal(amount) * ded.admission_factors[min(seq, len(ded.admission_factors)) - 1], rounding)
    for step in ded.admissions:  # steps rise; each one reached applies in turn, a fixed amount never raises it
        if step.from_seq > seq:
            break
        amount = round_fen(Decimal(amount) * step.factor, rounding) if step.factor is not None else min(amount, step.amount)
    if ded.admission_floor is not None and amount < unlowered:  # lowered for a later admission, but not below
        amount = min(unlowered, max(amount, ded.admission_floor))
    if factor != 1:
        amount = round_fen(Decimal(amount) * factor, rounding)
    return amount


def _cap_amount(tier: Tier, ctx: _Context) -> tuple[int | None, str]:
    """The tier's cap for this person and visit (None: uncapped) and the accumulator-key suffix it counts under."""
    cap = tier.cap
    suffix = ctx.period(cap.period)
    for rule in cap.rules:
        if rule.match.accepts(ctx.facts):
            return rule.amount, suffix
    if cap.per_disease:
        dise = ctx.visit.dise_codg
        if dise in cap.per_disease:
            return cap.per_disease[dise], f"{suffix}#{dise}"
        if not cap.amount:
            raise AdjudicationError("dise_codg", f"tier {tier.code} caps each disease, and {dise or '(none)'!r} has no cap "
                                                 f"({', '.join(sorted(cap.per_disease))})")
    return cap.amount, suffix


def _bump(deltas: dict[str, int], key: str, value: int) -> None:
    if value:
        deltas[key] = deltas.get(key, 0) + value


def _run_tier(tier: Tier, bands: tuple[Band, ...], base: int, ctx: _Context,
              exact_base: Decimal | None = None, direct: tuple[tuple[int, Decimal], ...] = (),
              bonus_base: Decimal = Decimal(0)) -> TierResult:
    """``direct``: (in-scope amount, fund ratio) of items paid outside deductible and bands; ``bonus_base``: the
    base's extra ratio weight, Σ add × matching in-scope amount (中药 a few points higher)."""
    rounding: Rounding = ctx.policy.rounding
    p = tier.pool
    year_d, visit_d = ctx.year_d, ctx.visit_d
    info = [f"基数{format_yuan(base)}"]

    first = 0
    share = next((f.share for f in tier.first_share if f.match.accepts(ctx.facts)), None)
    if share:
        first = min(base, round_fen(Decimal(base) * share, rounding))
        info.append(f"先行自付{(share * 100).normalize():f}%={format_yuan(first)}")
        bonus_base = bonus_base * (base - first) / base if base else Decimal(0)
        base -= first
        exact_base = None

    dedc_total = _deductible_amount(tier, ctx)
    per_visit = tier.deductible.basis == "per_visit"
    dedc_key = f"{p}.dedc{ctx.period(tier.deductible.basis)}"
    met = ctx.visit_total(dedc_key) if per_visit else ctx.year_total(dedc_key)
    remaining_dedc = max(0, dedc_total - met)
    if tier.deductible.year_cap is not None:
        remaining_dedc = min(remaining_dedc, max(0, tier.deductible.year_cap - ctx.year_total(f"{p}.dedc")))
    axis_total = ctx.year_total if tier.axis == "year" else ctx.visit_total
    rule_bands = bands
    if tier.band_origin == "absolute":
        bands = _shift_bands(bands, dedc_total)

    before_ratio = tier.deductible.mode == "before_ratio"
    act_dedc = min(base, remaining_dedc) if before_ratio else 0
    eligible = base - act_dedc

    cap_amount, cap_suffix = _cap_amount(tier, ctx) if tier.cap.basis != "none" else (None, "")
    cap_key = f"{tier.cap.key or p}"
    walkable = eligible
    limit_left: int | None = None
    room: Decimal | None = None
    if cap_amount is not None and tier.cap.basis == "inscp":
        limit_left = max(0, cap_amount - ctx.year_total(f"{cap_key}.counted{cap_suffix}"))
        walkable = min(eligible, limit_left)
    if cap_amount is not None and tier.cap.basis == "fund":
        limit_left = max(0, cap_amount - ctx.year_total(f"{cap_key}.fund{cap_suffix}"))
        # with the deductible taken out of the fund payment, the walk may pay that much more first
        room = Decimal(limit_left + (0 if before_ratio else remaining_dedc))

    start = axis_total(f"{p}.elig")
    # an overflow base stays exact when nothing was taken off it, so ratio × base is rounded only once
    walk_amount: Decimal | int = walkable
    if exact_base is not None and act_dedc == 0 and tier.cap.basis != "inscp":
        walk_amount = exact_base
    exact_pay, exact_covered, ratio = _walk(bands, start, walk_amount, room) if bands else (Decimal(0), Decimal(0), Decimal(0))
    extra = Decimal(0)
    if bonus_base and base:
        extra = bonus_base * exact_covered / base
        if room is not None:
            extra = min(extra, room - exact_pay)
        if extra > 0:
            info.append(f"加成{format_yuan(round_fen(extra, rounding))}")
            exact_pay += extra
        else:
            extra = Decimal(0)
    pay = round_fen(exact_pay, rounding)
    consumed = min(walkable, int(exact_covered.to_integral_value(rounding=ROUND_CEILING)))
    if not before_ratio:
        act_dedc = min(remaining_dedc, pay)
        pay -= act_dedc
    overflow = eligible - consumed
    overflow_exact = max(Decimal(0), (walk_amount if isinstance(walk_amount, Decimal) else Decimal(eligible)) - exact_covered)

    direct_pay = round_fen(sum((Decimal(amount) * r for amount, r in direct), Decimal(0)), rounding) if direct else 0
    if direct_pay and limit_left is not None and tier.cap.basis == "fund":
        direct_pay = max(0, min(direct_pay, limit_left - pay))
    pay += direct_pay

    counted = consumed + sum(amount for amount, _ in direct)
    for acc in (year_d, visit_d):
        _bump(acc, f"{p}.dedc", act_dedc)
        _bump(acc, f"{p}.elig", consumed)
        _bump(acc, f"{p}.fund", pay)
        _bump(acc, f"{p}.counted", counted)
    for suffix_key, value in ((f"{p}.dedc{ctx.period(tier.deductible.basis)}", act_dedc),
                              (f"{cap_key}.fund{cap_suffix}", pay), (f"{cap_key}.counted{cap_suffix}", counted)):
        if suffix_key not in (f"{p}.dedc", f"{p}.fund", f"{p}.counted"):  # a period, a disease or a shared cap
            _bump(year_d, suffix_key, value)

    if dedc_total:
        info.append(f"起付线{format_yuan(dedc_total)}(本次{format_yuan(act_dedc)})")
    info.append("比例" + "/".join(f"{(b.ratio * 100).normalize():f}%" for b in bands) if bands else "比例0%")
    if direct_pay:
        info.append(f"单列项目统筹直付{format_yuan(direct_pay)}")
    if cap_amount is not None:
        info.append(f"封顶{format_yuan(cap_amount)}(剩余{format_yuan(limit_left or 0)})")
    return TierResult(
        code=tier.code, kind=tier.kind, fund_pay_type=tier.fund_pay_type,
        fund_pay_type_name=FUND_NAMES.get(tier.fund_pay_type, tier.name), setl_field=tier.setl_field,
        base=base + first, act_pay_dedc=act_dedc, eligible=eligible, consumed=consumed, overflow=overflow,
        overflow_exact=overflow_exact, fund_payamt=pay,
        crt_payb_lmt_amt=limit_left, ratio=ratio, proc_info="；".join(info), direct_pay=direct_pay, first_share=first,
        deductible=dedc_total, deductible_met=met, deductible_left=remaining_dedc, bands=rule_bands, walk_start=start,
        cap=cap_amount, bonus_exact=extra,
    )


def _account_payments(policy: Policy, person: Person, parts: dict[str, int], sources: tuple[AccountSource, ...],
                      use_account: bool) -> tuple[AccountPayment, ...]:
    if not use_account:
        return ()
    rules = policy.account
    payable = sum(v for k, v in parts.items() if k in rules.payable)
    payments: list[AccountPayment] = []
    own_allowed = not rules.insutypes or person.insutype in rules.insutypes
    for src in sources:
        if payable <= 0:
            break
        if src.relation == "self":
            if not own_allowed:
                continue
        elif not (rules.mutual_aid and src.relation in rules.mutual_aid_relations):
            continue
        amount = min(payable, max(0, src.balance))
        if amount:
            payments.append(AccountPayment(src.psn_no, src.relation, amount))
            payable -= amount
    return tuple(payments)


def _direct_lines(tier: Tier, bill: BillSplit) -> tuple[tuple[int, Decimal], ...]:
    """In-scope amounts of items this basic tier pays at their own fund ratio (item rules)."""
    if tier.kind != "basic":
        return ()
    return tuple((ln.inscp_scp_amt, ln.fund_ratio) for ln in bill.lines
                 if ln.fund_ratio is not None and ln.inscp_scp_amt and (not ln.fund_tiers or tier.code in ln.fund_tiers))


def _bonus_base(tier: Tier, bill: BillSplit, direct: bool) -> Decimal:
    """Σ add × in-scope amount of the lines each bonus names (lines paid directly by an item rule excluded)."""
    weight = Decimal(0)
    for bonus in tier.bonuses:
        for ln in bill.lines:
            if direct and ln.fund_ratio is not None:
                continue
            if ln.list_type in bonus.list_types or ln.med_chrgitm_type in bonus.med_chrgitm_types:
                weight += bonus.add * ln.inscp_scp_amt
    return weight


def _run_tiers(policy: Policy, ctx: _Context) -> dict[str, TierResult]:
    bill, facts = ctx.bill, ctx.facts
    results: dict[str, TierResult] = {}
    groups_taken: set[str] = set()
    fund_total = 0
    dedc_total = 0
    for tier in policy.tiers:
        if tier.group in groups_taken or not tier.applies.accepts(facts):
            continue
        rule = next((rr for rr in tier.ratios if rr.match.accepts(facts)), None)
        if rule is None:
            continue
        groups_taken.add(tier.group)
        exact: Decimal | None = None
        direct: tuple[tuple[int, Decimal], ...] = ()
        ceiling = bill.inscp_scp_amt - fund_total  # what is left of the in-scope amount
        if tier.base == "inscp":
            direct = _direct_lines(tier, bill)
            base = bill.inscp_scp_amt - sum(amount for amount, _ in direct)
        elif tier.base == "overflow":
            prior = results.get(tier.overflow_of)
            base = prior.overflow if prior else 0
            exact = prior.overflow_exact if prior else None
        else:
            base = bill.inscp_scp_amt - fund_total - (0 if tier.count_prior_dedc else dedc_total)
            if tier.base_includes_preselfpay:
                base += bill.preselfpay_amt
                ceiling += bill.preselfpay_amt
        # hard guard: no tier may pay more than what is left of the amount it may count
        clamped = max(0, min(base, ceiling))
        if clamped != base:
            base, exact = clamped, None
        bonus = _bonus_base(tier, bill, bool(direct)) if tier.bonuses else Decimal(0)
        result = _run_tier(tier, rule.bands_for(facts), base, ctx, exact, direct, bonus)
        results[tier.code] = result
        fund_total += result.fund_payamt
        dedc_total += result.act_pay_dedc
    return results


def _year_groups(policy: Policy, visit: VisitContext, lines) -> dict[int, list[FeeLine]]:
    """The bill's lines by the policy year their fees arose in — one group unless the policy splits a stay."""
    settle_year = policy.policy_year(visit.setl_date)
    if policy.stay_across_years != "split_by_fee_date":
        return {settle_year: list(lines)}
    groups: dict[int, list[FeeLine]] = {}
    for ln in lines:
        y = policy.policy_year(ln.fee_date) if ln.fee_date is not None else settle_year
        groups.setdefault(min(y, settle_year), []).append(ln)
    return groups or {settle_year: []}


def _across_years(policy: Policy, person: Person, visit: VisitContext, groups: dict[int, list[FeeLine]],
                  year: Accumulators, visit_acc: Accumulators, other_years: Mapping[int, Accumulators]):
    """A stay across policy years: each year's fees walk that year's accumulators and caps, one after the other;
    the visit's deductible and band position carry on from one year's part to the next."""
    settle_year = policy.policy_year(visit.setl_date)
    year_d: dict[str, int] = {}
    visit_d: dict[str, int] = {}
    parts: list[tuple[int, BillSplit, dict[str, TierResult]]] = []
    for y in sorted(groups):
        if y != settle_year and y not in other_years:
            raise AdjudicationError("fee_ocur_time", f"the accumulators of policy year {y} are needed for this stay")
        acc = year if y == settle_year else other_years[y]
        part_visit = visit if y == settle_year else replace(visit, setl_date=policy.policy_year_end(y))
        bill = classify_bill(groups[y], policy)
        ctx = _Context(policy, person, part_visit, _facts(policy, person, part_visit), acc, visit_acc.plus(visit_d), bill)
        results = _run_tiers(policy, ctx)
        for k, v in ctx.year_d.items():
            key = k if y == settle_year else f"{y}/{k}"
            year_d[key] = year_d.get(key, 0) + v
        for k, v in ctx.visit_d.items():
            visit_d[k] = visit_d.get(k, 0) + v
        parts.append((y, bill, results))
    splits = tuple(ln for _, b, _ in parts for ln in b.lines)
    bill = BillSplit(splits, *(sum(getattr(b, f) for _, b, _ in parts) for f in (
        "medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt")))
    combined: dict[str, TierResult] = {}
    summed = ("base", "act_pay_dedc", "eligible", "consumed", "overflow", "overflow_exact", "fund_payamt", "direct_pay",
              "first_share", "bonus_exact")
    for y, _, results in parts:
        for code, r in results.items():
            labelled = replace(r, proc_info=f"{y}年度:{r.proc_info}")
            prior = combined.get(code)
            combined[code] = labelled if prior is None else replace(
                labelled, **{f: getattr(prior, f) + getattr(r, f) for f in summed},
                proc_info=f"{prior.proc_info}｜{labelled.proc_info}", deductible=prior.deductible,
                deductible_met=prior.deductible_met, deductible_left=prior.deductible_left)
    ordered = {t.code: combined[t.code] for t in policy.tiers if t.code in combined}
    return bill, ordered, year_d, visit_d


def adjudicate(
    policy: Policy,
    person: Person,
    visit: VisitContext,
    lines: list[FeeLine] | tuple[FeeLine, ...],
    year: Accumulators,
    visit_acc: Accumulators | None = None,
    accounts: tuple[AccountSource, ...] = (),
    use_account: bool = True,
    other_years: Mapping[int, Accumulators] | None = None,
) -> Adjudication:
    """Split a bill into fund payments, personal-account payments and the patient's cash part.

    ``accounts`` lists the personal accounts that may pay, the patient's own (relation "self") first,
    then authorised family members in the order they should be drawn on. ``other_years``: the person's
    accumulators of the earlier policy years a stay's fees arose in, under a policy that splits such a stay.
    """
    facts = _facts(policy, person, visit)
    if not facts.med_category:
        raise AdjudicationError("med_type", f"{visit.med_type!r} is not a medical type of policy {policy.policy_id}")
    groups = _year_groups(policy, visit, lines)
    try:
        if len(groups) == 1 and next(iter(groups)) == policy.policy_year(visit.setl_date):
            bill = classify_bill(lines, policy)
            ctx = _Context(policy, person, visit, facts, year, visit_acc or Accumulators(), bill)
            results = _run_tiers(policy, ctx)
            year_d, visit_d = ctx.year_d, ctx.visit_d
        else:
            bill, results, year_d, visit_d = _across_years(policy, person, visit, groups, year, visit_acc or Accumulators(),
                                                          other_years or {})
    except MissingFact as e:
        raise AdjudicationError(e.field, e.problem) from None
    fund_total = sum(r.fund_payamt for r in results.values())
    tiers = tuple(results.values())
    basic = next((t for t in tiers if t.kind == "basic"), None)
    amounts = {k: 0 for k in AMOUNT_FIELDS}
    amounts.update(
        medfee_sumamt=bill.medfee_sumamt, fulamt_ownpay_amt=bill.fulamt_ownpay_amt,
        overlmt_selfpay=bill.overlmt_selfpay, preselfpay_amt=bill.preselfpay_amt, inscp_scp_amt=bill.inscp_scp_amt,
        act_pay_dedc=basic.act_pay_dedc if basic else 0,
    )
    for t in tiers:
        amounts[t.setl_field] += t.fund_payamt
    amounts["fund_pay_sumamt"] = fund_total
    amounts["hosp_part_amt"] = 0
    amounts["psn_part_amt"] = bill.medfee_sumamt - fund_total - amounts["hosp_part_amt"]

    parts = {
        "fulamt_ownpay": bill.fulamt_ownpay_amt, "overlmt_selfpay": bill.overlmt_selfpay,
        "preselfpay": bill.preselfpay_amt, "inscp_selfpay": bill.inscp_scp_amt - fund_total,
    }
    payments = _account_payments(policy, person, parts, accounts, use_account)
    acct_pay = sum(p.amount for p in payments)
    amounts["acct_pay"] = acct_pay
    amounts["acct_mulaid_pay"] = sum(p.amount for p in payments if p.relation != "self")
    amounts["psn_cash_pay"] = amounts["psn_part_amt"] - acct_pay
    own = next((s for s in accounts if s.relation == "self"), None)
    own_paid = sum(p.amount for p in payments if p.relation == "self")
    balc = (own.balance - own_paid) if own else 0

    if visit.final and facts.med_category == INPATIENT_CATEGORY:
        first_year = min(groups)  # the admission counts in the year the stay began
        key = ADMISSIONS_KEY if first_year == policy.policy_year(visit.setl_date) else f"{first_year}/{ADMISSIONS_KEY}"
        year_d[key] = year_d.get(key, 0) + 1

    details = [
        SetlDetail(t.fund_pay_type, t.fund_pay_type_name, bill.inscp_scp_amt,
                   t.fund_payamt if t.crt_payb_lmt_amt is None else t.crt_payb_lmt_amt, t.fund_payamt, t.proc_info)
        for t in tiers if t.fund_payamt
    ]
    if acct_pay:
        paying = {p.psn_no for p in payments}
        balances = sum(max(0, a.balance) for a in accounts if a.psn_no in paying)
        details.append(SetlDetail(ACCOUNT_FUND_PAY_TYPE, ACCOUNT_FUND_NAME, bill.inscp_scp_amt, balances, acct_pay,
                                  "个人账户支付" + (f"，其中共济{format_yuan(amounts['acct_mulaid_pay'])}" if amounts["acct_mulaid_pay"] else "")))
    return Adjudication(
        policy_id=policy.policy_id, bill=bill, tiers=tiers, amounts=amounts,
        pool_prop_selfpay=basic.ratio if basic else Decimal(0), balc=balc, account_payments=payments,
        setldetail=tuple(details), year_deltas=year_d, visit_deltas=visit_d,
    )


def identity_violations(amounts: dict[str, int], setldetail: tuple[SetlDetail, ...] = ()) -> list[str]:
    """The four amount identities of the interface; an empty list means they hold."""
    a = amounts
    problems = []
    if a["medfee_sumamt"] != a["fulamt_ownpay_amt"] + a["overlmt_selfpay"] + a["preselfpay_amt"] + a["inscp_scp_amt"]:
        problems.append("medfee_sumamt != fulamt_ownpay_amt + overlmt_selfpay + preselfpay_amt + inscp_scp_amt")
    if a["medfee_sumamt"] != a["fund_pay_sumamt"] + a["psn_part_amt"] + a["hosp_part_amt"]:
        problems.append("medfee_sumamt != fund_pay_sumamt + psn_part_amt + hosp_part_amt")
    if a["psn_part_amt"] != a["acct_pay"] + a["psn_cash_pay"]:
        problems.append("psn_part_amt != acct_pay + psn_cash_pay")
    if setldetail:
        funds = sum(d.fund_payamt for d in setldetail if d.fund_pay_type not in (ACCOUNT_FUND_PAY_TYPE, "999996"))
        if funds != a["fund_pay_sumamt"]:
            problems.append("fund_pay_sumamt != Σ setldetail.fund_payamt (funds only)")
    return problems


def negate_deltas(deltas: dict[str, int]) -> dict[str, int]:
    return {k: -v for k, v in deltas.items()}
