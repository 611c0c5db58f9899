"""Mobile door (医保App): activate an e-certificate on a device, fetch the dynamic QR code.

Activation takes two steps (``services.qr.activation``): ``POST /ecert/activate`` checks the ID number and texts a
code to the phone on the insured person's record; ``POST /ecert/activate/confirm`` brings the code (or a counter
code a staff member handed over) with the device's Ed25519 public key, the request signed by that key.

Every later request of the app is signed by the device key, in headers (``services.signed_requests``)::

    X-Ecert-Id: EC…   X-Timestamp: unix seconds (±120 s)   X-Nonce: 8–64 characters, once
    X-Signature: Ed25519 of METHOD\\npath\\ntimestamp\\nnonce\\nsha256hex(body), 128 hex digits

Signatures never travel in a URL: the PNG of a code is fetched by the page with these headers and shown as a blob.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictBool
from starlette.concurrency import run_in_threadpool

from medpay.adapters import qr_images
from medpay.api.bodies import json_body
from medpay.api import described
from medpay.api.terminal import ecert_service
from medpay.domain.ecert_code import BUSINESS_TYPES
from medpay.services.qr.activation import ActivationService
from medpay.services.qr.ecert import EcertService
from medpay.services.errors import Invalid

router = APIRouter(prefix="/api/v1/mobile", tags=["mobile"])

_BT_HELP = "用码业务类型: " + ", ".join(f"{k} {v}" for k, v in BUSINESS_TYPES.items())
_ERRORS = described.answers(router.prefix, {
    401: "device signature refused (missing, stale, wrong, replayed); an unknown e-certificate alike",
    403: "e-certificate revoked (activated on another device, or by its holder); the message says when",
    422: "a field is missing or malformed"})


def activation_service(request: Request) -> ActivationService:
    svc = getattr(request.app.state, "activation", None)
    if svc is None:
        p = request.app.state.platform
        svc = request.app.state.activation = ActivationService(p.factory, p.cipher, p.sms, clock=p.persons.clock,
                                                               daily_starts=p.sms_daily_limit)
    return svc


def openapi_signed(model: type[BaseModel] | None, *, by: str = "device") -> dict[str, Any]:
    """``openapi_extra`` of an operation whose requests the device key signs, and its JSON body (read raw: the
    signature covers its bytes)."""
    return {**described.signed(by), **(described.json_body(model) if model is not None else {})}


async def signed_by_device(request: Request, body: bytes = b"") -> tuple[str, str]:
    """(ecert_id, psn_no) of the e-certificate whose device signed this request (path and query as sent)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return await run_in_threadpool(ecert_service(request).verify_device, request.headers, request.method, target,
                                   body)


# -- activation ------------------------------------------------------------------------------------------------


class ActivationStart(BaseModel):
    psn_no: str = Field(..., min_length=1, max_length=30, description="人员编号", examples=["99990100000001"])
    certno: str = Field(..., min_length=1, max_length=30, description="证件号码 (checked against the insured person)",
                        examples=["999901198001010011"])
    consent: StrictBool = Field(..., json_schema_extra={"const": True},
                                description="separate consent to the processing of personal information "
                                            "(个人信息处理单独同意); must be true")

    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{
        "psn_no": "99990100000001", "certno": "999901198001010011", "consent": True}]}}


class ActivationStarted(BaseModel):
    activation_id: str = Field(..., description="send it back with the texted code")
    channel: str = Field(..., description="sms")
    expires_at: datetime = Field(..., description="the code is refused after this")
    phone: str = Field(..., description="where the code went, masked: the phone on the person's record")

    model_config = {"json_schema_extra": {"examples": [{
        "activation_id": "ACK7Q2M9XA", "channel": "sms", "expires_at": "2026-12-02T08:05:00Z",
        "phone": "138****0001"}]}}


class ActivationConfirm(BaseModel):
    device_public_key: str = Field(..., min_length=64, max_length=64, pattern="^[0-9a-fA-F]{64}$",
                                   description="the device's Ed25519 public key, 64 hex digits; the request is "
                                               "signed by its private half")
    activation_id: str | None = Field(None, max_length=20, description="from POST /ecert/activate (with code)")
    code: str | None = Field(None, min_length=6, max_length=6, pattern="^[0-9]{6}$",
                             description="the 6 digits texted to the phone on record")
    counter_code: str | None = Field(None, max_length=16, description="or: the code a staff member handed over "
                                                                       "at a counter, e.g. K7Q2M-9XA4B")

    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{
        "device_public_key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "activation_id": "ACK7Q2M9XA", "code": "483921"}]}}


class ActivateResponse(BaseModel):
    ecert_id: str
    status: str = "active"
    userName: str = Field(..., description="the holder's name, masked: for the app to show whose e-certificate it is")
    idNo: str = Field(..., description="the holder's ID number, masked")

    model_config = {"json_schema_extra": {"examples": [{
        "ecert_id": "EC7K2M9QX4", "status": "active", "userName": "王**", "idNo": "999901********0011"}]}}


@router.post("/ecert/activate", status_code=202, response_model=ActivationStarted, operation_id="start_activation",
             responses={202: {"description": "a code was texted to the phone on record", "links": {"Confirm": {
                 "operationId": "confirm_activation",
                 "requestBody": {"activation_id": "$response.body#/activation_id"},
                 "description": "the app sends the texted code with the device's key"}}},
                        **described.answers(router.prefix, {
                 409: "an activation is already under way for this person, or no phone is on record",
                 422: "a field is missing or malformed, or the ID number is not this person's",
                 429: "too many codes texted to this person today", 503: "the code could not be texted; try again"})},
             summary="激活医保电子凭证(一) / activate an e-certificate, step 1: a code to the phone on record")
def start_activation(req: ActivationStart, svc: ActivationService = Depends(activation_service)) -> ActivationStarted:
    started = svc.start(req.psn_no, req.certno, req.consent)
    return ActivationStarted(activation_id=started.activation_id, channel=started.channel,
                             expires_at=started.expires_at, phone=started.phone or "")


@router.post("/ecert/activate/confirm", response_model=ActivateResponse, operation_id="confirm_activation",
             openapi_extra=openapi_signed(ActivationConfirm, by="new device"),
             responses=described.answers(router.prefix, {
                 401: "the request is not signed by the key it brings (or stale, or replayed)",
                 409: "the device key is another person's", 422: "wrong, expired or unknown code"}),
             summary="激活医保电子凭证(二) / step 2: the code and this device's key (signed by it)")
async def confirm_activation(request: Request) -> ActivateResponse:
    body = await request.body()
    svc = activation_service(request)
    ecerts = ecert_service(request)
    ecerts.device_headers(request.headers, request.method, request.url.path, body)  # before the body is parsed
    req = json_body(ActivationConfirm, body)
    key = await run_in_threadpool(ecerts.verify_device_key, request.headers, request.method, request.url.path, body,
                                  req.device_public_key)
    done = await run_in_threadpool(lambda: svc.confirm(key, activation_id=req.activation_id, code=req.code,
                                                       counter_code=req.counter_code))
    await run_in_threadpool(svc.notify_replaced, done)
    return ActivateResponse(ecert_id=done.ecert_id, **await run_in_threadpool(ecerts.holder, done.ecert_id))


# -- the dynamic code ------------------------------------------------------------------------------------------


class CodeRequest(BaseModel):
    business_type: str = Field(..., description=_BT_HELP, json_schema_extra={"enum": list(BUSINESS_TYPES)},
                               examples=["01301"])

    model_config = {"extra": "forbid"}


class CodeResponse(BaseModel):
    payload: str = Field(..., description="the QR code's content")
    expires_at: datetime
    refresh_in_s: int = Field(..., description="ask for a new code after this many seconds")
    svg: str = Field(..., description="the QR code as an SVG document, ready to inline")

    model_config = {"json_schema_extra": {"examples": [{
        "payload": "MPEC1.eyJ2IjoxLCJlYyI6IkVDN0syTTlRWDQiLC….<signature>", "expires_at": "2026-01-01T00:01:00Z",
        "refresh_in_s": 50, "svg": "<svg xmlns=\"http://www.w3.org/2000/svg\" …</svg>"}]}}


# the query parameter by which the app acts for a family member (家庭代办); ``api.mobile.family`` checks the link
For = Query(None, alias="for", min_length=1, max_length=30, pattern=r"^[A-Za-z0-9]+$",
            description="a family member's psn_no: act for them (the session cookie must act for them)")


@router.post("/ecert/code", response_model=CodeResponse,
             responses={**_ERRORS, 409: {"description": "?for= a family member who has no activated e-certificate"}},
             openapi_extra=openapi_signed(CodeRequest),
             summary="展码 / a fresh dynamic QR code (valid 60 s) for one business type",
             description="With `?for=psn_no`, the code of a family member the signed-in account acts for (their "
                         "active e-certificate), shown on this device; each showing is audited.")
async def code(request: Request, for_psn: str | None = For) -> Response:
    body = await request.body()
    ecert_id, device_psn = await signed_by_device(request, body)
    svc = ecert_service(request)
    business_type = json_body(CodeRequest, body).business_type
    if for_psn and for_psn != device_psn:
        from medpay.api.mobile.family import patient  # (the family door builds on this module)

        member, _payer = await patient(request, device_psn, for_psn)
        ecert_id = await run_in_threadpool(svc.member_ecert, member, ecert_id)
    payload, expires_at = svc.issue_code(ecert_id, business_type)
    out = CodeResponse(payload=payload, expires_at=expires_at, refresh_in_s=_refresh_in(svc),
                       svg=qr_images.render_svg(payload, title="医保电子凭证"))
    return Response(out.model_dump_json(), media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/ecert/code.png", responses={**_ERRORS, 200: {"content": {"image/png": {}},
                                                          "description": "the QR code as PNG"}},
            response_class=Response, openapi_extra={**described.signed("device"), "parameters": [
                {"name": "business_type", "in": "query", "required": True, "description": _BT_HELP,
                 "schema": {"type": "string", "enum": list(BUSINESS_TYPES)}},
                {"name": "scale", "in": "query", "required": False, "description": "pixels per module",
                 "schema": {"type": "integer", "minimum": 2, "maximum": 20, "default": 8}}]},
            summary="展码 PNG / the dynamic QR code as a PNG (the request signed in headers, like every other)")
async def code_png(request: Request) -> Response:
    ecert_id, _psn_no = await signed_by_device(request)
    business_type = request.query_params.get("business_type", "")
    scale_text = request.query_params.get("scale", "8")
    if not scale_text.isdigit() or not 2 <= int(scale_text) <= 20:
        raise Invalid("scale", "pixels per module: a whole number from 2 to 20")
    payload, expires_at = ecert_service(request).issue_code(ecert_id, business_type)
    return Response(qr_images.render_png(payload, scale=int(scale_text)), media_type="image/png", headers={
        "Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="ecert-{business_type}.png"',
        "X-Expires-At": expires_at.isoformat()})


def _refresh_in(svc: EcertService) -> int:
    return max(1, svc.code_ttl_s - 10)
