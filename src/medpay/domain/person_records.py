"""Pure rules of the person queries (5201, 5202, 5205) and of the settlement list (4101). No I/O.

- A chronic or special outpatient disease visit (门诊慢特病) has ``med_type`` 14 — or a region's sub-code of it
  (14xx, e.g. 1401 门诊慢性病, 1402 门诊特殊病) — see ``nhsa_dictionaries.toml`` MED_TYPE.
- Medication (用药) is a catalog item of a drug list type: 101 西药中成药, 102 中药饮片, 106 中药颗粒 (LIST_TYPE).
- A settlement list repeats amounts of its settlement: what it repeats must agree to the fen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from medpay.money import format_yuan as _yuan

CHRONIC_MED_TYPE = "14"
MEDICATION_LIST_TYPES = frozenset({"101", "102", "106"})
INPATIENT_MED_TYPE_PREFIX = "2"  # 21 普通住院, 23 转外诊治住院, 24 急诊转住院


def is_chronic_or_special(med_type: str) -> bool:
    return med_type.startswith(CHRONIC_MED_TYPE)


def is_medication(list_type: str) -> bool:
    return list_type in MEDICATION_LIST_TYPES


def is_inpatient(med_type: str) -> bool:
    return med_type.startswith(INPATIENT_MED_TYPE_PREFIX)


@dataclass(frozen=True)
class ListAmounts:
    """What a settlement list (4101 ``setlinfo`` and ``payinfo``) says was paid, in fen: 个人自付, 个人自费, 个人账户支出,
    个人现金支付, and each fund's payment by ``fund_pay_type``."""

    psn_selfpay: int
    psn_ownpay: int
    acct_pay: int
    psn_cashpay: int
    fund_payments: tuple[tuple[str, int], ...] = ()


def disagreement(amounts: ListAmounts, setlinfo: Mapping[str, int], setldetail: Iterable[Mapping[str, object]],
                 ) -> tuple[str, str] | None:
    """The first (field, reason) where the list disagrees with the settlement it names (fen amounts as the
    settlement answered them), or None. 个人自付 + 个人自费 is the person's share (``psn_part_amt``); the account
    and cash parts are the settlement's own; each fund the list names paid exactly that much."""
    for field, theirs, ours in (("setlinfo.acct_pay", amounts.acct_pay, setlinfo["acct_pay"]),
                                ("setlinfo.psn_cashpay", amounts.psn_cashpay, setlinfo["psn_cash_pay"])):
        if theirs != ours:
            return field, f"{_yuan(theirs)} differs from the settlement's {_yuan(ours)}"
    share = amounts.psn_selfpay + amounts.psn_ownpay
    if share != setlinfo["psn_part_amt"]:
        return ("setlinfo.psn_selfpay", f"psn_selfpay + psn_ownpay = {_yuan(share)} differs from the settlement's "
                                        f"psn_part_amt {_yuan(setlinfo['psn_part_amt'])}")
    paid: dict[str, int] = {}
    for row in setldetail:
        code = str(row["fund_pay_type"])
        paid[code] = paid.get(code, 0) + int(row["fund_payamt"])  # type: ignore[call-overload]
    listed: dict[str, int] = {}
    for code, amount in amounts.fund_payments:
        listed[code] = listed.get(code, 0) + amount
    for code, amount in listed.items():
        if code not in paid:
            return "payinfo.fund_pay_type", f"fund {code} paid nothing in this settlement"
        if amount != paid[code]:
            return ("payinfo.fund_payamt",
                    f"fund {code}: {_yuan(amount)} differs from the settlement's {_yuan(paid[code])}")
    return None
