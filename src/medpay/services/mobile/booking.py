"""Registration (预约挂号): institutions publish slots, patients book them from the app, the booking is the visit.

- **Slots** come from the HIS (``publish``, through the institution's signed terminal door, and the demo seed): its
  own slot id, department, doctor, time, capacity, the registration fee's catalog item and price, and the
  institution's cancellation rule. Publishing again updates a slot; withdrawing one cancels its live bookings
  (and refunds them), as a hospital does when a doctor can't come.
- **Booking is the visit.** A booking registers the visit exactly as a HIS 2201 would (``register_visit``, with an
  e-certificate credential of business type 01101), uploads the registration fee as its fee line (as a 2204) and
  pays it in one step through the one payment path every channel shares (``OneScanService.pay``: fund, personal
  account, family aid, the cash part through the gateway). The HIS learns of it through its notify URL
  (``booking.created`` with the ``mdtrt_id``, and ``settle.notify`` of the fee) and can query the visit (5201).
- **Exactly once.** The seat is claimed by one conditional UPDATE (never more bookings than seats); every later step
  has a message id derived from the booking, so a double tap, a retry or a recovery continues the same booking and
  never registers, uploads or charges twice. A fee that could not be paid gives the seat back and cancels the
  visit; a booking left half-way by a crash is finished or undone by ``recover()`` (housekeeping runs it).
- **Cancelling** (the patient, within the institution's rule; or the institution, by withdrawing the slot) refunds
  the fee (2208 and the gateway refund), withdraws the fee line (2205) and cancels the visit (2202), then gives the
  seat back. A visit the doctor has begun (more fee lines than the fee) is no longer the app's to cancel.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.base import utcnow
from medpay.adapters.db.booking_tables import BookingRow, BookingSlotRow
from medpay.adapters.db.tables import CatalogItemRow, FeeLineRow, InstitutionRow, SettlementRow
from medpay.domain.booking import LIVE_STATES, SlotFacts, booking_refusal, cancel_deadline, cancel_refusal, slot_problem
from medpay.domain.credentials import E_CERTIFICATE
from medpay.local_time import LOCAL_TZ, format_local, local_date
from medpay.money import MoneyError, format_yuan, parse_yuan
from medpay.services.credentials import Credential
from medpay.services.errors import Conflict, Invalid, NotFound, ServiceError
from medpay.services.his_notices import HisNotices
from medpay.services.persons import PersonService
from medpay.services.qr.one_scan import FINAL_STATES, OneScanService, PayResult, intent_id_for
from medpay.services.settlement import FeeLineInput, SettlementService
from medpay.services.unit_of_work import unit_of_work

DOOR = "mobile"
REGISTRATION = "01101"  # e-certificate business type 门诊挂号
SETTLEMENT = "01301"  # 门诊结算
TOKEN_TTL = timedelta(minutes=5)
RECOVERY_GRACE = timedelta(minutes=2)
LIST_DAYS = 7  # how far ahead the app lists slots
OUTPATIENT_MED_TYPES = frozenset({"11", "12", "13", "14", "51", "9901"})


@dataclass(frozen=True)
class SlotInput:
    his_slot_id: str
    dept_code: str
    dept_name: str
    doctor_code: str
    doctor_name: str
    doctor_title: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    fee_item: str
    fee: Any  # yuan, as the HIS sends it
    cancel_before_min: int = 120
    med_type: str = "11"
    withdrawn: bool = False


def slot_id_for(fixmedins_code: str, his_slot_id: str) -> str:
    return "SL" + hashlib.sha256(f"{fixmedins_code}|{his_slot_id}".encode()).hexdigest()[:30]


def _msgid(kind: str, booking_id: str) -> str:
    """The message id of one step of a booking (register, fee, pay, cancel …): stable, ≤ 40 characters."""
    return f"BK{kind}{booking_id}"[:40]


def _fee_line_sn(booking_id: str) -> str:
    return f"{booking_id}-1"[:30]


def _facts(slot: BookingSlotRow) -> SlotFacts:
    return SlotFacts(slot.status, slot.starts_at, slot.ends_at, slot.capacity, slot.taken, slot.cancel_before_min)


def publish_slots(factory: sessionmaker[Session], fixmedins_code: str, slots: list[SlotInput],
                  now: datetime) -> tuple[dict[str, int], list[str]]:
    """Store a publication in one transaction (all or none): (added/updated/withdrawn counts, the live bookings
    of slots it withdrew — for the caller to cancel). The demo seed publishes through it too."""
    if not slots:
        raise Invalid("slots", "no slots")
    counts = {"added": 0, "updated": 0, "withdrawn": 0}
    to_cancel: list[str] = []
    with unit_of_work(factory) as uow:
        s = uow.session
        seen: set[str] = set()
        for i, inp in enumerate(slots):
            field = f"slots[{i}]"
            if inp.his_slot_id in seen:
                raise Invalid(f"{field}.slot_id", f"slot {inp.his_slot_id!r} is listed twice")
            seen.add(inp.his_slot_id)
            try:
                fee_fen = parse_yuan(inp.fee, f"{field}.fee")
            except MoneyError as e:
                raise Invalid(e.field, str(e)) from None
            if inp.med_type not in OUTPATIENT_MED_TYPES:
                raise Invalid(f"{field}.med_type", "a booking is an outpatient visit (11 普通门诊, 12, 13, 14 …)")
            if fee_fen and s.get(CatalogItemRow, inp.fee_item) is None:
                raise Invalid(f"{field}.fee_item", f"{inp.fee_item!r} is not in the catalog")
            sid = slot_id_for(fixmedins_code, inp.his_slot_id)
            row = s.execute(select(BookingSlotRow).where(BookingSlotRow.slot_id == sid)
                            .with_for_update()).scalar_one_or_none()
            problem = slot_problem(now, inp.starts_at, inp.ends_at, inp.capacity, inp.cancel_before_min,
                                   row.taken if row else 0, fee_fen)
            if problem and not inp.withdrawn:  # a slot is withdrawn whatever it said
                raise Invalid(f"{field}.{problem[0]}", problem[1])
            values = dict(dept_code=inp.dept_code, dept_name=inp.dept_name, doctor_code=inp.doctor_code,
                          doctor_name=inp.doctor_name, doctor_title=inp.doctor_title, med_type=inp.med_type,
                          starts_at=inp.starts_at, ends_at=inp.ends_at, capacity=inp.capacity,
                          fee_item=inp.fee_item, fee_fen=fee_fen, cancel_before_min=inp.cancel_before_min,
                          status="withdrawn" if inp.withdrawn else "open", published_at=now)
            if row is None:
                s.add(BookingSlotRow(slot_id=sid, fixmedins_code=fixmedins_code, his_slot_id=inp.his_slot_id,
                                     taken=0, last_queue_no=0, **values))
                counts["withdrawn" if inp.withdrawn else "added"] += 1
                continue
            if row.status == "withdrawn" and not inp.withdrawn:
                raise Conflict(f"{field}.slot_id", "a withdrawn slot can't be reopened; publish a new one")
            if inp.withdrawn and row.status != "withdrawn":
                counts["withdrawn"] += 1
                to_cancel += list(s.execute(select(BookingRow.booking_id).where(
                    BookingRow.slot_id == sid, BookingRow.state.in_(LIVE_STATES))).scalars())
            else:
                counts["updated"] += 1
            for k, v in values.items():
                setattr(row, k, v)
    return counts, to_cancel


class BookingService:
    def __init__(self, factory: sessionmaker[Session], settlement: SettlementService, persons: PersonService,
                 one_scan: OneScanService | None, notices: HisNotices, clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.settlement = settlement
        self.persons = persons
        self.one_scan = one_scan
        self.notices = notices
        self.clock = clock

    # ------------------------------------------------------------------ the institution's side

    def publish(self, fixmedins_code: str, slots: list[SlotInput]) -> dict[str, int]:
        """Publish or update the institution's slots, all or none; a withdrawn slot's live bookings are cancelled
        (and refunded) after. Answers how many slots were added, updated and withdrawn."""
        counts, to_cancel = publish_slots(self.factory, fixmedins_code, slots, self.clock())
        for booking_id in to_cancel:
            self._cancel(booking_id, "the hospital withdrew the slot", by_institution=True)
        return counts

    def institution_bookings(self, fixmedins_code: str, day) -> list[dict[str, Any]]:
        """The institution's bookings of slots on ``day`` (local date), for its HIS to list (what it was told)."""
        start = datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
        with self.factory() as s:
            rows = s.execute(select(BookingRow, BookingSlotRow).join(BookingSlotRow)
                             .where(BookingSlotRow.fixmedins_code == fixmedins_code,
                                    BookingSlotRow.starts_at >= start,
                                    BookingSlotRow.starts_at < start + timedelta(days=1))
                             .order_by(BookingSlotRow.starts_at, BookingRow.queue_no)).all()
        return [self._answer(b, slot) for b, slot in rows]

    # ------------------------------------------------------------------ the patient's side

    def slots(self, fixmedins_code: str | None = None, dept_code: str | None = None) -> list[dict[str, Any]]:
        """Open slots from now to ``LIST_DAYS`` ahead, soonest first, with the seats left."""
        now = self.clock()
        query = (select(BookingSlotRow, InstitutionRow.fixmedins_name).join(InstitutionRow)
                 .where(BookingSlotRow.status == "open", BookingSlotRow.starts_at > now,
                        BookingSlotRow.starts_at < now + timedelta(days=LIST_DAYS))
                 .order_by(BookingSlotRow.starts_at, BookingSlotRow.dept_code, BookingSlotRow.doctor_code))
        if fixmedins_code:
            query = query.where(BookingSlotRow.fixmedins_code == fixmedins_code)
        if dept_code:
            query = query.where(BookingSlotRow.dept_code == dept_code)
        with self.factory() as s:
            rows = s.execute(query.limit(500)).all()
        return [{**self._slot_answer(slot), "fixmedins_name": name} for slot, name in rows]

    def book(self, psn_no: str, slot_id: str, cash_payer: str = "") -> dict[str, Any]:
        """Book ``slot_id`` for ``psn_no``: the seat, the visit, the fee paid — or nothing (seat given back).
        A repeat while the booking stands answers it again."""
        booking_id = self._claim(psn_no, slot_id, cash_payer)
        return self._proceed(booking_id)

    def bookings(self, psn_no: str) -> list[dict[str, Any]]:
        """The person's bookings, newest first (failed attempts left out)."""
        with self.factory() as s:
            rows = s.execute(select(BookingRow, BookingSlotRow).join(BookingSlotRow)
                             .where(BookingRow.psn_no == psn_no, BookingRow.state != "failed")
                             .order_by(BookingRow.created_at.desc()).limit(100)).all()
            names = dict(s.execute(select(InstitutionRow.fixmedins_code, InstitutionRow.fixmedins_name).where(
                InstitutionRow.fixmedins_code.in_({slot.fixmedins_code for _b, slot in rows}))).all())
        return [{**self._answer(b, slot), "fixmedins_name": names.get(slot.fixmedins_code, "")} for b, slot in rows]

    def cancel(self, psn_no: str, booking_id: str) -> dict[str, Any]:
        """The patient cancels within the institution's rule: the fee refunded, the visit cancelled, the seat freed."""
        with self.factory() as s:
            row = s.get(BookingRow, booking_id)
            if row is None or row.psn_no != psn_no:
                raise NotFound("booking_id", f"no booking {booking_id!r} of yours")
            slot = s.get(BookingSlotRow, row.slot_id)
        if row.state in ("cancelled", "cancelling"):
            return self._cancel(booking_id, row.reason)
        if row.state != "booked":
            raise Conflict("booking_id", f"the booking is {row.state}; nothing to cancel")
        refused = cancel_refusal(_facts(slot), self.clock())
        if refused:
            raise Conflict(*refused)
        return self._cancel(booking_id, "cancelled by the patient")

    # ------------------------------------------------------------------ steps

    def _claim(self, psn_no: str, slot_id: str, cash_payer: str) -> str:
        """The seat and the booking row, in one transaction; the live booking of this slot when there is one."""
        now = self.clock()
        for _ in range(2):  # a concurrent tap that inserted the same attempt first: answer its booking
            try:
                with unit_of_work(self.factory) as uow:
                    s = uow.session
                    slot = s.get(BookingSlotRow, slot_id)
                    if slot is None:
                        raise NotFound("slot_id", f"no slot {slot_id!r}")
                    mine = s.execute(select(BookingRow).where(BookingRow.slot_id == slot_id,
                                                              BookingRow.psn_no == psn_no)
                                     .order_by(BookingRow.attempt.desc()).limit(1)).scalar_one_or_none()
                    if mine is not None and mine.state in LIVE_STATES:
                        return mine.booking_id
                    refused = booking_refusal(_facts(slot), now)
                    if refused:
                        raise Conflict(*refused)
                    self._one_per_department(s, psn_no, slot)
                    took = s.execute(update(BookingSlotRow).where(
                        BookingSlotRow.slot_id == slot_id, BookingSlotRow.status == "open",
                        BookingSlotRow.taken < BookingSlotRow.capacity).values(
                        taken=BookingSlotRow.taken + 1, last_queue_no=BookingSlotRow.last_queue_no + 1)).rowcount
                    if took != 1:
                        raise Conflict("slot_id", "this slot is full; choose another")
                    queue_no = s.execute(select(BookingSlotRow.last_queue_no)
                                         .where(BookingSlotRow.slot_id == slot_id)).scalar_one()
                    attempt = (mine.attempt + 1) if mine else 1
                    booking_id = "BK" + hashlib.sha256(f"{slot_id}|{psn_no}|{attempt}".encode()).hexdigest()[:24]
                    s.add(BookingRow(booking_id=booking_id, slot_id=slot_id, psn_no=psn_no, cash_payer=cash_payer,
                                     attempt=attempt, state="reserved", queue_no=queue_no, reason="",
                                     created_at=now, updated_at=now))
                    return booking_id
            except IntegrityError:
                continue
        raise Conflict("slot_id", "the booking is being made by another request; look at your bookings")

    def _one_per_department(self, s: Session, psn_no: str, slot: BookingSlotRow) -> None:
        day = local_date(slot.starts_at)
        others = s.execute(select(BookingSlotRow.starts_at).join(BookingRow).where(
            BookingRow.psn_no == psn_no, BookingRow.state.in_(LIVE_STATES),
            BookingSlotRow.fixmedins_code == slot.fixmedins_code, BookingSlotRow.dept_code == slot.dept_code,
            BookingSlotRow.starts_at >= slot.starts_at - timedelta(days=1),
            BookingSlotRow.starts_at <= slot.starts_at + timedelta(days=1))).scalars()
        if any(local_date(t) == day for t in others):
            raise Conflict("slot_id", f"you already have a booking in {slot.dept_name} that day; cancel it first")

    def _proceed(self, booking_id: str) -> dict[str, Any]:
        """Take a reserved booking as far as it goes: visit, fee line, payment. Every step is idempotent."""
        with self.factory() as s:
            b = s.get(BookingRow, booking_id)
            slot = s.get(BookingSlotRow, b.slot_id)
        if b.state != "reserved":
            return self._answer(b, slot)
        code = slot.fixmedins_code
        try:
            mdtrt_id = b.mdtrt_id or self._register(b, slot)
            res = self._pay(b, slot, mdtrt_id) if slot.fee_fen else None
        except ServiceError as e:
            self._release(booking_id, f"{e.field}: {e.message}")
            raise
        if res is not None and res.state != "captured":
            if res.state in FINAL_STATES:  # declined, voided, failed: nothing was charged
                self._release(booking_id, "the registration fee was not paid")
                raise Conflict("payment", "the registration fee could not be paid; the seat was given back")
            return self._answer(self._set(booking_id, intent_id=res.intent_id), slot)  # in doubt: recovery decides
        return self._booked(booking_id, code, res)

    def _register(self, b: BookingRow, slot: BookingSlotRow) -> str:
        token = self.persons.issue_ec_token(b.psn_no, slot.fixmedins_code, REGISTRATION, ttl=TOKEN_TTL)
        visit = self.settlement.register_visit(slot.fixmedins_code, b.psn_no, slot.med_type,
                                               credential=Credential(E_CERTIFICATE, token),
                                               ipt_otp_no=f"{slot.his_slot_id}-{b.queue_no}"[:30],
                                               msgid=_msgid("R", b.booking_id))
        self._set(b.booking_id, mdtrt_id=visit.mdtrt_id)
        return visit.mdtrt_id

    def _pay(self, b: BookingRow, slot: BookingSlotRow, mdtrt_id: str) -> PayResult:
        if self.one_scan is None:
            raise Invalid("gateway", "no payment gateway is configured; book at the registration window")
        code, fee = slot.fixmedins_code, format_yuan(slot.fee_fen)
        now = self.clock()
        line = FeeLineInput(feedetl_sn=_fee_line_sn(b.booking_id), med_list_codg=slot.fee_item, cnt="1", pric=fee,
                            det_item_fee_sumamt=fee, fee_ocur_time=now,
                            details={"opt_time": format_local(now), "memo": "预约挂号"})
        self.settlement.upload_fees(code, mdtrt_id, [line], msgid=_msgid("F", b.booking_id), psn_no=b.psn_no)
        msgid = _msgid("P", b.booking_id)
        try:  # a repeat: the payment under way continues without a new credential
            self.one_scan.intent(intent_id_for(code, msgid))
            token = ""
        except NotFound:
            token = self.persons.issue_ec_token(b.psn_no, code, SETTLEMENT, ttl=TOKEN_TTL)
        return self.one_scan.pay(code, msgid, token, mdtrt_id, door=DOOR, cash_payer=b.cash_payer)

    def _booked(self, booking_id: str, code: str, res: PayResult | None) -> dict[str, Any]:
        with unit_of_work(self.factory) as uow:
            s = uow.session
            b = s.execute(select(BookingRow).where(BookingRow.booking_id == booking_id).with_for_update()).scalar_one()
            slot = s.get(BookingSlotRow, b.slot_id)
            if b.state == "reserved":
                b.state, b.updated_at = "booked", self.clock()
                if res is not None:
                    b.intent_id, b.setl_id = res.intent_id, res.setl_id
                self.notices.queue(s, code, "booking.created", booking_id, self._notice(b, slot))
            answer = self._answer(b, slot)
        self.notices.deliver(booking_id)
        return answer

    def _release(self, booking_id: str, why: str) -> None:
        """A booking whose fee was not paid: withdraw what was made (fee line, visit) and give the seat back."""
        with self.factory() as s:
            b = s.get(BookingRow, booking_id)
            slot = s.get(BookingSlotRow, b.slot_id)
        if b.mdtrt_id:
            self._undo_visit(b, slot.fixmedins_code)
        with unit_of_work(self.factory) as uow:
            s = uow.session
            row = s.execute(select(BookingRow).where(BookingRow.booking_id == booking_id).with_for_update()).scalar_one()
            if row.state == "reserved":
                row.state, row.reason, row.updated_at = "failed", why[:200], self.clock()
                self._free_seat(s, row.slot_id)

    def _cancel(self, booking_id: str, why: str, *, by_institution: bool = False) -> dict[str, Any]:
        """Refund the fee, withdraw the fee line and the visit, free the seat; each step repeatable."""
        with unit_of_work(self.factory) as uow:
            b = uow.session.execute(select(BookingRow).where(BookingRow.booking_id == booking_id)
                                    .with_for_update()).scalar_one()
            slot = uow.session.get(BookingSlotRow, b.slot_id)
            if b.state == "booked":
                if not by_institution:
                    self._only_the_fee(uow.session, b)
                b.state, b.reason, b.updated_at = "cancelling", why[:200], self.clock()
        if b.state == "cancelling":
            code = slot.fixmedins_code
            if b.setl_id and self.one_scan is not None:
                try:
                    self.one_scan.refund(code, _msgid("C", booking_id), b.intent_id)
                except Conflict:
                    self.one_scan.refund_cancelled(b.setl_id)  # cancelled before (a repeat): make sure it is refunded
            self._undo_visit(b, code)
            with unit_of_work(self.factory) as uow:
                s = uow.session
                b = s.execute(select(BookingRow).where(BookingRow.booking_id == booking_id)
                              .with_for_update()).scalar_one()
                if b.state == "cancelling":
                    b.state, b.updated_at = "cancelled", self.clock()
                    self._free_seat(s, b.slot_id)
                    self.notices.queue(s, code, "booking.cancelled", booking_id, self._notice(b, slot))
            self.notices.deliver(booking_id)
        return self._answer(b, slot)

    def _only_the_fee(self, s: Session, b: BookingRow) -> None:
        """The patient may cancel only a visit that holds nothing but its registration fee."""
        if not b.mdtrt_id:
            return
        lines = s.execute(select(func.count()).select_from(FeeLineRow).where(
            FeeLineRow.mdtrt_id == b.mdtrt_id, FeeLineRow.status == "active",
            FeeLineRow.feedetl_sn != _fee_line_sn(b.booking_id))).scalar_one()
        settled = s.execute(select(func.count()).select_from(SettlementRow).where(
            SettlementRow.mdtrt_id == b.mdtrt_id, SettlementRow.kind == "settle",
            SettlementRow.cancelled.is_(False), SettlementRow.setl_id != (b.setl_id or ""))).scalar_one()
        if lines or settled:
            raise Conflict("booking_id", "the doctor has begun this visit; ask at the registration window")

    def _undo_visit(self, b: BookingRow, code: str) -> None:
        """Withdraw the booking's fee line and cancel its visit (2205 + 2202), each by its own message id."""
        try:
            self.settlement.cancel_fees(code, b.mdtrt_id, _fee_line_sn(b.booking_id), msgid=_msgid("W", b.booking_id))
        except NotFound:
            pass  # withdrawn already (by an earlier attempt, or by the HIS)
        try:
            self.settlement.cancel_visit(code, b.mdtrt_id, msgid=_msgid("X", b.booking_id))
        except Conflict as e:
            if "already cancelled" not in e.message:
                raise

    def _free_seat(self, s: Session, slot_id: str) -> None:
        s.execute(update(BookingSlotRow).where(BookingSlotRow.slot_id == slot_id, BookingSlotRow.taken > 0)
                  .values(taken=BookingSlotRow.taken - 1))

    def _set(self, booking_id: str, **values: Any) -> BookingRow:
        with unit_of_work(self.factory) as uow:
            row = uow.session.execute(select(BookingRow).where(BookingRow.booking_id == booking_id)
                                      .with_for_update()).scalar_one()
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = self.clock()
        return row

    # ------------------------------------------------------------------ recovery

    def recover(self, grace: timedelta = RECOVERY_GRACE) -> list[tuple[str, str]]:
        """Finish or undo bookings a crash or a lost answer left half-way for longer than ``grace``: a fee the
        gateway captured makes the booking; a payment that ended otherwise (or never began) gives the seat back; a
        payment still in doubt waits for the payment recovery. An interrupted cancellation is completed."""
        cutoff = self.clock() - grace
        with self.factory() as s:
            todo = list(s.execute(select(BookingRow).where(BookingRow.state.in_(("reserved", "cancelling")),
                                                           BookingRow.updated_at <= cutoff)).scalars())
            slots = {b.slot_id: s.get(BookingSlotRow, b.slot_id) for b in todo}
        outcomes = []
        for b in todo:
            slot = slots[b.slot_id]
            if b.state == "cancelling":
                self._cancel(b.booking_id, b.reason)
                outcomes.append((b.booking_id, "cancelled"))
                continue
            res = None
            if self.one_scan is not None and slot.fee_fen:
                try:
                    res = self.one_scan.result(intent_id_for(slot.fixmedins_code, _msgid("P", b.booking_id)))
                except NotFound:
                    res = None
            if res is not None and res.state == "captured":
                self._booked(b.booking_id, slot.fixmedins_code, res)
                outcomes.append((b.booking_id, "booked"))
            elif res is not None and res.state not in FINAL_STATES:
                outcomes.append((b.booking_id, "payment in doubt"))
            elif not slot.fee_fen and b.mdtrt_id:
                self._booked(b.booking_id, slot.fixmedins_code, None)
                outcomes.append((b.booking_id, "booked"))
            else:
                self._release(b.booking_id, "not finished; the seat was given back")
                outcomes.append((b.booking_id, "failed"))
        return outcomes

    # ------------------------------------------------------------------ answers

    @staticmethod
    def _slot_answer(slot: BookingSlotRow) -> dict[str, Any]:
        return {"slot_id": slot.slot_id, "fixmedins_code": slot.fixmedins_code, "his_slot_id": slot.his_slot_id,
                "dept_code": slot.dept_code, "dept_name": slot.dept_name, "doctor_code": slot.doctor_code,
                "doctor_name": slot.doctor_name, "doctor_title": slot.doctor_title, "med_type": slot.med_type,
                "begntime": slot.starts_at, "endtime": slot.ends_at, "capacity": slot.capacity,
                "left": max(0, slot.capacity - slot.taken) if slot.status == "open" else 0, "reg_fee": slot.fee_fen,
                "cancel_until": cancel_deadline(_facts(slot)), "status": slot.status}

    def _answer(self, b: BookingRow, slot: BookingSlotRow) -> dict[str, Any]:
        return {"booking_id": b.booking_id, "psn_no": b.psn_no, "state": b.state, "queue_no": b.queue_no,
                "mdtrt_id": b.mdtrt_id, "setl_id": b.setl_id, "intent_id": b.intent_id, "reason": b.reason,
                "created_at": b.created_at, "slot": self._slot_answer(slot),
                "cancellable": b.state == "booked" and cancel_refusal(_facts(slot), self.clock()) is None}

    @staticmethod
    def _notice(b: BookingRow, slot: BookingSlotRow) -> dict[str, Any]:
        """What the HIS is told: enough to find the visit (``mdtrtId``, also readable by 5201) and the slot."""
        return {"bookingId": b.booking_id, "mdtrtId": b.mdtrt_id, "psnNo": b.psn_no, "slotId": slot.his_slot_id,
                "deptCode": slot.dept_code, "doctorCode": slot.doctor_code, "queueNo": b.queue_no,
                "begntime": format_local(slot.starts_at), "state": b.state, "setlId": b.setl_id or "",
                "fee": format_yuan(slot.fee_fen)}
