"""One-scan settlement for terminals, the payment gateway's callbacks, and the payment admin tasks."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, StrictStr

from medpay.adapters.gateway.port import CallbackRejected, verify_callback
from medpay.api import described
from medpay.api.bodies import json_body
from medpay.api.deps import platform
from medpay.api.errors import error_response
from medpay.api.mobile.booking import booking_service
from medpay.api.mobile.ecert import openapi_signed as mobile_signed, signed_by_device
from medpay.api.mobile.stay import stay_service
from medpay.api.platform import Platform
from medpay.api.terminal import verify_terminal
from medpay.api.uploads import read_multipart
from medpay.interface_format import to_yuan
from medpay.services.errors import Invalid
from medpay.services.qr.bill_pay import BillPayService
from medpay.services.qr.one_scan import OneScanService, PayResult

terminal_router = APIRouter(prefix="/api/v1/terminal", tags=["terminal"])
mobile_router = APIRouter(prefix="/api/v1/mobile", tags=["mobile"])
partner_router = APIRouter(prefix="/api/v1/partner", tags=["partner"])
admin_router = APIRouter(prefix="/api/v1/admin/payments", tags=["admin"])


def _one_scan(p: Platform) -> OneScanService:
    if p.one_scan is None:
        raise Invalid("gateway", "no payment gateway is configured (MEDPAY_GATEWAY_URL); pay at the window")
    return p.one_scan


class OneScanSettle(BaseModel):
    msgid: str = Field(..., min_length=1, max_length=40, description="the terminal's message id; a retry reuses it")
    ecToken: str = Field(..., min_length=1, max_length=64, description="from ec.query with businessType 01301")
    mdtrt_id: str = Field(..., min_length=1, max_length=30)
    acct_used_flag: str = Field("1", pattern="^[01]$")
    notify_url: str | None = Field(None, max_length=200, description="where to push settle.notify (the HIS's)")

    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{
        "msgid": "TM0001202611231000000001", "ecToken": "3f6c…(40 hex)", "mdtrt_id": "26112310000012345678",
        "acct_used_flag": "1", "notify_url": "http://his.example/medpay/notify"}]}}


class SettlementAnswer(BaseModel):
    setlinfo: dict[str, Any] = Field(..., description="结算信息, as 2207 answers it (yuan)")
    setldetail: list[dict[str, Any]] = Field(..., description="基金分项结算信息")


class Payment(BaseModel):
    intent_id: str
    state: str = Field(..., description="created, held, settled, captured (done), voided, declined, failed; or "
                                        "in_doubt: the gateway's answer is awaited (recovery resolves it)")
    setl_id: str | None = Field(None, description="结算ID, once settled")
    settlement: SettlementAnswer | None = None
    notify: dict[str, Any] | None = Field(None, description="the settle.notify pushed to the HIS")


def payment_answer(res: PayResult) -> dict[str, Any]:
    """A payment as every door answers it (``Payment``), amounts in yuan."""
    return {"intent_id": res.intent_id, "state": res.state, "setl_id": res.setl_id,
            "settlement": to_yuan(res.output) if res.output else None, "notify": res.notify}


def _terminal_body(model: type[BaseModel]) -> dict[str, Any]:
    """A terminal operation's body (read raw: the signature covers its bytes) and its security scheme."""
    return {**described.signed("terminal"), **described.json_body(model)}


_TERMINAL = "/api/v1/terminal"


@terminal_router.post("/settle", summary="一码付结算 / one-scan settlement (fund + account + cash via the gateway)",
                      response_model=Payment, openapi_extra=_terminal_body(OneScanSettle),
                      responses=described.answers(_TERMINAL, {
                          401: "terminal signature refused", 403: "the token was issued elsewhere or for another use",
                          404: "unknown token or visit", 409: "msgid reused for another payment, or the bill changed",
                          422: "a field is missing or malformed, the token expired, or no payment gateway"}))
async def one_scan_settle(request: Request) -> JSONResponse:
    body = await request.body()
    _terminal, code = await verify_terminal(request, body)
    req = json_body(OneScanSettle, body)
    res = await run_in_threadpool(_one_scan(request.app.state.platform).pay, code, req.msgid, req.ecToken,
                                  req.mdtrt_id, acct_used_flag=req.acct_used_flag == "1",
                                  notify_urls=(req.notify_url,) if req.notify_url else ())
    return JSONResponse(payment_answer(res))


class CallbackReceived(BaseModel):
    received: str = Field(..., description="the event's id")


class CallbackEvent(BaseModel):
    """A payment event: a hint (the status query is the truth); other fields the gateway adds are welcome."""

    event_id: StrictStr = Field("", max_length=128)
    type: StrictStr = Field("", max_length=40, description="capture, void, refund …")
    intent_id: StrictStr = Field("", max_length=128)

    model_config = {"extra": "allow"}


@partner_router.post("/gateway/callback", summary="支付网关回调 / signed gateway callback (a hint: truth is a status query)",
                     response_model=CallbackReceived,
                     openapi_extra={**described.signed("gateway"), **described.json_body(CallbackEvent)},
                     responses=described.answers("/api/v1/partner", {
                         401: "the signature headers are missing, stale or wrong (named in the answer)",
                         422: "the event is not a JSON object of the described fields, or no payment gateway is "
                              "configured"}))
async def gateway_callback(request: Request) -> JSONResponse:
    body = await request.body()
    p: Platform = request.app.state.platform
    try:
        event = verify_callback(request.headers, body, p.gateway_secret)
    except CallbackRejected as e:
        return error_response(401, "unauthorized", e.field, e.message)
    event = json_body(CallbackEvent, body).model_dump()  # signed by the gateway, and as described
    # duplicates and late arrivals are harmless: recovery asks the gateway and is idempotent
    await run_in_threadpool(_one_scan(p).recover)
    return JSONResponse({"received": event.get("event_id", "")})


class Resolved(BaseModel):
    intent_id: str
    state: str


class BookingResolved(BaseModel):
    booking_id: str
    state: str


class Recovery(BaseModel):
    resolved: list[Resolved]
    bookings: list[BookingResolved] = Field(..., description="bookings finished or undone after the payments")
    his_notices: int = Field(..., description="notices to HIS systems delivered on this retry")


_NO_GATEWAY = {422: "no payment gateway is configured"}


@admin_router.post("/recover", summary="处理待定支付 / resolve in-doubt payments by status query",
                   description="Then finishes or undoes the bookings those payments left half-way, and sends again "
                               "the notices HIS systems did not take.",
                   response_model=Recovery, responses=described.answers("/api/v1/admin", _NO_GATEWAY))
def recover(request: Request, p: Platform = Depends(platform)) -> dict[str, Any]:
    resolved = [{"intent_id": i, "state": s} for i, s in _one_scan(p).recover()]
    resolved += [{"intent_id": i, "state": s} for i, s in stay_service(request).recover()]  # deposits
    bookings = booking_service(request)
    return {"resolved": resolved, "bookings": [{"booking_id": b, "state": s} for b, s in bookings.recover()],
            "his_notices": bookings.notices.deliver()}


class Mismatch(BaseModel):
    intent_id: str
    gateway_fen: int
    ledger_fen: int
    payment_fen: int


class Statement(BaseModel):
    day: date
    rows: int = Field(..., description="lines of the gateway's statement")
    gateway_total_fen: int
    ledger_total_fen: int
    medpay_total_fen: int
    balanced: bool
    mismatches: list[Mismatch]


@admin_router.get("/statement/{day}", summary="网关对账 / reconcile the gateway's daily statement with our payments",
                  response_model=Statement, responses=described.answers("/api/v1/admin", {
                      **_NO_GATEWAY, 422: "the day is not yyyy-mm-dd, or no payment gateway is configured"}))
def statement(day: str = PathParam(..., pattern=r"^\d{4}-\d{2}-\d{2}$", description="yyyy-mm-dd (China time)",
                                   json_schema_extra={"format": "date"}),
              p: Platform = Depends(platform)) -> dict[str, Any]:
    try:  # strictly a calendar date: not a number read as unix time
        on = date.fromisoformat(day)
    except ValueError:
        raise Invalid("day", f"must be a date yyyy-mm-dd, got {day!r}") from None
    return _one_scan(p).reconcile_statement(on)


def bill_service(request: Request) -> BillPayService:
    svc = getattr(request.app.state, "bills", None)
    if svc is None:
        from medpay.adapters.platform_keys import default_signing_key

        p: Platform = request.app.state.platform
        svc = BillPayService(p.factory, p.settlement, p.persons, p.one_scan, default_signing_key())
        request.app.state.bills = svc
    return svc


class BillRequest(BaseModel):
    mdtrt_id: str = Field(..., min_length=1, max_length=30)

    model_config = {"extra": "forbid"}


class BillCode(BaseModel):
    bill_id: str
    payload: str = Field(..., description="the bill code's text (MPBILL1.…), for the window's screen")
    svg: str = Field(..., description="the bill code as an SVG QR code")
    medfee_sumamt: float = Field(..., description="医疗费总额, yuan")
    psn_cash_pay: float = Field(..., description="the patient's cash part as pre-settled now, yuan")


@terminal_router.post("/bills", summary="生成账单码 / a bill code for the window's screen (the patient scans it)",
                      operation_id="create_bill_code", response_model=BillCode,
                      openapi_extra=_terminal_body(BillRequest),
                      responses={200: {"description": "the bill code", "links": {"PreviewBill": {
                          "operationId": "preview_bill_code", "requestBody": {"bill": "$response.body#/payload"},
                          "description": "the patient's app reads the code the window shows"}}},
                                 **described.answers(_TERMINAL, {
                          401: "terminal signature refused", 404: "no such visit at this institution",
                          409: "the visit has nothing to settle", 422: "a field is missing or malformed"})})
async def create_bill(request: Request) -> JSONResponse:
    body = await request.body()
    _terminal, code = await verify_terminal(request, body)
    req = json_body(BillRequest, body)
    return JSONResponse(to_yuan(await run_in_threadpool(bill_service(request).create_bill, code, req.mdtrt_id)))


class BillPayment(BaseModel):
    bill: str = Field(..., min_length=1, max_length=512, description="the scanned bill code (MPBILL1.…)")

    model_config = {"extra": "forbid"}


class BillText(BaseModel):
    bill: str = Field(..., max_length=512, description="the bill code's text (MPBILL1.…), pasted")


class BillPreview(BaseModel):
    bill: str = Field(..., description="the bill code's text: what the app signs to pay it (POST /bills/pay)")
    bill_id: str
    fixmedins_code: str = Field(..., description="定点医药机构编号")
    fixmedins_name: str = Field(..., description="定点医药机构名称")
    mdtrt_id: str = Field(..., description="就诊ID of the visit the bill is for")
    med_type: str = Field(..., description="医疗类别: 11 普通门诊, 13 急诊, 14 门诊慢特病, 21 普通住院 …")
    medfee_sumamt: float = Field(..., description="医疗费总额, yuan")
    state: Literal["due", "paid"] = Field(..., description="paid: this bill code was paid already")
    expires_at: datetime = Field(..., description="the bill code is refused after this")

    model_config = {"json_schema_extra": {"examples": [{
        "bill": "MPBILL1.eyJ2IjoxLCJiIjoiQkw0RjFDMDlBN0UyQjM1RDYwIiwiZiI6IkgxMDAwMSIsIm0iOiIyNjExMjQxMDAwMDAwMDAx…."
                "<86 characters of signature>", "bill_id": "BL4F1C09A7E2B35D60", "fixmedins_code": "H99990100001",
        "fixmedins_name": "演示市第一人民医院", "mdtrt_id": "26112410000000012345", "med_type": "11",
        "medfee_sumamt": 6000.0, "state": "due", "expires_at": "2026-11-24T02:10:00Z"}]}}


_PREVIEW_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary",
                  "description": "a photo of the bill code on the window's screen (PNG/JPEG/…, ≤ 8 MiB); "
                                 "exactly one QR code"}}}},
    "application/json": {"schema": BillText.model_json_schema(), "examples": {"pasted": {
        "summary": "the code's text, pasted", "value": {"bill": "MPBILL1.eyJ2IjoxLCJiIjoiQkw0RjFDMDlBN0UyQjM1RDYw…"}}}},
}}}


@mobile_router.post(
    "/bills/preview", operation_id="preview_bill_code", response_model=BillPreview, openapi_extra=_PREVIEW_BODY,
    summary="识别账单码 / read a bill code from a photo or its text: what it asks, nothing paid",
    description="The app shows this for the patient to confirm, then pays with `POST /api/v1/mobile/bills/pay`. "
                "The photo is decoded here (zxing-cpp, retries for blur, noise and uneven light). The bill code must "
                "be genuine (signed by this platform) and unexpired; refusals name the input (`image` or `bill`). "
                "Reads only: nothing is written, nothing paid.",
    responses=described.answers("/api/v1/mobile", {
        422: "no (single) QR code in the photo, not a bill code, forged or expired; or the body is neither a photo "
             "nor {bill}"}))
async def preview_bill(request: Request) -> Response:
    body = await request.body()
    bill, image = _bill_source(request.headers.get("content-type", ""), body)
    preview = await run_in_threadpool(bill_service(request).preview, bill, image)
    return Response(BillPreview(**to_yuan(preview)).model_dump_json(), media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def _bill_source(content_type: str, body: bytes) -> tuple[str | None, bytes | None]:
    """(pasted text, photo) from a multipart form (``image`` file, or ``bill`` field) or a JSON ``{"bill"}``."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        fields, files = read_multipart(content_type, body)
        if "image" in fields:
            raise Invalid("image", "must be sent as a file part (with a filename)")
        return fields.get("bill"), files.get("image")
    if media not in ("application/json", ""):
        raise Invalid("body", f"content type {media!r}: send multipart/form-data with an image, or JSON with bill")
    return json_body(BillText, body).bill, None


@mobile_router.post("/bills/pay", summary="扫账单码支付 / pay a scanned bill code: the whole bill in one step",
                    description="Signed by the device key in headers, like every request of the app (see the "
                                "mobile door's description); a replayed request is refused, a new one for the same "
                                "bill continues (or repeats the answer of) the first payment.",
                    response_model=Payment, openapi_extra=mobile_signed(BillPayment),
                    responses=described.answers("/api/v1/mobile", {
                        401: "the device signature is refused (missing, stale, wrong, replayed)",
                        403: "the e-certificate was revoked, or the bill is another patient's",
                        404: "the bill's visit is no more", 409: "the bill changed since the code was shown",
                        422: "a field is missing or malformed, the bill code is forged or expired, or no gateway"}))
async def pay_bill(request: Request) -> dict[str, Any]:
    body = await request.body()
    _ecert_id, psn_no = await signed_by_device(request, body)
    req = json_body(BillPayment, body)
    res = await run_in_threadpool(bill_service(request).pay_bill, psn_no, req.bill)
    return payment_answer(res)
