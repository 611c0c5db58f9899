"""Re-settlement runs after a policy correction (``medpay.services.resettlement``): what was planned, for whom,
the differences found per settlement, and whether staff confirmed them (migration 0018).

A run is written once when planned and once more when confirmed (``status`` planned → posted, with who posted it
and the result); its lines never change. The settlements it adjusts keep their stored ``output``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class ResettlementRunRow(Base):
    __tablename__ = "resettlement_runs"
    __table_args__ = (Index("ix_resettlement_runs_region", "admdvs", "planned_at"),)
    run_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    admdvs: Mapped[str] = mapped_column(String(6))  # the region whose insured persons' settlements are re-settled
    period_from: Mapped[date] = mapped_column(Date)  # local (China Standard Time) days, both included
    period_to: Mapped[date] = mapped_column(Date)
    policy_old: Mapped[str] = mapped_column(String(200))  # the policy ids the settlements were made under, comma-joined
    policy_new: Mapped[str] = mapped_column(String(40))  # the corrected version's policy id
    planned_by: Mapped[str] = mapped_column(String(100))
    planned_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # SHA-256 of the run's persons' settlements (ids, cancelled flags) and earlier posted adjustments when planned:
    # a different one at confirmation means something happened since (the run is stale)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10))  # planned | posted
    posted_by: Mapped[str | None] = mapped_column(String(100))
    posted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    summary: Mapped[dict] = mapped_column(JSON)  # counts, totals (fen), settlements left as they were and why


class ResettlementLineRow(Base):
    """One recomputed settlement of a run: its amounts, funds and accumulator deltas as they stood and as the
    corrected policy makes them (fen; accumulator deltas as the engine keys them)."""

    __tablename__ = "resettlement_lines"
    __table_args__ = (Index("uq_resettlement_lines_run_setl", "run_id", "setl_id", unique=True),
                      Index("ix_resettlement_lines_setl", "setl_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("resettlement_runs.run_id"))
    seq: Mapped[int] = mapped_column(Integer)  # the order the run recomputed it in (time order per person)
    setl_id: Mapped[str] = mapped_column(ForeignKey("settlements.setl_id"))
    psn_no: Mapped[str] = mapped_column(String(30))
    mdtrt_id: Mapped[str] = mapped_column(String(30))
    fixmedins_code: Mapped[str] = mapped_column(String(30))
    setl_time: Mapped[datetime] = mapped_column(UtcDateTime)
    setl_year: Mapped[int] = mapped_column(Integer)
    policy_old: Mapped[str] = mapped_column(String(40))
    fund_diff: Mapped[int] = mapped_column(BigInteger)  # new − old fund_pay_sumamt
    patient_diff: Mapped[int] = mapped_column(BigInteger)  # new − old psn_part_amt (= −fund_diff)
    old: Mapped[dict] = mapped_column(JSON)  # {"amounts": {…}, "funds": {fund_pay_type: fen}, "year_deltas", "visit_deltas"}
    new: Mapped[dict] = mapped_column(JSON)
