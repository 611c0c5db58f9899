"""How a settlement becomes balanced ledger transfers, and how a cancellation reverses them.

Accounts (ids are readable strings):
- ``fund:{admdvs}:{fund_pay_type}``  a region's fund; debited when it pays (no limit: clearing tops it up)
- ``psnacct:{psn_no}``                a personal account; credit-normal, may never go negative
- ``acctsrc:{admdvs}``                where personal-account contributions come from (top-ups)
- ``medins:{code}:fund``              what the funds and accounts owe an institution (cleared later)
- ``medins:{code}:cash``              what the patient paid the institution through a channel
- ``payer:{channel}``                 the outside money of a channel (counter cash/card, gateway, bank)
- ``deposit:{mdtrt_id}``              an inpatient's deposit paid at the counter, held for the visit
- ``deposit:{mdtrt_id}:{channel}``    the part of it paid through another channel (the app, through the gateway):
                                      kept apart so that what is left at discharge goes back the way it came (原路退回)
"""

from __future__ import annotations

from dataclasses import dataclass

from medpay.domain.adjudication import Adjudication
from medpay.domain.ledger import AccountFlags, Transfer


LEDGER = "CNY"  # one ledger: every account holds renminbi fen, so any two may exchange money


@dataclass(frozen=True)
class AccountSpec:
    id: str
    code: str  # what kind of account: fund type, "psnacct", "medins_fund", …
    flags: AccountFlags = AccountFlags()
    ledger: str = LEDGER


def fund_account(admdvs: str, fund_pay_type: str) -> AccountSpec:
    return AccountSpec(f"fund:{admdvs}:{fund_pay_type}", fund_pay_type)


def personal_account(psn_no: str) -> AccountSpec:
    return AccountSpec(f"psnacct:{psn_no}", "psnacct", AccountFlags(debits_must_not_exceed_credits=True))


def account_source(admdvs: str) -> AccountSpec:
    return AccountSpec(f"acctsrc:{admdvs}", "acctsrc")


def institution_fund(code: str) -> AccountSpec:
    return AccountSpec(f"medins:{code}:fund", "medins_fund")


def institution_cash(code: str) -> AccountSpec:
    return AccountSpec(f"medins:{code}:cash", "medins_cash")


def channel_payer(channel: str) -> AccountSpec:
    return AccountSpec(f"payer:{channel}", f"payer_{channel}"[:32])


DEPOSIT_CHANNELS = ("counter", "gateway")  # the order a stay's deposits pay its cash part in


def deposit_account(mdtrt_id: str, channel: str = "counter") -> AccountSpec:
    suffix = "" if channel == "counter" else f":{channel}"
    return AccountSpec(f"deposit:{mdtrt_id}{suffix}", "deposit", AccountFlags(debits_must_not_exceed_credits=True))


@dataclass(frozen=True)
class Posting:
    transfers: tuple[Transfer, ...]
    accounts: tuple[AccountSpec, ...]
    deposit_applied: int = 0
    deposit_refund: int = 0


def settlement_posting(setl_id: str, admdvs: str, fixmedins_code: str, adj: Adjudication, channel: str,
                       deposits: dict[str, int] | None = None, release_deposit: bool = False,
                       mdtrt_id: str = "") -> Posting:
    """Transfers for one settlement: each fund and account payment to the institution, then the cash part
    (from the visit's deposits first — ``deposits``: balance by the channel that paid it, taken in
    ``DEPOSIT_CHANNELS`` order — the settlement's channel for the rest); at the final settlement what is left of
    each deposit goes back to the channel that paid it."""
    transfers: list[Transfer] = []
    specs: dict[str, AccountSpec] = {}
    inst_fund, inst_cash = institution_fund(fixmedins_code), institution_cash(fixmedins_code)

    def move(debit: AccountSpec, credit: AccountSpec, amount: int, code: str) -> None:
        if amount <= 0:
            return
        specs[debit.id], specs[credit.id] = debit, credit
        transfers.append(Transfer(id=f"{setl_id}:{len(transfers) + 1}", debit_account_id=debit.id,
                                  credit_account_id=credit.id, amount=amount, code=code, ref=setl_id))

    for tier in adj.tiers:
        move(fund_account(admdvs, tier.fund_pay_type), inst_fund, tier.fund_payamt, "fund")
    for pay in adj.account_payments:
        move(personal_account(pay.psn_no), inst_fund, pay.amount, "acct" if pay.relation == "self" else "mulaid")
    cash = adj.amounts["psn_cash_pay"]
    left = {c: max(0, (deposits or {}).get(c, 0)) for c in DEPOSIT_CHANNELS}
    from_deposit = 0
    for dep_channel in DEPOSIT_CHANNELS:
        used = min(cash - from_deposit, left[dep_channel])
        move(deposit_account(mdtrt_id, dep_channel), inst_cash, used, "deposit")
        from_deposit += used
        left[dep_channel] -= used
    move(channel_payer(channel), inst_cash, cash - from_deposit, "cash")
    if release_deposit:
        for dep_channel in DEPOSIT_CHANNELS:
            move(deposit_account(mdtrt_id, dep_channel), channel_payer(dep_channel), left[dep_channel],
                 "deposit_refund")
    return Posting(tuple(transfers), tuple(specs.values()), from_deposit, sum(left.values()) if release_deposit else 0)


def reversal_posting(cancel_setl_id: str, original: list[Transfer]) -> Posting:
    """The mirror image of a settlement's transfers, under the cancellation's own ids."""
    transfers = tuple(
        Transfer(id=f"{cancel_setl_id}:{i}", debit_account_id=t.credit_account_id, credit_account_id=t.debit_account_id,
                 amount=t.amount, code=f"rev_{t.code}", ref=cancel_setl_id)
        for i, t in enumerate(original, start=1)
    )
    return Posting(transfers, ())
