"""Tables of registration (预约挂号) and of the notices an institution's HIS receives about what the app did.

- ``booking_slots``: a time slot an institution published (its HIS's own slot id, department, doctor, time,
  capacity, the registration fee item and price, how long before the start a booking may still be cancelled).
  ``taken`` counts live bookings; ``last_queue_no`` only grows, so a queue number is never given twice even after
  a cancellation. Both change by one conditional UPDATE, so two patients never get the last seat.
- ``bookings``: a patient's booking of a slot: which visit (``mdtrt_id``, the visit the HIS sees as a 2201) and
  which payment of the registration fee it made. ``attempt`` numbers a person's bookings of the same slot, so a
  double tap lands on one booking (unique) while a new booking after a cancellation is a new row.
- ``his_notices``: an outbox of events the HIS learns through its registered notify URL (``booking.created``,
  ``booking.cancelled``), one per (event, ref, target), delivered with retries like ``settle.notify``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime, utcnow


class BookingSlotRow(Base):
    __tablename__ = "booking_slots"
    __table_args__ = (UniqueConstraint("fixmedins_code", "his_slot_id"),
                      Index("ix_booking_slots_open", "fixmedins_code", "starts_at"))
    slot_id: Mapped[str] = mapped_column(String(40), primary_key=True)  # ours: stable per (institution, HIS slot)
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"))
    his_slot_id: Mapped[str] = mapped_column(String(30))
    dept_code: Mapped[str] = mapped_column(String(30))
    dept_name: Mapped[str] = mapped_column(String(50))
    doctor_code: Mapped[str] = mapped_column(String(30))
    doctor_name: Mapped[str] = mapped_column(String(50))
    doctor_title: Mapped[str] = mapped_column(String(30))
    med_type: Mapped[str] = mapped_column(String(6))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    capacity: Mapped[int] = mapped_column(Integer)
    taken: Mapped[int] = mapped_column(Integer, default=0)
    last_queue_no: Mapped[int] = mapped_column(Integer, default=0)
    fee_item: Mapped[str] = mapped_column(String(50))  # the registration fee's catalog code (med_list_codg)
    fee_fen: Mapped[int] = mapped_column(BigInteger)
    cancel_before_min: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10))  # open | withdrawn
    published_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BookingRow(Base):
    __tablename__ = "bookings"
    __table_args__ = (UniqueConstraint("slot_id", "psn_no", "attempt"),
                      Index("ix_bookings_person", "psn_no", "created_at"),
                      Index("ix_bookings_state", "state", "updated_at"))
    booking_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slot_id: Mapped[str] = mapped_column(ForeignKey("booking_slots.slot_id"))
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"))
    cash_payer: Mapped[str] = mapped_column(String(30), default="")  # a family member paying the fee's cash part
    attempt: Mapped[int] = mapped_column(Integer)
    # reserved → booked, or → failed (the fee was not paid; seat given back); booked → cancelling → cancelled
    state: Mapped[str] = mapped_column(String(12))
    queue_no: Mapped[int] = mapped_column(Integer)
    mdtrt_id: Mapped[str | None] = mapped_column(String(30))
    intent_id: Mapped[str | None] = mapped_column(String(64))
    setl_id: Mapped[str | None] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class HisNoticeRow(Base):
    __tablename__ = "his_notices"
    __table_args__ = (UniqueConstraint("event", "ref", "target"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fixmedins_code: Mapped[str] = mapped_column(String(30), index=True)
    event: Mapped[str] = mapped_column(String(40))
    ref: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
