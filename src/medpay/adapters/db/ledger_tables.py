"""Ledger tables: accounts with running totals, and an append-only transfer log.

Transfer rows are never updated. The state of a pending transfer is derived from the post/void row that
names it in ``pending_id``; a UNIQUE constraint on ``pending_id`` (NULL for single and pending rows) lets a
pending transfer be resolved once, even when two resolutions race. CHECK constraints repeat the balance
limits so that no writer, buggy or not, can overdraw an account.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime, utcnow
from medpay.domain.ledger import MAX_CODE_LENGTH, MAX_ID_LENGTH, MAX_REF_LENGTH

ID = String(MAX_ID_LENGTH)


class LedgerAccountRow(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(
            "NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)", name="one_limit"
        ),
        CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0",
            name="totals_not_negative",
        ),
        CheckConstraint(
            "NOT debits_must_not_exceed_credits OR debits_pending + debits_posted <= credits_posted",
            name="debits_within_credits",
        ),
        CheckConstraint(
            "NOT credits_must_not_exceed_debits OR credits_pending + credits_posted <= debits_posted",
            name="credits_within_debits",
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    ledger: Mapped[str] = mapped_column(String(MAX_CODE_LENGTH))
    code: Mapped[str] = mapped_column(String(MAX_CODE_LENGTH))
    debits_must_not_exceed_credits: Mapped[bool] = mapped_column(Boolean, default=False)
    credits_must_not_exceed_debits: Mapped[bool] = mapped_column(Boolean, default=False)
    debits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    debits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LedgerTransferRow(Base):
    __tablename__ = "ledger_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="accounts_differ"),
        CheckConstraint("timeout_s >= 0", name="timeout_not_negative"),
        CheckConstraint("kind IN ('single', 'pending', 'post_pending', 'void_pending')", name="kind_known"),
        CheckConstraint(
            "(kind IN ('post_pending', 'void_pending')) = (pending_id IS NOT NULL)",
            name="pending_id_iff_resolution",
        ),
        Index("ix_ledger_transfers_ref", "ref"),
        Index("ix_ledger_transfers_debit_account_id", "debit_account_id", "created_at"),
        Index("ix_ledger_transfers_credit_account_id", "credit_account_id", "created_at"),
        Index("ix_ledger_transfers_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    debit_account_id: Mapped[str] = mapped_column(ID, ForeignKey("ledger_accounts.id"))
    credit_account_id: Mapped[str] = mapped_column(ID, ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    # Set on post/void rows only; unique, so each pending transfer is resolved at most once.
    pending_id: Mapped[str | None] = mapped_column(ID, ForeignKey("ledger_transfers.id"), unique=True)
    timeout_s: Mapped[int] = mapped_column(Integer, default=0)
    code: Mapped[str] = mapped_column(String(MAX_CODE_LENGTH), default="")
    ref: Mapped[str] = mapped_column(String(MAX_REF_LENGTH), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # created_at + timeout_s for pending rows with a timeout: lets the expiry sweep use an index.
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
