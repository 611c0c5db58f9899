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
from datetime import date
from decimal import Decimal
from collections.abc import Mapping
from typing import Any

from medpay.money import MoneyError, Rounding, parse_ratio, parse_yuan

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


@dataclass(frozen=True)
class Match:
    """Conditions on person, visit and institution; an empty set means 'any'."""

    insutypes: frozenset[str] = frozenset()
    psn_classes: frozenset[str] = frozenset()
    med_categories: frozenset[str] = frozenset()
    levels: frozenset[str] = frozenset()
    identities: frozenset[str] = frozenset()  # any one of them suffices
    dise_codgs: frozenset[str] = frozenset()
    cvlserv: bool | None = None

    def accepts(self, *, insutype: str, psn_class: str, med_category: str, level: str,
                identities: frozenset[str], dise_codg: str, cvlserv: bool) -> bool:
        return (
            (not self.insutypes or insutype in self.insutypes)
            and (not self.psn_classes or psn_class in self.psn_classes)
            and (not self.med_categories or med_category in self.med_categories)
            and (not self.levels or level in self.levels)
            and (not self.identities or bool(self.identities & identities))
            and (not self.dise_codgs or dise_codg in self.dise_codgs)
            and (self.cvlserv is None or self.cvlserv == cvlserv)
        )


@dataclass(frozen=True)
class Band:
    """Pay ``ratio`` of the base up to ``upto`` (fen on the band axis); None = no upper end."""

    upto: int | None
    ratio: Decimal


@dataclass(frozen=True)
class RatioRule:
    match: Match
    bands: tuple[Band, ...]


@dataclass(frozen=True)
class DeductibleRule:
    match: Match
    amount: int


@dataclass(frozen=True)
class Deductible:
    basis: str = "none"  # "none" | "per_visit" | "per_year"
    mode: str = "before_ratio"  # "before_ratio": ratio × (base − deductible); "from_fund": ratio × base − deductible
    rules: tuple[DeductibleRule, ...] = ()
    admission_factors: tuple[Decimal, ...] = ()  # per_visit inpatient: factor for 1st, 2nd, 3rd… admission (last repeats)
    year_cap: int | None = None  # per_visit: the most all of a year's per-visit deductibles may add up to


@dataclass(frozen=True)
class Cap:
    basis: str = "none"  # "none" | "fund" (on the tier's payments) | "inscp" (on the base it may count)
    amount: int = 0


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
    references: tuple[str, ...] = field(default=())
    year_start: tuple[int, int] = (1, 1)  # (month, day) the policy year starts: 医保年度 may run 7/1 – 6/30
    examples: tuple[PolicyExample, ...] = ()

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


def _match(r: _Reader, doc: Mapping[str, Any], path: str) -> Match:
    cvlserv = doc.get("cvlserv")
    if cvlserv is not None and not isinstance(cvlserv, bool):
        raise r.fail(_join(path, "cvlserv"), "must be true or false")
    return Match(
        insutypes=r.strings(doc, "insutypes", path),
        psn_classes=r.strings(doc, "psn_classes", path),
        med_categories=r.strings(doc, "med_categories", path),
        levels=r.strings(doc, "levels", path),
        identities=r.strings(doc, "identities", path),
        dise_codgs=r.strings(doc, "dise_codgs", path),
        cvlserv=cvlserv,
    )


def _bands(r: _Reader, doc: Mapping[str, Any], path: str) -> tuple[Band, ...]:
    if "ratio" in doc and "bands" in doc:
        raise r.fail(path, "give either 'ratio' or 'bands', not both")
    if "ratio" in doc:
        return (Band(None, r.ratio(doc["ratio"], _join(path, "ratio"))),)
    raw = doc.get("bands")
    if not isinstance(raw, list) or not raw:
        raise r.fail(_join(path, "ratio"), "missing (give 'ratio' or a non-empty 'bands' list)")
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


def _deductible(r: _Reader, doc: Mapping[str, Any], path: str) -> Deductible:
    if not doc:
        return Deductible()
    basis = r.text(doc, "basis", path, choices=("none", "per_visit", "per_year"))
    mode = r.text(doc, "mode", path, default="before_ratio", choices=("before_ratio", "from_fund"))
    rules: list[DeductibleRule] = []
    if "amount" in doc:
        rules.append(DeductibleRule(Match(), r.yuan(doc, "amount", path)))
    for i, rule in enumerate(doc.get("rules", [])):
        rpath = f"{path}.rules[{i}]"
        if not isinstance(rule, Mapping):
            raise r.fail(rpath, "must be a table")
        rules.append(DeductibleRule(_match(r, rule, rpath), r.yuan(rule, "amount", rpath)))
    if basis != "none" and not rules:
        raise r.fail(_join(path, "amount"), f"missing: basis {basis!r} needs an 'amount' or 'rules'")
    factors = tuple(r.ratio(f, f"{path}.admission_factors[{i}]") for i, f in enumerate(doc.get("admission_factors", [])))
    if factors and basis != "per_visit":
        raise r.fail(_join(path, "admission_factors"), "only meaningful with basis 'per_visit'")
    year_cap = r.yuan(doc, "year_cap", path) if "year_cap" in doc else None
    if year_cap is not None and basis != "per_visit":
        raise r.fail(_join(path, "year_cap"), "only meaningful with basis 'per_visit'")
    return Deductible(basis=basis, mode=mode, rules=tuple(rules), admission_factors=factors, year_cap=year_cap)


def _tier(r: _Reader, doc: Mapping[str, Any], path: str, known: dict[str, Tier]) -> Tier:
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
        ratios.append(RatioRule(_match(r, rr, rpath), _bands(r, rr, rpath)))
    cap_doc = r.table(doc, "cap", path, required=False)
    cap = Cap()
    if cap_doc:
        cap_basis = r.text(cap_doc, "basis", _join(path, "cap"), choices=("none", "fund", "inscp"))
        cap = Cap(cap_basis, r.yuan(cap_doc, "amount", _join(path, "cap")) if cap_basis != "none" else 0)
    return Tier(
        code=code, kind=kind, name=str(doc.get("name", code)), fund_pay_type=fund_pay_type, setl_field=setl_field,
        applies=_match(r, r.table(doc, "applies", path, required=False), _join(path, "applies")),
        base=base, overflow_of=overflow_of, count_prior_dedc=count_prior_dedc,
        pool=r.text(doc, "pool", path, default=code), group=r.text(doc, "group", path, default=code),
        axis=axis, band_origin=band_origin, deductible=deductible, ratios=tuple(ratios), cap=cap,
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
    raw = doc.get("examples", [])
    if not isinstance(raw, list):
        raise r.fail("examples", "must be an array of tables [[examples]]")
    out: list[PolicyExample] = []
    names: set[str] = set()
    for i, ex in enumerate(raw):
        path = f"examples[{i}]"
        if not isinstance(ex, Mapping):
            raise r.fail(path, "must be a table")
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


def parse_policy(doc: Mapping[str, Any], source: str) -> Policy:
    """Validate a parsed policy document. Raises PolicyError naming ``source``, the key and the problem."""
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
        tier = _tier(r, t, f"tiers[{i}]", known)
        known[tier.code] = tier
    if not any(t.kind == "basic" for t in known.values()):
        raise r.fail("tiers", "no tier of kind 'basic'")

    med_categories = _codes(r, doc, "med_categories")
    person_classes = _codes(r, doc, "person_classes")
    # every condition — the tier's own, its ratio rules' and its deductible rules' — must name defined
    # classes: a typo would otherwise silently never match and hand the person another ratio
    for t in known.values():
        matches = [("applies", t.applies)] + [(f"ratios[{i}]", rr.match) for i, rr in enumerate(t.ratios)] + \
                  [(f"deductible.rules[{i}]", dr.match) for i, dr in enumerate(t.deductible.rules)]
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
        references=tuple(str(x) for x in head.get("references", [])),
        year_start=_year_start(r, head), examples=_examples(r, doc, known),
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
