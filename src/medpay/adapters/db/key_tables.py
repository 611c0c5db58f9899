"""The fingerprints of the keys a database was written with (``medpay.adapters.db.key_check``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class KeyFingerprintRow(Base):
    """A key of the keyring this database's data was written with: its purpose, its id and a one-way
    fingerprint (never the key). One ``index`` row at most: the index key the stored blind indexes use."""

    __tablename__ = "key_fingerprints"
    purpose: Mapped[str] = mapped_column(String(16), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
