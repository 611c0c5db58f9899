"""Files exchanged through 9101 (upload) and 9102 (download): the 3202 detail-reconciliation file a HIS
uploads, and the result file 3202 writes for it to download. Each belongs to one institution."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime, utcnow


class InterfaceFileRow(Base):
    __tablename__ = "interface_files"
    __table_args__ = (CheckConstraint("kind IN ('upload', 'download')", name="kind_known"),)
    file_qury_no: Mapped[str] = mapped_column(String(40), primary_key=True)  # 文件查询号
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(8))  # upload (9101, from the HIS) | download (written for 9102)
