"""Paying what the doctor ordered from the phone (诊间支付 / 线上支付).

Once the HIS has uploaded a visit's fee lines (2204), the patient's app lists the visit, shows each line (item,
甲/乙/丙, self-pay share, what a price limit cut off) and the pre-settlement split (fund, personal account, family
aid, cash) and, after the patient confirms, settles the whole bill in one step through the one settlement path
every channel shares (``OneScanService.pay``: cash part through the payment gateway, settle.notify to the HIS).

- **What the patient saw is what is paid.** The bill carries a ``version``: a digest of the unsettled lines (their
  numbers and amounts). Paying names it; if the HIS changed the lines since (a test added or withdrawn), the payment
  is refused as stale and nothing happens — the app shows the new bill.
- **Exactly once.** The payment's message id is derived from (visit, version): a double tap, a reload or a retry
  after a lost answer reaches the same payment intent and continues it (or repeats its answer); the settled lines
  are no longer due, so the window has nothing left to charge.
- **Only the patient's own visits.** Another person's visit answers exactly like an unknown one.
- Outpatient bills only: an admission settles at discharge (2304), not from this list.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.base import utcnow
from medpay.adapters.db.tables import CatalogItemRow, FeeLineRow, InstitutionRow, VisitRow
from medpay.services.errors import Conflict, Invalid, NotFound
from medpay.services.persons import PersonService
from medpay.services.qr.one_scan import OneScanService, PayResult, intent_id_for
from medpay.services.settlement import INPATIENT_MED_TYPES, SettlementService

DOOR = "mobile"
TOKEN_TTL = timedelta(minutes=5)
_MSGID_PREFIX = "MP"

_DUE = (select(VisitRow.fixmedins_code, VisitRow.mdtrt_id, VisitRow.med_type, VisitRow.begntime,
               InstitutionRow.fixmedins_name, FeeLineRow.feedetl_sn, FeeLineRow.det_item_fee_sumamt,
               FeeLineRow.details)
        .join(FeeLineRow, FeeLineRow.mdtrt_id == VisitRow.mdtrt_id)
        .join(InstitutionRow, InstitutionRow.fixmedins_code == VisitRow.fixmedins_code)
        .where(and_(VisitRow.status == "open", VisitRow.med_type.not_in(INPATIENT_MED_TYPES),
                    FeeLineRow.status == "active", FeeLineRow.setl_id.is_(None)))
        .order_by(VisitRow.begntime, FeeLineRow.id))


@dataclass(frozen=True)
class LineFacts:
    feedetl_sn: str
    amount: int


def bill_version(lines: list[LineFacts]) -> str:
    """The digest of a bill's unsettled lines: any line added, withdrawn or repriced changes it."""
    text = "\n".join(f"{ln.feedetl_sn}|{ln.amount}" for ln in sorted(lines, key=lambda x: x.feedetl_sn))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def payment_msgid(mdtrt_id: str, version: str) -> str:
    """The payment's message id: one per (visit, version), within the interface's 40 characters."""
    return _MSGID_PREFIX + hashlib.sha256(f"{mdtrt_id}|{version}".encode()).hexdigest()[:30]


def bill_ready_at(details: list[dict[str, Any] | None]) -> str:
    """When the bill became payable: the last upload time (``opt_time``, local) among its lines."""
    return max((d or {}).get("opt_time", "") for d in details) if details else ""


class VisitPayService:
    def __init__(self, factory: sessionmaker[Session], settlement: SettlementService, persons: PersonService,
                 one_scan: OneScanService | None, clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.settlement = settlement
        self.persons = persons
        self.one_scan = one_scan
        self.clock = clock

    def due(self, psn_no: str) -> list[dict[str, Any]]:
        """The person's outpatient visits with fee lines waiting to be paid, oldest first."""
        query = _DUE.where(VisitRow.psn_no == psn_no)
        visits: dict[str, dict[str, Any]] = {}
        with self.factory() as s:
            for r in s.execute(query):
                v = visits.setdefault(r.mdtrt_id, {
                    "fixmedins_code": r.fixmedins_code, "fixmedins_name": r.fixmedins_name, "mdtrt_id": r.mdtrt_id,
                    "med_type": r.med_type, "begntime": r.begntime, "lines": [], "details": []})
                v["lines"].append(LineFacts(r.feedetl_sn, r.det_item_fee_sumamt))
                v["details"].append(r.details)
        return [{"fixmedins_code": v["fixmedins_code"], "fixmedins_name": v["fixmedins_name"],
                 "mdtrt_id": v["mdtrt_id"], "med_type": v["med_type"], "begntime": v["begntime"],
                 "line_count": len(v["lines"]), "medfee_sumamt": sum(ln.amount for ln in v["lines"]),
                 "bill_ready_at": bill_ready_at(v["details"]), "version": bill_version(v["lines"])}
                for v in visits.values()]

    def bill(self, psn_no: str, fixmedins_code: str, mdtrt_id: str) -> dict[str, Any]:
        """The bill as the app shows it before the patient confirms: lines, the pre-settlement split, its version.
        Reads only."""
        visit, name, rows = self._visit_lines(psn_no, fixmedins_code, mdtrt_id)
        lines = [_line(r) for r in rows]
        version = bill_version([LineFacts(r.feedetl_sn, r.det_item_fee_sumamt) for r in rows])
        out: dict[str, Any] = {
            "fixmedins_code": fixmedins_code, "fixmedins_name": name, "mdtrt_id": mdtrt_id,
            "med_type": visit.med_type, "begntime": visit.begntime, "lines": lines, "version": version,
            "bill_ready_at": bill_ready_at([r.details for r in rows]), "state": "due" if rows else "nothing_due",
            "presettlement": None}
        if rows:
            quote = self.settlement.presettle(fixmedins_code, mdtrt_id)
            info = quote.setlinfo
            out["presettlement"] = {k: info[k] for k in (
                "medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt",
                "fund_pay_sumamt", "acct_pay", "acct_mulaid_pay", "psn_cash_pay")}
            out["presettlement"]["policy_ver"] = info.get("policy_ver", "")
        return out

    def pay(self, psn_no: str, fixmedins_code: str, mdtrt_id: str, version: str, cash_payer: str = "") -> PayResult:
        """Pay the bill the patient saw (``version``) in one step; a repeat continues or repeats that payment.
        ``cash_payer``: a family member who pays the cash part for the patient (``services.mobile.family``)."""
        if self.one_scan is None:
            raise Invalid("gateway", "no payment gateway is configured; pay at the window")
        if not isinstance(version, str) or not version.isalnum() or len(version) != 24:
            raise Invalid("version", "the bill's version, as the bill answered it (24 characters)")
        visit, _name, rows = self._visit_lines(psn_no, fixmedins_code, mdtrt_id)
        msgid = payment_msgid(mdtrt_id, version)
        try:  # a repeat of a payment already under way: no new token, the intent knows its person
            self.one_scan.intent(intent_id_for(fixmedins_code, msgid))
            return self.one_scan.pay(fixmedins_code, msgid, "", mdtrt_id, door=DOOR, cash_payer=cash_payer)
        except NotFound:
            pass
        current = bill_version([LineFacts(r.feedetl_sn, r.det_item_fee_sumamt) for r in rows])
        if not rows:
            raise Conflict("version", "nothing is due on this visit any more: it was paid or withdrawn")
        if current != version:
            raise Conflict("version", "the hospital changed the bill since you saw it; look at it again")
        token = self.persons.issue_ec_token(psn_no, fixmedins_code, "01301", ttl=TOKEN_TTL)
        return self.one_scan.pay(fixmedins_code, msgid, token, mdtrt_id, door=DOOR, cash_payer=cash_payer)

    def payment(self, psn_no: str, fixmedins_code: str, mdtrt_id: str, version: str) -> PayResult:
        """Where the payment of (visit, version) stands — for an app that lost the answer (reload, network)."""
        self._visit_lines(psn_no, fixmedins_code, mdtrt_id)
        if self.one_scan is None:
            raise NotFound("version", "no payment of this bill")
        return self.one_scan.result(intent_id_for(fixmedins_code, payment_msgid(mdtrt_id, version)))

    def _visit_lines(self, psn_no: str, fixmedins_code: str, mdtrt_id: str):
        """The person's own visit (another's answers as unknown), its institution's name and unsettled lines."""
        with self.factory() as s:
            row = s.execute(select(VisitRow, InstitutionRow.fixmedins_name)
                            .join(InstitutionRow, InstitutionRow.fixmedins_code == VisitRow.fixmedins_code)
                            .where(VisitRow.mdtrt_id == mdtrt_id, VisitRow.fixmedins_code == fixmedins_code)
                            ).one_or_none()
            if row is None or row[0].psn_no != psn_no:
                raise NotFound("mdtrt_id", f"no visit {mdtrt_id!r} of yours at {fixmedins_code!r}")
            visit, name = row
            if visit.med_type in INPATIENT_MED_TYPES:
                raise Conflict("mdtrt_id", "an admission is settled at discharge, not from this list")
            lines = list(s.execute(
                select(FeeLineRow.feedetl_sn, FeeLineRow.det_item_fee_sumamt, FeeLineRow.cnt, FeeLineRow.pric,
                       FeeLineRow.result, FeeLineRow.details, CatalogItemRow.name, CatalogItemRow.chrgitm_lv)
                .join(CatalogItemRow, CatalogItemRow.med_list_codg == FeeLineRow.med_list_codg)
                .where(FeeLineRow.mdtrt_id == mdtrt_id, FeeLineRow.status == "active", FeeLineRow.setl_id.is_(None))
                .order_by(FeeLineRow.id)))
            s.expunge(visit)
        return visit, name, lines


def _line(r: Any) -> dict[str, Any]:
    """One fee line as the patient reads it: what it is, its class, and what the patient pays of it in any case."""
    res = r.result or {}
    return {"feedetl_sn": r.feedetl_sn, "name": r.name, "chrgitm_lv": res.get("chrgitm_lv", r.chrgitm_lv),
            "cnt": r.cnt, "pric": r.pric, "det_item_fee_sumamt": r.det_item_fee_sumamt,
            "selfpay_prop": res.get("selfpay_prop", "0"), "fulamt_ownpay_amt": res.get("fulamt_ownpay_amt", 0),
            "preselfpay_amt": res.get("preselfpay_amt", 0), "overlmt_amt": res.get("overlmt_amt", 0),
            "pric_uplmt_amt": res.get("pric_uplmt_amt")}
