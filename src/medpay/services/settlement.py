"""The settlement service: visits, fee lines, pre-settlement, settlement, cancellation, deposits.

Every channel ends here. Each public method is one unit of work; money-moving ones are idempotent by
the caller's message id (``msgid``): a retry gets the first answer back, the same id with another body
is refused. Concurrency: a settlement locks the visit and the person (so accumulators can't race), then
the ledger locks every account it touches, in id order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Callable

from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher, default_cipher
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.ledger_store import LedgerStore
from medpay.domain.adjudication import (
    AMOUNT_FIELDS,
    Adjudication,
    AdjudicationError,
    adjudicate,
    negate_deltas,
)
from medpay.domain.classification import classify_line
from medpay.domain.ledger import LedgerError, Transfer
from medpay.domain.model import AccountSource, FeeLine, Institution, VisitContext
from medpay.domain.policy import Policy, select_policy
from medpay.domain.posting import (
    Posting,
    channel_payer,
    DEPOSIT_CHANNELS,
    deposit_account,
    personal_account,
    reversal_posting,
    settlement_posting,
)
from medpay.local_time import age_on, format_local, local_date
from medpay.money import MoneyError, format_yuan, parse_yuan, to_decimal
from medpay.domain.credentials import E_CERTIFICATE
from medpay.domain.diagnoses import ADMISSION, DISCHARGE, OUTPATIENT, Diagnosis
from medpay.services import audit, catalog_mapping, credentials, idempotency, records, visit_diagnoses
from medpay.services.credentials import Credential, CredentialCheck, Shown
from medpay.services.errors import Conflict, Invalid, NotFound
from medpay.services.idempotency import REVERSED
from medpay.services.unit_of_work import UnitOfWork, unit_of_work

INPATIENT_MED_TYPES = ("21", "23", "24", "52")
CLR_TYPES = {"outpatient": "11", "chronic": "14", "inpatient": "21", "pharmacy": "41"}
# the sums a HIS sends with 2206/2207/2303/2304, checked against its uploaded lines to the fen
DECLARED_AMOUNTS = ("medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt")
LINE_TOLERANCE_FEN = 1  # det_item_fee_sumamt may differ from cnt × pric by rounding, never more
INSTITUTION_TTL_S = 10.0  # a changed institution level or region applies within this long on every worker


@dataclass(frozen=True)
class FeeLineInput:
    feedetl_sn: str
    med_list_codg: str
    cnt: Any
    pric: Any
    det_item_fee_sumamt: Any  # yuan, as the interface sends it
    fee_ocur_time: datetime | None = None
    chrg_bchno: str = ""
    medins_list_codg: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # what else the HIS says of the line, kept for 5204


@dataclass
class Quote:
    adjudication: Adjudication
    setlinfo: dict[str, Any]
    setldetail: list[dict[str, Any]]


@dataclass
class SettleRequest:
    fixmedins_code: str
    msgid: str
    mdtrt_id: str
    acct_used_flag: bool = True
    mid_setl_flag: bool = False
    channel: str = "counter"
    declared: dict[str, Any] = field(default_factory=dict)  # medfee_sumamt etc. as the HIS summed them
    max_cash_fen: int | None = None  # a channel that holds money first: the cash part may not exceed the hold
    psn_no: str = ""  # the person the HIS says the visit is of; checked when given
    # the credential the request names (mdtrt_cert_type/no): checked, never part of the body a retry must repeat
    credential: Credential | None = None

    def body(self) -> dict[str, Any]:
        return {"mdtrt_id": self.mdtrt_id, "acct_used_flag": self.acct_used_flag, "mid_setl_flag": self.mid_setl_flag,
                "channel": self.channel, "declared": {k: str(v) for k, v in sorted(self.declared.items())},
                "max_cash_fen": self.max_cash_fen, "psn_no": self.psn_no}


@dataclass(frozen=True)
class VisitState:
    """A visit as a visit-changing call leaves it (also the stored answer to its msgid)."""

    mdtrt_id: str
    psn_no: str = ""
    ipt_otp_no: str = ""
    status: str = ""
    admission_seq: int = 1

    @classmethod
    def of(cls, response: dict[str, Any]) -> "VisitState":
        return cls(**{k: response[k] for k in cls.__dataclass_fields__ if k in response})


def _state(visit: Any, status: str | None = None) -> dict[str, Any]:
    return {"mdtrt_id": visit.mdtrt_id, "psn_no": visit.psn_no, "ipt_otp_no": visit.ipt_otp_no,
            "status": status or visit.status, "admission_seq": visit.admission_seq}


class _OriginalArrived(Exception):
    """A reversal found the message it reverses recorded while it ran: start the reversal again."""


class SettlementService:
    def __init__(self, factory: sessionmaker[Session], policies: list[Policy] | tuple[Policy, ...],
                 cipher: FieldCipher | None = None, clock: Callable[[], datetime] = utcnow,
                 presentation_window: timedelta | None = None):
        """``presentation_window``: when set, an institution may open a visit, check eligibility or read
        accumulators only for a person who showed it a credential (1101) within that time (tenancy)."""
        self.factory = factory
        self.policies = list(policies)
        self.cipher = cipher or default_cipher()
        self.clock = clock
        self.presentation_window = presentation_window
        self.credentials = CredentialCheck(self.cipher, lambda: self.clock())
        self._institutions: dict[str, tuple[Institution, float]] = {}

    # ---------------------------------------------------------------- visits

    def register_visit(self, fixmedins_code: str, psn_no: str, med_type: str, *, insutype: str | None = None,
                       begntime: datetime | None = None, dise_codg: str = "", dise_name: str = "",
                       mdtrt_cert_type: str = "", ipt_otp_no: str = "", msgid: str | None = None,
                       credential: Credential | None = None, diagnoses: Sequence[Diagnosis] = ()) -> VisitState:
        """Outpatient registration (2201) or admission (2401): opens a visit for this institution, for a person
        who showed it a credential: ``credential`` (the request's), else the one shown last (1101). An
        e-certificate token is bound to the new visit (``services.credentials``). ``diagnoses``: the
        admission's diagnosis list (2401 ``diseinfo``), stored with the visit."""
        body = {"psn_no": psn_no, "med_type": med_type, "insutype": insutype or "", "dise_codg": dise_codg,
                "mdtrt_cert_type": mdtrt_cert_type, "ipt_otp_no": ipt_otp_no,
                "begntime": begntime.isoformat() if begntime else "", **_diseinfo(diagnoses)}

        def work(uow: UnitOfWork) -> dict:
            conn = uow.conn
            shown, prow = self._credential_for_new_visit(conn, fixmedins_code, psn_no, credential)
            chosen = self._insured_under(prow, insutype)
            now = begntime or self.clock()
            policy = self._policy(prow.insuplc_admdvs, local_date(now))
            if not policy.med_category(med_type):
                raise Invalid("med_type", f"unknown medical type {med_type!r} in policy {policy.policy_id}")
            seq = 1
            if med_type in INPATIENT_MED_TYPES:
                seq = records.year_accumulators(conn, psn_no, policy.policy_year(local_date(now))).get("admissions") + 1
            values = {"mdtrt_id": records.new_id(now), "fixmedins_code": fixmedins_code, "psn_no": psn_no,
                      "insutype": chosen, "med_type": med_type, "begntime": now, "endtime": None, "status": "open",
                      "ipt_otp_no": ipt_otp_no, "dise_codg": dise_codg, "dise_name": dise_name,
                      "mdtrt_cert_type": shown.cert_type if shown else mdtrt_cert_type, "admission_seq": seq,
                      "deposit_amt": 0}
            records.insert_visit(conn, values)
            if diagnoses:
                visit_diagnoses.replace_list(conn, values["mdtrt_id"], ADMISSION, diagnoses, msgid=msgid or "",
                                             now=self.clock())
            if shown is not None:
                self.credentials.bind(conn, shown, values["mdtrt_id"], new_visit=True)
            return {"mdtrt_id": values["mdtrt_id"], "psn_no": psn_no, "ipt_otp_no": ipt_otp_no, "status": "open",
                    "admission_seq": seq}

        return self._visit_state(fixmedins_code, self._write(fixmedins_code, msgid, "register", body, work))

    def cancel_visit(self, fixmedins_code: str, mdtrt_id: str, msgid: str | None = None,
                     psn_no: str = "") -> VisitState:
        """Registration cancel (2202) / admission cancel (2404): only a visit with nothing settled."""

        def work(uow: UnitOfWork) -> dict:
            visit = self._own_visit(uow.conn, fixmedins_code, mdtrt_id, psn_no, lock=True)
            if visit.status == "cancelled":
                raise Conflict("mdtrt_id", f"visit {mdtrt_id!r} is already cancelled")
            live = records.live_settlements(uow.conn, mdtrt_id)
            if live:
                raise Conflict("mdtrt_id", f"visit {mdtrt_id!r} has settlement {live[0].setl_id}; cancel it first")
            if records.active_line_numbers(uow.conn, mdtrt_id):
                raise Conflict("mdtrt_id", f"visit {mdtrt_id!r} still has fee lines; cancel them first (2205/2302)")
            records.set_visit(uow.conn, mdtrt_id, status="cancelled")
            if visit.mdtrt_cert_type == E_CERTIFICATE:
                credentials.spend(uow.conn, mdtrt_id, self.clock())
            return _state(visit, "cancelled")

        body = {"mdtrt_id": mdtrt_id, "psn_no": psn_no}
        return self._visit_state(fixmedins_code, self._write(fixmedins_code, msgid, "cancel_visit", body, work))

    def discharge(self, fixmedins_code: str, mdtrt_id: str, endtime: datetime | None = None,
                  msgid: str | None = None, psn_no: str = "", diagnoses: Sequence[Diagnosis] = ()) -> VisitState:
        """Discharge (2402): the admission is closed for new fee lines' dates and ready to settle; ``diagnoses``
        (2402 ``diseinfo``) become its discharge list."""

        def work(uow: UnitOfWork) -> dict:
            visit = self._own_visit(uow.conn, fixmedins_code, mdtrt_id, psn_no, lock=True)
            if visit.med_type not in INPATIENT_MED_TYPES:
                raise Invalid("mdtrt_id", f"visit {mdtrt_id!r} is not an admission")
            if visit.status != "open":
                raise Conflict("mdtrt_id", f"visit {mdtrt_id!r} is {visit.status}, not open")
            records.set_visit(uow.conn, mdtrt_id, status="discharged", endtime=endtime or self.clock())
            if diagnoses:
                visit_diagnoses.replace_list(uow.conn, mdtrt_id, DISCHARGE, diagnoses, msgid=msgid or "",
                                             now=self.clock())
            return _state(visit, "discharged")

        body = {"mdtrt_id": mdtrt_id, "endtime": endtime.isoformat() if endtime else "", "psn_no": psn_no,
                **_diseinfo(diagnoses)}
        return self._visit_state(fixmedins_code, self._write(fixmedins_code, msgid, "discharge", body, work))

    def undo_discharge(self, fixmedins_code: str, mdtrt_id: str, msgid: str | None = None,
                       psn_no: str = "") -> VisitState:
        """Discharge cancel (2405): back in hospital, unless the final settlement stands; the discharge
        diagnosis list is withdrawn with the discharge."""

        def work(uow: UnitOfWork) -> dict:
            visit = self._own_visit(uow.conn, fixmedins_code, mdtrt_id, psn_no, lock=True)
            if visit.status != "discharged":
                raise Conflict("mdtrt_id", f"visit {mdtrt_id!r} is {visit.status}, not discharged")
            records.set_visit(uow.conn, mdtrt_id, status="open", endtime=None)
            visit_diagnoses.withdraw(uow.conn, mdtrt_id, DISCHARGE)
            return _state(visit, "open")

        body = {"mdtrt_id": mdtrt_id, "psn_no": psn_no}
        return self._visit_state(fixmedins_code, self._write(fixmedins_code, msgid, "undo_discharge", body, work))

    def update_visit(self, fixmedins_code: str, mdtrt_id: str, *, med_type: str | None = None, dise_codg: str = "",
                     dise_name: str = "", msgid: str | None = None, psn_no: str = "",
                     diagnoses: Sequence[Diagnosis] = ()) -> VisitState:
        """Visit information (2203): medical type and diagnosis, before anything is settled. ``diagnoses`` (2203
        ``diseinfo``) replace the visit's outpatient list (``domain.diagnoses``); none sent leaves it as it is."""
        body = {"mdtrt_id": mdtrt_id, "med_type": med_type or "", "dise_codg": dise_codg, "dise_name": dise_name,
                "psn_no": psn_no, **_diseinfo(diagnoses)}

        def work(uow: UnitOfWork) -> dict:
            conn = uow.conn
            visit = self._own_visit(conn, fixmedins_code, mdtrt_id, psn_no, lock=True)
            if visit.status != "open" or records.live_settlements(conn, mdtrt_id):
                raise Conflict("mdtrt_id", f"visit {mdtrt_id!r} is {visit.status}; its information is fixed")
            changes: dict[str, Any] = {}
            if med_type and med_type != visit.med_type:
                if (med_type in INPATIENT_MED_TYPES) != (visit.med_type in INPATIENT_MED_TYPES):
                    raise Invalid("med_type", "can't turn an outpatient visit into an admission or back")
                prow = records.person_row(conn, visit.psn_no)
                policy = self._policy(prow.insuplc_admdvs, local_date(visit.begntime))
                if not policy.med_category(med_type):
                    raise Invalid("med_type", f"unknown medical type {med_type!r} in policy {policy.policy_id}")
                changes["med_type"] = med_type
            if dise_codg:
                changes.update(dise_codg=dise_codg, dise_name=dise_name)
            if changes:
                records.set_visit(conn, mdtrt_id, **changes)
            if diagnoses:
                visit_diagnoses.replace_list(conn, mdtrt_id, OUTPATIENT, diagnoses, msgid=msgid or "",
                                             now=self.clock())
            return _state(visit)

        return self._visit_state(fixmedins_code, self._write(fixmedins_code, msgid, "update_visit", body, work))

    def deposit(self, fixmedins_code: str, mdtrt_id: str, amount: Any, msgid: str, channel: str = "counter") -> dict:
        """An inpatient deposit (预交金), held on the visit and used for the cash part at settlement."""
        fen = self._yuan(amount, "amount")
        if fen <= 0:
            raise Invalid("amount", "must be greater than zero")
        body = {"mdtrt_id": mdtrt_id, "amount": fen, "channel": channel}

        def work(uow: UnitOfWork) -> dict:
            visit = records.own_visit(uow.conn, fixmedins_code, mdtrt_id, lock=True)
            if visit.med_type not in INPATIENT_MED_TYPES or visit.status != "open":
                raise Invalid("mdtrt_id", f"visit {mdtrt_id!r} takes no deposit (not an open admission)")
            payer, held = channel_payer(channel), deposit_account(mdtrt_id, channel)
            self._post(uow, Posting((Transfer(id=f"dep:{fixmedins_code}:{msgid}", debit_account_id=payer.id,
                                              credit_account_id=held.id, amount=fen, code="deposit", ref=mdtrt_id),),
                                    (payer, held)))
            total = visit.deposit_amt + fen
            records.set_visit(uow.conn, mdtrt_id, deposit_amt=total)
            return {"mdtrt_id": mdtrt_id, "amount": fen, "deposit_total": total}

        return self._idempotent(fixmedins_code, msgid, "deposit", body, work)

    # ---------------------------------------------------------------- fee lines

    def upload_fees(self, fixmedins_code: str, mdtrt_id: str, lines: list[FeeLineInput],
                    msgid: str | None = None, psn_no: str = "") -> list[dict[str, Any]]:
        """2204/2301: validate, classify and store fee lines, all or none. Returns the per-line result (fen)."""
        if not lines:
            raise Invalid("feedetail", "no fee lines")
        body = {"mdtrt_id": mdtrt_id, "lines": [vars(ln) for ln in lines], "psn_no": psn_no}
        return self._write(fixmedins_code, msgid, "upload_fees", body,
                           lambda uow: {"result": self._upload(uow, fixmedins_code, mdtrt_id, lines, psn_no)})["result"]

    def _upload(self, uow: UnitOfWork, fixmedins_code: str, mdtrt_id: str, lines: list[FeeLineInput],
                psn_no: str) -> list[dict[str, Any]]:
        conn = uow.conn
        visit, prow = self._own_visit_and_person(conn, fixmedins_code, mdtrt_id, psn_no, lock_person=False)
        if visit.status not in ("open", "discharged"):
            raise Conflict("mdtrt_id", f"visit {mdtrt_id!r} is {visit.status}; no more fee lines")
        policy = self._policy(prow.insuplc_admdvs, local_date(visit.begntime))
        _fee_lines, results, rows = self._checked_lines(conn, policy, fixmedins_code, mdtrt_id, lines,
                                                        records.active_line_numbers(conn, mdtrt_id))
        records.insert_lines(conn, rows)
        return results

    def _checked_lines(self, conn: Connection, policy: Policy, fixmedins_code: str, mdtrt_id: str,
                       lines: list[FeeLineInput], live: set[str] | frozenset[str] = frozenset(),
                       node: str = "feedetail",
                       ) -> tuple[list[FeeLine], list[dict[str, Any]], list[dict[str, Any]]]:
        """Fee lines checked against the catalog (a line without a catalog code priced by the institution's
        mapping of its own code) and classified under ``policy``: the engine's lines, each line's result (as 2204
        answers it, fen) and the rows to store. ``live``: line numbers the visit has already; ``node``: the input
        node the lines came in, for error messages."""
        now = self.clock()
        codes, catalog = catalog_mapping.resolve(conn, fixmedins_code, lines,
                                                 records.catalog(conn, (ln.med_list_codg for ln in lines)), now)
        seen: set[str] = set()
        fee_lines, results, rows = [], [], []
        for i, ln in enumerate(lines):
            where = f"{node}[{i}]"
            if not ln.feedetl_sn:
                raise Invalid(f"{where}.feedetl_sn", "missing")
            if ln.feedetl_sn in live or ln.feedetl_sn in seen:
                raise Conflict(f"{where}.feedetl_sn", f"line {ln.feedetl_sn!r} is already uploaded for this visit")
            seen.add(ln.feedetl_sn)
            item = catalog.get(codes[i])
            if item is None:
                raise _unknown_item(ln, where)
            fee_line = self._fee_line(ln, item, where)
            fee_lines.append(fee_line)
            split = classify_line(fee_line, policy)
            result = {
                "feedetl_sn": ln.feedetl_sn, "det_item_fee_sumamt": split.det_item_fee_sumamt,
                "cnt": str(fee_line.cnt), "pric": str(fee_line.pric), "pric_uplmt_amt": split.pric_uplmt_amt,
                "selfpay_prop": str(split.selfpay_prop), "fulamt_ownpay_amt": split.fulamt_ownpay_amt,
                "overlmt_amt": split.overlmt_amt, "preselfpay_amt": split.preselfpay_amt,
                "inscp_scp_amt": split.inscp_scp_amt, "chrgitm_lv": split.chrgitm_lv,
                "med_chrgitm_type": split.med_chrgitm_type,
            }
            rows.append({"mdtrt_id": mdtrt_id, "feedetl_sn": ln.feedetl_sn, "chrg_bchno": ln.chrg_bchno,
                         "med_list_codg": item.med_list_codg, "medins_list_codg": ln.medins_list_codg,
                         "cnt": str(fee_line.cnt), "pric": str(fee_line.pric),
                         "det_item_fee_sumamt": fee_line.det_item_fee_sumamt,
                         "fee_ocur_time": ln.fee_ocur_time or now, "status": "active", "setl_id": None,
                         "result": result, "details": {**ln.details, "opt_time": format_local(now)}})
            results.append(result)
        return fee_lines, results, rows

    def cancel_fees(self, fixmedins_code: str, mdtrt_id: str, feedetl_sn: str | None = None,
                    msgid: str | None = None, chrg_bchno: str | None = None, psn_no: str = "") -> int:
        """2205/2302: withdraw unsettled lines — one by number (2302 ``feedetl_sn``), one batch (2205
        ``chrg_bchno``), or all when the number is None or "0000"."""
        body = {"mdtrt_id": mdtrt_id, "feedetl_sn": feedetl_sn or "", "chrg_bchno": chrg_bchno or "", "psn_no": psn_no}
        return self._write(fixmedins_code, msgid, "cancel_fees", body, lambda uow: {
            "count": self._cancel_fees(uow, fixmedins_code, mdtrt_id, feedetl_sn, chrg_bchno, psn_no)})["count"]

    def _cancel_fees(self, uow: UnitOfWork, fixmedins_code: str, mdtrt_id: str, feedetl_sn: str | None,
                     chrg_bchno: str | None, psn_no: str) -> int:
        self._own_visit(uow.conn, fixmedins_code, mdtrt_id, psn_no, lock=True)
        lines = records.active_lines(uow.conn, mdtrt_id)
        if feedetl_sn not in (None, "", "0000"):
            lines = [r for r in lines if r.feedetl_sn == feedetl_sn]
            if not lines:
                raise NotFound("feedetl_sn", f"no live fee line {feedetl_sn!r} in visit {mdtrt_id!r}")
        if chrg_bchno not in (None, "", "0000"):
            lines = [r for r in lines if r.chrg_bchno == chrg_bchno]
            if not lines:
                raise NotFound("chrg_bchno", f"no live fee lines of batch {chrg_bchno!r} in visit {mdtrt_id!r}")
        settled = [r for r in lines if r.setl_id]
        if settled:
            raise Conflict("feedetl_sn", f"line {settled[0].feedetl_sn!r} is settled ({settled[0].setl_id}); cancel the settlement first")
        records.set_lines_status(uow.conn, [r.id for r in lines], "cancelled")
        return len(lines)

    # ---------------------------------------------------------------- settlement

    def presettle(self, fixmedins_code: str, mdtrt_id: str, *, acct_used_flag: bool = True,
                  mid_setl_flag: bool = False, declared: dict[str, Any] | None = None, psn_no: str = "",
                  with_identity: bool = False, ref: str = "", credential: Credential | None = None) -> Quote:
        """2206/2303: the settlement as it would be now. Writes nothing of its own; a credential the request
        names is checked, not bound."""
        with unit_of_work(self.factory) as uow:
            visit = self._own_visit(uow.conn, fixmedins_code, mdtrt_id, psn_no)
            prow = records.person_row(uow.conn, visit.psn_no)
            if credential is not None:
                self.credentials.for_visit(uow.conn, self._institution(uow.conn, fixmedins_code), visit, prow,
                                           credential, settling=False)
            adj, _lines, policy, _dep = self._adjudicate(uow, visit, prow, acct_used_flag, mid_setl_flag)
            self._check_declared(adj, declared or {})
            quote = self._quote(adj, policy, visit, prow, setl_id="", msgid="", now=self.clock(), channel="")
            if with_identity:
                quote.setlinfo = self._with_identity(uow.conn, {"setlinfo": quote.setlinfo}, prow,
                                                     actor=fixmedins_code, action="presettle", ref=ref)["setlinfo"]
            return quote

    def settle(self, req: SettleRequest, *, with_identity: bool = False) -> dict[str, Any]:
        """2207/2304: settle atomically, exactly once per msgid. Returns the stored output (fen); with
        ``with_identity`` also the person's name and ID number."""

        seen: dict[str, Any] = {}

        def work(uow: UnitOfWork) -> dict:
            output, seen["person"] = self._settle_in(uow, req)
            return output

        def present(conn: Connection, output: dict[str, Any]) -> dict[str, Any]:
            return self._with_identity(conn, output, seen.get("person"), actor=req.fixmedins_code, action="settle",
                                       ref=req.msgid)

        return self._idempotent(req.fixmedins_code, req.msgid, "settle", req.body(), work,
                                present if with_identity else None)

    def _settle_in(self, uow: UnitOfWork, req: SettleRequest) -> tuple[dict[str, Any], Any]:
        """The settlement of ``req``'s visit in the caller's unit of work: the output (fen) and the person."""
        conn = uow.conn
        visit, prow = self._own_visit_and_person(conn, req.fixmedins_code, req.mdtrt_id, req.psn_no,
                                                 lock_person=True)
        if visit.status == "cancelled":
            raise Conflict("mdtrt_id", f"visit {req.mdtrt_id!r} is cancelled")
        fresh = self.credentials.for_visit(conn, self._institution(conn, req.fixmedins_code), visit, prow,
                                           req.credential, settling=True)
        inpatient = visit.med_type in INPATIENT_MED_TYPES
        if req.mid_setl_flag and not inpatient:
            raise Invalid("mid_setl_flag", "interim settlement is only for admissions")
        if inpatient and not req.mid_setl_flag and visit.status != "discharged":
            raise Conflict("mdtrt_id", f"admission {req.mdtrt_id!r} is not discharged yet (2402 first, or mid_setl_flag=1)")
        adj, lines, policy, deposits = self._adjudicate(uow, visit, prow, req.acct_used_flag,
                                                               req.mid_setl_flag, lock=True)
        self._check_declared(adj, req.declared)
        self.credentials.check_bill(conn, visit, req.credential, adj.amounts["medfee_sumamt"])
        if req.max_cash_fen is not None and adj.amounts["psn_cash_pay"] > req.max_cash_fen:
            raise Conflict("psn_cash_pay", f"cash part {format_yuan(adj.amounts['psn_cash_pay'])} exceeds the "
                                           f"{format_yuan(req.max_cash_fen)} held from the patient; quote again")
        now = self.clock()
        setl_id = records.new_id(now)
        setl_year = policy.policy_year(local_date(now))  # the year its accumulators count in
        final = not req.mid_setl_flag
        posting = settlement_posting(setl_id, prow.insuplc_admdvs, req.fixmedins_code, adj, req.channel,
                                     deposits, release_deposit=final and inpatient, mdtrt_id=visit.mdtrt_id)
        quote = self._quote(adj, policy, visit, prow, setl_id=setl_id, msgid=req.msgid, now=now, channel=req.channel)
        quote.setlinfo.update(deposit_applied=posting.deposit_applied, deposit_refund=posting.deposit_refund)
        output = {"setlinfo": quote.setlinfo, "setldetail": quote.setldetail}
        records.insert_settlement(conn, self._settlement_row(
            setl_id, "settle", None, visit, prow, req.msgid, now, final, req.channel, adj.policy_id,
            quote.setlinfo, output, adj.year_deltas, adj.visit_deltas,
            [[p.psn_no, p.relation, p.amount] for p in adj.account_payments], setl_year))
        records.mark_lines_settled(conn, [line.id for line in lines], setl_id)
        records.add_to_accumulators(conn, prow.psn_no, setl_year, adj.year_deltas)
        if final:
            records.set_visit(conn, visit.mdtrt_id, status="settled")
        if fresh is not None:
            self.credentials.bind(conn, fresh, visit.mdtrt_id)
        if fresh is not None or visit.mdtrt_cert_type == E_CERTIFICATE:
            credentials.spend(conn, visit.mdtrt_id, now)  # the next settlement of this visit needs a new code
        # money moves last: the shared fund/institution rows it increments stay locked only until commit
        self._post(uow, posting)
        return output, prow

    def cancel(self, fixmedins_code: str, msgid: str, setl_id: str, psn_no: str | None = None, *,
               with_identity: bool = False, mdtrt_id: str = "") -> dict[str, Any]:
        """2208/2305 (2103): a compensating settlement with negated amounts; balances and accumulators restored.
        ``psn_no`` and ``mdtrt_id``, when given, must be the settlement's."""

        def work(uow: UnitOfWork) -> dict:
            orig = records.own_settlement(uow.conn, fixmedins_code, setl_id, lock=True)
            if psn_no and psn_no != orig.psn_no:
                raise Invalid("psn_no", f"settlement {setl_id!r} is not of person {psn_no!r}")
            if mdtrt_id and mdtrt_id != orig.mdtrt_id:
                raise Invalid("mdtrt_id", f"settlement {setl_id!r} is not of visit {mdtrt_id!r}")
            if orig.kind != "settle":
                raise Invalid("setl_id", f"{setl_id!r} is itself a cancellation")
            if orig.cancelled:
                raise Conflict("setl_id", f"settlement {setl_id!r} is already cancelled")
            return self._cancel_in(uow, fixmedins_code, msgid, orig)

        def present(conn: Connection, output: dict[str, Any]) -> dict[str, Any]:
            return self._with_identity(conn, output, actor=fixmedins_code, action="cancel", ref=msgid)

        body = {"setl_id": setl_id, "psn_no": psn_no or "", **({"mdtrt_id": mdtrt_id} if mdtrt_id else {})}
        return self._idempotent(fixmedins_code, msgid, "cancel", body, work, present if with_identity else None)

    def _cancel_in(self, uow: UnitOfWork, fixmedins_code: str, msgid: str, orig: Any) -> dict[str, Any]:
        conn = uow.conn
        setl_id = orig.setl_id
        visit = records.own_visit(conn, fixmedins_code, orig.mdtrt_id, lock=True)
        later = [s for s in records.live_settlements(conn, visit.mdtrt_id) if s.setl_time > orig.setl_time]
        if later:
            raise Conflict("setl_id", f"cancel the later settlement {later[0].setl_id} of this visit first")
        prow = records.person_row(conn, orig.psn_no, lock=True)
        now = self.clock()
        cancel_id = records.new_id(now)
        self._post(uow, reversal_posting(cancel_id, uow.ledger.transfers_by_ref(setl_id)))
        setlinfo = _negated(orig.output["setlinfo"])
        setlinfo.update(setl_id=cancel_id, setl_time=format_local(now), medins_setl_id=msgid, setl_type="2",
                        orig_setl_id=setl_id, balc=self._balance(uow, prow.psn_no))
        setldetail = [_negated(d) for d in orig.output["setldetail"]]
        output = {"setlinfo": setlinfo, "setldetail": setldetail}
        records.set_cancelled(conn, setl_id, True)
        records.insert_settlement(conn, self._settlement_row(
            cancel_id, "cancel", setl_id, visit, prow, msgid, now, orig.final, orig.channel, orig.policy_id,
            setlinfo, output, negate_deltas(orig.year_deltas), negate_deltas(orig.visit_deltas),
            [[p, r, -a] for p, r, a in orig.account_payments], orig.setl_year))
        records.add_to_accumulators(conn, prow.psn_no, orig.setl_year, negate_deltas(orig.year_deltas))
        # the lines are refunded with the settlement; a partial refund re-uploads what stays billed
        records.set_settled_lines_status(conn, setl_id, "cancelled")
        if self._institution(conn, fixmedins_code).is_pharmacy:  # a purchase is over once refunded
            records.set_visit(conn, visit.mdtrt_id, status="cancelled")
        else:
            records.set_visit(conn, visit.mdtrt_id, status="discharged" if visit.endtime is not None else "open")
        return output

    # ---------------------------------------------------------------- reversal (2601)

    REVERSIBLE = {"2207": "settle", "2304": "settle", "2102": "settle", "2208": "cancel", "2305": "cancel",
                  "2103": "cancel", "2401": "register"}

    def reverse(self, fixmedins_code: str, msgid: str, omsgid: str, oinfno: str, psn_no: str = "") -> dict[str, Any]:
        """2601 冲正: undo the effect of message ``omsgid`` whose outcome the HIS does not know.

        Safe whatever happened to the original: never arrived → a tombstone refuses it if it arrives
        later; arrived once or more → its one effect is compensated. Either way the answer says which.
        """
        if oinfno not in self.REVERSIBLE:
            raise Invalid("oinfno", f"transaction {oinfno!r} can't be reversed; reversible: {', '.join(self.REVERSIBLE)}")
        if not omsgid:
            raise Invalid("omsgid", "missing")
        if omsgid == msgid:
            raise Invalid("omsgid", "a reversal needs its own msgid")

        def work(uow: UnitOfWork) -> dict:
            conn = uow.conn
            prior = records.idempotency_record(conn, fixmedins_code, omsgid, lock=True)
            if prior is None:
                if not records.record_idempotency(conn, fixmedins_code, omsgid, "", REVERSED, {"reversed_by": msgid},
                                                  self.clock()):
                    raise _OriginalArrived
                return {"omsgid": omsgid, "oinfno": oinfno, "result": "original_not_received"}
            if prior.operation == REVERSED:
                return {"omsgid": omsgid, "oinfno": oinfno, "result": "already_reversed"}
            expected = self.REVERSIBLE[oinfno]
            if prior.operation != expected:
                raise Invalid("oinfno", f"message {omsgid!r} was a {prior.operation}, not {oinfno}")
            if expected == "settle":
                setl_id = prior.response["setlinfo"]["setl_id"]
                row = records.own_settlement(conn, fixmedins_code, setl_id, lock=True)
                if psn_no and psn_no != row.psn_no:
                    raise Invalid("psn_no", f"message {omsgid!r} was not for person {psn_no!r}")
                if not row.cancelled:
                    self._cancel_in(uow, fixmedins_code, msgid, row)
            elif expected == "cancel":
                self._void_cancellation(uow, fixmedins_code, prior.response["setlinfo"]["setl_id"])
            else:
                visit = records.own_visit(conn, fixmedins_code, prior.response["mdtrt_id"], lock=True)
                if records.live_settlements(conn, visit.mdtrt_id):
                    raise Conflict("omsgid", f"admission {visit.mdtrt_id} has settlements; cancel them first")
                records.set_lines_status(conn, [line.id for line in records.active_lines(conn, visit.mdtrt_id)],
                                         "cancelled")
                records.set_visit(conn, visit.mdtrt_id, status="cancelled")
                credentials.spend(conn, visit.mdtrt_id, self.clock())
            records.set_operation(conn, fixmedins_code, omsgid, REVERSED)
            return {"omsgid": omsgid, "oinfno": oinfno, "result": "reversed"}

        for _attempt in range(2):  # a second pass only when the original was recorded while this one ran
            try:
                return self._idempotent(fixmedins_code, msgid, "reverse", {"omsgid": omsgid, "oinfno": oinfno}, work)
            except _OriginalArrived:
                continue
        raise Conflict("omsgid", f"message {omsgid!r} is being processed; send the reversal again")

    def _void_cancellation(self, uow: UnitOfWork, fixmedins_code: str, cancel_setl_id: str) -> None:
        """Undo a cancellation: the original settlement stands again, with its money and accumulators."""
        conn = uow.conn
        cancel = records.own_settlement(conn, fixmedins_code, cancel_setl_id, lock=True)
        if cancel.cancelled:
            return
        orig = records.own_settlement(conn, fixmedins_code, cancel.orig_setl_id, lock=True)
        # the visit before the person, as every settlement locks them: no lock-order cycle with a 2207
        visit = records.own_visit(conn, fixmedins_code, orig.mdtrt_id, lock=True)
        prow = records.person_row(conn, orig.psn_no, lock=True)
        self._post(uow, reversal_posting(f"{cancel_setl_id}R", uow.ledger.transfers_by_ref(cancel_setl_id)))
        records.set_cancelled(conn, cancel_setl_id, True)
        records.set_cancelled(conn, orig.setl_id, False)
        records.add_to_accumulators(conn, prow.psn_no, orig.setl_year, orig.year_deltas)
        records.set_settled_lines_status(conn, orig.setl_id, "active")
        if orig.final:
            records.set_visit(conn, visit.mdtrt_id, status="settled")

    # ---------------------------------------------------------------- queries

    def settlement(self, fixmedins_code: str, setl_id: str, *, psn_no: str = "", with_identity: bool = False,
                   ref: str = "") -> dict[str, Any]:
        """5203: a settlement of the institution (of ``psn_no``, when given) as it was answered."""
        with unit_of_work(self.factory) as uow:
            row = records.own_settlement(uow.conn, fixmedins_code, setl_id)
            if psn_no and row.psn_no != psn_no:
                raise Invalid("psn_no", "the settlement is not of this person")
            output = dict(row.output)
            if with_identity:
                return self._with_identity(uow.conn, output, actor=fixmedins_code, action="settlement_query",
                                           ref=ref)
            return output

    def fee_lines(self, fixmedins_code: str, mdtrt_id: str, psn_no: str = "") -> list[dict[str, Any]]:
        """5204: every fee line of the institution's visit, cancelled ones included (``status``), each as 2204
        answered it (fen) with what the HIS said of it (``details``), the visit's ``med_type`` and the catalog item's
        name (``hilist_name``) and ``list_type``."""
        with unit_of_work(self.factory) as uow:
            visit = self._own_visit(uow.conn, fixmedins_code, mdtrt_id, psn_no)
            return [dict(r.result, status=r.status, setl_id=r.setl_id or "", mdtrt_id=mdtrt_id, med_type=visit.med_type,
                         fee_ocur_time=r.fee_ocur_time, med_list_codg=r.med_list_codg,
                         medins_list_codg=r.medins_list_codg, hilist_name=r.name, list_type=r.list_type,
                         details=r.details or {})
                    for r in records.all_lines(uow.conn, mdtrt_id)]

    def fee_query_shape(self, fixmedins_code: str) -> str:
        """What 5204 answers this institution (``institutions.fee_query_shape``), read at most every
        INSTITUTION_TTL_S."""
        return self.institution(fixmedins_code).fee_query_shape

    def institution(self, fixmedins_code: str) -> Institution:
        """The institution as the rules see it (level, region, type, settings), read at most every
        INSTITUTION_TTL_S."""
        with self.factory() as session:
            return self._institution(session.connection(), fixmedins_code)

    def accumulators(self, psn_no: str, year: int, fixmedins_code: str | None = None) -> dict[str, int]:
        """The person's year totals; asked by an institution (``fixmedins_code``), tenancy applies."""
        with unit_of_work(self.factory) as uow:
            if fixmedins_code is None:
                records.person_row(uow.conn, psn_no)
            else:
                self._presented_person(uow.conn, fixmedins_code, psn_no, "psn_no")
            return dict(records.year_accumulators(uow.conn, psn_no, year).values)

    def eligibility(self, fixmedins_code: str, psn_no: str) -> Any:
        """2001: the person, if they may be treated here (tenancy applies)."""
        with unit_of_work(self.factory) as uow:
            return self._presented_person(uow.conn, fixmedins_code, psn_no, "psn_no")

    def _with_identity(self, conn: Connection, output: dict[str, Any], prow: Any = None, *, actor: str,
                       action: str, ref: str = "") -> dict[str, Any]:
        """The output with the person's name and ID number in ``setlinfo``, decrypted for this answer only
        (the HIS's answers carry them; what is stored does not) — and the disclosure in the audit log."""
        info = output["setlinfo"]
        if prow is None or prow.psn_no != info["psn_no"]:
            prow = records.person_row(conn, info["psn_no"])
        audit.record(conn, actor_kind="institution", actor=actor, action=action, psn_no=prow.psn_no,
                     fields=audit.IDENTITY, at=self.clock(), ref=ref)
        return {**output, "setlinfo": {**info, "psn_name": self.cipher.decrypt(prow.psn_name_enc, "psn_name"),
                                       "certno": self.cipher.decrypt(prow.certno_enc, "certno")}}

    def account_balance(self, psn_no: str) -> int:
        session = self.factory()
        try:
            acct = LedgerStore(session).account(personal_account(psn_no).id)
            return acct.balance if acct else 0
        finally:
            session.close()

    # ---------------------------------------------------------------- internals

    def _policy(self, admdvs: str, on) -> Policy:
        try:
            return select_policy(self.policies, admdvs, on)
        except LookupError as e:
            raise Invalid("insuplc_admdvs", str(e)) from None

    def _institution(self, conn: Connection, code: str) -> Institution:
        """The institution (its level and region count in the rules), read at most every INSTITUTION_TTL_S."""
        cached = self._institutions.get(code)
        if cached is not None and time.monotonic() - cached[1] < INSTITUTION_TTL_S:
            return cached[0]
        inst = records.institution(conn, code)
        self._institutions[code] = (inst, time.monotonic())
        return inst

    @staticmethod
    def _insured_under(prow: Any, insutype: str | None) -> str:
        """The insurance type a new visit or purchase is settled under: the person's own, who must be insured now."""
        if prow.psn_insu_stas != "1":
            raise Invalid("psn_no", f"person {prow.psn_no!r} is not currently insured (psn_insu_stas {prow.psn_insu_stas})")
        chosen = insutype or prow.insutype
        if chosen != prow.insutype:
            raise Invalid("insutype", f"person {prow.psn_no!r} is insured under {prow.insutype}, not {chosen!r}")
        return chosen

    @staticmethod
    def _own_visit_and_person(conn: Connection, fixmedins_code: str, mdtrt_id: str, psn_no: str, *,
                              lock_person: bool) -> tuple[Any, Any]:
        """The institution's visit (locked) and its person; a person the request names must be the visit's."""
        visit, prow = records.own_visit_and_person(conn, fixmedins_code, mdtrt_id, lock_person=lock_person)
        if psn_no and visit.psn_no != psn_no:
            raise Invalid("psn_no", f"visit {mdtrt_id!r} is not of person {psn_no!r}")
        return visit, prow

    @staticmethod
    def _own_visit(conn: Connection, fixmedins_code: str, mdtrt_id: str, psn_no: str, *, lock: bool = False) -> Any:
        """The institution's visit; when the request names a person, it must be the visit's."""
        visit = records.own_visit(conn, fixmedins_code, mdtrt_id, lock=lock)
        if psn_no and visit.psn_no != psn_no:
            raise Invalid("psn_no", f"visit {mdtrt_id!r} is not of person {psn_no!r}")
        return visit

    def _credential_for_new_visit(self, conn: Connection, fixmedins_code: str, psn_no: str,
                                  credential: Credential | None) -> tuple[Shown | None, Any]:
        """The credential that opens a visit for ``psn_no`` here, checked, and the person. A 02/03 number also
        needs a presentation (1101) within the window; an e-certificate token was minted for this institution."""
        institution = self._institution(conn, fixmedins_code)
        if self.presentation_window is None:  # no tenancy (stand-alone use): only a named credential is checked
            prow = records.person_row(conn, psn_no, field="psn_no")
            if credential is None:
                return None, prow
            return self.credentials.for_new_visit(conn, institution, prow, credential, self.clock()), prow
        since = self.clock() - self.presentation_window
        if credential is not None and credential.cert_type != E_CERTIFICATE:
            prow = self._presented_person(conn, fixmedins_code, psn_no, "psn_no")
        else:
            prow = records.person_row(conn, psn_no, field="psn_no")
        return self.credentials.for_new_visit(conn, institution, prow, credential, since), prow

    def _presented_person(self, conn: Connection, fixmedins_code: str, psn_no: str, field: str) -> Any:
        """The person, if they showed this institution a credential within the presentation window."""
        since = None if self.presentation_window is None else self.clock() - self.presentation_window
        return records.presented_person(conn, fixmedins_code, psn_no, since, field)

    @staticmethod
    def _yuan(value: Any, field: str) -> int:
        try:
            return parse_yuan(value, field)
        except MoneyError as e:
            raise Invalid(e.field, e.problem) from None

    def _fee_line(self, ln: FeeLineInput, item, where: str) -> FeeLine:
        amount = self._yuan(ln.det_item_fee_sumamt, f"{where}.det_item_fee_sumamt")
        try:
            cnt = to_decimal(ln.cnt, f"{where}.cnt")
            pric = to_decimal(ln.pric, f"{where}.pric")
        except MoneyError as e:
            raise Invalid(e.field, e.problem) from None
        if cnt <= 0:
            raise Invalid(f"{where}.cnt", f"must be greater than zero; got {ln.cnt!r}")
        if pric < 0:
            raise Invalid(f"{where}.pric", f"must not be negative; got {ln.pric!r}")
        if cnt.as_tuple().exponent < -4:  # type: ignore[operator]
            raise Invalid(f"{where}.cnt", "at most 4 decimals")
        if pric.as_tuple().exponent < -6:  # type: ignore[operator]
            raise Invalid(f"{where}.pric", "at most 6 decimals")
        expected = cnt * pric * 100
        if abs(Decimal(amount) - expected) > LINE_TOLERANCE_FEN:
            raise Invalid(f"{where}.det_item_fee_sumamt",
                          f"{format_yuan(amount)} does not match cnt × pric = {cnt} × {pric}")
        return FeeLine(ln.feedetl_sn, item, cnt, pric, amount)

    def _adjudicate(self, uow: UnitOfWork, visit: Any, prow: Any, acct_used: bool, mid_setl: bool,
                    lock: bool = False, fee_lines: list[FeeLine] | None = None):
        """The engine's split of the visit's unsettled lines (or of ``fee_lines``, a purchase quoted before it is
        stored), with the balances it may draw on (locked with ``lock``, for a settlement)."""
        conn = uow.conn
        lines: list[Any] = []
        if fee_lines is None:
            lines = records.unsettled_lines(conn, visit.mdtrt_id)
            if not lines:
                raise Conflict("mdtrt_id", f"visit {visit.mdtrt_id!r} has no unsettled fee lines (upload them first)")
            fee_lines = [FeeLine(r.feedetl_sn, records.catalog_item(r), Decimal(r.cnt), Decimal(r.pric),
                                 r.det_item_fee_sumamt, local_date(r.fee_ocur_time) if r.fee_ocur_time else None)
                         for r in lines]
        now = self.clock()
        policy = self._policy(prow.insuplc_admdvs, local_date(visit.begntime))
        inst = self._institution(conn, visit.fixmedins_code)
        person = records.person(prow, self.cipher)
        payers = records.family_payers(conn, prow.psn_no)
        account_ids = [personal_account(prow.psn_no).id] + [personal_account(link.payer_psn_no).id for link in payers]
        deposit_ids = {c: deposit_account(visit.mdtrt_id, c).id for c in DEPOSIT_CHANNELS}
        wanted = account_ids + list(deposit_ids.values())
        balances = uow.ledger.lock_accounts(wanted) if lock else uow.ledger.accounts(wanted)

        def available(account_id: str) -> int:  # an account never opened holds nothing
            return balances[account_id].available if account_id in balances else 0

        sources = [AccountSource(prow.psn_no, "self", available(account_ids[0]))]
        sources += [AccountSource(link.payer_psn_no, link.relation, available(acct_id))
                    for link, acct_id in zip(payers, account_ids[1:])]
        ctx = VisitContext(mdtrt_id=visit.mdtrt_id, med_type=visit.med_type, setl_date=local_date(now), institution=inst,
                           admission_seq=visit.admission_seq, final=not mid_setl, dise_codg=visit.dise_codg,
                           insured_admdvs=prow.insuplc_admdvs)
        setl_year = policy.policy_year(local_date(now))
        earlier: dict[int, Any] = {}
        if policy.stay_across_years == "split_by_fee_date":  # a stay's fees from an earlier policy year count there
            years = {policy.policy_year(ln.fee_date) for ln in fee_lines if ln.fee_date is not None}
            earlier = {y: records.year_accumulators(conn, prow.psn_no, y) for y in sorted(years) if y < setl_year}
        try:
            adj = adjudicate(policy, person, ctx, fee_lines, records.year_accumulators(conn, prow.psn_no, setl_year),
                             records.visit_accumulators(conn, visit.mdtrt_id), tuple(sources), acct_used,
                             other_years=earlier)
        except AdjudicationError as e:
            raise Invalid(e.field, e.problem) from None
        return adj, lines, policy, {c: available(acct_id) for c, acct_id in deposit_ids.items()}

    @staticmethod
    def _check_declared(adj: Adjudication, declared: dict[str, Any]) -> None:
        """The HIS's own sums (2207 input) must match the uploaded lines to the fen."""
        for key in DECLARED_AMOUNTS:
            if key not in declared or declared[key] in (None, ""):
                continue
            try:
                fen = parse_yuan(declared[key], key)
            except MoneyError as e:
                raise Invalid(e.field, e.problem) from None
            if fen != adj.amounts[key]:
                raise Invalid(key, f"{format_yuan(fen)} does not match the uploaded fee lines ({format_yuan(adj.amounts[key])})")

    def _quote(self, adj: Adjudication, policy: Policy, visit: Any, prow: Any, *, setl_id: str, msgid: str,
               now: datetime, channel: str) -> Quote:
        setlinfo: dict[str, Any] = {
            "mdtrt_id": visit.mdtrt_id, "setl_id": setl_id, "psn_no": prow.psn_no, "psn_cert_type": prow.psn_cert_type,
            "gend": prow.gend, "naty": prow.naty, "brdy": prow.brdy.isoformat(), "age": age_on(prow.brdy, local_date(now)),
            "insutype": visit.insutype, "psn_type": prow.psn_type, "cvlserv_flag": "1" if prow.cvlserv_flag else "0",
            "setl_time": format_local(now), "mdtrt_cert_type": visit.mdtrt_cert_type, "med_type": visit.med_type,
            **{k: adj.amounts[k] for k in AMOUNT_FIELDS},
            "pool_prop_selfpay": str(adj.pool_prop_selfpay), "balc": adj.balc, "medins_setl_id": msgid,
            "clr_optins": prow.insuplc_admdvs, "clr_way": "1", "clr_type": CLR_TYPES.get(policy.med_category(visit.med_type), "11"),
            "setl_type": "1", "policy_ver": adj.policy_id, "channel": channel,
        }
        setldetail = [
            {"fund_pay_type": d.fund_pay_type, "inscp_scp_amt": d.inscp_scp_amt, "crt_payb_lmt_amt": d.crt_payb_lmt_amt,
             "fund_payamt": d.fund_payamt, "fund_pay_type_name": d.fund_pay_type_name, "setl_proc_info": d.setl_proc_info}
            for d in adj.setldetail
        ]
        return Quote(adj, setlinfo, setldetail)

    @staticmethod
    def _settlement_row(setl_id, kind, orig, visit, prow, msgid, now, final, channel, policy_id, setlinfo,
                        output, year_deltas, visit_deltas, account_payments, setl_year: int) -> dict[str, Any]:
        return {
            "setl_id": setl_id, "kind": kind, "orig_setl_id": orig, "mdtrt_id": visit.mdtrt_id, "psn_no": prow.psn_no,
            "fixmedins_code": visit.fixmedins_code, "msgid": msgid, "insutype": visit.insutype,
            "med_type": visit.med_type, "clr_type": setlinfo["clr_type"], "setl_time": now,
            "setl_year": setl_year, "final": final, "channel": channel, "policy_id": policy_id,
            "medfee_sumamt": setlinfo["medfee_sumamt"], "fund_pay_sumamt": setlinfo["fund_pay_sumamt"],
            "acct_pay": setlinfo["acct_pay"], "psn_cash_pay": setlinfo["psn_cash_pay"],
            "hosp_part_amt": setlinfo["hosp_part_amt"], "cancelled": False, "output": output,
            "year_deltas": year_deltas, "visit_deltas": visit_deltas, "account_payments": account_payments,
            "created_at": now,
        }

    @staticmethod
    def _post(uow: UnitOfWork, posting: Posting) -> None:
        uow.ledger.ensure_accounts(posting.accounts)
        try:
            uow.ledger.create_transfers(list(posting.transfers))
        except LedgerError as e:  # the limits were checked under lock; reaching here means a race we lost
            raise Conflict("acct_pay", f"ledger refused the settlement: {e}") from None

    @staticmethod
    def _balance(uow: UnitOfWork, psn_no: str) -> int:
        acct = uow.ledger.account(personal_account(psn_no).id)
        return acct.balance if acct else 0

    def _write(self, scope: str, msgid: str | None, operation: str, body: dict,
               work: Callable[[UnitOfWork], dict]) -> dict:
        return idempotency.write(self.factory, self.clock, scope, msgid, operation, body, work,
                                 legacy_body=_legacy_body(operation, body))

    def _idempotent(self, scope: str, key: str, operation: str, body: dict, work: Callable[[UnitOfWork], dict],
                    present: Callable[[Connection, dict], dict] | None = None) -> dict:
        """For what moves money: the key is read first, so a retry never takes the shared ledger rows."""
        return idempotency.once(self.factory, self.clock, scope, key, operation, body, work, present,
                                look_first=True, legacy_body=_legacy_body(operation, body))

    def _visit_state(self, fixmedins_code: str, response: dict[str, Any]) -> VisitState:
        if "psn_no" in response:
            return VisitState.of(response)
        with self.factory() as session:  # an answer stored before it carried the visit's state
            return VisitState.of(_state(records.own_visit(session, fixmedins_code, response["mdtrt_id"])))


# Operations whose body was hashed without psn_no before psn_no was checked by the service (2026-12): a retry
# of a message answered before still matches its record.
_PSN_NO_ADDED = frozenset({"cancel_visit", "discharge", "undo_discharge", "update_visit", "upload_fees",
                           "cancel_fees", "settle"})


def _legacy_body(operation: str, body: dict[str, Any]) -> dict[str, Any] | None:
    if operation not in _PSN_NO_ADDED:
        return None
    return {k: v for k, v in body.items() if k != "psn_no"}


def _diseinfo(diagnoses: Sequence[Diagnosis]) -> dict[str, Any]:
    """A diagnosis list in a message's body (hashed for its msgid); none sent adds nothing, so the hash of a
    message without one is what it was before lists were kept."""
    return {"diseinfo": visit_diagnoses.request_body(diagnoses)} if diagnoses else {}


def _negated(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for k in (*AMOUNT_FIELDS, "fund_payamt", "deposit_applied", "deposit_refund"):
        if isinstance(out.get(k), int) and not isinstance(out.get(k), bool):
            out[k] = -out[k]
    return out


def _unknown_item(ln: FeeLineInput, where: str) -> Invalid | NotFound:
    """A fee line whose catalog code is unknown, and whose own code (if any) has no mapping in force (3301)."""
    unmapped = (f"; medins_list_codg {ln.medins_list_codg!r} has no catalog mapping in force (3301)"
                if ln.medins_list_codg else "")
    if not ln.med_list_codg:
        return Invalid(f"{where}.med_list_codg", "missing" + unmapped)
    return NotFound(f"{where}.med_list_codg", f"unknown catalog item {ln.med_list_codg!r}" + unmapped)
