"""Settle, then cancel, under a policy that uses the new settings (issue 12), on SQLite and PostgreSQL: the
accumulators — per policy year (starting 1 July), per month and quarter, per disease, under a shared cap key —
come back to what they were, and the settlement counts in the policy year, not the calendar year."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from medpay.adapters.policy_files import builtin_policies
from medpay.domain.policy import parse_policy
from medpay.services import demo
from medpay.services.settlement import FeeLineInput, SettleRequest, SettlementService
from benchmarks.core import variants_doc
from tests.builders import demo_doc
from tests.test_settlement_service import TickingClock

H1, H3 = "H99990100001", "H99990100003"  # level 3 general; level 2 中医院
EMP, RETIRED, CIVIL, DIBAO, TEKUN = (f"999901000000{i:02d}" for i in (1, 2, 3, 5, 6))
POLICY_YEAR = 2025  # 10 March 2026 falls in the policy year that began on 1 July 2025


def variant_policy():
    return parse_policy(variants_doc(), "variants")


@pytest.fixture
def svc(session_factory, cipher) -> SettlementService:
    demo.seed(session_factory, cipher)
    clock = TickingClock(datetime(2026, 3, 10, 1, 0, tzinfo=timezone.utc))
    others = [p for p in builtin_policies() if p.admdvs != "999901"]
    return SettlementService(session_factory, [variant_policy(), *others], cipher=cipher, clock=clock)


def lines(*items: tuple[str, str, str]) -> list[FeeLineInput]:
    return [FeeLineInput(str(i + 1), code, cnt, pric, str(Decimal(cnt) * Decimal(pric)))
            for i, (code, cnt, pric) in enumerate(items)]


CASES = [  # institution, person, med_type, disease, lines
    (H1, EMP, "11", "", lines(("XM01AEB002", "10", "30"), ("002101000010000", "1", "500"))),
    (H1, EMP, "14", "M03900", lines(("XM01AEB002", "20", "50"))),
    (H1, RETIRED, "21", "", lines(("001102000010000", "5", "60"), ("003100000040000", "1", "3000"),
                                  ("002101000010000", "1", "20000"))),
    (H1, DIBAO, "21", "", lines(("ZA04BAA003", "10", "80"), ("001102000010000", "10", "60"),
                                ("002101000010000", "1", "30000"))),
    (H1, TEKUN, "14", "M01600", lines(("ZA04BAA003", "30", "60"))),
    (H3, CIVIL, "21", "", lines(("002101000010000", "1", "30000"))),
    (H3, DIBAO, "21", "", lines(("002101000010000", "1", "8000"))),
]


@pytest.mark.parametrize("inst, psn_no, med_type, disease, fee_lines", CASES,
                         ids=["month-quarter", "per-disease", "age-item-rule", "shared-cap-bonus", "tekun-disease",
                              "tcm-salary-enrolment", "tcm-grade"])
def test_settle_then_cancel_restores_every_accumulator(svc, inst, psn_no, med_type, disease, fee_lines):
    before = svc.accumulators(psn_no, POLICY_YEAR)
    v = svc.register_visit(inst, psn_no, med_type, dise_codg=disease)
    svc.upload_fees(inst, v.mdtrt_id, fee_lines)
    if med_type == "21":
        svc.discharge(inst, v.mdtrt_id)
    out = svc.settle(SettleRequest(inst, f"S-{psn_no}-{med_type}", v.mdtrt_id))
    info = out["setlinfo"]
    assert info["fund_pay_sumamt"] > 0
    during = svc.accumulators(psn_no, POLICY_YEAR)
    assert during != before and any(v for v in during.values())
    assert svc.accumulators(psn_no, 2026) == {}  # counted in the policy year, not the calendar year
    svc.cancel(inst, f"C-{psn_no}-{med_type}", info["setl_id"])
    after = svc.accumulators(psn_no, POLICY_YEAR)
    assert {k: v for k, v in after.items() if v} == {k: v for k, v in before.items() if v}


def test_period_and_disease_keys_are_the_ones_counted(svc):
    v = svc.register_visit(H1, EMP, "11")
    svc.upload_fees(H1, v.mdtrt_id, CASES[0][4])
    svc.settle(SettleRequest(H1, "S-OTP", v.mdtrt_id, acct_used_flag=False))
    acc = svc.accumulators(EMP, POLICY_YEAR)
    assert acc["emp_otp.dedc@2026-03"] == 2000  # March's deductible
    assert acc["emp_otp.fund@2026Q1"] == acc["emp_otp.fund"] > 0  # the quarter's cap counts what the fund paid
    v = svc.register_visit(H1, EMP, "14", dise_codg="M03900")
    svc.upload_fees(H1, v.mdtrt_id, CASES[1][4])
    svc.settle(SettleRequest(H1, "S-CHR", v.mdtrt_id, acct_used_flag=False))
    acc = svc.accumulators(EMP, POLICY_YEAR)
    assert 0 < acc["emp_pool.fund#M03900"] <= 100000


def test_tcm_hospital_takes_the_deductible_of_one_level_lower_and_the_salary_sets_the_civil_servant_deductible(svc):
    """At the level-2 中医院 the employee deductible is level 1's 300 (one level lower); the civil-servant
    subsidy's deductible is 1 % of the 126000 salary on record = 1260."""
    v = svc.register_visit(H3, CIVIL, "21")
    svc.upload_fees(H3, v.mdtrt_id, CASES[5][4])
    svc.discharge(H3, v.mdtrt_id)
    out = svc.settle(SettleRequest(H3, "S-TCM", v.mdtrt_id, acct_used_flag=False))
    assert out["setlinfo"]["act_pay_dedc"] == 30000
    acc = svc.accumulators(CIVIL, POLICY_YEAR)
    assert acc["emp_civil_servant.dedc"] == 126000


class SettableClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def test_stay_across_1_january_counts_each_years_fees_in_its_year_and_cancels_both(session_factory, cipher):
    doc = demo_doc()
    doc["policy"]["stay_across_years"] = "split_by_fee_date"
    split = parse_policy(doc, "split")
    demo.seed(session_factory, cipher)
    clock = SettableClock(datetime(2026, 12, 20, 2, 0, tzinfo=timezone.utc))
    others = [p for p in builtin_policies() if p.admdvs != "999901"]
    svc = SettlementService(session_factory, [split, *others], cipher=cipher, clock=clock)
    v = svc.register_visit(H1, EMP, "21")
    dec, jan = datetime(2026, 12, 22, 2, tzinfo=timezone.utc), datetime(2027, 1, 5, 2, tzinfo=timezone.utc)
    svc.upload_fees(H1, v.mdtrt_id, [FeeLineInput("1", "002101000010000", "1", "6000", "6000", fee_ocur_time=dec)])
    clock.now = datetime(2027, 1, 8, 2, tzinfo=timezone.utc)
    svc.upload_fees(H1, v.mdtrt_id, [FeeLineInput("2", "002101000010000", "1", "4000", "4000", fee_ocur_time=jan)])
    svc.discharge(H1, v.mdtrt_id)
    out = svc.settle(SettleRequest(H1, "STAY-1", v.mdtrt_id, acct_used_flag=False))
    info = out["setlinfo"]
    # 三级 1st admission: the visit's deductible 900 once, from the December part; 85 % of the rest of both parts
    assert info["act_pay_dedc"] == 90000
    assert info["hifp_pay"] == round((600000 - 90000) * 0.85) + round(400000 * 0.85)
    y26, y27 = svc.accumulators(EMP, 2026), svc.accumulators(EMP, 2027)
    assert y26["emp_pool.fund"] == round((600000 - 90000) * 0.85) and y26["admissions"] == 1
    assert y27["emp_pool.fund"] == round(400000 * 0.85) and "admissions" not in y27
    svc.cancel(H1, "STAY-1-C", info["setl_id"])
    for year in (2026, 2027):
        assert not any(svc.accumulators(EMP, year).values())
