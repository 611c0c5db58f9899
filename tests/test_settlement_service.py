"""SettlementService end to end, on SQLite and PostgreSQL.

Amounts the service returns are integer fen; inputs are yuan as the NHSA interface sends them. Every
expected amount below is worked out by hand from the demo policy (src/medpay/policies/999901-demo-2026.toml)
and the demo catalog, and every refusal is checked to leave the database exactly as it was.
"""

from __future__ import annotations

import itertools
import threading
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from sqlalchemy import func, select

from medpay.adapters.db.ledger_store import LedgerStore, check_ledger
from medpay.adapters.db.ledger_tables import LedgerAccountRow, LedgerTransferRow
from medpay.adapters.db.tables import AccumulatorRow, FeeLineRow, IdempotencyRow, SettlementRow, VisitRow
from medpay.adapters.policy_files import builtin_policies
from medpay.domain.adjudication import identity_violations
from medpay.domain.posting import channel_payer, deposit_account, institution_cash, institution_fund
from medpay.services import demo
from medpay.services.directory import Directory, PersonInput
from medpay.services.errors import Conflict, Invalid, NotFound, ServiceError
from medpay.services.settlement import FeeLineInput, SettleRequest, SettlementService

H1, H2 = "H99990100001", "H99990100002"  # level 3, level 1
EMP, RETIRED, CIVIL, CHILD, DIBAO, TEKUN = (f"999901000000{i:02d}" for i in range(1, 7))
YEAR = 2026

# catalog (demo.CATALOG)
DRUG_YI = "XM01AEB002"  # 乙类 西药 (09): 5 % first self-pay
CT = "002100000020000"  # 甲类, price limit 300.00
BLOOD = "002101000010000"  # 甲类, no limit
BED = "001102000010000"  # 甲类, price limit 60.00 a day
SURGERY = "003100000040000"  # 乙类, 20 % first self-pay
COSMETIC = "CZF0000000001"  # 丙类


class TickingClock:
    """Settlement order matters (cancel the later one first): every reading is one second later."""

    def __init__(self, start: datetime):
        self._start = start
        self._ticks = itertools.count()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._start + timedelta(seconds=next(self._ticks))


@pytest.fixture
def svc(session_factory, cipher) -> SettlementService:
    demo.seed(session_factory, cipher)
    clock = TickingClock(datetime(2026, 3, 10, 1, 0, tzinfo=timezone.utc))  # 09:00 in Shanghai
    return SettlementService(session_factory, builtin_policies(), cipher=cipher, clock=clock)


# ------------------------------------------------------------------------------------------------ helpers


def line(sn: str, code: str, cnt: Any, pric: Any, total: Any) -> FeeLineInput:
    return FeeLineInput(sn, code, cnt, pric, total)


def snapshot(svc: SettlementService) -> dict[str, Any]:
    """Everything a refused request must leave untouched."""
    with svc.factory() as s:
        return {
            "accounts": sorted(s.execute(select(LedgerAccountRow.id, LedgerAccountRow.debits_posted,
                                                LedgerAccountRow.credits_posted, LedgerAccountRow.debits_pending,
                                                LedgerAccountRow.credits_pending)).all()),
            "transfers": s.scalar(select(func.count()).select_from(LedgerTransferRow)),
            "accumulators": sorted(s.execute(select(AccumulatorRow.psn_no, AccumulatorRow.year, AccumulatorRow.key,
                                                    AccumulatorRow.value)).all()),
            "settlements": sorted(s.execute(select(SettlementRow.setl_id, SettlementRow.cancelled)).all()),
            "fee_lines": sorted(s.execute(select(FeeLineRow.id, FeeLineRow.status, FeeLineRow.setl_id)).all(),
                                key=lambda r: r[0]),
            "visits": sorted(s.execute(select(VisitRow.mdtrt_id, VisitRow.status, VisitRow.deposit_amt)).all()),
            "idempotency": sorted(s.execute(select(IdempotencyRow.scope, IdempotencyRow.key)).all()),
        }


def ledger_clean(svc: SettlementService) -> bool:
    with svc.factory() as s:
        return check_ledger(s) == []


def refused(svc: SettlementService, error: type[ServiceError], field: str, call: Callable[[], Any],
            match: str | None = None) -> ServiceError:
    """``call`` raises ``error`` naming ``field`` and changes nothing."""
    before = snapshot(svc)
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error, info.value
    assert info.value.field == field, info.value
    if match is not None:
        assert match in str(info.value)
    assert snapshot(svc) == before
    assert ledger_clean(svc)
    return info.value


def assert_identities(output: dict[str, Any]) -> None:
    info = output["setlinfo"]
    assert identity_violations(info) == []
    funds = sum(d["fund_payamt"] for d in output["setldetail"] if d["fund_pay_type"] != "310200")
    assert funds == info["fund_pay_sumamt"]
    assert abs(info["acct_mulaid_pay"]) <= abs(info["acct_pay"])


def settle(svc: SettlementService, inst: str, msgid: str, mdtrt_id: str, **kw: Any) -> dict[str, Any]:
    out = svc.settle(SettleRequest(inst, msgid, mdtrt_id, **kw))
    assert_identities(out)
    return out


def cancel(svc: SettlementService, inst: str, msgid: str, setl_id: str) -> dict[str, Any]:
    out = svc.cancel(inst, msgid, setl_id)
    assert_identities(out)
    return out


def amounts(info: dict[str, Any], *keys: str) -> dict[str, int]:
    return {k: info[k] for k in keys}


def balance_of(svc: SettlementService, account_id: str) -> int:
    with svc.factory() as s:
        acct = LedgerStore(s).account(account_id)
        return acct.balance if acct else 0


def settlement_count(svc: SettlementService) -> int:
    with svc.factory() as s:
        return s.scalar(select(func.count()).select_from(SettlementRow))


# ------------------------------------------------------------------------------------------------ outpatient

OUTPATIENT_LINES = [
    line("1", DRUG_YI, "2", "30.50", "61.00"),  # 乙类 5 %: preselfpay 3.05, in scope 57.95
    line("2", CT, "1", "350", "350"),  # limit 300: over-limit 50.00, in scope 300.00
    line("3", COSMETIC, "1", "100", 100),  # 丙类: fully self-paid 100.00
]


def test_outpatient_settle_retry_cancel_and_resettle(svc):
    v = svc.register_visit(H1, EMP, "11")
    base_balance = svc.account_balance(EMP)
    assert base_balance == 200000
    assert svc.accumulators(EMP, YEAR) == {}

    result = svc.upload_fees(H1, v.mdtrt_id, OUTPATIENT_LINES)
    by_sn = {r["feedetl_sn"]: r for r in result}
    assert amounts(by_sn["1"], "det_item_fee_sumamt", "fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt",
                   "inscp_scp_amt") == {"det_item_fee_sumamt": 6100, "fulamt_ownpay_amt": 0, "overlmt_amt": 0,
                                        "preselfpay_amt": 305, "inscp_scp_amt": 5795}
    assert by_sn["1"]["selfpay_prop"] == "0.05" and by_sn["1"]["chrgitm_lv"] == "02"
    assert amounts(by_sn["2"], "det_item_fee_sumamt", "fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt",
                   "inscp_scp_amt", "pric_uplmt_amt") == {"det_item_fee_sumamt": 35000, "fulamt_ownpay_amt": 0,
                                                          "overlmt_amt": 5000, "preselfpay_amt": 0,
                                                          "inscp_scp_amt": 30000, "pric_uplmt_amt": 30000}
    assert amounts(by_sn["3"], "det_item_fee_sumamt", "fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt",
                   "inscp_scp_amt") == {"det_item_fee_sumamt": 10000, "fulamt_ownpay_amt": 10000, "overlmt_amt": 0,
                                        "preselfpay_amt": 0, "inscp_scp_amt": 0}
    assert by_sn["3"]["selfpay_prop"] == "1"

    # pre-settlement: the quote, and nothing written
    before = snapshot(svc)
    quote = svc.presettle(H1, v.mdtrt_id, declared={"medfee_sumamt": "511.00"})
    assert snapshot(svc) == before
    expected = {
        "medfee_sumamt": 51100, "fulamt_ownpay_amt": 10000, "overlmt_selfpay": 5000, "preselfpay_amt": 305,
        "inscp_scp_amt": 35795,
        # employee outpatient pool: 500.00 a year deductible takes all 357.95 in scope; the fund pays nothing
        "act_pay_dedc": 35795, "hifp_pay": 0, "fund_pay_sumamt": 0,
        "psn_part_amt": 51100, "acct_pay": 51100, "psn_cash_pay": 0, "hosp_part_amt": 0, "acct_mulaid_pay": 0,
    }
    assert amounts(quote.setlinfo, *expected) == expected
    assert quote.setlinfo["balc"] == 148900
    assert identity_violations(quote.setlinfo) == []

    out = settle(svc, H1, "OTP-1", v.mdtrt_id, declared={"medfee_sumamt": "511.00", "inscp_scp_amt": 357.95})
    info = out["setlinfo"]
    assert amounts(info, *expected) == expected
    assert info["balc"] == 148900 and info["medins_setl_id"] == "OTP-1" and info["setl_type"] == "1"
    assert svc.account_balance(EMP) == 148900
    assert svc.accumulators(EMP, YEAR) == {"emp_otp.dedc": 35795}
    assert balance_of(svc, institution_fund(H1).id) == 51100  # what the account owes the hospital
    assert all(r["setl_id"] == info["setl_id"] for r in svc.fee_lines(H1, v.mdtrt_id))
    assert svc.settlement(H1, info["setl_id"]) == out
    assert ledger_clean(svc)

    # a retry with the same msgid and body: the first answer, no second effect
    after_first = snapshot(svc)
    again = svc.settle(SettleRequest(H1, "OTP-1", v.mdtrt_id,
                                     declared={"medfee_sumamt": "511.00", "inscp_scp_amt": 357.95}))
    assert again == out
    assert snapshot(svc) == after_first

    # the same msgid with another body
    err = refused(svc, Conflict, "msgid",
                  lambda: svc.settle(SettleRequest(H1, "OTP-1", v.mdtrt_id, acct_used_flag=False)))
    assert "OTP-1" in str(err)

    # the visit is settled: no more lines until the settlement is cancelled
    refused(svc, Conflict, "mdtrt_id", lambda: svc.upload_fees(H1, v.mdtrt_id, [line("9", BLOOD, 1, 10, 10)]))

    # cancel: negated amounts under a new setl_id; balance, accumulators and lines back
    c = cancel(svc, H1, "OTP-1-C", info["setl_id"])
    ci = c["setlinfo"]
    assert ci["setl_id"] not in ("", info["setl_id"]) and ci["orig_setl_id"] == info["setl_id"]
    assert ci["setl_type"] == "2"
    assert amounts(ci, *expected) == {k: -v for k, v in expected.items()}
    assert ci["balc"] == base_balance
    assert [d["fund_payamt"] for d in c["setldetail"]] == [-51100]
    assert svc.account_balance(EMP) == base_balance
    assert svc.accumulators(EMP, YEAR) == {"emp_otp.dedc": 0}
    assert balance_of(svc, institution_fund(H1).id) == 0
    assert {r["status"] for r in svc.fee_lines(H1, v.mdtrt_id)} == {"cancelled"}
    assert ledger_clean(svc)

    # a cancellation's replay is its first answer; a second cancellation is refused
    assert svc.cancel(H1, "OTP-1-C", info["setl_id"]) == c
    refused(svc, Conflict, "setl_id", lambda: svc.cancel(H1, "OTP-1-C2", info["setl_id"]))
    refused(svc, Invalid, "setl_id", lambda: svc.cancel(H1, "OTP-1-C3", ci["setl_id"]))
    # nothing left to settle
    refused(svc, Conflict, "mdtrt_id", lambda: svc.settle(SettleRequest(H1, "OTP-2", v.mdtrt_id)))

    # partial refund: the patient keeps the drug and the CT (same line numbers re-uploaded) and settles again
    svc.upload_fees(H1, v.mdtrt_id, OUTPATIENT_LINES[:2])
    out2 = settle(svc, H1, "OTP-2", v.mdtrt_id, declared={"medfee_sumamt": "411.00"})
    expected2 = dict(expected, medfee_sumamt=41100, fulamt_ownpay_amt=0, psn_part_amt=41100, acct_pay=41100)
    assert amounts(out2["setlinfo"], *expected2) == expected2
    assert out2["setlinfo"]["setl_id"] not in (info["setl_id"], ci["setl_id"])
    assert svc.account_balance(EMP) == base_balance - 41100
    assert svc.accumulators(EMP, YEAR) == {"emp_otp.dedc": 35795}

    # a second visit in the year: only the rest of the 500.00 deductible; level 3 in-service ratio 50 %
    v2 = svc.register_visit(H1, EMP, "11")
    svc.upload_fees(H1, v2.mdtrt_id, [line("1", BLOOD, "4", "250.00", "1000.00")])
    out3 = settle(svc, H1, "OTP-3", v2.mdtrt_id)
    i3 = out3["setlinfo"]
    dedc = 50000 - 35795  # 14205
    fund = 42898  # (100000 − 14205) × 0.50 = 42897.5 → half up
    assert amounts(i3, "medfee_sumamt", "inscp_scp_amt", "act_pay_dedc", "hifp_pay", "fund_pay_sumamt",
                   "psn_part_amt", "acct_pay", "psn_cash_pay") == {
        "medfee_sumamt": 100000, "inscp_scp_amt": 100000, "act_pay_dedc": dedc, "hifp_pay": fund,
        "fund_pay_sumamt": fund, "psn_part_amt": 100000 - fund, "acct_pay": 100000 - fund, "psn_cash_pay": 0}
    assert [(d["fund_pay_type"], d["fund_payamt"]) for d in out3["setldetail"]] == [("310100", fund),
                                                                                   ("310200", 100000 - fund)]
    assert svc.account_balance(EMP) == base_balance - 41100 - (100000 - fund)
    assert svc.accumulators(EMP, YEAR) == {"emp_otp.dedc": 50000, "emp_otp.elig": 100000 - dedc,
                                           "emp_otp.fund": fund, "emp_otp.counted": 100000 - dedc}
    assert ledger_clean(svc)


def test_cash_only_settlement_and_cancel_fees(svc):
    v = svc.register_visit(H1, EMP, "11")
    svc.upload_fees(H1, v.mdtrt_id, [line("a", COSMETIC, 1, "20.00", "20.00"), line("b", BLOOD, 1, 30, 30)])
    # withdraw one unsettled line, then an unknown one
    assert svc.cancel_fees(H1, v.mdtrt_id, "a") == 1
    refused(svc, NotFound, "feedetl_sn", lambda: svc.cancel_fees(H1, v.mdtrt_id, "a"))
    out = settle(svc, H1, "CASH-1", v.mdtrt_id, acct_used_flag=False, channel="gateway")
    info = out["setlinfo"]
    assert amounts(info, "medfee_sumamt", "act_pay_dedc", "fund_pay_sumamt", "acct_pay", "psn_cash_pay") == {
        "medfee_sumamt": 3000, "act_pay_dedc": 3000, "fund_pay_sumamt": 0, "acct_pay": 0, "psn_cash_pay": 3000}
    assert svc.account_balance(EMP) == 200000
    assert balance_of(svc, institution_cash(H1).id) == 3000
    refused(svc, Conflict, "feedetl_sn", lambda: svc.cancel_fees(H1, v.mdtrt_id))
    refused(svc, Conflict, "mdtrt_id", lambda: svc.cancel_visit(H1, v.mdtrt_id))
    cancel(svc, H1, "CASH-1-C", info["setl_id"])
    assert balance_of(svc, institution_cash(H1).id) == 0
    assert svc.cancel_visit(H1, v.mdtrt_id).status == "cancelled"
    refused(svc, Conflict, "mdtrt_id", lambda: svc.cancel_visit(H1, v.mdtrt_id))
    refused(svc, Conflict, "mdtrt_id", lambda: svc.upload_fees(H1, v.mdtrt_id, [line("c", BLOOD, 1, 1, 1)]))
    assert ledger_clean(svc)


def test_a_long_bill_is_stored_whole_and_settled_to_the_fen(svc):
    n = 237
    v = svc.register_visit(H1, EMP, "11")
    svc.upload_fees(H1, v.mdtrt_id, [line(f"L{i:04d}", BLOOD, 1, "1.01", "1.01") for i in range(n)])
    with svc.factory() as s:
        stored = s.scalars(select(FeeLineRow.feedetl_sn).where(FeeLineRow.mdtrt_id == v.mdtrt_id)).all()
    assert sorted(stored) == [f"L{i:04d}" for i in range(n)]
    info = settle(svc, H1, "LONG-1", v.mdtrt_id)["setlinfo"]  # (settle checks the identities)
    assert info["medfee_sumamt"] == 101 * n
    assert ledger_clean(svc)


# ------------------------------------------------------------------------------------------------ inpatient


def test_inpatient_interim_and_final_settlement_with_deposit(svc):
    v = svc.register_visit(H1, EMP, "21")
    assert v.admission_seq == 1
    dep = svc.deposit(H1, v.mdtrt_id, "3000.00", msgid="DEP-1")
    assert dep == {"mdtrt_id": v.mdtrt_id, "amount": 300000, "deposit_total": 300000}
    assert svc.deposit(H1, v.mdtrt_id, "3000.00", msgid="DEP-1") == dep  # retry
    refused(svc, Conflict, "msgid", lambda: svc.deposit(H1, v.mdtrt_id, "100.00", msgid="DEP-1"))
    refused(svc, Invalid, "amount", lambda: svc.deposit(H1, v.mdtrt_id, "0", msgid="DEP-2"))
    deposit_id = deposit_account(v.mdtrt_id).id
    payer_id = channel_payer("counter").id
    assert balance_of(svc, deposit_id) == 300000
    assert balance_of(svc, payer_id) == -300000  # credit-normal view of the outside money

    svc.upload_fees(H1, v.mdtrt_id, [
        line("1", BED, 10, "60.00", "600.00"),  # 甲类: 600.00 in scope
        line("2", SURGERY, 1, "5000", "5000.00"),  # 乙类 20 %: 1000.00 self-paid first, 4000.00 in scope
    ])
    # not discharged and not interim
    refused(svc, Conflict, "mdtrt_id", lambda: svc.settle(SettleRequest(H1, "IPT-X", v.mdtrt_id)))
    refused(svc, Conflict, "mdtrt_id", lambda: svc.undo_discharge(H1, v.mdtrt_id))

    # interim: in scope 4600.00; deductible 900.00 (level 3, first admission); (4600 − 900) × 85 % = 3145.00
    mid = settle(svc, H1, "IPT-MID", v.mdtrt_id, mid_setl_flag=True, acct_used_flag=False)
    mi = mid["setlinfo"]
    assert amounts(mi, "medfee_sumamt", "preselfpay_amt", "inscp_scp_amt", "act_pay_dedc", "hifp_pay",
                   "fund_pay_sumamt", "psn_part_amt", "acct_pay", "psn_cash_pay", "deposit_applied",
                   "deposit_refund") == {
        "medfee_sumamt": 560000, "preselfpay_amt": 100000, "inscp_scp_amt": 460000, "act_pay_dedc": 90000,
        "hifp_pay": 314500, "fund_pay_sumamt": 314500, "psn_part_amt": 245500, "acct_pay": 0,
        "psn_cash_pay": 245500, "deposit_applied": 245500, "deposit_refund": 0}
    assert balance_of(svc, deposit_id) == 300000 - 245500
    assert svc.accumulators(EMP, YEAR) == {"emp_pool.dedc": 90000, "emp_pool.elig": 370000,
                                           "emp_pool.fund": 314500, "emp_pool.counted": 370000}
    assert svc.account_balance(EMP) == 200000

    # more days in hospital, then discharge and the final settlement
    svc.upload_fees(H1, v.mdtrt_id, [line("3", BED, 5, 60, 300), line("4", BLOOD, 1, 200, 200)])
    svc.discharge(H1, v.mdtrt_id)
    refused(svc, Invalid, "mdtrt_id", lambda: svc.deposit(H1, v.mdtrt_id, 1, msgid="DEP-3"))
    fin = settle(svc, H1, "IPT-FIN", v.mdtrt_id, acct_used_flag=False)
    fi = fin["setlinfo"]
    # deductible already met by the interim: 500.00 × 85 % = 425.00; cash 75.00 from the deposit, 470.00 back
    assert amounts(fi, "medfee_sumamt", "inscp_scp_amt", "act_pay_dedc", "hifp_pay", "fund_pay_sumamt",
                   "psn_part_amt", "acct_pay", "psn_cash_pay", "deposit_applied", "deposit_refund") == {
        "medfee_sumamt": 50000, "inscp_scp_amt": 50000, "act_pay_dedc": 0, "hifp_pay": 42500,
        "fund_pay_sumamt": 42500, "psn_part_amt": 7500, "acct_pay": 0, "psn_cash_pay": 7500,
        "deposit_applied": 7500, "deposit_refund": 47000}
    assert svc.accumulators(EMP, YEAR) == {"emp_pool.dedc": 90000, "emp_pool.elig": 420000,
                                           "emp_pool.fund": 357000, "emp_pool.counted": 420000, "admissions": 1}
    assert balance_of(svc, deposit_id) == 0
    assert balance_of(svc, payer_id) == -300000 + 47000
    with svc.factory() as s:
        cash = LedgerStore(s).account(institution_cash(H1).id)
        fund = LedgerStore(s).account(institution_fund(H1).id)
    assert cash.balance == 245500 + 7500  # all of the cash part came from the deposit
    assert fund.balance == 314500 + 42500
    assert ledger_clean(svc)
    refused(svc, Conflict, "mdtrt_id", lambda: svc.undo_discharge(H1, v.mdtrt_id))

    # the interim can't be cancelled while the final stands
    refused(svc, Conflict, "setl_id", lambda: svc.cancel(H1, "IPT-MID-C", mi["setl_id"]),
            match=fi["setl_id"])

    # cancel the final, then the interim: everything back to the deposit as paid in
    cf = cancel(svc, H1, "IPT-FIN-C", fi["setl_id"])
    assert cf["setlinfo"]["deposit_applied"] == -7500 and cf["setlinfo"]["deposit_refund"] == -47000
    assert balance_of(svc, deposit_id) == 300000 - 245500
    assert svc.accumulators(EMP, YEAR)["admissions"] == 0
    cm = cancel(svc, H1, "IPT-MID-C", mi["setl_id"])
    assert cm["setlinfo"]["hifp_pay"] == -314500
    assert balance_of(svc, deposit_id) == 300000
    assert balance_of(svc, payer_id) == -300000
    assert balance_of(svc, institution_cash(H1).id) == 0
    assert balance_of(svc, institution_fund(H1).id) == 0
    assert set(svc.accumulators(EMP, YEAR).values()) == {0}
    assert svc.account_balance(EMP) == 200000
    assert ledger_clean(svc)
    # the visit went back to "discharged": undo the discharge and settle everything as one final bill later
    assert svc.undo_discharge(H1, v.mdtrt_id).status == "open"


def test_second_admission_gets_the_lower_deductible(svc):
    first = svc.register_visit(H1, EMP, "21")
    svc.upload_fees(H1, first.mdtrt_id, [line("1", BLOOD, 1, 2000, 2000)])
    svc.discharge(H1, first.mdtrt_id)
    f = settle(svc, H1, "A1", first.mdtrt_id, acct_used_flag=False)
    # 2000 − 900 = 1100 × 85 % = 935.00
    assert amounts(f["setlinfo"], "act_pay_dedc", "hifp_pay") == {"act_pay_dedc": 90000, "hifp_pay": 93500}
    assert svc.accumulators(EMP, YEAR)["admissions"] == 1

    second = svc.register_visit(H1, EMP, "21")
    assert second.admission_seq == 2
    svc.upload_fees(H1, second.mdtrt_id, [line("1", BLOOD, 1, 2000, 2000)])
    svc.discharge(H1, second.mdtrt_id)
    s = settle(svc, H1, "A2", second.mdtrt_id, acct_used_flag=False)
    # deductible 900.00 × 0.5 = 450.00; (2000 − 450) × 85 % = 1317.50
    assert amounts(s["setlinfo"], "act_pay_dedc", "hifp_pay", "psn_cash_pay") == {
        "act_pay_dedc": 45000, "hifp_pay": 131750, "psn_cash_pay": 200000 - 131750}
    assert svc.accumulators(EMP, YEAR)["admissions"] == 2
    assert svc.accumulators(EMP, YEAR)["emp_pool.fund"] == 93500 + 131750
    assert ledger_clean(svc)


# ------------------------------------------------------------------------------------------------ people


def test_family_mutual_aid_pays_from_the_fathers_account(svc):
    v = svc.register_visit(H1, CHILD, "11")
    svc.upload_fees(H1, v.mdtrt_id, [line("1", BLOOD, 1, 300, 300)])
    out = settle(svc, H1, "FAM-1", v.mdtrt_id)
    info = out["setlinfo"]
    # resident outpatient: 100.00 a year deductible, level 3 ratio 40 %: (300 − 100) × 40 % = 80.00
    assert amounts(info, "act_pay_dedc", "hifp_pay", "fund_pay_sumamt", "psn_part_amt", "acct_pay",
                   "acct_mulaid_pay", "psn_cash_pay") == {
        "act_pay_dedc": 10000, "hifp_pay": 8000, "fund_pay_sumamt": 8000, "psn_part_amt": 22000,
        "acct_pay": 22000, "acct_mulaid_pay": 22000, "psn_cash_pay": 0}
    assert svc.account_balance(EMP) == 200000 - 22000
    assert svc.account_balance(CHILD) == 0
    assert "共济" in out["setldetail"][-1]["setl_proc_info"]
    cancel(svc, H1, "FAM-1-C", info["setl_id"])
    assert svc.account_balance(EMP) == 200000
    assert ledger_clean(svc)


def test_civil_servant_inpatient_gets_cvlserv_pay(svc):
    v = svc.register_visit(H1, CIVIL, "21")
    svc.upload_fees(H1, v.mdtrt_id, [line("1", BLOOD, 2, 5000, 10000)])
    svc.discharge(H1, v.mdtrt_id)
    info = settle(svc, H1, "CS-1", v.mdtrt_id)["setlinfo"]
    # basic: (10000 − 900) × 85 % = 7735.00; civil servant 50 % of the rest (2265.00) = 1132.50
    assert amounts(info, "act_pay_dedc", "hifp_pay", "hifob_pay", "cvlserv_pay", "fund_pay_sumamt",
                   "psn_part_amt", "acct_pay", "psn_cash_pay", "cvlserv_flag") == {
        "act_pay_dedc": 90000, "hifp_pay": 773500, "hifob_pay": 0, "cvlserv_pay": 113250,
        "fund_pay_sumamt": 886750, "psn_part_amt": 113250, "acct_pay": 113250, "psn_cash_pay": 0,
        "cvlserv_flag": "1"}
    assert svc.account_balance(CIVIL) == 300000 - 113250
    assert ledger_clean(svc)


def test_dibao_resident_gets_serious_illness_and_assistance(svc):
    v = svc.register_visit(H1, DIBAO, "21")
    svc.upload_fees(H1, v.mdtrt_id, [line("1", BLOOD, 10, 5000, 50000)])
    svc.discharge(H1, v.mdtrt_id)
    out = settle(svc, H1, "DB-1", v.mdtrt_id)
    info = out["setlinfo"]
    basic = 2695000  # (50000 − 1000) × 55 %
    serious = 483000  # (50000 − 26950 − 15000) × 60 %
    maf = 1240400  # (50000 − 26950 − 4830 − 500) × 70 %
    assert amounts(info, "act_pay_dedc", "hifp_pay", "hifmi_pay", "maf_pay", "fund_pay_sumamt", "psn_part_amt",
                   "acct_pay", "psn_cash_pay") == {
        "act_pay_dedc": 100000, "hifp_pay": basic, "hifmi_pay": serious, "maf_pay": maf,
        "fund_pay_sumamt": basic + serious + maf, "psn_part_amt": 5000000 - basic - serious - maf,
        "acct_pay": 0, "psn_cash_pay": 5000000 - basic - serious - maf}
    assert {d["fund_pay_type"]: d["fund_payamt"] for d in out["setldetail"]} == {
        "390100": basic, "390200": serious, "610100": maf}
    acc = svc.accumulators(DIBAO, YEAR)
    assert (acc["res_pool.dedc"], acc["res_serious.dedc"], acc["maf.dedc"]) == (100000, 1500000, 50000)
    assert ledger_clean(svc)


def test_serious_illness_for_a_resident_child_with_mutual_aid(svc):
    v = svc.register_visit(H1, CHILD, "21")
    svc.upload_fees(H1, v.mdtrt_id, [line("1", BLOOD, 10, 5000, 50000)])
    svc.discharge(H1, v.mdtrt_id)
    info = settle(svc, H1, "CH-1", v.mdtrt_id)["setlinfo"]
    part = 5000000 - 2695000 - 483000
    assert amounts(info, "hifp_pay", "hifmi_pay", "maf_pay", "psn_part_amt", "acct_pay", "acct_mulaid_pay",
                   "psn_cash_pay") == {
        "hifp_pay": 2695000, "hifmi_pay": 483000, "maf_pay": 0, "psn_part_amt": part,
        "acct_pay": 200000, "acct_mulaid_pay": 200000, "psn_cash_pay": part - 200000}
    assert svc.account_balance(EMP) == 0
    assert ledger_clean(svc)


# ------------------------------------------------------------------------------------------------ tenancy


def test_an_institution_cannot_touch_another_ones_visits(svc):
    v = svc.register_visit(H1, EMP, "11")
    svc.upload_fees(H1, v.mdtrt_id, [line("1", BLOOD, 1, 100, 100)])
    adm = svc.register_visit(H1, RETIRED, "21")
    svc.deposit(H1, adm.mdtrt_id, 500, msgid="T-DEP")
    svc.upload_fees(H1, adm.mdtrt_id, [line("1", BLOOD, 1, 100, 100)])
    m = v.mdtrt_id
    for field, call in [
        ("mdtrt_id", lambda: svc.upload_fees(H2, m, [line("2", BLOOD, 1, 1, 1)])),
        ("mdtrt_id", lambda: svc.cancel_fees(H2, m)),
        ("mdtrt_id", lambda: svc.presettle(H2, m)),
        ("mdtrt_id", lambda: svc.settle(SettleRequest(H2, "T-1", m))),
        ("mdtrt_id", lambda: svc.fee_lines(H2, m)),
        ("mdtrt_id", lambda: svc.cancel_visit(H2, m)),
        ("mdtrt_id", lambda: svc.deposit(H2, adm.mdtrt_id, 10, msgid="T-DEP2")),
        ("mdtrt_id", lambda: svc.discharge(H2, adm.mdtrt_id)),
        ("mdtrt_id", lambda: svc.settle(SettleRequest(H2, "T-2", adm.mdtrt_id, mid_setl_flag=True))),
    ]:
        refused(svc, NotFound, field, call)  # another's visit is refused like one that doesn't exist: no probing
    info = settle(svc, H1, "T-OK", m)["setlinfo"]
    refused(svc, NotFound, "setl_id", lambda: svc.cancel(H2, "T-C", info["setl_id"]))
    refused(svc, NotFound, "setl_id", lambda: svc.settlement(H2, info["setl_id"]))
    refused(svc, NotFound, "setl_id", lambda: svc.settlement(H1, "00000000000000000000"))
    refused(svc, NotFound, "mdtrt_id", lambda: svc.presettle(H1, "00000000000000000000"))
    # H1's msgid does not collide with H2's: keys are per institution
    v2 = svc.register_visit(H2, RETIRED, "11")
    svc.upload_fees(H2, v2.mdtrt_id, [line("1", BLOOD, 1, 100, 100)])
    assert settle(svc, H2, "T-OK", v2.mdtrt_id)["setlinfo"]["mdtrt_id"] == v2.mdtrt_id
    assert ledger_clean(svc)


# ------------------------------------------------------------------------------------------------ bad input


def test_bad_input_is_refused_and_writes_nothing(svc):
    refused(svc, NotFound, "psn_no", lambda: svc.register_visit(H1, "99990100009999", "11"))
    refused(svc, NotFound, "fixmedins_code", lambda: svc.register_visit("H99990199999", EMP, "11"))
    refused(svc, Invalid, "med_type", lambda: svc.register_visit(H1, EMP, "99"))
    refused(svc, Invalid, "insutype", lambda: svc.register_visit(H1, EMP, "11", insutype="390"))
    v = svc.register_visit(H1, EMP, "11")
    m = v.mdtrt_id
    ok = line("1", BLOOD, 1, 10, 10)

    def upload(*lines: FeeLineInput):
        return lambda: svc.upload_fees(H1, m, list(lines))

    refused(svc, Invalid, "feedetail", upload())
    refused(svc, NotFound, "feedetail[1].med_list_codg", upload(ok, line("2", "NO-SUCH-ITEM", 1, 10, 10)))
    refused(svc, Invalid, "feedetail[1].det_item_fee_sumamt", upload(ok, line("2", BLOOD, 1, 10, "-10.00")))
    refused(svc, Invalid, "feedetail[0].det_item_fee_sumamt", upload(line("2", BLOOD, 1, 10, "ten")))
    refused(svc, Invalid, "feedetail[0].det_item_fee_sumamt", upload(line("2", BLOOD, 1, "10.001", "10.001")))
    refused(svc, Invalid, "feedetail[0].det_item_fee_sumamt", upload(line("2", BLOOD, 1, 10, True)))
    refused(svc, Invalid, "feedetail[0].det_item_fee_sumamt", upload(line("2", BLOOD, 3, "10.00", "31.00")))
    refused(svc, Invalid, "feedetail[0].pric", upload(line("2", BLOOD, 1, "-10", "0")))
    refused(svc, Invalid, "feedetail[0].cnt", upload(line("2", BLOOD, 0, "10", "0")))
    refused(svc, Invalid, "feedetail[0].cnt", upload(line("2", BLOOD, "x", "10", "10")))
    refused(svc, Invalid, "feedetail[0].feedetl_sn", upload(line("", BLOOD, 1, 10, 10)))
    refused(svc, Conflict, "feedetail[1].feedetl_sn", upload(ok, line("1", BLOOD, 1, 20, 20)))
    # rounding tolerance: 3 × 3.333 = 9.999 may be sent as 10.00
    assert svc.upload_fees(H1, m, [ok, line("2", BLOOD, 3, "3.333", "10.00")])[1]["det_item_fee_sumamt"] == 1000
    refused(svc, Conflict, "feedetail[0].feedetl_sn", upload(line("2", BLOOD, 1, 5, 5)))
    refused(svc, Conflict, "feedetail[1].feedetl_sn", upload(line("3", BLOOD, 1, 5, 5), line("1", BLOOD, 1, 5, 5)))

    # the HIS's sums must match the lines (20.00 uploaded)
    refused(svc, Invalid, "medfee_sumamt", lambda: svc.presettle(H1, m, declared={"medfee_sumamt": "20.01"}))
    refused(svc, Invalid, "medfee_sumamt",
            lambda: svc.settle(SettleRequest(H1, "BAD-1", m, declared={"medfee_sumamt": "19.99"})))
    refused(svc, Invalid, "inscp_scp_amt",
            lambda: svc.settle(SettleRequest(H1, "BAD-1", m, declared={"inscp_scp_amt": "0"})))
    refused(svc, Invalid, "medfee_sumamt",
            lambda: svc.settle(SettleRequest(H1, "BAD-1", m, declared={"medfee_sumamt": "20.001"})))
    refused(svc, Invalid, "msgid", lambda: svc.settle(SettleRequest(H1, "", m)))
    refused(svc, Invalid, "mid_setl_flag", lambda: svc.settle(SettleRequest(H1, "BAD-2", m, mid_setl_flag=True)))
    refused(svc, Invalid, "mdtrt_id", lambda: svc.deposit(H1, m, 10, msgid="BAD-3"))
    refused(svc, Invalid, "mdtrt_id", lambda: svc.discharge(H1, m))
    refused(svc, NotFound, "mdtrt_id", lambda: svc.upload_fees(H1, "00000000000000000000", [ok]))
    # the refused msgid left no trace: the corrected request under it goes through
    out = settle(svc, H1, "BAD-1", m, declared={"medfee_sumamt": "20.00"})
    assert out["setlinfo"]["medfee_sumamt"] == 2000
    assert ledger_clean(svc)


# ------------------------------------------------------------------------------------------------ concurrency


def run_together(n: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return results


def test_parallel_settlements_never_overdraw_the_account(svc, session_factory, cipher):
    psn = "99990100000099"
    d = Directory(session_factory, cipher)
    d.add_person(PersonInput(psn, "赵并发", "999901199001010099", "1", date(1990, 1, 1), "310", "1101", "999901"))
    d.top_up(psn, 10000, ref="race-topup")
    visits = []
    for i in range(8):
        v = svc.register_visit(H1, psn, "11")
        svc.upload_fees(H1, v.mdtrt_id, [line("1", COSMETIC, 1, "30.00", "30.00")])  # 30.00 account-payable
        visits.append(v.mdtrt_id)
    initial = svc.account_balance(psn)
    assert initial == 10000

    outs = run_together(8, lambda i: svc.settle(SettleRequest(H1, f"RACE-{i}", visits[i])))
    errors = [o for o in outs if isinstance(o, BaseException)]
    assert not errors, errors
    final = svc.account_balance(psn)
    assert final >= 0
    paid = [o["setlinfo"]["acct_pay"] for o in outs]
    assert sum(paid) == initial - final == 10000
    assert sorted(paid) == [0, 0, 0, 0, 1000, 3000, 3000, 3000]
    for o in outs:
        assert_identities(o)
        assert o["setlinfo"]["psn_part_amt"] == 3000
        assert o["setlinfo"]["psn_cash_pay"] == 3000 - o["setlinfo"]["acct_pay"]
    assert settlement_count(svc) == 8
    assert ledger_clean(svc)


def test_parallel_retries_of_one_msgid_settle_once(svc):
    v = svc.register_visit(H1, EMP, "11")
    svc.upload_fees(H1, v.mdtrt_id, [line("1", BLOOD, 1, 100, 100)])
    req = SettleRequest(H1, "SAME", v.mdtrt_id, declared={"medfee_sumamt": "100.00"})
    outs = run_together(6, lambda i: svc.settle(req))
    errors = [o for o in outs if isinstance(o, BaseException)]
    assert not errors, errors
    assert all(o == outs[0] for o in outs)
    assert_identities(outs[0])
    assert settlement_count(svc) == 1
    assert svc.account_balance(EMP) == 200000 - 10000
    assert svc.accumulators(EMP, YEAR) == {"emp_otp.dedc": 10000}
    assert ledger_clean(svc)
    # the same for a cancellation and for a deposit
    setl_id = outs[0]["setlinfo"]["setl_id"]
    couts = run_together(6, lambda i: svc.cancel(H1, "SAME-C", setl_id))
    assert not [o for o in couts if isinstance(o, BaseException)], couts
    assert all(o == couts[0] for o in couts)
    assert settlement_count(svc) == 2
    assert svc.account_balance(EMP) == 200000
    adm = svc.register_visit(H1, RETIRED, "21")
    douts = run_together(6, lambda i: svc.deposit(H1, adm.mdtrt_id, "1000.00", msgid="SAME-D"))
    assert not [o for o in douts if isinstance(o, BaseException)], douts
    assert all(o == douts[0] for o in douts)
    assert balance_of(svc, deposit_account(adm.mdtrt_id).id) == 100000
    assert ledger_clean(svc)
