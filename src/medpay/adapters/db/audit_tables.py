"""The access log of personal data, and the seals that make tampering with it evident.

``audit_events`` is append-only: one row per time someone was shown or handed personal data (an institution
reading a person's card, a settlement answer carrying the name and ID number, a terminal scanning a code, a
patient activating an e-certificate). ``audit_seals`` chain the events in blocks: each seal covers a range of
event ids with the SHA-256 of the previous seal's digest and of every event in the range, so a changed,
removed or slipped-in event, or a removed seal in the middle, no longer verifies.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class AuditEventRow(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_psn", "psn_no", "at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor_kind: Mapped[str] = mapped_column(String(12))  # institution | terminal | patient | operator
    actor: Mapped[str] = mapped_column(String(40))  # fixmedins_code, terminal id, ecert id, operator name
    action: Mapped[str] = mapped_column(String(40))  # what was asked: "person_info", "settle", "ec.query", …
    psn_no: Mapped[str] = mapped_column(String(30))  # whose data (not a foreign key: the log outlives rows)
    fields: Mapped[str] = mapped_column(String(120))  # the personal fields shown, comma-separated
    ref: Mapped[str] = mapped_column(String(64), default="")  # the request's msgid or key, when it has one


class AuditSealRow(Base):
    __tablename__ = "audit_seals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    first_id: Mapped[int] = mapped_column(BigInteger, unique=True)  # unique: two sealers can't both seal a range
    last_id: Mapped[int] = mapped_column(BigInteger)
    events: Mapped[int] = mapped_column(Integer)
    prev_digest: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[datetime] = mapped_column(UtcDateTime)
