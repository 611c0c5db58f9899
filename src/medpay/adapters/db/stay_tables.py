"""Tables of an inpatient's stay as the app sees it (住院): deposits paid from the phone and discharge requests.

- ``deposit_payments``: a deposit top-up (押金) paid through the payment gateway. Its id is the gateway's idempotency
  key and the ledger posting's message id, derived from the app's request id, so a retry reaches the same payment.
  ``state``: created → held → captured → deposited (in the ledger, on the stay); or declined / voided, or refunded
  (the stay closed before the deposit could be posted). ``refunded``: what went back through the gateway (the
  unused deposit at discharge, 原路退回).
- ``discharge_requests``: the patient asked, in the app, to be discharged and settled; the HIS is told
  (``discharge.requested``) and does its 2402 and 2304 as usual.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class DepositPaymentRow(Base):
    __tablename__ = "deposit_payments"
    __table_args__ = (Index("ix_deposit_payments_stay", "mdtrt_id", "created_at"),
                      Index("ix_deposit_payments_state", "state", "updated_at"))
    payment_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"))
    mdtrt_id: Mapped[str] = mapped_column(String(30))
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"))
    payer_psn_no: Mapped[str] = mapped_column(String(30))  # whose bound payment method paid
    amount: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(10))
    in_doubt: Mapped[bool] = mapped_column(Boolean, default=False)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    gateway_ref: Mapped[str] = mapped_column(String(64), default="")
    error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DischargeRequestRow(Base):
    __tablename__ = "discharge_requests"
    mdtrt_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"))
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
