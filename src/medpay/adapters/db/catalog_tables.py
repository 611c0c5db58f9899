"""Tables of an institution's catalog mapping (目录对照): its own item codes mapped to insurance catalog codes."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class CatalogMappingRow(Base):
    """One mapping uploaded by 3301: the institution's code (``fixmedins_hilist_id``, the ``medins_list_codg`` of its
    fee lines) → an insurance catalog code. Rows are never deleted: a re-mapping ends the standing row as
    ``replaced`` and a 3302 as ``cancelled`` (with when and by which msgid), so the history stays readable (1317
    with ``vali_flag`` 0)."""

    __tablename__ = "catalog_mappings"
    __table_args__ = (
        # one standing mapping per institution code
        Index("uq_catalog_mappings_active", "fixmedins_code", "fixmedins_hilist_id", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
        Index("ix_catalog_mappings_updated", "fixmedins_code", "updated_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rid: Mapped[str] = mapped_column(String(40), unique=True)  # 唯一记录号, as 1317 answers it
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"))
    fixmedins_hilist_id: Mapped[str] = mapped_column(String(30))  # 定点医药机构目录编号
    fixmedins_hilist_name: Mapped[str] = mapped_column(String(200))
    list_type: Mapped[str] = mapped_column(String(6))  # 目录类别, the catalog item's
    med_list_codg: Mapped[str] = mapped_column(ForeignKey("catalog_items.med_list_codg"))
    begndate: Mapped[date] = mapped_column(Date)
    enddate: Mapped[date | None] = mapped_column(Date)  # None: open-ended
    details: Mapped[dict] = mapped_column(JSON)  # aprvno, dosform, exct_cont, item_cont, prcunt, spec, pacspec, memo
    status: Mapped[str] = mapped_column(String(10), default="active")  # active | replaced | cancelled
    opter_id: Mapped[str] = mapped_column(String(30), default="")
    opter_name: Mapped[str] = mapped_column(String(50), default="")
    msgid: Mapped[str] = mapped_column(String(30), default="")  # the 3301 that uploaded it
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_msgid: Mapped[str] = mapped_column(String(30), default="")  # the 3301 that replaced it, or the 3302
