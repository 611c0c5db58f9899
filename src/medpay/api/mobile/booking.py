"""预约挂号: the institution publishes slots through its signed terminal door (``PUT /api/v1/terminal/schedule``) and
lists its bookings; the patient's app lists slots, books one (the visit and its fee in one step), sees the queue
number and cancels within the hospital's rule (``services.mobile.booking``). The app's requests are signed by the
e-certificate's device key; ``?for=psn_no`` books for a family member (``api.mobile.family``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, StrictInt, StrictStr

from medpay.api import described
from medpay.api.bodies import json_body
from medpay.api.mobile.ecert import openapi_signed, signed_by_device
from medpay.api.mobile.family import For, patient
from medpay.api.terminal import verify_terminal
from medpay.interface_format import to_yuan
from medpay.local_time import LOCAL_TZ
from medpay.services.his_notices import HisNotices
from medpay.services.errors import Invalid
from medpay.services.mobile.booking import BookingService, SlotInput

router = APIRouter(prefix="/api/v1/mobile", tags=["mobile"])
institution_router = APIRouter(prefix="/api/v1/terminal", tags=["terminal"])
_ANSWERS = {401: "the device signature is refused (missing, stale, wrong, replayed); with ?for=, no session",
            403: "the e-certificate was revoked; with ?for=, no family link in force (or no CSRF token)"}
_TERMINAL = {401: "terminal signature refused", 422: "a field is missing or malformed (named)"}
Id = r"^[A-Za-z0-9_-]+$"


def booking_service(request: Request) -> BookingService:
    svc = getattr(request.app.state, "booking", None)
    if svc is None:
        p = request.app.state.platform
        clock = p.settlement.clock
        svc = request.app.state.booking = BookingService(
            p.factory, p.settlement, p.persons, p.one_scan, HisNotices(p.factory, p.cipher, clock), clock=clock)
    return svc


class PublishedSlot(BaseModel):
    slot_id: StrictStr = Field(..., min_length=1, max_length=30, pattern=Id, description="the HIS's own slot id (排班号)")
    dept_code: StrictStr = Field(..., min_length=1, max_length=30, description="科室编码")
    dept_name: StrictStr = Field(..., min_length=1, max_length=50, description="科室名称")
    doctor_code: StrictStr = Field(..., min_length=1, max_length=30, description="医师编码")
    doctor_name: StrictStr = Field(..., min_length=1, max_length=50)
    doctor_title: StrictStr = Field("", max_length=30, description="职称 (主任医师, 副主任医师 …)")
    med_type: StrictStr = Field("11", max_length=6, description="医疗类别 of the visit: 11 普通门诊 …")
    begntime: datetime = Field(..., description="slot start, ISO 8601 with offset (or China time)")
    endtime: datetime
    capacity: StrictInt = Field(..., ge=1, le=500)
    fee_item: StrictStr = Field(..., min_length=1, max_length=50, description="the registration fee's catalog code")
    fee: float | StrictStr = Field(..., description="挂号费/诊查费, yuan (0: no fee)")
    cancel_before_minutes: StrictInt = Field(120, ge=0, le=10080, description="cancellable until this long before the start")
    withdrawn: bool = Field(False, description="true withdraws the slot: its bookings are cancelled and refunded")

    model_config = {"extra": "forbid"}


class Schedule(BaseModel):
    slots: list[PublishedSlot] = Field(..., min_length=1, max_length=500)

    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{"slots": [{
        "slot_id": "20261204-NK01-AM", "dept_code": "NK", "dept_name": "内科", "doctor_code": "D001",
        "doctor_name": "赵医生", "doctor_title": "主任医师", "begntime": "2026-12-04T08:00:00+08:00",
        "endtime": "2026-12-04T12:00:00+08:00", "capacity": 30, "fee_item": "001201000010000", "fee": "25.00",
        "cancel_before_minutes": 120}]}]}}


class Published(BaseModel):
    added: int
    updated: int
    withdrawn: int


class Slot(BaseModel):
    slot_id: str = Field(..., description="the platform's slot id (book with it)")
    fixmedins_code: str
    fixmedins_name: str = ""
    his_slot_id: str
    dept_code: str
    dept_name: str
    doctor_code: str
    doctor_name: str
    doctor_title: str
    med_type: str
    begntime: datetime
    endtime: datetime
    capacity: int
    left: int = Field(..., description="seats left")
    reg_fee: float = Field(..., description="registration fee (挂号费/诊查费), yuan")
    cancel_until: datetime = Field(..., description="the patient may cancel until then")
    status: str = Field(..., description="open or withdrawn")


class Booking(BaseModel):
    booking_id: str
    psn_no: str
    state: str = Field(..., description="reserved (under way), booked, cancelling, cancelled, failed")
    queue_no: int = Field(..., description="就诊序号")
    mdtrt_id: str | None = Field(None, description="the visit (as a 2201 answers it); the HIS sees it too")
    setl_id: str | None = Field(None, description="the registration fee's settlement")
    intent_id: str | None = None
    reason: str = ""
    created_at: datetime
    cancellable: bool
    fixmedins_name: str = ""
    slot: Slot


class BookSlot(BaseModel):
    slot_id: StrictStr = Field(..., min_length=1, max_length=40, pattern=Id)
    model_config = {"extra": "forbid"}


def _slot_input(s: PublishedSlot) -> SlotInput:
    start, end = (t if t.tzinfo else t.replace(tzinfo=LOCAL_TZ) for t in (s.begntime, s.endtime))  # no offset: China
    return SlotInput(s.slot_id, s.dept_code, s.dept_name, s.doctor_code, s.doctor_name, s.doctor_title, start, end,
                     s.capacity, s.fee_item, s.fee, s.cancel_before_minutes, s.med_type, s.withdrawn)


@institution_router.put("/schedule", response_model=Published,
                        openapi_extra={**described.signed("terminal"), **described.json_body(Schedule)},
                        summary="发布号源 / publish or update the institution's booking slots (the HIS's schedule)",
                        description="All or none. A slot is keyed by the HIS's `slot_id`: publishing it again updates "
                                    "it (capacity never below the seats booked); `withdrawn` cancels and refunds its "
                                    "bookings. The institution learns of bookings through its notify URL "
                                    "(`booking.created`, `booking.cancelled`) and `GET /schedule/bookings`.",
                        responses=described.answers("/api/v1/terminal", {
                            **_TERMINAL, 409: "a withdrawn slot can't be reopened"}))
async def publish(request: Request) -> dict[str, int]:
    body = await request.body()
    _terminal, code = await verify_terminal(request, body)
    req = json_body(Schedule, body)
    return await run_in_threadpool(booking_service(request).publish, code, [_slot_input(s) for s in req.slots])


@institution_router.get("/schedule/bookings", response_model=list[Booking],
                        openapi_extra=described.signed("terminal"),
                        summary="预约名单 / the institution's bookings on a day (China time)",
                        responses=described.answers("/api/v1/terminal", _TERMINAL))
async def institution_bookings(request: Request, day: str = Query(..., pattern=r"^\d{4}-\d{2}-\d{2}$",
                                                                  json_schema_extra={"format": "date"},
                                                                  description="yyyy-mm-dd (China time)")) -> list[dict]:
    _terminal, code = await verify_terminal(request, b"")
    try:  # strictly a calendar date: not a number read as unix time
        on = date.fromisoformat(day)
    except ValueError:
        raise Invalid("day", f"must be a date yyyy-mm-dd, got {day!r}") from None
    return [to_yuan(b) for b in await run_in_threadpool(booking_service(request).institution_bookings, code, on)]


@router.get("/slots", response_model=list[Slot], openapi_extra=openapi_signed(None),
            summary="号源 / open booking slots of the next days",
            responses=described.answers(router.prefix, _ANSWERS))
async def slots(request: Request,
                fixmedins_code: str | None = Query(None, max_length=30, pattern=Id, description="one institution"),
                dept_code: str | None = Query(None, max_length=30, description="one department")) -> list[dict]:
    await signed_by_device(request)
    return [to_yuan(s) for s in await run_in_threadpool(booking_service(request).slots, fixmedins_code, dept_code)]


@router.get("/bookings", response_model=list[Booking], openapi_extra=openapi_signed(None),
            summary="我的预约 / my bookings (or a family member's, with ?for=)",
            responses=described.answers(router.prefix, _ANSWERS))
async def bookings(request: Request, for_psn: str | None = For) -> list[dict]:
    _ecert, device_psn = await signed_by_device(request)
    psn_no, _payer = await patient(request, device_psn, for_psn)
    return [to_yuan(b) for b in await run_in_threadpool(booking_service(request).bookings, psn_no)]


@router.post("/bookings", response_model=Booking, openapi_extra=openapi_signed(BookSlot),
             summary="预约挂号 / book a slot: the visit is registered and its fee paid in one step",
             description="A repeat (double tap, reload) answers the same booking. A fee that can't be paid gives the "
                         "seat back (409) and leaves nothing behind.",
             responses=described.answers(router.prefix, {
                 **_ANSWERS, 404: "no such slot", 409: "full, begun, withdrawn, one booking per department and day, "
                                                        "or the fee could not be paid",
                 422: "a field is missing or malformed, or no payment gateway is configured"}))
async def book(request: Request, for_psn: str | None = For) -> dict[str, Any]:
    body = await request.body()
    _ecert, device_psn = await signed_by_device(request, body)
    psn_no, cash_payer = await patient(request, device_psn, for_psn, changes_state=True)
    req = json_body(BookSlot, body)
    return to_yuan(await run_in_threadpool(booking_service(request).book, psn_no, req.slot_id, cash_payer))


@router.post("/bookings/{booking_id}/cancel", response_model=Booking, openapi_extra=openapi_signed(None),
             summary="取消预约 / cancel a booking within the hospital's rule: the fee refunded, the seat freed",
             responses=described.answers(router.prefix, {
                 **_ANSWERS, 404: "no such booking of yours (another person's answers the same)",
                 409: "past the hospital's cancellation time, or the doctor has begun the visit"}))
async def cancel(request: Request, booking_id: str = PathParam(..., max_length=32, pattern=Id),
                 for_psn: str | None = For) -> dict[str, Any]:
    body = await request.body()
    _ecert, device_psn = await signed_by_device(request, body)
    psn_no, _payer = await patient(request, device_psn, for_psn, changes_state=True)
    return to_yuan(await run_in_threadpool(booking_service(request).cancel, psn_no, booking_id))

