"""The pure rules behind 5205 and 4101 (``medpay.domain.person_records``)."""

from __future__ import annotations

import pytest

from medpay.domain.person_records import ListAmounts, disagreement, is_chronic_or_special, is_medication

SETLINFO = {"acct_pay": 3000, "psn_cash_pay": 1050, "psn_part_amt": 4050}
SETLDETAIL = [{"fund_pay_type": "310100", "fund_payamt": 5000}, {"fund_pay_type": "310200", "fund_payamt": 3000}]


def amounts(**changes) -> ListAmounts:
    base = dict(psn_selfpay=2050, psn_ownpay=2000, acct_pay=3000, psn_cashpay=1050,
                fund_payments=(("310100", 5000), ("310200", 3000)))
    return ListAmounts(**{**base, **changes})


def test_a_list_that_repeats_its_settlement_agrees() -> None:
    assert disagreement(amounts(), SETLINFO, SETLDETAIL) is None
    assert disagreement(amounts(fund_payments=()), SETLINFO, SETLDETAIL) is None  # naming no fund is no claim


@pytest.mark.parametrize("changes, field, words", [
    ({"acct_pay": 3001}, "setlinfo.acct_pay", "30.01 differs from the settlement's 30.00"),
    ({"psn_cashpay": 0}, "setlinfo.psn_cashpay", "0.00 differs"),
    ({"psn_ownpay": 1999}, "setlinfo.psn_selfpay", "40.49 differs from the settlement's psn_part_amt 40.50"),
    ({"fund_payments": (("390100", 5000),)}, "payinfo.fund_pay_type", "fund 390100 paid nothing"),
    ({"fund_payments": (("310100", 2500), ("310100", 2499))}, "payinfo.fund_payamt", "49.99 differs"),
])
def test_the_first_disagreement_is_named(changes: dict, field: str, words: str) -> None:
    found = disagreement(amounts(**changes), SETLINFO, SETLDETAIL)
    assert found is not None and found[0] == field and words in found[1], found


def test_chronic_visits_and_medication() -> None:
    assert [is_chronic_or_special(t) for t in ("14", "1401", "140201", "11", "21", "41")] == [
        True, True, True, False, False, False]
    assert [is_medication(t) for t in ("101", "102", "106", "201", "301", "")] == [True, True, True, False, False,
                                                                                   False]
