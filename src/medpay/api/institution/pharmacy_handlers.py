"""The retail pharmacy's transactions (定点零售药店): 2101 药店预结算, 2102 药店结算, 2103 药店结算撤销.

- 2101/2102 ``druginfo{psn_no, mdtrt_cert_type, mdtrt_cert_no, card_sn, med_type (41 定点药店购药), insutype,
  begntime, psn_setlway, acct_used_flag, medfee_sumamt, fulamt_ownpay_amt, overlmt_selfpay, preselfpay_amt,
  inscp_scp_amt, ipt_otp_no}`` (``data`` taken too) and ``drugdetail[]`` — rows as 2204's ``feedetail`` (a POS that names the node
  ``feedetail`` is understood too) → ``setlinfo``, ``setldetail`` and ``detlcutinfo`` (each line's split, as 2204's
  ``result`` rows). The credential is required: an e-certificate token shown for 02121 药店购药, or a card or ID
  number the pharmacy's assurance allows.
- 2103 ``data{setl_id, mdtrt_id, psn_no}`` → the cancellation: the settlement's structure with negated amounts.

Services: ``medpay.services.pharmacy``.
"""

from __future__ import annotations

from typing import Any

from medpay.api.institution.transactions import (
    Call,
    declared_sums,
    fee_line_input,
    flag,
    handler,
    line_results,
    node,
    rows,
    text,
    timestamp,
)
from medpay.interface_format import to_yuan
from medpay.services.credentials import Credential
from medpay.services.errors import Invalid
from medpay.services.pharmacy import LINES_NODE, PURCHASE_MED_TYPE, PharmacySales, Purchase


# the purchase's node: ``druginfo`` as the national interface's 2101/2102 tables name it (a public 国家医保 POS model,
# T2102.Root{druginfo, drugdetail[]}); ``data`` taken too, as some provinces' tills send it
MAIN_NODE = "druginfo"


def _purchase(call: Call) -> Purchase:
    main = MAIN_NODE if MAIN_NODE in call.env.input or "data" not in call.env.input else "data"
    d = node(call, main)
    name = LINES_NODE if LINES_NODE in call.env.input or "feedetail" not in call.env.input else "feedetail"
    lines = rows(call, name)
    cert_type = text(d, "mdtrt_cert_type", main)
    credential = Credential.of(cert_type, text(d, "mdtrt_cert_no", main), text(d, "card_sn", main, required=False))
    if credential is None:  # never: mdtrt_cert_no is required above
        raise Invalid(f"{main}.mdtrt_cert_no", "missing")
    return Purchase(
        call.fixmedins_code, text(d, "psn_no", main), credential,
        [fee_line_input(call, r, f"{name}[{i}]") for i, r in enumerate(lines)],
        med_type=text(d, "med_type", main, required=False, default=PURCHASE_MED_TYPE),
        insutype=text(d, "insutype", main, required=False), acct_used_flag=flag(d, "acct_used_flag", main, True),
        declared=declared_sums(d), begntime=timestamp(d, "begntime", main),
        ipt_otp_no=text(d, "ipt_otp_no", main, required=False))


@handler("2101")
def pharmacy_presettle(call: Call) -> dict[str, Any]:
    quote, lines = PharmacySales(call.platform.settlement).quote(_purchase(call), ref=call.env.msgid)
    return {**to_yuan({"setlinfo": quote.setlinfo, "setldetail": quote.setldetail}), "detlcutinfo": line_results(lines)}


@handler("2102")
def pharmacy_settle(call: Call) -> dict[str, Any]:
    out = PharmacySales(call.platform.settlement).settle(_purchase(call), call.env.msgid)
    settled = to_yuan({k: v for k, v in out.items() if k != "detlcutinfo"})
    return {**settled, "detlcutinfo": line_results(out.get("detlcutinfo", []))}


@handler("2103")
def pharmacy_cancel(call: Call) -> dict[str, Any]:
    d = node(call, "data")
    out = PharmacySales(call.platform.settlement).cancel(
        call.fixmedins_code, call.env.msgid, text(d, "setl_id", "data"),
        mdtrt_id=text(d, "mdtrt_id", "data", required=False), psn_no=text(d, "psn_no", "data", required=False))
    return to_yuan(out)
