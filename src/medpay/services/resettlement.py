"""Re-settlement after a policy correction (issue 12): plan, show, confirm.

``plan`` recomputes, under a corrected version of a region's policy, every standing settlement (kind "settle",
not cancelled; interim ones too) of the persons insured in that region that was settled in a period (local days,
both included), and stores the differences as a *run*. Nothing else is written: no money, no accumulators.

Each person's settlements are recomputed in time order with their accumulators replayed: the year accumulators
before a recomputed settlement are what the person's standing settlements before it in the same policy year
contributed — their stored deltas, or, for ones this run already recomputed, their recomputed deltas; the
visit accumulators likewise from the earlier settlements of the same visit (interim settlements). The inputs
are what was stored: the settlement's fee lines (with their catalog items as they are now), the visit's medical
type, admission number and disease code, the institution, the person's facts, the settlement's local date and
whether it was final. The person's own share stays paid as it was: the difference is between the funds and the
patient (``medpay.domain.resettlement``). A settlement an earlier confirmed run adjusted is compared as that run
left it.

A settlement whose visit began before the corrected version came into force was made under another version: it
is left as it is (listed in the run's ``summary.skipped``) and counts in the replay with its stored deltas.

``confirm`` posts a planned run, on staff confirmation only, in one transaction: for each settlement whose
amounts changed, balanced transfers (funds ↔ institution, institution ↔ the patient's adjustment account), the
accumulator differences, the settlement's stored deltas replaced by the recomputed ones (so a later cancellation
restores what the settlement now counts; its stored ``output`` — what the institution was answered — is not
rewritten), and an audit event per settlement naming the staff member and the run. Confirming again returns the
first result. A run is stale — refused, plan again — when any of its persons was settled, cancelled or adjusted
by another run after it was planned (a fingerprint of their settlements and adjustments is compared).

Locks (PostgreSQL): the run, then its settlements (id order), then its persons (psn_no order) — the order a
cancellation takes them in (settlement, then person), so a confirmation and a cancellation never wait on each
other in a cycle; the ledger then locks accounts in id order as for any settlement.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.resettlement_tables import ResettlementLineRow, ResettlementRunRow
from medpay.adapters.db.tables import RegionRow
from medpay.domain.adjudication import AdjudicationError, adjudicate
from medpay.domain.ledger import LedgerError
from medpay.domain.model import Accumulators, FeeLine, VisitContext
from medpay.domain.policy import Policy
from medpay.domain.resettlement import (
    adjustment_posting,
    changes,
    computed_state,
    key_diff,
    stored_state,
)
from medpay.local_time import LOCAL_TZ, format_local, local_date
from medpay.services import audit, records
from medpay.services.errors import Conflict, Invalid, NotFound
from medpay.services.unit_of_work import unit_of_work

runs = ResettlementRunRow.__table__
lines_t = ResettlementLineRow.__table__
regions = RegionRow.__table__
settlements, visits, persons = records.settlements, records.visits, records.persons
fee_lines, catalog_items = records.fee_lines, records.catalog_items

PLANNED, POSTED = "planned", "posted"
_MAX_NAME = 100

_LINES_OF_SETTLEMENT = (
    select(fee_lines.c.feedetl_sn, fee_lines.c.cnt, fee_lines.c.pric, fee_lines.c.det_item_fee_sumamt,
           catalog_items.c.med_list_codg, catalog_items.c.name, catalog_items.c.chrgitm_lv,
           catalog_items.c.med_chrgitm_type, catalog_items.c.pric_uplmt_amt, catalog_items.c.selfpay_prop,
           catalog_items.c.list_type)
    .join(catalog_items, catalog_items.c.med_list_codg == fee_lines.c.med_list_codg)
    .order_by(fee_lines.c.id))
_STANDING = (select(settlements, visits.c.begntime, visits.c.admission_seq, visits.c.dise_codg,
                    visits.c.med_type.label("visit_med_type"))
             .join(visits, visits.c.mdtrt_id == settlements.c.mdtrt_id)
             .where(settlements.c.kind == "settle", settlements.c.cancelled.is_(False)))


def local_bounds(period_from: date, period_to: date) -> tuple[datetime, datetime]:
    """The UTC instants a period of local days starts at and ends before."""
    start = datetime.combine(period_from, time(0), LOCAL_TZ)
    end = datetime.combine(period_to + timedelta(days=1), time(0), LOCAL_TZ)
    return start, end


def _name(value: str, field: str) -> str:
    value = (value or "").strip()
    if not value or len(value) > _MAX_NAME or not value.isprintable():
        raise Invalid(field, f"who does it: 1–{_MAX_NAME} printable characters")
    return value


class ResettlementService:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher,
                 clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.cipher = cipher
        self.clock = clock

    # ------------------------------------------------------------------------------------------ plan

    def plan(self, admdvs: str, period_from: date, period_to: date, corrected: Policy, planned_by: str) -> dict:
        """Recompute the region's settlements of the period under ``corrected``; store and return the run (fen)."""
        planned_by = _name(planned_by, "planned_by")
        if not (isinstance(admdvs, str) and len(admdvs) == 6 and admdvs.isdigit()):
            raise Invalid("region", f"a region code (admdvs) is 6 digits; got {admdvs!r}")
        if corrected.admdvs != admdvs:
            raise Invalid("policy.admdvs", f"policy {corrected.policy_id} is region {corrected.admdvs}'s, "
                                           f"not {admdvs}'s")
        if period_to < period_from:
            raise Invalid("to", f"{period_to.isoformat()} is before from ({period_from.isoformat()}): "
                                "the period is empty")
        validity = (f"{corrected.effective_from.isoformat()} – "
                    f"{corrected.effective_to.isoformat() if corrected.effective_to else 'open'}")
        for field, day in (("from", period_from), ("to", period_to)):
            if not corrected.in_force(day):
                raise Invalid(field, f"{day.isoformat()} is outside policy {corrected.policy_id}'s validity "
                                     f"({validity})")
        start, end = local_bounds(period_from, period_to)
        with unit_of_work(self.factory) as uow:
            conn = uow.conn
            if conn.execute(select(regions.c.admdvs).where(regions.c.admdvs == admdvs)).first() is None:
                raise NotFound("region", f"unknown region {admdvs!r}")
            in_period = list(conn.execute(
                _STANDING.join(persons, persons.c.psn_no == settlements.c.psn_no)
                .where(persons.c.insuplc_admdvs == admdvs, settlements.c.setl_time >= start,
                       settlements.c.setl_time < end)
                .order_by(settlements.c.psn_no, settlements.c.setl_time, settlements.c.setl_id)))
            if not in_period:
                raise Invalid("from", f"no standing settlement of region {admdvs}'s insured persons from "
                                      f"{period_from.isoformat()} to {period_to.isoformat()}: nothing to re-settle")
            same = next((s for s in in_period if s.policy_id == corrected.policy_id), None)
            if same is not None:
                raise Invalid("policy.version", f"settlement {same.setl_id} was made under {corrected.policy_id} "
                                                "itself: a correction needs a version of its own")
            psn_nos = sorted({s.psn_no for s in in_period})
            scope = {s.setl_id for s in in_period}
            computed: list[dict[str, Any]] = []
            skipped: list[dict[str, str]] = []
            for psn_no in psn_nos:
                self._replay(conn, psn_no, end, scope, corrected, computed, skipped)
            if not computed:
                raise Invalid("from", f"none of the {len(in_period)} settlement(s) of the period was made while "
                                      f"policy {corrected.policy_id} was in force ({validity})")
            now = self.clock()
            run_id = records.new_id(now)
            summary = _summary(computed, skipped)
            conn.execute(insert(runs), {
                "run_id": run_id, "admdvs": admdvs, "period_from": period_from, "period_to": period_to,
                "policy_old": ",".join(sorted({c["policy_old"] for c in computed}))[:200],
                "policy_new": corrected.policy_id, "planned_by": planned_by, "planned_at": now,
                "fingerprint": _fingerprint(conn, psn_nos), "status": PLANNED, "posted_by": None,
                "posted_at": None, "summary": summary})
            conn.execute(insert(lines_t), [dict(c, run_id=run_id, seq=i) for i, c in enumerate(computed, 1)])
            return self._view(conn, run_id)

    def _replay(self, conn, psn_no: str, end: datetime, scope: set[str], corrected: Policy,
                computed: list[dict[str, Any]], skipped: list[dict[str, str]]) -> None:
        """Walk the person's standing settlements up to the period's end in time order, recomputing those in
        ``scope`` with the accumulators the ones before them leave."""
        history = list(conn.execute(_STANDING.where(settlements.c.psn_no == psn_no, settlements.c.setl_time < end)
                                    .order_by(settlements.c.setl_time, settlements.c.setl_id)))
        adjusted = _adjusted_states(conn, [s.setl_id for s in history if s.setl_id in scope])
        prow = records.person_row(conn, psn_no)
        person = records.person(prow, self.cipher)
        year_acc: dict[int, Accumulators] = defaultdict(Accumulators)
        visit_acc: dict[str, Accumulators] = defaultdict(Accumulators)
        institutions: dict[str, Any] = {}
        for s in history:
            year_d, visit_d = s.year_deltas or {}, s.visit_deltas or {}
            if s.setl_id in scope:
                begun = local_date(s.begntime)
                if not corrected.in_force(begun):
                    skipped.append({"setl_id": s.setl_id, "reason": f"its visit began {begun.isoformat()}, before "
                                                                    f"policy {corrected.policy_id} was in force"})
                else:
                    setl_date = local_date(s.setl_time)
                    if corrected.policy_year(setl_date) != s.setl_year:
                        raise Invalid("policy.year_start", f"puts settlement {s.setl_id} of {setl_date.isoformat()} "
                                                           f"in policy year {corrected.policy_year(setl_date)}, not "
                                                           f"{s.setl_year}: re-settlement can't move accumulators "
                                                           "between years")
                    inst = institutions.get(s.fixmedins_code)
                    if inst is None:
                        inst = institutions[s.fixmedins_code] = records.institution(conn, s.fixmedins_code)
                    ctx = VisitContext(mdtrt_id=s.mdtrt_id, med_type=s.visit_med_type, setl_date=setl_date,
                                       institution=inst, admission_seq=s.admission_seq, final=s.final,
                                       dise_codg=s.dise_codg, insured_admdvs=prow.insuplc_admdvs)
                    fee = [FeeLine(r.feedetl_sn, records.catalog_item(r), Decimal(r.cnt), Decimal(r.pric),
                                   r.det_item_fee_sumamt)
                           for r in conn.execute(_LINES_OF_SETTLEMENT.where(fee_lines.c.setl_id == s.setl_id))]
                    try:
                        adj = adjudicate(corrected, person, ctx, fee, year_acc[s.setl_year], visit_acc[s.mdtrt_id],
                                         (), False)
                    except AdjudicationError as e:
                        raise Invalid(e.field, f"settlement {s.setl_id}: {e.problem}") from None
                    old = adjusted.get(s.setl_id) or stored_state(s.output, year_d, visit_d)
                    new = computed_state(adj)
                    computed.append({
                        "setl_id": s.setl_id, "psn_no": psn_no, "mdtrt_id": s.mdtrt_id,
                        "fixmedins_code": s.fixmedins_code, "setl_time": s.setl_time, "setl_year": s.setl_year,
                        "policy_old": s.policy_id,
                        "fund_diff": new["amounts"]["fund_pay_sumamt"] - old["amounts"]["fund_pay_sumamt"],
                        "patient_diff": new["amounts"]["psn_part_amt"] - old["amounts"]["psn_part_amt"],
                        "old": old, "new": new})
                    year_d, visit_d = new["year_deltas"], new["visit_deltas"]
            year_acc[s.setl_year] = year_acc[s.setl_year].plus(year_d)
            visit_acc[s.mdtrt_id] = visit_acc[s.mdtrt_id].plus(visit_d)

    # ------------------------------------------------------------------------------------------ read

    def show(self, run_id: str) -> dict:
        """A run with its lines (fen)."""
        with self.factory() as session:
            return self._view(session.connection(), run_id)

    def list_runs(self, admdvs: str | None = None, limit: int = 50) -> list[dict]:
        """The newest runs (without their lines)."""
        query = select(runs).order_by(runs.c.planned_at.desc(), runs.c.run_id.desc()).limit(limit)
        if admdvs:
            query = query.where(runs.c.admdvs == admdvs)
        with self.factory() as session:
            return [_run_head(r) for r in session.execute(query)]

    def _view(self, conn, run_id: str) -> dict:
        run = conn.execute(select(runs).where(runs.c.run_id == run_id)).one_or_none()
        if run is None:
            raise NotFound("run_id", f"no re-settlement run {run_id!r}")
        rows = conn.execute(select(lines_t).where(lines_t.c.run_id == run_id).order_by(lines_t.c.seq))
        return {**_run_head(run), "lines": [_line_view(r) for r in rows]}

    # ------------------------------------------------------------------------------------------ confirm

    def confirm(self, run_id: str, staff: str, progress: Callable[[int, int], None] | None = None) -> dict:
        """Post a planned run (see the module's docstring): all or nothing, once. ``progress(done, total)`` is
        called after each settlement."""
        staff = _name(staff, "staff")
        with unit_of_work(self.factory) as uow:
            conn = uow.conn
            run = conn.execute(select(runs).where(runs.c.run_id == run_id).with_for_update()).one_or_none()
            if run is None:
                raise NotFound("run_id", f"no re-settlement run {run_id!r}")
            if run.status == POSTED:
                return self._view(conn, run_id)  # the first confirmation's result; nothing posted again
            rows = list(conn.execute(select(lines_t).where(lines_t.c.run_id == run_id).order_by(lines_t.c.seq)))
            conn.execute(select(settlements.c.setl_id).where(settlements.c.setl_id.in_(sorted(r.setl_id for r in rows)))
                         .order_by(settlements.c.setl_id).with_for_update()).all()
            psn_nos = sorted({r.psn_no for r in rows})
            conn.execute(select(persons.c.psn_no).where(persons.c.psn_no.in_(psn_nos)).order_by(persons.c.psn_no)
                         .with_for_update()).all()
            if _fingerprint(conn, psn_nos) != run.fingerprint:
                raise Conflict("run_id", f"run {run_id} is stale: a settlement of its persons was made, cancelled or "
                                         f"adjusted after it was planned ({format_local(run.planned_at)}); plan again")
            now = self.clock()
            for i, r in enumerate(rows, 1):
                self._post_line(uow, run, r, staff, now)
                if progress is not None:
                    progress(i, len(rows))
            audit.record(conn, actor_kind="staff", actor=staff, action="resettle.confirm", psn_no="",
                         fields=("resettlement",), at=now, ref=run_id)
            conn.execute(update(runs).where(runs.c.run_id == run_id)
                         .values(status=POSTED, posted_by=staff, posted_at=now))
            return self._view(conn, run_id)

    def _post_line(self, uow, run, r, staff: str, now: datetime) -> None:
        conn = uow.conn
        old, new = r.old, r.new
        fund_diffs = key_diff(old["funds"], new["funds"])
        year_diff = key_diff(old["year_deltas"], new["year_deltas"])
        visit_diff = key_diff(old["visit_deltas"], new["visit_deltas"])
        changed = changes(old, new)
        if fund_diffs or r.patient_diff:
            posting = adjustment_posting(f"rs:{run.run_id}:{r.setl_id}", r.setl_id, run.admdvs, r.fixmedins_code,
                                         r.psn_no, fund_diffs, r.patient_diff)
            uow.ledger.ensure_accounts(posting.accounts)
            try:
                uow.ledger.create_transfers(list(posting.transfers))
            except LedgerError as e:
                raise Conflict("run_id", f"ledger refused the adjustment of settlement {r.setl_id}: {e}") from None
        if year_diff:
            records.add_to_accumulators(conn, r.psn_no, r.setl_year, year_diff)
        if year_diff or visit_diff:
            conn.execute(update(settlements).where(settlements.c.setl_id == r.setl_id)
                         .values(year_deltas=new["year_deltas"], visit_deltas=new["visit_deltas"]))
        if changed or year_diff or visit_diff:
            audit.record(conn, actor_kind="staff", actor=staff, action="resettle.adjust", psn_no=r.psn_no,
                         fields=sorted(changed) or ("accumulators",), at=now, ref=f"{run.run_id}:{r.setl_id}")


# ---------------------------------------------------------------------------------------------- helpers

def _adjusted_states(conn, setl_ids: list[str]) -> dict[str, dict]:
    """For settlements an earlier confirmed run adjusted: the state that run left them in (the newest wins)."""
    if not setl_ids:
        return {}
    rows = conn.execute(select(lines_t.c.setl_id, lines_t.c.new)
                        .join(runs, runs.c.run_id == lines_t.c.run_id)
                        .where(and_(lines_t.c.setl_id.in_(setl_ids), runs.c.status == POSTED))
                        .order_by(runs.c.posted_at, runs.c.run_id))
    return {r.setl_id: r.new for r in rows}


def _fingerprint(conn, psn_nos: list[str]) -> str:
    """What a run's persons' settlements and confirmed adjustments are now, as one digest."""
    setl = [[r.setl_id, bool(r.cancelled)] for r in conn.execute(
        select(settlements.c.setl_id, settlements.c.cancelled).where(settlements.c.psn_no.in_(psn_nos))
        .order_by(settlements.c.setl_id))]
    posted = [r.id for r in conn.execute(
        select(lines_t.c.id).join(runs, runs.c.run_id == lines_t.c.run_id)
        .where(lines_t.c.psn_no.in_(psn_nos), runs.c.status == POSTED).order_by(lines_t.c.id))]
    return hashlib.sha256(json.dumps([setl, posted], separators=(",", ":")).encode()).hexdigest()


def _summary(computed: list[dict[str, Any]], skipped: list[dict[str, str]]) -> dict[str, Any]:
    by_field: dict[str, int] = {}
    by_fund: dict[str, int] = {}
    changed = 0
    for c in computed:
        diff = changes(c["old"], c["new"])
        funds = key_diff(c["old"]["funds"], c["new"]["funds"])
        if diff or key_diff(c["old"]["year_deltas"], c["new"]["year_deltas"]) or \
                key_diff(c["old"]["visit_deltas"], c["new"]["visit_deltas"]):
            changed += 1
        for k, v in diff.items():
            by_field[k] = by_field.get(k, 0) + v["diff"]
        for k, v in funds.items():
            by_fund[k] = by_fund.get(k, 0) + v
    return {"settlements": len(computed), "changed": changed, "persons": len({c["psn_no"] for c in computed}),
            "fund_diff": sum(c["fund_diff"] for c in computed),
            "patient_diff": sum(c["patient_diff"] for c in computed),
            "by_field": by_field, "by_fund": by_fund, "skipped": skipped}


def _run_head(run: Any) -> dict[str, Any]:
    return {"run_id": run.run_id, "region": run.admdvs, "from": run.period_from.isoformat(),
            "to": run.period_to.isoformat(), "policy_old": [x for x in run.policy_old.split(",") if x],
            "policy_new": run.policy_new, "planned_by": run.planned_by, "planned_at": format_local(run.planned_at),
            "status": run.status, "posted_by": run.posted_by,
            "posted_at": format_local(run.posted_at) if run.posted_at else None, "summary": run.summary}


def _line_view(r: Any) -> dict[str, Any]:
    old, new = r.old, r.new
    funds = {k: {"old": old["funds"].get(k, 0), "new": new["funds"].get(k, 0),
                 "diff": new["funds"].get(k, 0) - old["funds"].get(k, 0)}
             for k in sorted(set(old["funds"]) | set(new["funds"]))}
    return {"setl_id": r.setl_id, "psn_no": r.psn_no, "mdtrt_id": r.mdtrt_id, "fixmedins_code": r.fixmedins_code,
            "setl_time": format_local(r.setl_time), "setl_year": r.setl_year, "policy_old": r.policy_old,
            "changes": changes(old, new), "funds": funds, "fund_diff": r.fund_diff, "patient_diff": r.patient_diff,
            "year_deltas_diff": key_diff(old["year_deltas"], new["year_deltas"]),
            "visit_deltas_diff": key_diff(old["visit_deltas"], new["visit_deltas"])}
