"""Where a person is designated to be treated (人员定点): the data 5302 answers, entered by the region (the demo
seeds some). A region that binds insured persons to chosen institutions — an employee's outpatient
hospitals, a chronic patient's pharmacy — keeps one row per person, insurance type, business and choice."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class PersonDesignationRow(Base):
    """One designated institution of a person for one business (``biz_appy_type``, 业务申请类型: a regional
    dictionary) and insurance type, from ``begndate`` to ``enddate`` (none: open-ended)."""

    __tablename__ = "person_designations"
    __table_args__ = (Index("ix_person_designations_psn", "psn_no", "biz_appy_type"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"))
    insutype: Mapped[str] = mapped_column(String(6))
    biz_appy_type: Mapped[str] = mapped_column(String(3))
    fix_srt_no: Mapped[str] = mapped_column(String(3))  # 定点排序号: the person's first, second … choice
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"))
    begndate: Mapped[date] = mapped_column(Date)
    enddate: Mapped[date | None] = mapped_column(Date)
    memo: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
