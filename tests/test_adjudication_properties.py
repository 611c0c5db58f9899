"""Laws of the adjudication engine over random bills, persons, visits, accumulators and accounts.

Policies: the demo policy, plus variants of it that switch the knobs the demo leaves at their default
(deductible out of the fund payment, a cap on the in-scope amount, absolute serious-illness bands,
per-settlement rounding, other rounding modes, an account that may not pay 丙类 items).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medpay.domain.adjudication import AMOUNT_FIELDS, Adjudication, adjudicate, identity_violations, negate_deltas
from medpay.domain.model import (
    AccountSource,
    Accumulators,
    CatalogItem,
    ChrgitmLv,
    FeeLine,
    Institution,
    Person,
    VisitContext,
)
from medpay.domain.policy import Policy, parse_policy
from medpay.money import round_fen
from tests.builders import DEMO, demo_doc


def _variant(name: str, edit) -> Policy:
    doc = demo_doc()
    edit(doc, {t["code"]: t for t in doc["tiers"]})
    return parse_policy(doc, name)


def _knobs(doc, tiers):
    doc["rounding"] = {"mode": "half_even", "preselfpay": "per_settlement"}
    tiers["emp_outpatient"]["deductible"]["mode"] = "from_fund"
    tiers["res_outpatient"]["deductible"]["mode"] = "from_fund"
    tiers["emp_inpatient"]["cap"] = {"basis": "inscp", "amount": "200000.00"}
    tiers["res_serious"]["band_origin"] = "absolute"
    tiers["res_serious"]["count_prior_dedc"] = False
    doc["account"]["payable"] = ["overlmt_selfpay", "preselfpay", "inscp_selfpay"]


def _rounding(mode):
    def edit(doc, tiers):
        doc["rounding"] = {"mode": mode, "preselfpay": "per_line"}
        tiers["res_inpatient"]["deductible"]["mode"] = "from_fund"
        tiers["maf_dibao"]["count_prior_dedc"] = False
    return edit


POLICIES = {"demo": DEMO, "knobs": _variant("knobs", _knobs), "up": _variant("up", _rounding("up")),
            "down": _variant("down", _rounding("down"))}

MED_TYPES = sorted(DEMO.med_categories)
LEVELS = ["0", "1", "2", "3"]
PERSON_KINDS = [("310", "1101"), ("310", "1201"), ("310", "1300"), ("390", "1501"), ("390", "1402"),
                ("390", "1101"), ("310", "9999")]
IDENTITIES = ["2201", "2202", "2203", "9999"]
RELATIONS = ["spouse", "parent", "child", "sibling", "cousin", "friend"]

# pool -> (fund cap, deductible, a band edge) in fen, to draw accumulators near the interesting points
POOLS = {
    "emp_pool": (30_000_000, 90_000, 3_000_000),
    "emp_otp": (300_000, 50_000, 0),
    "emp_large": (50_000_000, 0, 0),
    "emp_civil_servant": (0, 0, 0),
    "res_pool": (20_000_000, 100_000, 0),
    "res_otp": (40_000, 10_000, 0),
    "res_serious": (40_000_000, 1_500_000, 10_000_000),
    "maf": (6_000_000, 50_000, 0),
}


# Generation is kept cheap (a few draws per bill line / per pool) so 200 examples run in about a second:
# each line and each pool's totals are drawn as one integer and decoded, rather than field by field. The
# integer is scrambled first (an odd multiplier is a bijection mod 2**k, and 0 stays 0) because Hypothesis
# favours small integers, which would otherwise decode to tiny bills and untouched accumulators.


def _scramble(x: int, bits: int) -> int:
    return (x * 0x9E3779B97F4A7C15F39CC0605CEDC8351D2A6E0B5C3F7A1D) % (1 << bits)


def _near(x: int, point: int) -> int:
    """Decode one drawn integer into a value near ``point``: anywhere below it, on it, around it, or far."""
    mode, x = x % 4, x // 4
    if mode == 0:
        return x % (point * 6 // 5 + 2)
    if mode == 1:
        return (0, max(point - 1, 0), point, point + 1)[x % 4]
    if mode == 2:
        return max(0, point - 5_000 + x % 10_001)
    return x % 60_000_001


def _accumulator_values(draws: tuple[int, ...]) -> dict[str, int]:
    """One drawn integer per pool: even means the pool is untouched this year, odd decodes its four totals."""
    values: dict[str, int] = {}
    for (pool, (cap, dedc, edge)), x in zip(POOLS.items(), draws):
        x = _scramble(x, 241)
        if x % 2 == 0:
            continue
        x //= 2
        for suffix, point in (("fund", cap), ("dedc", dedc), ("elig", edge), ("counted", 20_000_000)):
            x, part = divmod(x, 2**60)
            values[f"{pool}.{suffix}"] = _near(part, point)
    return values


_pool_draws = st.tuples(*(st.integers(0, 2**241) for _ in POOLS)).map(_accumulator_values)
year_accumulators = _pool_draws.map(Accumulators)
# a visit's own totals (earlier interim settlements of this stay): deductible and band position only
visit_accumulators = _pool_draws.map(
    lambda v: Accumulators({k: min(x, 5_000_000) for k, x in v.items() if k.endswith((".dedc", ".elig"))}))

COUNTS = [Decimal(1), Decimal(1), Decimal(2), Decimal(3), Decimal(10), Decimal("0.5"), Decimal("2.5")]
LEVS = [ChrgitmLv.JIA, ChrgitmLv.YI, ChrgitmLv.BING]
CATS = ["09", "11", "01", ""]


def _fee_line(n: int, x: int) -> FeeLine:
    """Decode one drawn integer into a fee line (0 decodes to a 0.01 甲类 line with no limit)."""
    x = _scramble(x, 80)

    def take(k: int) -> int:
        nonlocal x
        x, r = divmod(x, k)
        return r

    lv, cnt, cat = LEVS[take(3)], COUNTS[take(7)], CATS[take(4)]
    price = take(5_000) + 1 if take(2) == 0 else take(2_000_000) + 1  # fen per unit
    limit_kind = take(4)
    limit = (None, price, max(1, price - 1), take(2_000_000) + 1)[limit_kind]  # none, at, just under, any
    prop = None if take(2) == 0 else Decimal(take(101)) / 100  # 乙类 first self-pay of the item
    amount = max(1, round_fen(Decimal(price) * cnt))
    item = CatalogItem(f"X{n:04d}", f"item {n}", lv, cat, limit, prop)
    return FeeLine(str(n), item, cnt, Decimal(amount) / 100 / cnt, amount)


bills = st.lists(st.integers(0, 2**80), min_size=1, max_size=40).map(
    lambda xs: [_fee_line(i, x) for i, x in enumerate(xs)])


@st.composite
def persons(draw) -> Person:
    insutype, psn_type = draw(st.sampled_from(PERSON_KINDS))
    ids = frozenset(draw(st.lists(st.sampled_from(IDENTITIES), max_size=3)))
    return Person("P0", "患者", insutype, psn_type, "999901", draw(st.booleans()), ids)


@st.composite
def visits(draw) -> VisitContext:
    inst = Institution("H001", "医院", "999901", draw(st.sampled_from(LEVELS)))
    return VisitContext("M1", draw(st.sampled_from(MED_TYPES)), date(2026, 5, 1), inst,
                        admission_seq=draw(st.integers(1, 4)), final=draw(st.booleans()))


PERSONS, VISITS = persons(), visits()
POLICY_CHOICE = st.sampled_from(["demo", "demo", "demo", "knobs", "up", "down"])  # by name: short failure reports
balances = st.one_of(st.just(0), st.integers(0, 20_000), st.integers(0, 5_000_000))
account_sources = st.tuples(
    st.one_of(st.none(), balances),
    st.lists(st.tuples(st.sampled_from(RELATIONS), balances), max_size=3),
).map(lambda t: tuple(([AccountSource("P0", "self", t[0])] if t[0] is not None else [])
                      + [AccountSource(f"F{i}", rel, bal) for i, (rel, bal) in enumerate(t[1])]))


@st.composite
def cases(draw) -> dict:
    return dict(
        policy=draw(POLICY_CHOICE), person=draw(PERSONS), visit=draw(VISITS), lines=draw(bills),
        year=draw(year_accumulators), visit_acc=draw(st.one_of(st.none(), visit_accumulators)),
        accounts=draw(account_sources), use_account=draw(st.booleans()),
    )


def policy_of(c: dict) -> Policy:
    return POLICIES[c["policy"]]


def run(c: dict, **changes) -> Adjudication:
    c = {**c, **changes}
    return adjudicate(policy_of(c), c["person"], c["visit"], c["lines"], c["year"], c["visit_acc"],
                      c["accounts"], c["use_account"])


def nonzero(acc: Accumulators) -> dict[str, int]:
    """Accumulators say missing keys are zero; compare them that way."""
    return {k: v for k, v in acc.values.items() if v}


PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------------------


@PROPS
@given(cases())
def test_the_four_amount_identities_always_hold(c):
    r = run(c)
    assert identity_violations(r.amounts, r.setldetail) == []
    assert set(r.amounts) == set(AMOUNT_FIELDS)
    assert sum(r.amounts[t.setl_field] for t in r.tiers) == r.amounts["fund_pay_sumamt"]
    if policy_of(c).preselfpay_rounding_scope == "per_line":  # the 2204 line results add up to the settlement
        assert sum(s.preselfpay_amt for s in r.bill.lines) == r.amounts["preselfpay_amt"]
        assert sum(s.inscp_scp_amt for s in r.bill.lines) == r.amounts["inscp_scp_amt"]


@PROPS
@given(cases())
def test_no_amount_is_negative(c):
    r = run(c)
    assert {k: v for k, v in r.amounts.items() if v < 0} == {}
    for t in r.tiers:
        assert min(t.base, t.act_pay_dedc, t.eligible, t.consumed, t.overflow, t.fund_payamt) >= 0, t
        assert t.crt_payb_lmt_amt is None or t.crt_payb_lmt_amt >= 0
    for s in r.bill.lines:
        assert min(s.fulamt_ownpay_amt, s.overlmt_amt, s.preselfpay_amt, s.inscp_scp_amt) >= 0, s
    assert all(v >= 0 for v in r.year_deltas.values()) and all(v >= 0 for v in r.visit_deltas.values())
    assert r.balc >= 0


@PROPS
@given(cases())
def test_funds_never_pay_more_than_the_in_scope_amount(c):
    r = run(c)
    assert r.amounts["fund_pay_sumamt"] <= r.amounts["inscp_scp_amt"]


@PROPS
@given(cases())
def test_each_capped_tier_pays_within_its_remaining_room(c):
    r = run(c)
    tiers = {t.code: t for t in policy_of(c).tiers}
    for t in r.tiers:
        cap = tiers[t.code].cap
        if cap.basis == "none":
            assert t.crt_payb_lmt_amt is None
            continue
        assert t.crt_payb_lmt_amt is not None
        assert t.fund_payamt <= t.crt_payb_lmt_amt, t
        pool = tiers[t.code].pool
        if cap.basis == "fund":
            assert t.crt_payb_lmt_amt == max(0, cap.amount - c["year"].get(f"{pool}.fund"))
            if c["year"].get(f"{pool}.fund") <= cap.amount:
                assert c["year"].plus(r.year_deltas).get(f"{pool}.fund") <= cap.amount
            if t.overflow:  # every band here is open-ended with a ratio > 0: only the cap leaves an overflow
                assert t.fund_payamt == t.crt_payb_lmt_amt, t
        else:
            assert t.consumed <= t.crt_payb_lmt_amt
            if t.overflow:
                assert t.consumed == t.crt_payb_lmt_amt, t


@PROPS
@given(cases(), st.integers(1, 10_000_000), st.data())
def test_raising_a_bing_line_changes_no_fund_payment(c, extra, data):
    lines = list(c["lines"])
    bing = [i for i, ln in enumerate(lines) if ln.item.chrgitm_lv == ChrgitmLv.BING]
    if not bing:
        lines.append(FeeLine("B", CatalogItem("B", "丙类", ChrgitmLv.BING), Decimal(1), Decimal("0.01"), 1))
        bing = [len(lines) - 1]
    i = data.draw(st.sampled_from(bing))
    raised = list(lines)
    old = raised[i]
    raised[i] = FeeLine(old.feedetl_sn, old.item, old.cnt, old.pric, old.det_item_fee_sumamt + extra)

    before, after = run(c, lines=lines), run(c, lines=raised)
    assert after.amounts["fund_pay_sumamt"] == before.amounts["fund_pay_sumamt"]
    assert [(t.code, t.fund_payamt) for t in after.tiers] == [(t.code, t.fund_payamt) for t in before.tiers]
    assert after.year_deltas == before.year_deltas and after.visit_deltas == before.visit_deltas
    assert after.amounts["psn_part_amt"] == before.amounts["psn_part_amt"] + extra
    assert after.amounts["fulamt_ownpay_amt"] == before.amounts["fulamt_ownpay_amt"] + extra


@PROPS
@given(cases())
def test_account_payments_stay_within_the_balances(c):
    r = run(c)
    by_psn = {s.psn_no: s for s in c["accounts"]}
    assert r.amounts["acct_pay"] <= sum(max(0, s.balance) for s in c["accounts"])
    assert r.amounts["acct_pay"] == sum(p.amount for p in r.account_payments)
    policy = policy_of(c)
    for p in r.account_payments:
        src = by_psn[p.psn_no]
        assert 0 < p.amount <= src.balance
        assert p.relation == src.relation
        if p.relation == "self":
            assert not policy.account.insutypes or c["person"].insutype in policy.account.insutypes
        else:
            assert policy.account.mutual_aid and p.relation in policy.account.mutual_aid_relations
    if not c["use_account"]:
        assert r.account_payments == () and r.amounts["acct_pay"] == 0
    parts = {"fulamt_ownpay": r.amounts["fulamt_ownpay_amt"], "overlmt_selfpay": r.amounts["overlmt_selfpay"],
             "preselfpay": r.amounts["preselfpay_amt"],
             "inscp_selfpay": r.amounts["inscp_scp_amt"] - r.amounts["fund_pay_sumamt"]}
    assert r.amounts["acct_pay"] <= sum(v for k, v in parts.items() if k in policy.account.payable)


@PROPS
@given(cases())
def test_settle_then_cancel_returns_the_accumulators_and_the_next_settlement_is_the_same(c):
    first = run(c)
    year = c["year"].plus(first.year_deltas).plus(negate_deltas(first.year_deltas))
    assert nonzero(year) == nonzero(c["year"])
    visit_start = c["visit_acc"] or Accumulators()
    visit_acc = visit_start.plus(first.visit_deltas).plus(negate_deltas(first.visit_deltas))
    assert nonzero(visit_acc) == nonzero(visit_start)

    again = run(c, year=year, visit_acc=visit_acc)
    assert again.amounts == first.amounts
    assert again.tiers == first.tiers
    assert again.account_payments == first.account_payments
    assert again.year_deltas == first.year_deltas


@PROPS
@given(cases())
def test_adjudicate_is_deterministic(c):
    assert run(c) == run(c)


@PROPS
@given(cases(), st.integers(1, 39))
def test_interim_then_final_settlement_takes_the_same_basic_deductible(c, cut):
    lines = c["lines"]
    if len(lines) < 2:
        lines = lines * 2
    cut = min(cut, len(lines) - 1)
    v = c["visit"]
    whole = run(c, lines=lines, visit_acc=None)
    interim_visit = VisitContext(v.mdtrt_id, v.med_type, v.setl_date, v.institution, v.admission_seq, final=False)
    interim = run(c, lines=lines[:cut], visit=interim_visit, visit_acc=None)
    final = run(c, lines=lines[cut:], year=c["year"].plus(interim.year_deltas),
                visit_acc=Accumulators(interim.visit_deltas))
    for k in ("medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay"):
        assert interim.amounts[k] + final.amounts[k] == whole.amounts[k]
    if policy_of(c).preselfpay_rounding_scope == "per_settlement":
        return  # rounding the first self-pay per settlement legitimately moves a fen between the parts
    assert interim.amounts["inscp_scp_amt"] + final.amounts["inscp_scp_amt"] == whole.amounts["inscp_scp_amt"]
    basic = next((t for t in whole.tiers if t.kind == "basic"), None)
    tiers = {t.code: t for t in policy_of(c).tiers}
    if basic is not None and tiers[basic.code].deductible.mode == "before_ratio":
        assert interim.amounts["act_pay_dedc"] + final.amounts["act_pay_dedc"] == whole.amounts["act_pay_dedc"]
    assert final.year_deltas.get("admissions", 0) == whole.year_deltas.get("admissions", 0)
    assert "admissions" not in interim.year_deltas
