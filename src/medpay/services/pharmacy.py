"""Retail pharmacy purchases (定点零售药店购药): 2101 pre-settlement, 2102 settlement, 2103 its cancellation.

A pharmacy's POS settles a purchase in one call that carries its drug lines: no visit is opened and no fee lines are
uploaded first. Inside, a purchase is a visit of a medical type the region's policy puts in the category
``pharmacy`` (41 定点药店购药), opened, billed and settled in one unit of work, exactly once by ``msgid`` — so the
settlement core prices it (the policy's tiers for that category, the personal account and family mutual aid as
``[account]`` allows), and reconciliation (3201/3202), 5203/5204, 2601 and the ledger check see it as any other
settlement. A purchase needs a credential shown for it: an e-certificate code for 02121 药店购药, or a card or ID
number the pharmacy's assurance setting allows. Only a retail pharmacy makes purchases; 2103 cancels one once, the
pharmacy's own, restoring the personal account and the family members' accounts that paid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from medpay.domain.model import FIXMEDINS_TYPES, RETAIL_PHARMACY, Institution
from medpay.local_time import local_date
from medpay.services import records
from medpay.services.credentials import Credential
from medpay.services.errors import Invalid
from medpay.services.settlement import FeeLineInput, Quote, SettlementService, SettleRequest
from medpay.services.unit_of_work import UnitOfWork, unit_of_work

PHARMACY_CATEGORY = "pharmacy"  # the policy's [med_categories] entry for purchases at a retail pharmacy
PURCHASE_MED_TYPE = "41"  # 定点药店购药, when the POS sends none
LINES_NODE = "drugdetail"


@dataclass(frozen=True)
class Purchase:
    """A purchase as the POS sends it (2101/2102 ``data`` and its drug lines); amounts as sent (yuan)."""

    fixmedins_code: str
    psn_no: str
    credential: Credential
    lines: list[FeeLineInput]
    med_type: str = PURCHASE_MED_TYPE
    insutype: str = ""
    acct_used_flag: bool = True
    declared: dict[str, Any] = field(default_factory=dict)  # medfee_sumamt etc. as the POS summed them
    begntime: datetime | None = None
    ipt_otp_no: str = ""  # the POS's own number of the sale, kept on the visit

    def body(self) -> dict[str, Any]:
        """What a retry of the same ``msgid`` must repeat (the credential is checked, not compared: a retry may
        carry the same token again after it was spent by the first answer)."""
        return {"psn_no": self.psn_no, "med_type": self.med_type, "insutype": self.insutype,
                "acct_used_flag": self.acct_used_flag, "ipt_otp_no": self.ipt_otp_no,
                "begntime": self.begntime.isoformat() if self.begntime else "",
                "declared": {k: str(v) for k, v in sorted(self.declared.items())},
                "lines": [vars(ln) for ln in self.lines]}


@dataclass(frozen=True)
class _Sale:
    """The visit a purchase is, before it is stored (what the engine and the answer read of a visit)."""

    mdtrt_id: str
    fixmedins_code: str
    psn_no: str
    insutype: str
    med_type: str
    begntime: datetime
    mdtrt_cert_type: str
    admission_seq: int = 1
    dise_codg: str = ""


class PharmacySales:
    """The three transactions of a retail pharmacy, on the settlement core (``SettlementService``)."""

    def __init__(self, settlement: SettlementService):
        self.core = settlement

    def quote(self, purchase: Purchase, ref: str = "") -> tuple[Quote, list[dict[str, Any]]]:
        """2101: the purchase as it would settle now, with each line's split (fen). Writes nothing but the audit
        record of the identity the answer discloses."""
        core = self.core
        self._pharmacy(purchase.fixmedins_code)
        with unit_of_work(core.factory) as uow:
            sale, prow, policy, _shown = self._checked(uow, purchase, mdtrt_id="")
            fee_lines, results, _rows = core._checked_lines(uow.conn, policy, purchase.fixmedins_code, "", purchase.lines,
                                                             node=LINES_NODE)
            adj, _lines, _policy, _deposit = core._adjudicate(uow, sale, prow, purchase.acct_used_flag, False,
                                                              fee_lines=fee_lines)
            core._check_declared(adj, purchase.declared)
            quote = core._quote(adj, policy, sale, prow, setl_id="", msgid="", now=core.clock(), channel="")
            quote.setlinfo = core._with_identity(uow.conn, {"setlinfo": quote.setlinfo}, prow,
                                                 actor=purchase.fixmedins_code, action="presettle",
                                                 ref=ref)["setlinfo"]
            return quote, results

    def settle(self, purchase: Purchase, msgid: str) -> dict[str, Any]:
        """2102: open, bill and settle the purchase at once, exactly once per ``msgid``; the stored answer (fen)
        with the person's name and ID number, and ``detlcutinfo``, each line's split."""
        core = self.core
        seen: dict[str, Any] = {}

        def work(uow: UnitOfWork) -> dict[str, Any]:
            now = core.clock()
            mdtrt_id = records.new_id(now)
            sale, prow, policy, shown = self._checked(uow, purchase, mdtrt_id=mdtrt_id)
            _fee_lines, results, rows = core._checked_lines(uow.conn, policy, purchase.fixmedins_code, mdtrt_id,
                                                            purchase.lines, node=LINES_NODE)
            records.insert_visit(uow.conn, {
                "mdtrt_id": mdtrt_id, "fixmedins_code": purchase.fixmedins_code, "psn_no": prow.psn_no,
                "insutype": sale.insutype, "med_type": sale.med_type, "begntime": sale.begntime, "endtime": None,
                "status": "open", "ipt_otp_no": purchase.ipt_otp_no, "dise_codg": "", "dise_name": "",
                "mdtrt_cert_type": shown.cert_type, "admission_seq": 1, "deposit_amt": 0})
            core.credentials.bind(uow.conn, shown, mdtrt_id, new_visit=True)  # spent by the settlement below
            records.insert_lines(uow.conn, rows)
            output, seen["person"] = core._settle_in(uow, SettleRequest(
                purchase.fixmedins_code, msgid, mdtrt_id, acct_used_flag=purchase.acct_used_flag,
                declared=purchase.declared, psn_no=prow.psn_no))
            return {**output, "detlcutinfo": results}

        def present(conn: Any, output: dict[str, Any]) -> dict[str, Any]:
            return core._with_identity(conn, output, seen.get("person"), actor=purchase.fixmedins_code,
                                       action="settle", ref=msgid)

        self._pharmacy(purchase.fixmedins_code)
        return core._idempotent(purchase.fixmedins_code, msgid, "settle", purchase.body(), work, present)

    def cancel(self, fixmedins_code: str, msgid: str, setl_id: str, mdtrt_id: str = "",
               psn_no: str = "") -> dict[str, Any]:
        """2103: cancel the pharmacy's own purchase once; the accounts that paid get their amounts back."""
        self._pharmacy(fixmedins_code)
        return self.core.cancel(fixmedins_code, msgid, setl_id, psn_no or None, mdtrt_id=mdtrt_id,
                                with_identity=True)

    # ------------------------------------------------------------------------------------------ internals

    def _pharmacy(self, fixmedins_code: str) -> Institution:
        inst = self.core.institution(fixmedins_code)
        if not inst.is_pharmacy:
            raise Invalid("fixmedins_code", f"{fixmedins_code} is a {FIXMEDINS_TYPES.get(inst.fixmedins_type, '?')}, "
                                            f"not a {FIXMEDINS_TYPES[RETAIL_PHARMACY]}: 2101/2102/2103 are a "
                                            "pharmacy's purchases; a hospital settles visits (2206/2207/2208)")
        return inst

    def _checked(self, uow: UnitOfWork, purchase: Purchase, *, mdtrt_id: str):
        """The purchase's checks, in the caller's unit of work: a credential that may buy here now,
        an insured person, a medical type of the policy's pharmacy category. Returns the sale, the person, the
        policy and the credential shown."""
        core, conn = self.core, uow.conn
        shown, prow = core._credential_for_new_visit(conn, purchase.fixmedins_code, purchase.psn_no,
                                                     purchase.credential)
        core.credentials.for_purchase(shown)
        insutype = core._insured_under(prow, purchase.insutype or None)
        when = purchase.begntime or core.clock()
        policy = core._policy(prow.insuplc_admdvs, local_date(when))
        if policy.med_category(purchase.med_type) != PHARMACY_CATEGORY:
            allowed = sorted(t for t, c in policy.med_categories.items() if c == PHARMACY_CATEGORY)
            raise Invalid("med_type", f"{purchase.med_type!r} is not a pharmacy purchase in policy {policy.policy_id}"
                                      + (f"; use {', '.join(allowed)}" if allowed else
                                         " (its region's policy defines no pharmacy purchases)"))
        sale = _Sale(mdtrt_id, purchase.fixmedins_code, prow.psn_no, insutype, purchase.med_type, when,
                     shown.cert_type)
        return sale, prow, policy, shown
