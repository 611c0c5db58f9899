"""报销记录: a person's settlements of a year as the app shows them — each with its fund-by-fund ``setldetail``, the
policy version, whether it was cancelled and how its cash was refunded —, the year's accumulators, a CSV of the
year, and a settlement slip (结算单) the platform signs, with a check code anyone can verify
(``domain.slip_code``; the slip is the platform's record, not the hospital's fiscal e-invoice 电子票据).

Reads only, apart from the audit log: every look at a person's records says who looked (the e-certificate whose
device asked).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, sessionmaker

from medpay.adapters.crypto import FieldCipher, mask_certno, mask_name
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.ecert_tables import EcertRow
from medpay.adapters.db.payment_tables import PaymentIntentRow
from medpay.adapters.db.tables import InstitutionRow, PersonRow, SettlementRow
from medpay.domain.ecert_code import CodeError
from medpay.domain.slip_code import SlipClaims, make_slip_payload, parse_slip
from medpay.local_time import format_local
from medpay.money import format_yuan
from medpay.services import audit
from medpay.services.errors import Invalid, NotFound
from medpay.services import records as stored
from medpay.services.unit_of_work import unit_of_work

CSV_COLUMNS = ("setl_id", "setl_time", "fixmedins_code", "fixmedins_name", "mdtrt_id", "med_type", "medfee_sumamt",
               "fund_pay_sumamt", "acct_pay", "acct_mulaid_pay", "psn_cash_pay", "policy_ver", "status",
               "cancelled_at", "cash_refunded")


class SlipInvalid(Invalid):
    code = "slip_invalid"


class RecordsService:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher, signing_keys: Sequence[Ed25519PrivateKey],
                 clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.cipher = cipher
        self.keys = list(signing_keys)  # the newest signs; any of them verifies (a slip outlives a key rotation)
        self.clock = clock

    # -- the year ------------------------------------------------------------------------------------------

    def year(self, psn_no: str, year: int, viewer: str) -> dict[str, Any]:
        """The person's settlements of ``year`` (newest first, fen), the year's totals and accumulators."""
        _check_year(year)
        with unit_of_work(self.factory) as uow:
            s = uow.session
            rows = self._settlements(s, psn_no, year)
            accumulators = dict(stored.year_accumulators(uow.conn, psn_no, year).values)
            audit.record(s, actor_kind="patient", actor=viewer, action="records.view", psn_no=psn_no,
                         fields=("settlements",), at=self.clock(), ref=str(year))
        standing = [r for r in rows if r["status"] == "standing"]
        totals = {k: sum(r[k] for r in standing) for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay",
                                                           "acct_mulaid_pay", "psn_cash_pay")}
        return {"year": year, "settlements": rows, "totals": {**totals, "count": len(standing)},
                "accumulators": [{"key": k, "value": v} for k, v in sorted(accumulators.items())]}

    def csv(self, psn_no: str, year: int, viewer: str) -> str:
        """The year as CSV (UTF-8 with a BOM, so spreadsheet programs read the Chinese), amounts in yuan."""
        data = self.year(psn_no, year, viewer)
        out = io.StringIO()
        out.write("\ufeff")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for r in data["settlements"]:
            writer.writerow([_cell(r, c) for c in CSV_COLUMNS])
        return out.getvalue()

    @staticmethod
    def _settlements(s: Session, psn_no: str, year: int) -> list[dict[str, Any]]:
        query = _RECORDS.where(SettlementRow.psn_no == psn_no, SettlementRow.setl_year == year).order_by(
            SettlementRow.setl_time.desc(), SettlementRow.setl_id)
        return [_record(*found) for found in s.execute(query)]

    # -- notices -------------------------------------------------------------------------------------------

    def notices(self, psn_no: str, limit: int = 50) -> list[dict[str, Any]]:
        """What happened on the person's account, newest first: settlements, their cancellation and cash refund,
        e-certificate activations and revocations (with why). Derived from the records themselves, so none is
        missed and none is told twice."""
        with self.factory() as s:
            query = _RECORDS.where(SettlementRow.psn_no == psn_no).order_by(SettlementRow.setl_time.desc()).limit(
                limit)
            found = [(_record(*row), row[3]) for row in s.execute(query)]
            ecerts = s.scalars(select(EcertRow).where(EcertRow.psn_no == psn_no)
                               .order_by(EcertRow.activated_at.desc()).limit(limit)).all()
        out: list[dict[str, Any]] = []
        for r, intent in found:
            common = {"setl_id": r["setl_id"], "fixmedins_name": r["fixmedins_name"]}
            out.append({"at": r["setl_time"], "kind": "settled", **common, "medfee_sumamt": r["medfee_sumamt"],
                        "psn_cash_pay": r["psn_cash_pay"]})
            if r["cancelled_at"]:
                out.append({"at": r["cancelled_at"], "kind": "cancelled", **common})
            if r["cash_refund"] and r["cash_refund"]["state"] == "done":
                out.append({"at": intent.updated_at, "kind": "refunded", **common,
                            "amount": r["cash_refund"]["refunded"]})
        for e in ecerts:
            out.append({"at": e.activated_at, "kind": "activated", "ecert_id": e.ecert_id})
            if e.revoked_at:
                out.append({"at": e.revoked_at, "kind": "revoked", "ecert_id": e.ecert_id,
                            "reason": e.revoked_reason or "revoked"})
        return sorted(out, key=lambda n: n["at"], reverse=True)[:limit]

    # -- the slip ------------------------------------------------------------------------------------------

    def slip(self, psn_no: str, setl_id: str, viewer: str) -> dict[str, Any]:
        """What the slip shows, and its check code: only the person's own settlement (another's answers as
        unknown)."""
        with unit_of_work(self.factory) as uow:
            s = uow.session
            found = [r for r in self._one(s, setl_id) if r["psn_no"] == psn_no]
            if not found:
                raise NotFound("setl_id", "no settlement of yours with this id")
            record = found[0]
            person = s.get(PersonRow, psn_no)
            audit.record(s, actor_kind="patient", actor=viewer, action="records.slip", psn_no=psn_no,
                         fields=("psn_name", "certno"), at=self.clock(), ref=setl_id)
            holder = {"name": mask_name(self.cipher.decrypt(person.psn_name_enc, "psn_name")),
                      "certno": mask_certno(self.cipher.decrypt(person.certno_enc, "certno"))}
        claims = SlipClaims(record["setl_id"], record["fixmedins_code"], int(record["setl_time"].timestamp()),
                            record["medfee_sumamt"], record["fund_pay_sumamt"], record["acct_pay"],
                            record["psn_cash_pay"])
        return {**record, "holder": holder, "check_code": make_slip_payload(self.keys[0], claims),
                "issued_at": self.clock()}

    @staticmethod
    def _one(s: Session, setl_id: str) -> list[dict[str, Any]]:
        query = _RECORDS.where(SettlementRow.setl_id == setl_id)
        return [{**_record(*found), "psn_no": found[0].psn_no} for found in s.execute(query)]

    def verify(self, code: object) -> dict[str, Any]:
        """Anyone holding a slip: is its check code ours, and does the settlement stand as printed? Says nothing
        of the person."""
        claims = None
        for key in self.keys:
            try:
                claims = parse_slip(code, key.public_key())
                break
            except CodeError as e:
                if e.kind != "signature":
                    raise SlipInvalid("code", e.message) from None
        if claims is None:
            raise SlipInvalid("code", "signature does not verify: this slip was not issued by the platform")
        with self.factory() as s:
            found = self._one(s, claims.setl_id)
        if not found or found[0]["fixmedins_code"] != claims.fixmedins_code:
            raise SlipInvalid("code", "no such settlement on the platform")
        r = found[0]
        printed = (claims.medfee_sumamt, claims.fund_pay_sumamt, claims.acct_pay, claims.psn_cash_pay)
        matches = printed == (r["medfee_sumamt"], r["fund_pay_sumamt"], r["acct_pay"], r["psn_cash_pay"])
        return {"genuine": matches, "status": r["status"], "setl_id": r["setl_id"],
                "fixmedins_code": r["fixmedins_code"], "fixmedins_name": r["fixmedins_name"],
                "setl_time": r["setl_time"], "medfee_sumamt": r["medfee_sumamt"],
                "fund_pay_sumamt": r["fund_pay_sumamt"], "acct_pay": r["acct_pay"],
                "psn_cash_pay": r["psn_cash_pay"], "cancelled_at": r["cancelled_at"],
                "settled_at_printed": datetime.fromtimestamp(claims.settled_at, timezone.utc)}


_CANCEL = aliased(SettlementRow)
# a settlement, its institution's name, its standing cancellation's time (a 2601-reversed one no longer counts) and
# the gateway payment of its cash part, if any
_RECORDS = (select(SettlementRow, InstitutionRow.fixmedins_name, _CANCEL.setl_time, PaymentIntentRow)
            .join(InstitutionRow, InstitutionRow.fixmedins_code == SettlementRow.fixmedins_code)
            .outerjoin(_CANCEL, (_CANCEL.orig_setl_id == SettlementRow.setl_id) & (_CANCEL.kind == "cancel")
                       & _CANCEL.cancelled.is_(False))
            .outerjoin(PaymentIntentRow, PaymentIntentRow.setl_id == SettlementRow.setl_id)
            .where(SettlementRow.kind == "settle"))


def _record(row: SettlementRow, name: str, cancelled_at: datetime | None,
            intent: PaymentIntentRow | None) -> dict[str, Any]:
    info = row.output.get("setlinfo", {})
    refund = None
    if intent is not None and intent.captured:
        refund = {"captured": intent.captured, "refunded": intent.refunded,
                  "state": "none" if not row.cancelled else ("done" if intent.refunded >= intent.captured
                                                             else "pending")}
    return {
        "setl_id": row.setl_id, "setl_time": row.setl_time, "fixmedins_code": row.fixmedins_code,
        "fixmedins_name": name, "mdtrt_id": row.mdtrt_id, "med_type": row.med_type, "insutype": row.insutype,
        "medfee_sumamt": row.medfee_sumamt, "fund_pay_sumamt": row.fund_pay_sumamt, "acct_pay": row.acct_pay,
        "acct_mulaid_pay": int(info.get("acct_mulaid_pay", 0) or 0), "psn_cash_pay": row.psn_cash_pay,
        "policy_ver": row.policy_id, "status": "cancelled" if row.cancelled else "standing",
        "cancelled_at": cancelled_at if row.cancelled else None, "cash_refund": refund,
        "setldetail": [{"fund_pay_type": d.get("fund_pay_type", ""), "name": d.get("fund_pay_type_name", ""),
                        "fund_payamt": int(d.get("fund_payamt", 0) or 0)}
                       for d in row.output.get("setldetail", [])],
    }


def _check_year(year: object) -> None:
    if not isinstance(year, int) or not 2000 <= year <= 2100:
        raise Invalid("year", "a year between 2000 and 2100")


def _cell(record: dict[str, Any], column: str) -> str:
    if column == "cash_refunded":
        return format_yuan(record["cash_refund"]["refunded"]) if record["cash_refund"] else ""
    value = record[column]
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_local(value)
    if column in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "acct_mulaid_pay", "psn_cash_pay"):
        return format_yuan(value)
    return str(value)
