"""The rules of registration (预约挂号), free of storage: what a published slot must say, who may book it, and until
when a booking may be cancelled.

- A slot is bookable while it is open, has a seat left and has not started.
- One live booking per person, institution, department and day (the rule hospitals' booking systems apply against
  seat hoarding); a second tap on the same slot is the same booking, not a second one.
- A booking may be cancelled by the patient until ``cancel_before_min`` minutes before the slot starts (the
  institution's rule, published with the slot), and only while the visit holds nothing but the registration fee.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_CAPACITY = 500
MAX_CANCEL_BEFORE_MIN = 7 * 24 * 60
MAX_SLOT_MINUTES = 24 * 60
MAX_AHEAD = timedelta(days=180)  # how far ahead a slot may be published
LIVE_STATES = frozenset({"reserved", "booked", "cancelling"})


@dataclass(frozen=True)
class SlotFacts:
    status: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    taken: int
    cancel_before_min: int


def slot_problem(now: datetime, starts_at: datetime, ends_at: datetime, capacity: int, cancel_before_min: int,
                 taken: int = 0, fee_fen: int = 0) -> tuple[str, str] | None:
    """(field, message) of what is wrong with a slot as published at ``now``, or None."""
    if ends_at <= now:
        return "endtime", "the slot has already ended"
    if starts_at > now + MAX_AHEAD:
        return "begntime", f"slots are published at most {MAX_AHEAD.days} days ahead"
    if ends_at <= starts_at:
        return "endtime", "the slot must end after it starts"
    if ends_at - starts_at > timedelta(minutes=MAX_SLOT_MINUTES):
        return "endtime", "a slot lasts at most a day"
    if not 1 <= capacity <= MAX_CAPACITY:
        return "capacity", f"capacity is 1 to {MAX_CAPACITY} seats"
    if capacity < taken:
        return "capacity", f"{taken} seats are already booked; the capacity can't go below that"
    if not 0 <= cancel_before_min <= MAX_CANCEL_BEFORE_MIN:
        return "cancel_before_minutes", f"0 to {MAX_CANCEL_BEFORE_MIN} minutes"
    if fee_fen < 0:
        return "fee", "the registration fee can't be negative"
    return None


def booking_refusal(slot: SlotFacts, now: datetime) -> tuple[str, str] | None:
    """(field, message) of why the slot can't be booked now, or None."""
    if slot.status != "open":
        return "slot_id", "the hospital withdrew this slot"
    if slot.starts_at <= now:
        return "slot_id", "this slot has already begun; choose a later one"
    if slot.taken >= slot.capacity:
        return "slot_id", "this slot is full; choose another"
    return None


def cancel_deadline(slot: SlotFacts) -> datetime:
    return slot.starts_at - timedelta(minutes=slot.cancel_before_min)


def cancel_refusal(slot: SlotFacts, now: datetime) -> tuple[str, str] | None:
    """(field, message) of why the patient may no longer cancel, or None."""
    if now >= cancel_deadline(slot):
        return "booking_id", (f"the hospital takes cancellations until {slot.cancel_before_min} minutes before the "
                              "slot starts; ask at the registration window")
    return None

