"""Keys of the insurance bureau's staff for the admin door."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class StaffKeyRow(Base):
    """An API key of a staff member: ``mpk_<key_id>_<secret>``; only the secret's SHA-256 is stored."""

    __tablename__ = "staff_keys"
    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
