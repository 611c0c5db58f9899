"""Re-settlement after a policy correction, the pure part: what differs between a settlement as it stands and
as the corrected policy computes it, and the balanced transfers that post the difference.

The person's own share stays paid as it was (personal account and cash are not drawn on again); what moves
is between the funds and the patient, through the institution that settled the bill:

- each fund's difference moves between the fund (``fund:{admdvs}:{fund_pay_type}``) and what the funds owe the
  institution (``medins:{code}:fund``), exactly as the settlement's own fund payments did;
- the patient's difference (``psn_part_amt`` new − old, always the fund difference negated: the bill is the same)
  moves between the institution's patient money (``medins:{code}:cash``) and the patient's adjustment account
  at that institution (``psnadj:{code}:{psn_no}``). A credit balance there is what the institution owes the
  patient — it refunds it (the corrected policy pays more); a debit balance is what the patient owes — the
  institution collects it (the corrected policy pays less). The refund or collection itself happens at the
  institution's counter or channel and is not posted here.

Every transfer names the settlement (``ref`` = its ``setl_id``), so cancelling the settlement later mirrors its
adjustments too, and the whole bill goes back to where it came from.
"""

from __future__ import annotations

from collections.abc import Mapping

from medpay.domain.adjudication import ACCOUNT_FUND_PAY_TYPE, AMOUNT_FIELDS, Adjudication
from medpay.domain.ledger import Transfer
from medpay.domain.posting import AccountSpec, Posting, fund_account, institution_cash, institution_fund

# what the person paid stays as it was: the account and cash parts are not recomputed
KEPT = ("acct_pay", "acct_mulaid_pay", "psn_cash_pay")
COMPARED = tuple(k for k in AMOUNT_FIELDS if k not in KEPT)
NOT_FUNDS = (ACCOUNT_FUND_PAY_TYPE, "999996")  # setldetail rows that are accounts, not funds


def patient_adjustment(fixmedins_code: str, psn_no: str) -> AccountSpec:
    """What an institution owes a patient (credit balance) or is owed by them (debit balance) after re-settlement."""
    return AccountSpec(f"psnadj:{fixmedins_code}:{psn_no}", "psnadj")


def stored_state(output: Mapping, year_deltas: Mapping[str, int], visit_deltas: Mapping[str, int]) -> dict:
    """A settlement as it was stored: compared amounts, fund payments by fund type and accumulator deltas."""
    info = output["setlinfo"]
    funds: dict[str, int] = {}
    for d in output.get("setldetail", []):
        if d["fund_pay_type"] not in NOT_FUNDS and d["fund_payamt"]:
            funds[d["fund_pay_type"]] = funds.get(d["fund_pay_type"], 0) + d["fund_payamt"]
    return {"amounts": {k: int(info.get(k, 0)) for k in COMPARED}, "funds": funds,
            "year_deltas": dict(year_deltas), "visit_deltas": dict(visit_deltas)}


def computed_state(adj: Adjudication) -> dict:
    """The same shape for the corrected policy's computation."""
    funds: dict[str, int] = {}
    for t in adj.tiers:
        if t.fund_payamt:
            funds[t.fund_pay_type] = funds.get(t.fund_pay_type, 0) + t.fund_payamt
    return {"amounts": {k: adj.amounts[k] for k in COMPARED}, "funds": funds,
            "year_deltas": dict(adj.year_deltas), "visit_deltas": dict(adj.visit_deltas)}


def key_diff(old: Mapping[str, int], new: Mapping[str, int]) -> dict[str, int]:
    """new − old per key, only the keys that differ."""
    out = {k: new.get(k, 0) - old.get(k, 0) for k in sorted(set(old) | set(new))}
    return {k: v for k, v in out.items() if v}


def changes(old: dict, new: dict) -> dict[str, dict[str, int]]:
    """Each compared amount that differs: {field: {old, new, diff}}."""
    return {k: {"old": old["amounts"][k], "new": new["amounts"][k], "diff": new["amounts"][k] - old["amounts"][k]}
            for k in COMPARED if new["amounts"][k] != old["amounts"][k]}


def adjustment_posting(id_prefix: str, setl_id: str, admdvs: str, fixmedins_code: str, psn_no: str,
                       fund_diffs: Mapping[str, int], patient_diff: int) -> Posting:
    """The transfers of one settlement's re-settlement (see the module's docstring); ``id_prefix`` makes the ids
    the run's own, so posting twice is refused by the ledger rather than counted twice."""
    if sum(fund_diffs.values()) + patient_diff != 0:
        raise ValueError(f"settlement {setl_id}: fund differences {dict(fund_diffs)} and patient difference "
                         f"{patient_diff} do not balance")
    transfers: list[Transfer] = []
    specs: dict[str, AccountSpec] = {}
    inst_fund, inst_cash = institution_fund(fixmedins_code), institution_cash(fixmedins_code)

    def move(debit: AccountSpec, credit: AccountSpec, amount: int, code: str) -> None:
        specs[debit.id], specs[credit.id] = debit, credit
        transfers.append(Transfer(id=f"{id_prefix}:{len(transfers) + 1}", debit_account_id=debit.id,
                                  credit_account_id=credit.id, amount=amount, code=code, ref=setl_id))

    for fund_pay_type, diff in sorted(fund_diffs.items()):
        fund = fund_account(admdvs, fund_pay_type)
        if diff > 0:
            move(fund, inst_fund, diff, "resettle_fund")
        elif diff < 0:
            move(inst_fund, fund, -diff, "resettle_fund_back")
    patient = patient_adjustment(fixmedins_code, psn_no)
    if patient_diff < 0:  # the patient paid too much: the institution owes it back
        move(inst_cash, patient, -patient_diff, "resettle_refund")
    elif patient_diff > 0:  # the patient paid too little: the institution collects it
        move(patient, inst_cash, patient_diff, "resettle_collect")
    return Posting(tuple(transfers), tuple(specs.values()))
