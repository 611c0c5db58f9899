"""医疗保障基金结算清单 (4101): the settlement lists institutions upload, one standing list per settlement."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class SettlementListRow(Base):
    """One upload of a settlement's list. A later upload for the same settlement (another msgid) replaces it:
    the earlier row stays, ``status`` "replaced", and the replacement is in the audit log. The list names the
    patient (name, ID number, contacts), so the whole input is kept encrypted (``body_enc``)."""

    __tablename__ = "settlement_lists"
    __table_args__ = (Index("uq_settlement_lists_setl_id_version", "setl_id", "version", unique=True),)
    setl_list_id: Mapped[str] = mapped_column(String(30), primary_key=True)  # 清单流水号
    setl_id: Mapped[str] = mapped_column(ForeignKey("settlements.setl_id"))
    version: Mapped[int] = mapped_column(Integer)  # 1 for the first upload, then 2, 3 …
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"))
    mdtrt_id: Mapped[str] = mapped_column(String(30))
    psn_no: Mapped[str] = mapped_column(String(30))
    msgid: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10))  # standing | replaced
    body_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    replaced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
