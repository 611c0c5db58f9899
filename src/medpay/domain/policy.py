"""Region policies as data: types, and validation of a parsed policy document.

A policy is one region's rules for one period. It is a list of *tiers* applied in order — basic pooled
fund, large-amount, civil-servant subsidy, serious illness, medical assistance … — each described by the
same few knobs (what it applies to, its base, deductible, ratio bands, cap). The places where published
worked examples disagree (deductible before the ratio or out of the fund payment, bands absolute or above
the deductible, cap on the fund or on the in-scope amount, rounding per line or per settlement) are
settings here, never branches elsewhere.

This module is pure: it takes an already-parsed mapping (from TOML) and a source name for messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from collections.abc import Mapping
from typing import Any

from medpay.money import MoneyError, Rounding, parse_ratio, parse_yuan
from medpay.nhsa_dictionaries import DICTIONARIES

DISEASE_CATALOG = DICTIONARIES["OPSP_DISE"].labels()  # 门诊慢特病病种: per-disease caps must name one of these

TIER_KINDS = ("basic", "large_amount", "civil_servant", "serious_illness", "assistance", "supplementary")
SETL_FIELDS = ("hifp_pay", "hifob_pay", "cvlserv_pay", "hifmi_pay", "maf_pay", "hifes_pay", "hifdm_pay", "oth_pay")
ACCOUNT_PARTS = ("fulamt_ownpay", "overlmt_selfpay", "preselfpay", "inscp_selfpay")
BASES = ("inscp", "overflow", "psn_inscp")


class PolicyError(ValueError):
    """A policy document that can't be used. Names the file, the key and the problem."""

    def __init__(self, source: str, key: str, problem: str):
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


class MissingFact(LookupError):
    """A rule needs a fact the person or visit doesn't carry (a birth date, a payment grade …)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Facts:
    """What rules may match on, gathered once per bill. None = not on record (a rule needing it refuses)."""

    insutype: str
    psn_class: str
    med_category: str
    level: str
    identities: frozenset[str]
    dise_codg: str
    cvlserv: bool
    age: int | None = None
    retr_date: date | None = None
    pay_grade: str = ""
    inst_kind: str = "general"
    fixmedins_code: str = ""
    cross_region: str = "local"
    filed: bool = False
    referred: bool = False
    months_enrolled: int | None = None
    salary: int | None = None


CROSS_REGION = ("local", "province", "national")


@dataclass(frozen=True)
class Match:
    """Conditions on person, visit and institution; an empty set (or None) means 'any'."""

    insutypes: frozenset[str] = frozenset()
    psn_classes: frozenset[str] = frozenset()
    med_categories: frozenset[str] = frozenset()
    levels: frozenset[str] = frozenset()
    identities: frozenset[str] = frozenset()  # any one of them suffices
    dise_codgs: frozenset[str] = frozenset()
    cvlserv: bool | None = None
    inst_kinds: frozenset[str] = frozenset()
    fixmedins_codes: frozenset[str] = frozenset()
    cross_region: frozenset[str] = frozenset()
    filed: bool | None = None
    referred: bool | None = None
    # conditions on facts a person may not carry: checked last, and a missing fact refuses the bill
    grades: frozenset[str] = frozenset()
    min_age: int | None = None
    max_age: int | None = None
    retired_before: date | None = None
    retired_from: date | None = None
    min_months_enrolled: int | None = None

    def accepts(self, f: Facts) -> bool:
        if not (
            (not self.insutypes or f.insutype in self.insutypes)
            and (not self.psn_classes or f.psn_class in self.psn_classes)
            and (not self.med_categories or f.med_category in self.med_categories)
            and (not self.levels or f.level in self.levels)
            and (not self.identities or bool(self.identities & f.identities))
            and (not self.dise_codgs or f.dise_codg in self.dise_codgs)
            and (self.cvlserv is None or self.cvlserv == f.cvlserv)
            and (not self.inst_kinds or f.inst_kind in self.inst_kinds)
            and (not self.fixmedins_codes or f.fixmedins_code in self.fixmedins_codes)
            and (not self.cross_region or f.cross_region in self.cross_region)
            and (self.filed is None or self.filed == f.filed)
            and (self.referred is None or self.referred == f.referred)
        ):
            return False
        if self.grades:
            if not f.pay_grade:
                raise MissingFact("person.pay_grade", "the policy's ratio or deductible depends on the payment grade")
            if f.pay_grade not in self.grades:
                return False
        if self.min_age is not None or self.max_age is not None:
            if f.age is None:
                raise MissingFact("person.brdy", "the policy's rule depends on age; the birth date is not on record")
            if (self.min_age is not None and f.age < self.min_age) or (self.max_age is not None and f.age > self.max_age):
                return False
        if self.retired_before is not None or self.retired_from is not None:
            if f.retr_date is None:
                raise MissingFact("person.retr_date", "the policy's rule depends on the retirement date")
            if self.retired_before is not None and f.retr_date >= self.retired_before:
                return False
            if self.retired_from is not None and f.retr_date < self.retired_from:
                return False
        if self.min_months_enrolled is not None:
            if f.months_enrolled is None:
                raise MissingFact("person.insu_date", "the policy's rule depends on months of continuous enrolment")
            if f.months_enrolled < self.min_months_enrolled:
                return False
        return True


@dataclass(frozen=True)
class Band:
    """Pay ``ratio`` of the base up to ``upto`` (fen on the band axis); None = no upper end."""

    upto: int | None
    ratio: Decimal


@dataclass(frozen=True)
class AgeRatio:
    """A ratio that grows with age: ``base`` at ``from_age``, plus ``per_year`` for each year above, at most ``ceiling``."""

    base: Decimal
    from_age: int
    per_year: Decimal
    ceiling: Decimal

    def at(self, age: int) -> Decimal:
        return min(self.ceiling, self.base + self.per_year * max(0, age - self.from_age))


@dataclass(frozen=True)
class RatioRule:
    match: Match
    bands: tuple[Band, ...]
    age_ratio: AgeRatio | None = None

    def bands_for(self, facts: Facts) -> tuple[Band, ...]:
        if self.age_ratio is None:
            return self.bands
        if facts.age is None:
            raise MissingFact("person.brdy", "the policy's ratio depends on age; the birth date is not on record")
        return (Band(None, self.age_ratio.at(facts.age)),)


@dataclass(frozen=True)
class DeductibleRule:
    """One way to set the deductible: a fixed ``amount``, a ``share`` of the bill (medfee or in-scope) kept between a
    floor and a ceiling, or a share of the person's yearly salary (``salary_share``)."""

    match: Match
    amount: int = 0
    share: Decimal | None = None
    share_of: str = "medfee"  # "medfee" | "inscp"
    floor: int = 0
    ceiling: int | None = None
    salary_share: Decimal | None = None


@dataclass(frozen=True)
class AdmissionStep:
    """From the ``from_seq``-th admission of the year on: the deductible times ``factor``, or a fixed ``amount``."""

    from_seq: int
    factor: Decimal | None = None
    amount: int | None = None


@dataclass(frozen=True)
class DeductibleAdjustment:
    """Where ``match`` holds: the deductible of ``level_offset`` levels away (e.g. −1: 中医院 one level lower), then
    times ``factor`` (e.g. 0.8: 20 % lower; 0.5: halved for people in poverty)."""

    match: Match
    factor: Decimal = Decimal(1)
    level_offset: int = 0


PERIODS = ("year", "quarter", "month")


@dataclass(frozen=True)
class Deductible:
    basis: str = "none"  # "none" | "per_visit" | "per_year" | "per_quarter" | "per_month"
    mode: str = "before_ratio"  # "before_ratio": ratio × (base − deductible); "from_fund": ratio × base − deductible
    rules: tuple[DeductibleRule, ...] = ()
    admission_factors: tuple[Decimal, ...] = ()  # per_visit inpatient: factor for 1st, 2nd, 3rd… admission (last repeats)
    admissions: tuple[AdmissionStep, ...] = ()  # per_visit inpatient: steps by admission number (factor or amount)
    adjustments: tuple[DeductibleAdjustment, ...] = ()
    year_cap: int | None = None  # per_visit: the most all of a year's per-visit deductibles may add up to
    admission_floor: int | None = None  # later admissions' lowering stops here ("最低不低于150元")


@dataclass(frozen=True)
class CapRule:
    match: Match
    amount: int | None  # None: no cap for those it matches (e.g. 大病 for people in poverty)


@dataclass(frozen=True)
class Cap:
    basis: str = "none"  # "none" | "fund" (on the tier's payments) | "inscp" (on the base it may count)
    amount: int = 0
    period: str = "year"  # PERIODS: the cap starts afresh each policy year, quarter or month
    key: str = ""  # tiers naming the same key share one cap (within a settlement and across the period)
    rules: tuple[CapRule, ...] = ()  # the first matching rule's amount replaces ``amount``
    per_disease: Mapping[str, int] = field(default_factory=dict)  # the visit's disease code -> its own cap


@dataclass(frozen=True)
class FirstShare:
    """The patient pays ``share`` of the tier's base first (e.g. referred elsewhere: 5/15/25 % by hospital)."""

    match: Match
    share: Decimal


@dataclass(frozen=True)
class RatioBonus:
    """Lines of these list types / charge categories are paid ``add`` more (e.g. 中药 a few points higher)."""

    list_types: frozenset[str]
    med_chrgitm_types: frozenset[str]
    add: Decimal


@dataclass(frozen=True)
class ItemRule:
    """A per-item (or per-category) rule: ``selfpay_prop`` first, then, with ``fund_ratio``, the pool pays the rest
    at that ratio outside the tier's deductible and bands (implants, high-value consumables)."""

    name: str
    codes: frozenset[str]
    med_chrgitm_types: frozenset[str]
    list_types: frozenset[str]
    selfpay_prop: Decimal | None
    fund_ratio: Decimal | None
    tiers: frozenset[str]  # the basic tiers that pay it directly; empty = whichever basic tier applies


@dataclass(frozen=True)
class Tier:
    code: str
    kind: str
    name: str
    fund_pay_type: str
    setl_field: str
    applies: Match
    base: str  # "inscp" | "overflow" | "psn_inscp"
    overflow_of: str  # with base "overflow": the tier whose capped-off amount this tier pays
    count_prior_dedc: bool  # with base "psn_inscp": whether earlier tiers' deductible counts in the base
    pool: str  # accumulator prefix; tiers sharing a pool share deductible and cap
    group: str  # only the first applicable tier of a group applies
    axis: str  # "year" | "visit": where band positions accumulate
    band_origin: str  # "deductible": bands measured above the deductible | "absolute": on the whole base
    deductible: Deductible
    ratios: tuple[RatioRule, ...]
    cap: Cap
    base_includes_preselfpay: bool = False  # psn_inscp base: the 乙类 first self-pay counts too (assistance, by region)
    first_share: tuple[FirstShare, ...] = ()
    bonuses: tuple[RatioBonus, ...] = ()


@dataclass(frozen=True)
class AccountRules:
    payable: frozenset[str] = frozenset(ACCOUNT_PARTS)
    insutypes: frozenset[str] = frozenset()  # whose own account may pay; empty = any with a balance
    mutual_aid: bool = False
    mutual_aid_relations: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PolicyExample:
    """A published worked example carried in the policy file: a quote document (person, visit, lines,
    accumulators — the shape of services.quote) and the amounts it must produce, each in yuan text.
    ``expect`` names setlinfo fields (hifp_pay, psn_part_amt …); ``expect_tiers`` a tier code's own figures
    (fund_payamt, act_pay_dedc, base)."""

    name: str
    source: str
    doc: Mapping[str, Any]
    expect: Mapping[str, int]
    expect_tiers: Mapping[str, Mapping[str, int]]
    note: str = ""


EXPECTABLE_TIER_FIELDS = ("fund_payamt", "act_pay_dedc", "base", "eligible")


@dataclass(frozen=True)
class Policy:
    admdvs: str
    name: str
    version: str
    effective_from: date
    effective_to: date | None
    source: str
    rounding: Rounding
    preselfpay_rounding_scope: str  # "per_line" | "per_settlement"
    person_classes: Mapping[str, str]  # psn_type -> class name
    med_categories: Mapping[str, str]  # med_type -> category name
    yi_selfpay_default: Decimal
    yi_selfpay_by_category: Mapping[str, Decimal]
    account: AccountRules
    tiers: tuple[Tier, ...]
    item_rules: tuple[ItemRule, ...] = ()
    references: tuple[str, ...] = field(default=())
    year_start: tuple[int, int] = (1, 1)  # (month, day) the policy year starts: 医保年度 may run 7/1 – 6/30
    examples: tuple[PolicyExample, ...] = ()
    # a stay across the start of a policy year: "settlement_year" counts it all in the year it is settled;
    # "split_by_fee_date" keeps the admission count and the visit's deductible but splits caps and accumulators by
    # the year each fee arose in
    stay_across_years: str = "settlement_year"

    def __post_init__(self) -> None:
        # item rules indexed by what names them, each with its place in the file (the first in file order wins);
        # a derived lookup, built once — the dataclass is frozen
        index: dict[tuple[str, str], tuple[int, ItemRule]] = {}
        for i, rule in enumerate(self.item_rules):
            for kind, values in (("code", rule.codes), ("cat", rule.med_chrgitm_types), ("list", rule.list_types)):
                for value in values:
                    index.setdefault((kind, value), (i, rule))
        object.__setattr__(self, "_item_index", index)

    def item_rule_for(self, med_list_codg: str, med_chrgitm_type: str, list_type: str) -> ItemRule | None:
        """The first item rule (in file order) naming this item's code, charge category or list type."""
        index: dict[tuple[str, str], tuple[int, ItemRule]] = self._item_index  # type: ignore[attr-defined]
        best = None
        for key in (("code", med_list_codg), ("cat", med_chrgitm_type), ("list", list_type)):
            hit = index.get(key)
            if hit is not None and (best is None or hit[0] < best[0]):
                best = hit
        return best[1] if best is not None else None

    @property
    def policy_id(self) -> str:
        return f"{self.admdvs}@{self.version}"

    def psn_class(self, psn_type: str) -> str:
        return self.person_classes.get(psn_type, "")

    def med_category(self, med_type: str) -> str:
        return self.med_categories.get(med_type, "")

    def policy_year(self, on: date) -> int:
        """The policy year ``on`` falls in, named by the calendar year it starts in (2026 = 2026-07-01…2027-06-30
        with a 1 July start). Year accumulators (deductibles, caps, admissions) are kept per policy year."""
        return on.year if (on.month, on.day) >= self.year_start else on.year - 1

    def policy_year_end(self, year: int) -> date:
        """The last day of policy year ``year``."""
        return date(year + 1, *self.year_start) - timedelta(days=1)

    def in_force(self, on: date) -> bool:
        return self.effective_from <= on and (self.effective_to is None or on <= self.effective_to)


# --------------------------------------------------------------------------------------------------
# Validation: mapping -> Policy


class _Reader:
    """Walks a parsed document, raising PolicyError with a dotted key path on any problem."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, problem: str) -> PolicyError:
        return PolicyError(self.source, key, problem)

    def table(self, doc: Mapping[str, Any], key: str, path: str, *, required: bool = True) -> Mapping[str, Any]:
        value = doc.get(key)
        if value is None:
            if required:
                raise self.fail(_join(path, key), "missing")
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(_join(path, key), "must be a table")
        return value

    def text(self, doc: Mapping[str, Any], key: str, path: str, *, default: str | None = None,
             choices: tuple[str, ...] | None = None) -> str:
        value = doc.get(key, default)
        if value is None:
            raise self.fail(_join(path, key), "missing")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(_join(path, key), "must be a non-empty string")
        if choices and value not in choices:
            raise self.fail(_join(path, key), f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def yuan(self, doc: Mapping[str, Any], key: str, path: str) -> int:
        if key not in doc:
            raise self.fail(_join(path, key), "missing")
        try:
            return parse_yuan(doc[key], _join(path, key))
        except MoneyError as e:
            raise self.fail(e.field, e.problem) from None

    def ratio(self, value: Any, key: str) -> Decimal:
        try:
            return parse_ratio(value, key)
        except MoneyError as e:
            raise self.fail(e.field, e.problem) from None

    def tables(self, doc: Mapping[str, Any], key: str, path: str, wants: str = "") -> list[tuple[str, Mapping[str, Any]]]:
        """An array of tables (``[[key]]`` or ``key = [{…}]``), each with its dotted path; ``wants`` says what each
        table must hold, for the message when one isn't a table."""
        raw = doc.get(key, [])
        where = _join(path, key)
        if not isinstance(raw, list):
            raise self.fail(where, f"must be an array of tables{' with ' + wants if wants else ''}")
        out = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise self.fail(f"{where}[{i}]", f"must be a table{' with ' + wants if wants else ''}")
            out.append((f"{where}[{i}]", item))
        return out

    def strings(self, doc: Mapping[str, Any], key: str, path: str) -> frozenset[str]:
        value = doc.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
            raise self.fail(_join(path, key), "must be a list of strings")
        return frozenset(str(v) for v in value)

    def a_date(self, doc: Mapping[str, Any], key: str, path: str, *, required: bool = True) -> date | None:
        value = doc.get(key)
        if value is None:
            if required:
                raise self.fail(_join(path, key), "missing")
            return None
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.fail(_join(path, key), f"must be a date YYYY-MM-DD; got {value!r}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _flag_or_none(r: _Reader, doc: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, bool):
        raise r.fail(_join(path, key), "must be true or false")
    return value


def _whole(r: _Reader, doc: Mapping[str, Any], key: str, path: str, *, low: int = 0, high: int = 150) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise r.fail(_join(path, key), f"must be a whole number from {low} to {high}; got {value!r}")
    return value


def _match(r: _Reader, doc: Mapping[str, Any], path: str) -> Match:
    cross = r.strings(doc, "cross_region", path)
    if cross - set(CROSS_REGION):
        raise r.fail(_join(path, "cross_region"), f"must name {', '.join(CROSS_REGION)}; got {sorted(cross)}")
    min_age, max_age = _whole(r, doc, "min_age", path), _whole(r, doc, "max_age", path)
    if min_age is not None and max_age is not None and max_age < min_age:
        raise r.fail(_join(path, "max_age"), f"is below min_age {min_age}")
    before = r.a_date(doc, "retired_before", path, required=False)
    since = r.a_date(doc, "retired_from", path, required=False)
    if before is not None and since is not None and before <= since:
        raise r.fail(_join(path, "retired_before"), "is not after retired_from: no retirement date fits")
    return Match(
        insutypes=r.strings(doc, "insutypes", path),
        psn_classes=r.strings(doc, "psn_classes", path),
        med_categories=r.strings(doc, "med_categories", path),
        levels=r.strings(doc, "levels", path),
        identities=r.strings(doc, "identities", path),
        dise_codgs=r.strings(doc, "dise_codgs", path),
        cvlserv=_flag_or_none(r, doc, "cvlserv", path),
        inst_kinds=r.strings(doc, "inst_kinds", path),
        fixmedins_codes=r.strings(doc, "fixmedins_codes", path),
        cross_region=cross,
        filed=_flag_or_none(r, doc, "filed", path),
        referred=_flag_or_none(r, doc, "referred", path),
        grades=r.strings(doc, "grades", path),
        min_age=min_age, max_age=max_age, retired_before=before, retired_from=since,
        min_months_enrolled=_whole(r, doc, "min_months_enrolled", path, high=1200),
    )


def _age_ratio(r: _Reader, doc: Any, path: str) -> AgeRatio:
    if not isinstance(doc, Mapping):
        raise r.fail(path, "must be a table with base, from_age, per_year and ceiling")
    if "ceiling" not in doc:
        raise r.fail(_join(path, "ceiling"), "missing: a ratio that grows with age needs a ceiling")
    base = r.ratio(doc.get("base"), _join(path, "base"))
    ceiling = r.ratio(doc["ceiling"], _join(path, "ceiling"))
    if ceiling < base:
        raise r.fail(_join(path, "ceiling"), f"is below the base ratio {base}")
    from_age = _whole(r, doc, "from_age", path)
    if from_age is None:
        raise r.fail(_join(path, "from_age"), "missing")
    per_year = r.ratio(doc.get("per_year"), _join(path, "per_year"))
    return AgeRatio(base, from_age, per_year, ceiling)


def _bands(r: _Reader, doc: Mapping[str, Any], path: str) -> tuple[Band, ...]:
    if sum(k in doc for k in ("ratio", "bands", "age_ratio")) > 1:
        raise r.fail(path, "give one of 'ratio', 'bands' or 'age_ratio', not both")
    if "age_ratio" in doc:
        return ()
    if "ratio" in doc:
        return (Band(None, r.ratio(doc["ratio"], _join(path, "ratio"))),)
    raw = doc.get("bands")
    if not isinstance(raw, list) or not raw:
        raise r.fail(_join(path, "ratio"), "missing (give 'ratio', a non-empty 'bands' list or 'age_ratio')")
    bands: list[Band] = []
    previous = -1
    for i, b in enumerate(raw):
        bpath = f"{path}.bands[{i}]"
        if not isinstance(b, Mapping):
            raise r.fail(bpath, "must be a table with 'ratio' and optional 'upto'")
        ratio = r.ratio(b.get("ratio"), _join(bpath, "ratio")) if "ratio" in b else None
        if ratio is None:
            raise r.fail(_join(bpath, "ratio"), "missing")
        upto = r.yuan(b, "upto", bpath) if "upto" in b else None
        if upto is None and i != len(raw) - 1:
            raise r.fail(_join(bpath, "upto"), "only the last band may be open-ended")
        if upto is not None and upto <= previous:
            raise r.fail(_join(bpath, "upto"), "bands must rise strictly")
        previous = upto if upto is not None else previous
        bands.append(Band(upto, ratio))
    return tuple(bands)


DEDUCTIBLE_BASES = ("none", "per_visit", "per_year", "per_quarter", "per_month")


def _deductible_rule(r: _Reader, rule: Mapping[str, Any], rpath: str, match: Match) -> DeductibleRule:
    ways = [k for k in ("amount", "share", "salary_share") if k in rule]
    if not ways:
        raise r.fail(_join(rpath, "amount"), "missing")
    if len(ways) != 1:
        raise r.fail(rpath, "give exactly one of 'amount', 'share' (of the bill) or 'salary_share'")
    if ways == ["amount"]:
        return DeductibleRule(match, r.yuan(rule, "amount", rpath))
    if ways == ["salary_share"]:
        return DeductibleRule(match, salary_share=r.ratio(rule["salary_share"], _join(rpath, "salary_share")))
    floor = r.yuan(rule, "floor", rpath) if "floor" in rule else 0
    ceiling = r.yuan(rule, "ceiling", rpath) if "ceiling" in rule else None
    if ceiling is not None and ceiling < floor:
        raise r.fail(_join(rpath, "ceiling"), "is below the floor")
    return DeductibleRule(match, share=r.ratio(rule["share"], _join(rpath, "share")),
                          share_of=r.text(rule, "share_of", rpath, default="medfee", choices=("medfee", "inscp")),
                          floor=floor, ceiling=ceiling)


def _deductible(r: _Reader, doc: Mapping[str, Any], path: str) -> Deductible:
    if not doc:
        return Deductible()
    basis = r.text(doc, "basis", path, choices=DEDUCTIBLE_BASES)
    mode = r.text(doc, "mode", path, default="before_ratio", choices=("before_ratio", "from_fund"))
    rules: list[DeductibleRule] = []
    if any(k in doc for k in ("amount", "share", "salary_share")):
        rules.append(_deductible_rule(r, doc, path, Match()))
    for rpath, rule in r.tables(doc, "rules", path):
        rules.append(_deductible_rule(r, rule, rpath, _match(r, rule, rpath)))
    if basis != "none" and not rules:
        raise r.fail(_join(path, "amount"), f"missing: basis {basis!r} needs an 'amount' or 'rules'")
    factors = tuple(r.ratio(f, f"{path}.admission_factors[{i}]") for i, f in enumerate(doc.get("admission_factors", [])))
    steps: list[AdmissionStep] = []
    previous = 1
    for spath, step in r.tables(doc, "admissions", path, "'from' and 'factor' or 'amount'"):
        seq = _whole(r, step, "from", spath, low=2, high=99)
        if seq is None:
            raise r.fail(_join(spath, "from"), "missing: the admission number the step starts at")
        if seq <= previous:
            raise r.fail(_join(spath, "from"), "steps must rise strictly from the 2nd admission on")
        previous = seq
        if ("factor" in step) == ("amount" in step):
            raise r.fail(spath, "give exactly one of 'factor' or 'amount'")
        steps.append(AdmissionStep(seq, factor=r.ratio(step["factor"], _join(spath, "factor")) if "factor" in step else None,
                                   amount=r.yuan(step, "amount", spath) if "amount" in step else None))
    if factors and steps:
        raise r.fail(_join(path, "admissions"), "give 'admission_factors' or 'admissions', not both")
    if (factors or steps) and basis != "per_visit":
        raise r.fail(_join(path, "admissions" if steps else "admission_factors"), "only meaningful with basis 'per_visit'")
    adjustments: list[DeductibleAdjustment] = []
    for apath, adj in r.tables(doc, "adjustments", path):
        if "factor" not in adj and "level_offset" not in adj:
            raise r.fail(apath, "give 'factor' and/or 'level_offset'")
        offset = adj.get("level_offset", 0)
        if isinstance(offset, bool) or not isinstance(offset, int) or not -2 <= offset <= 2:
            raise r.fail(_join(apath, "level_offset"), f"must be a whole number from -2 to 2; got {offset!r}")
        adjustments.append(DeductibleAdjustment(_match(r, adj, apath),
                                                r.ratio(adj.get("factor", "1"), _join(apath, "factor")), offset))
    year_cap = r.yuan(doc, "year_cap", path) if "year_cap" in doc else None
    if year_cap is not None and basis != "per_visit":
        raise r.fail(_join(path, "year_cap"), "only meaningful with basis 'per_visit'")
    floor = r.yuan(doc, "admission_floor", path) if "admission_floor" in doc else None
    if floor is not None and not (factors or steps):
        raise r.fail(_join(path, "admission_floor"), "only meaningful with 'admission_factors' or 'admissions'")
    return Deductible(basis=basis, mode=mode, rules=tuple(rules), admission_factors=factors, admissions=tuple(steps),
                      adjustments=tuple(adjustments), year_cap=year_cap, admission_floor=floor)


def _cap(r: _Reader, doc: Mapping[str, Any], path: str, disease_codes: Mapping[str, str]) -> Cap:
    if not doc:
        return Cap()
    basis = r.text(doc, "basis", path, choices=("none", "fund", "inscp"))
    if basis == "none":
        return Cap()
    rules: list[CapRule] = []
    for rpath, rule in r.tables(doc, "rules", path):
        unlimited = rule.get("unlimited", False)
        if not isinstance(unlimited, bool) or unlimited == ("amount" in rule):
            raise r.fail(rpath, "give either 'amount' or 'unlimited = true'")
        rules.append(CapRule(_match(r, rule, rpath), None if unlimited else r.yuan(rule, "amount", rpath)))
    per_disease_doc = r.table(doc, "per_disease", path, required=False)
    per_disease: dict[str, int] = {}
    for code in per_disease_doc:
        if code not in disease_codes:
            raise r.fail(f"{path}.per_disease.{code}", "is not a disease of the catalog (门慢门特病种, OPSP_DISE)")
        per_disease[code] = r.yuan(per_disease_doc, code, _join(path, "per_disease"))
    if "amount" not in doc and not per_disease:
        raise r.fail(_join(path, "amount"), "missing")
    return Cap(basis, r.yuan(doc, "amount", path) if "amount" in doc else 0,
               period=r.text(doc, "period", path, default="year", choices=PERIODS),
               key=r.text(doc, "key", path, default="") if "key" in doc else "", rules=tuple(rules),
               per_disease=per_disease)


def _first_shares(r: _Reader, doc: Mapping[str, Any], path: str) -> tuple[FirstShare, ...]:
    out = []
    for ipath, item in r.tables(doc, "first_share", path, "'share'"):
        if "share" not in item:
            raise r.fail(_join(ipath, "share"), "missing")
        out.append(FirstShare(_match(r, item, ipath), r.ratio(item["share"], _join(ipath, "share"))))
    return tuple(out)


def _bonuses(r: _Reader, doc: Mapping[str, Any], path: str) -> tuple[RatioBonus, ...]:
    out = []
    for ipath, item in r.tables(doc, "bonuses", path, "'add' and 'list_types' or 'med_chrgitm_types'"):
        if "add" not in item:
            raise r.fail(_join(ipath, "add"), "missing")
        lists, cats = r.strings(item, "list_types", ipath), r.strings(item, "med_chrgitm_types", ipath)
        if not lists and not cats:
            raise r.fail(ipath, "names no lines: give 'list_types' or 'med_chrgitm_types'")
        out.append(RatioBonus(lists, cats, r.ratio(item["add"], _join(ipath, "add"))))
    return tuple(out)


def _tier(r: _Reader, doc: Mapping[str, Any], path: str, known: dict[str, Tier],
          disease_codes: Mapping[str, str]) -> Tier:
    code = r.text(doc, "code", path)
    if code in known:
        raise r.fail(_join(path, "code"), f"duplicate tier code {code!r}")
    kind = r.text(doc, "kind", path, choices=TIER_KINDS)
    fund_pay_type = r.text(doc, "fund_pay_type", path)
    if not (fund_pay_type.isdigit() and len(fund_pay_type) == 6):
        raise r.fail(_join(path, "fund_pay_type"), f"must be a 6-digit code; got {fund_pay_type!r}")
    if fund_pay_type == "310200":
        raise r.fail(_join(path, "fund_pay_type"), "310200 is the personal account, not a fund tier")
    default_field = {"basic": "hifp_pay", "large_amount": "hifob_pay", "civil_servant": "cvlserv_pay",
                     "serious_illness": "hifmi_pay", "assistance": "maf_pay", "supplementary": "hifes_pay"}[kind]
    setl_field = r.text(doc, "setl_field", path, default=default_field, choices=SETL_FIELDS)
    base = r.text(doc, "base", path, default={"basic": "inscp", "large_amount": "overflow"}.get(kind, "psn_inscp"),
                  choices=BASES)
    overflow_of = ""
    if base == "overflow":
        overflow_of = r.text(doc, "overflow_of", path)
        if overflow_of not in known:
            raise r.fail(_join(path, "overflow_of"), f"names no earlier tier: {overflow_of!r}")
        if known[overflow_of].cap.basis == "none":
            raise r.fail(_join(path, "overflow_of"), f"tier {overflow_of!r} has no cap, so nothing overflows it")
    count_prior_dedc = doc.get("count_prior_dedc", True)
    if not isinstance(count_prior_dedc, bool):
        raise r.fail(_join(path, "count_prior_dedc"), "must be true or false")
    axis = r.text(doc, "axis", path, default="year" if kind != "basic" else "visit", choices=("year", "visit"))
    band_origin = r.text(doc, "band_origin", path, default="deductible", choices=("deductible", "absolute"))
    deductible = _deductible(r, r.table(doc, "deductible", path, required=False), _join(path, "deductible"))
    if band_origin == "absolute" and deductible.basis == "per_visit" and axis == "year":
        raise r.fail(_join(path, "band_origin"), "'absolute' bands on a year axis need a per_year deductible")
    if deductible.mode == "from_fund" and band_origin == "absolute":
        raise r.fail(_join(path, "deductible.mode"), "'from_fund' contradicts 'absolute' bands")
    raw_ratios = doc.get("ratios")
    if not isinstance(raw_ratios, list) or not raw_ratios:
        raise r.fail(_join(path, "ratios"), "missing: a tier needs at least one ratio rule")
    ratios = []
    for i, rr in enumerate(raw_ratios):
        rpath = f"{path}.ratios[{i}]"
        if not isinstance(rr, Mapping):
            raise r.fail(rpath, "must be a table")
        age = _age_ratio(r, rr["age_ratio"], _join(rpath, "age_ratio")) if "age_ratio" in rr else None
        ratios.append(RatioRule(_match(r, rr, rpath), _bands(r, rr, rpath), age))
    cap = _cap(r, r.table(doc, "cap", path, required=False), _join(path, "cap"), disease_codes)
    bonuses = _bonuses(r, doc, path)
    highest = max([b.ratio for rr in ratios for b in rr.bands] + [rr.age_ratio.ceiling for rr in ratios if rr.age_ratio])
    for i, bonus in enumerate(bonuses):
        if highest + bonus.add > 1:
            raise r.fail(f"{path}.bonuses[{i}].add", f"a ratio above 1: {highest} + {bonus.add}")
    if bonuses and base != "inscp":
        raise r.fail(_join(path, "bonuses"), "only meaningful with base 'inscp' (the lines' own in-scope amounts)")
    includes = doc.get("base_includes_preselfpay", False)
    if not isinstance(includes, bool):
        raise r.fail(_join(path, "base_includes_preselfpay"), "must be true or false")
    if includes and base != "psn_inscp":
        raise r.fail(_join(path, "base_includes_preselfpay"), "only meaningful with base 'psn_inscp'")
    return Tier(
        code=code, kind=kind, name=str(doc.get("name", code)), fund_pay_type=fund_pay_type, setl_field=setl_field,
        applies=_match(r, r.table(doc, "applies", path, required=False), _join(path, "applies")),
        base=base, overflow_of=overflow_of, count_prior_dedc=count_prior_dedc,
        pool=r.text(doc, "pool", path, default=code), group=r.text(doc, "group", path, default=code),
        axis=axis, band_origin=band_origin, deductible=deductible, ratios=tuple(ratios), cap=cap,
        base_includes_preselfpay=includes,
        first_share=_first_shares(r, doc, path),
        bonuses=bonuses,
    )


def _codes(r: _Reader, doc: Mapping[str, Any], key: str) -> dict[str, str]:
    """[key] maps a class name to its codes; returns code -> class, refusing a code in two classes."""
    table = r.table(doc, key, "")
    out: dict[str, str] = {}
    for name, codes in table.items():
        for code in r.strings(table, name, key):
            if code in out:
                raise r.fail(f"{key}.{name}", f"code {code!r} is already in class {out[code]!r}")
            out[code] = name
    return out


def _examples(r: _Reader, doc: Mapping[str, Any], tiers: Mapping[str, Tier]) -> tuple[PolicyExample, ...]:
    out: list[PolicyExample] = []
    names: set[str] = set()
    for path, ex in r.tables(doc, "examples", ""):
        name = r.text(ex, "name", path)
        if name in names:
            raise r.fail(_join(path, "name"), f"duplicate example name {name!r}")
        names.add(name)
        source = r.text(ex, "source", path)  # a published example without its source can't be checked by anyone
        for key in ("person", "visit"):
            r.table(ex, key, path)
        if not isinstance(ex.get("lines"), list) or not ex["lines"]:
            raise r.fail(_join(path, "lines"), "missing: an example needs its fee lines")
        expect_doc = r.table(ex, "expect", path, required=False)
        expect = {str(k): r.yuan(expect_doc, k, _join(path, "expect")) for k in expect_doc}
        tiers_doc = r.table(ex, "expect_tiers", path, required=False)
        expect_tiers: dict[str, dict[str, int]] = {}
        for code, figures in tiers_doc.items():
            tpath = f"{path}.expect_tiers.{code}"
            if code not in tiers:
                raise r.fail(tpath, f"names no tier of this policy; tiers: {', '.join(tiers)}")
            if not isinstance(figures, Mapping) or not figures:
                raise r.fail(tpath, "must be a table of amounts")
            unknown = set(figures) - set(EXPECTABLE_TIER_FIELDS)
            if unknown:
                raise r.fail(tpath, f"unknown field(s) {sorted(unknown)}; known: {', '.join(EXPECTABLE_TIER_FIELDS)}")
            expect_tiers[code] = {str(k): r.yuan(figures, k, tpath) for k in figures}
        if not expect and not expect_tiers:
            raise r.fail(path, "an example must expect at least one amount ('expect' or 'expect_tiers')")
        doc_only = {k: v for k, v in ex.items() if k not in ("name", "source", "note", "expect", "expect_tiers")}
        out.append(PolicyExample(name, source, doc_only, expect, expect_tiers, str(ex.get("note", ""))))
    return tuple(out)


def _year_start(r: _Reader, head: Mapping[str, Any]) -> tuple[int, int]:
    """``year_start = "07-01"``: the month and day the policy year starts (default 1 January)."""
    value = head.get("year_start", "01-01")
    if isinstance(value, str) and len(value) == 5 and value[2] == "-":
        try:
            start = date(2000, int(value[:2]), int(value[3:]))  # a leap year, so 02-29 is caught below
        except ValueError:
            start = None
        if start is not None and (start.month, start.day) != (2, 29):
            return start.month, start.day
    raise r.fail("policy.year_start", f"must be a month and day MM-DD that every year has; got {value!r}")


def _item_rules(r: _Reader, doc: Mapping[str, Any], tiers: Mapping[str, Tier]) -> tuple[ItemRule, ...]:
    out = []
    for i, (path, item) in enumerate(r.tables(doc, "item_rules", "")):
        codes, cats = r.strings(item, "codes", path), r.strings(item, "med_chrgitm_types", path)
        lists = r.strings(item, "list_types", path)
        if not (codes or cats or lists):
            raise r.fail(path, "names no items: give 'codes', 'med_chrgitm_types' or 'list_types'")
        selfpay = r.ratio(item["selfpay_prop"], _join(path, "selfpay_prop")) if "selfpay_prop" in item else None
        fund = r.ratio(item["fund_ratio"], _join(path, "fund_ratio")) if "fund_ratio" in item else None
        if selfpay is None and fund is None:
            raise r.fail(path, "changes nothing: give 'selfpay_prop' and/or 'fund_ratio'")
        named = r.strings(item, "tiers", path)
        for code in named:
            if code not in tiers or tiers[code].kind != "basic":
                raise r.fail(_join(path, "tiers"), f"{code!r} is not a basic tier of this policy")
        if named and fund is None:
            raise r.fail(_join(path, "tiers"), "only meaningful with 'fund_ratio'")
        out.append(ItemRule(str(item.get("name", f"item_rules[{i}]")), codes, cats, lists, selfpay, fund, named))
    return tuple(out)


def parse_policy(doc: Mapping[str, Any], source: str, disease_codes: Mapping[str, str] = DISEASE_CATALOG) -> Policy:
    """Validate a parsed policy document. Raises PolicyError naming ``source``, the key and the problem.

    ``disease_codes`` is the disease catalog per-disease caps must name."""
    r = _Reader(source)
    head = r.table(doc, "policy", "")
    admdvs = r.text(head, "admdvs", "policy")
    if not (admdvs.isdigit() and len(admdvs) == 6):
        raise r.fail("policy.admdvs", f"must be 6 digits; got {admdvs!r}")
    effective_from = r.a_date(head, "effective_from", "policy")
    effective_to = r.a_date(head, "effective_to", "policy", required=False)
    if effective_to is not None and effective_to < effective_from:  # type: ignore[operator]
        raise r.fail("policy.effective_to", "is before effective_from")

    rounding_doc = r.table(doc, "rounding", "", required=False)
    rounding = Rounding(r.text(rounding_doc, "mode", "rounding", default="half_up", choices=tuple(x.value for x in Rounding)))
    scope = r.text(rounding_doc, "preselfpay", "rounding", default="per_line", choices=("per_line", "per_settlement"))

    cls = r.table(doc, "classification", "", required=False)
    yi_default = r.ratio(cls.get("yi_selfpay_default", "0"), "classification.yi_selfpay_default")
    by_cat_doc = r.table(cls, "yi_selfpay_by_category", "classification", required=False)
    by_cat = {str(k): r.ratio(v, f"classification.yi_selfpay_by_category.{k}") for k, v in by_cat_doc.items()}

    acct_doc = r.table(doc, "account", "", required=False)
    payable = r.strings(acct_doc, "payable", "account") if "payable" in acct_doc else frozenset(ACCOUNT_PARTS)
    unknown = payable - set(ACCOUNT_PARTS)
    if unknown:
        raise r.fail("account.payable", f"unknown part(s) {sorted(unknown)}; known: {', '.join(ACCOUNT_PARTS)}")
    mutual_aid = acct_doc.get("mutual_aid", False)
    if not isinstance(mutual_aid, bool):
        raise r.fail("account.mutual_aid", "must be true or false")
    relations = r.strings(acct_doc, "mutual_aid_relations", "account")
    if mutual_aid and not relations:
        raise r.fail("account.mutual_aid_relations", "missing: mutual aid is on but no relation may use it")
    account = AccountRules(payable, r.strings(acct_doc, "insutypes", "account"), mutual_aid, relations)

    raw_tiers = doc.get("tiers")
    if not isinstance(raw_tiers, list) or not raw_tiers:
        raise r.fail("tiers", "missing: a policy needs at least one tier")
    known: dict[str, Tier] = {}
    for i, t in enumerate(raw_tiers):
        if not isinstance(t, Mapping):
            raise r.fail(f"tiers[{i}]", "must be a table")
        tier = _tier(r, t, f"tiers[{i}]", known, disease_codes)
        known[tier.code] = tier
    if not any(t.kind == "basic" for t in known.values()):
        raise r.fail("tiers", "no tier of kind 'basic'")

    year_start = _year_start(r, head)
    for t in known.values():  # months and quarters must nest in the policy year, or a period would count in two years
        periods = {t.deductible.basis.removeprefix("per_"), t.cap.period} & {"month", "quarter"}
        if periods and (year_start[1] != 1 or ("quarter" in periods and year_start[0] not in (1, 4, 7, 10))):
            raise r.fail("policy.year_start", f"tier {t.code!r} counts per {'/'.join(sorted(periods))}: the policy year "
                                              "must start on the first day of a month (of a quarter for quarters)")
    med_categories = _codes(r, doc, "med_categories")
    person_classes = _codes(r, doc, "person_classes")
    # every condition — the tier's own, its ratio rules' and its deductible rules' — must name defined
    # classes: a typo would otherwise silently never match and hand the person another ratio
    for t in known.values():
        matches = [("applies", t.applies)] + [(f"ratios[{i}]", rr.match) for i, rr in enumerate(t.ratios)] + \
                  [(f"deductible.rules[{i}]", dr.match) for i, dr in enumerate(t.deductible.rules)] + \
                  [(f"deductible.adjustments[{i}]", a.match) for i, a in enumerate(t.deductible.adjustments)] + \
                  [(f"cap.rules[{i}]", c.match) for i, c in enumerate(t.cap.rules)] + \
                  [(f"first_share[{i}]", f.match) for i, f in enumerate(t.first_share)]
        for where, match in matches:
            for name, used, defined in (("med_categories", match.med_categories, set(med_categories.values())),
                                        ("psn_classes", match.psn_classes, set(person_classes.values()))):
                missing = used - defined
                if missing:
                    raise r.fail(f"tiers.{t.code}.{where}.{name}", f"undefined class(es) {sorted(missing)}")

    return Policy(
        admdvs=admdvs, name=r.text(head, "name", "policy"), version=r.text(head, "version", "policy"),
        effective_from=effective_from, effective_to=effective_to,  # type: ignore[arg-type]
        source=str(head.get("source", "")), rounding=rounding, preselfpay_rounding_scope=scope,
        person_classes=person_classes, med_categories=med_categories,
        yi_selfpay_default=yi_default, yi_selfpay_by_category=by_cat, account=account, tiers=tuple(known.values()),
        item_rules=_item_rules(r, doc, known),
        references=tuple(str(x) for x in head.get("references", [])),
        year_start=year_start, examples=_examples(r, doc, known),
        stay_across_years=r.text(head, "stay_across_years", "policy", default="settlement_year",
                                 choices=("settlement_year", "split_by_fee_date")),
    )


def select_policy(policies: list[Policy], admdvs: str, on: date) -> Policy:
    """The version of ``admdvs``'s policy in force on ``on``."""
    candidates = [p for p in policies if p.admdvs == admdvs and p.in_force(on)]
    if not candidates:
        raise LookupError(f"no policy for region {admdvs} in force on {on.isoformat()}")
    if len(candidates) > 1:
        ids = ", ".join(p.policy_id for p in candidates)
        raise LookupError(f"overlapping policies for region {admdvs} on {on.isoformat()}: {ids}")
    return candidates[0]
