"""Real NHSA messages (tests/fixtures/nhsa, copied from shared/fixtures): they parse with our money rules,
satisfy the amount identities, and our settlement output carries the same field names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medpay.domain.adjudication import AMOUNT_FIELDS, identity_violations
from medpay.money import parse_yuan

FIXTURES = Path(__file__).parent / "fixtures" / "nhsa"
SETTLEMENTS = ["2207-response-hebei.json", "2304-response-chongqing.json"]
# identity fields are added by the interface layer from the encrypted person record, not stored with the settlement
PERSONAL_FIELDS = {"psn_name", "certno"}


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def amounts_in_fen(setlinfo: dict) -> dict[str, int]:
    return {k: parse_yuan(setlinfo.get(k, 0) or 0, k, allow_negative=True) for k in AMOUNT_FIELDS}


@pytest.mark.parametrize("name", SETTLEMENTS)
def test_fixture_settlements_satisfy_identities(name: str) -> None:
    out = load(name)["output"]
    assert identity_violations(amounts_in_fen(out["setlinfo"])) == []


def test_fixture_fund_rows_sum_to_fund_total_excluding_account_and_hospital_rows() -> None:
    out = load("2304-response-chongqing.json")["output"]
    funds = sum(parse_yuan(d["fund_payamt"], "fund_payamt") for d in out["setldetail"]
                if not d["fund_pay_type"].startswith("3102") and d["fund_pay_type"] != "999996")
    assert funds == parse_yuan(out["setlinfo"]["fund_pay_sumamt"], "fund_pay_sumamt")


def test_infcode_quirk_number_and_string_both_present_in_real_data() -> None:
    assert load("9001-response.json")["infcode"] == 0
    assert load("1101-response-cardecinfo.json")["infcode"] == "0"


def test_2204_line_result_matches_our_classification_of_the_same_line() -> None:
    """河北 乙类 drug 4.52 yuan at 5% first self-pay → 0.23 先行自付, 4.29 in scope (half-up per line)."""
    from decimal import Decimal

    from medpay.adapters.policy_files import builtin_policies
    from medpay.domain.classification import classify_line
    from medpay.domain.model import CatalogItem, ChrgitmLv, FeeLine

    row = load("2204-response-hebei.json")["output"]["result"][0]
    policy = next(p for p in builtin_policies() if p.admdvs == "999901")
    item = CatalogItem("yp570", "drug", ChrgitmLv(row["chrgitm_lv"]), row["med_chrgitm_type"],
                       selfpay_prop=Decimal(str(row["selfpay_prop"])))
    split = classify_line(FeeLine(row["feedetl_sn"], item, Decimal("1"), Decimal("4.52"),
                                  parse_yuan(row["det_item_fee_sumamt"], "det_item_fee_sumamt")), policy)
    assert split.preselfpay_amt == parse_yuan(row["preselfpay_amt"], "preselfpay_amt")
    assert split.inscp_scp_amt == parse_yuan(row["inscp_scp_amt"], "inscp_scp_amt")


def test_our_setlinfo_has_every_fixture_field(session_factory) -> None:
    import os

    from medpay.adapters.crypto import FieldCipher
    from medpay.adapters.policy_files import builtin_policies
    from medpay.services import demo
    from medpay.services.settlement import FeeLineInput, SettlementService, SettleRequest

    cipher = FieldCipher(os.urandom(32))
    demo.seed(session_factory, cipher)
    svc = SettlementService(session_factory, builtin_policies(), cipher)
    visit = svc.register_visit("H99990100001", "99990100000002", "11")
    svc.upload_fees("H99990100001", visit.mdtrt_id, [FeeLineInput("1", "XM01AEB002", "1", "4.52", "4.52")])
    out = svc.settle(SettleRequest("H99990100001", "M-CONF-1", visit.mdtrt_id))
    for name in SETTLEMENTS:
        theirs = load(name)["output"]
        assert set(theirs["setlinfo"]) - PERSONAL_FIELDS <= set(out["setlinfo"]), name
        for row in out["setldetail"]:
            assert {"fund_pay_type", "fund_payamt", "inscp_scp_amt"} <= set(row)
