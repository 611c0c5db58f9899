"""A visit's diagnosis lists (``diseinfo``) as 2203, 2401 and 2402 sent them; 5202 answers them
(``medpay.services.visit_diagnoses``, rules in ``medpay.domain.diagnoses``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class VisitDiagnosisRow(Base):
    """One row of one list: a visit has at most one standing list per 出入院诊断类别 (1 入院, 2 出院); ``position``
    is the row's place in the list as sent."""

    __tablename__ = "visit_diagnoses"
    __table_args__ = (Index("uq_visit_diagnoses_row", "mdtrt_id", "inout_diag_type", "position", unique=True),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mdtrt_id: Mapped[str] = mapped_column(ForeignKey("visits.mdtrt_id"))
    inout_diag_type: Mapped[str] = mapped_column(String(3))
    position: Mapped[int] = mapped_column(Integer)
    diag_type: Mapped[str] = mapped_column(String(3))
    diag_srt_no: Mapped[int] = mapped_column(Integer)
    maindiag_flag: Mapped[str] = mapped_column(String(3))
    diag_code: Mapped[str] = mapped_column(String(20))
    diag_name: Mapped[str] = mapped_column(String(255))
    diag_dept: Mapped[str] = mapped_column(String(50))
    dise_dor_no: Mapped[str] = mapped_column(String(30))
    dise_dor_name: Mapped[str] = mapped_column(String(50))
    diag_time: Mapped[datetime] = mapped_column(UtcDateTime)
    vali_flag: Mapped[str] = mapped_column(String(3))
    msgid: Mapped[str] = mapped_column(String(30))  # the message that sent the list
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
