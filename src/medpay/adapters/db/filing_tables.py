"""Tables of a person's filings at the insurance: chronic and special outpatient diseases (门慢门特病种备案)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class DiseaseFilingRow(Base):
    """A chronic or special outpatient disease filed for a person by an institution (2503), until 2504 cancels it.
    The contact details 2503 carries (tel, addr) are checked and not kept: nothing here reads them."""

    __tablename__ = "disease_filings"
    __table_args__ = (Index("ix_disease_filings_psn", "psn_no", "opsp_dise_code"),)
    trt_dcla_detl_sn: Mapped[str] = mapped_column(String(30), primary_key=True)  # 待遇申报明细流水号
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"))
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"))  # who filed it
    insutype: Mapped[str] = mapped_column(String(6))
    opsp_dise_code: Mapped[str] = mapped_column(String(30))  # 门慢门特病种目录代码
    opsp_dise_name: Mapped[str] = mapped_column(String(300))
    insu_optins: Mapped[str] = mapped_column(String(6))  # 参保机构医保区划
    ide_fixmedins_no: Mapped[str] = mapped_column(String(30))  # the institution that certified the disease
    ide_fixmedins_name: Mapped[str] = mapped_column(String(200))
    hosp_ide_date: Mapped[date] = mapped_column(Date)
    diag_dr_codg: Mapped[str] = mapped_column(String(30))
    diag_dr_name: Mapped[str] = mapped_column(String(50))
    begndate: Mapped[date] = mapped_column(Date)
    enddate: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default="active")  # active | cancelled
    memo: Mapped[str] = mapped_column(String(500), default="")  # why it was cancelled
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
