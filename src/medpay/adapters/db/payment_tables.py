"""Money from outside: patients' bound payment methods, payment intents at a gateway, and the outbox of
settlement notifications pushed to terminals and HIS."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime, utcnow


class PaymentMethodRow(Base):
    """A patient's bound payment method at a gateway (a wallet or card token, never a card number)."""

    __tablename__ = "payment_methods"
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(20), default="gateway")
    payer_token_enc: Mapped[str] = mapped_column(Text)
    bound_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class PaymentIntentRow(Base):
    """One attempt to collect a settlement's cash part through a gateway, and where it stands.

    created → held → settled → captured (done), or → voided / declined / failed; ``in_doubt`` marks an
    outcome the gateway did not confirm, for the recovery job to resolve by status query.
    """

    __tablename__ = "payment_intents"
    __table_args__ = (UniqueConstraint("fixmedins_code", "msgid"), Index("ix_payment_intents_state", "state", "updated_at"))
    intent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"))
    msgid: Mapped[str] = mapped_column(String(40))
    mdtrt_id: Mapped[str] = mapped_column(ForeignKey("visits.mdtrt_id"))
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"))
    amount: Mapped[int] = mapped_column(BigInteger)
    captured: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(16))
    in_doubt: Mapped[bool] = mapped_column(default=False)
    setl_id: Mapped[str | None] = mapped_column(String(30))
    gateway_ref: Mapped[str] = mapped_column(String(64), default="")
    error: Mapped[str] = mapped_column(String(300), default="")
    request: Mapped[dict] = mapped_column(JSON)
    notify_urls: Mapped[list] = mapped_column(JSON, default=list)  # where settle.notify goes once captured
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class NotificationRow(Base):
    """Outbox of settle.notify messages; delivered (with retries) to the terminal and the HIS."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("intent_id", "target"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    intent_id: Mapped[str] = mapped_column(ForeignKey("payment_intents.intent_id"))
    target: Mapped[str] = mapped_column(String(200))  # the URL to POST to
    payload: Mapped[dict] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)  # a sender's lease, so two don't both send
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
