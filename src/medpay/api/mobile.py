"""Mobile door (医保App): activate an e-certificate on a device, fetch the dynamic QR code.

The app keeps an Ed25519 key per person on the device; activation registers its public key. Each code request
is signed with it: ``device_signature`` = hex(Ed25519(f"{ecert_id}|{business_type}|{timestamp}")), timestamp in
unix seconds within ±120 s. A code is valid 60 s; the app asks for a new one before ``expires_at``.
Activation must sit behind the app's real-person check (实人认证): psn_no + certno alone are not secret.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictBool

from medpay.adapters import qr_images
from medpay.api.errors import ErrorResponse
from medpay.api.terminal import ecert_service
from medpay.domain.ecert_code import BUSINESS_TYPES
from medpay.services.ecert import EcertService

router = APIRouter(prefix="/api/v1/mobile", tags=["mobile"])

_BT_HELP = "用码业务类型: " + ", ".join(f"{k} {v}" for k, v in BUSINESS_TYPES.items())
_ERRORS = {401: {"model": ErrorResponse, "description": "device signature refused"},
           403: {"model": ErrorResponse, "description": "e-certificate revoked"},
           404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}


class ActivateRequest(BaseModel):
    psn_no: str = Field(..., description="人员编号", examples=["99990100000001"])
    certno: str = Field(..., description="证件号码 (checked against the insured person)",
                        examples=["999901198001010011"])
    device_public_key: str = Field(..., description="the device's Ed25519 public key, 64 hex digits",
                                   examples=["5f1c…(64 hex digits)"])
    consent: StrictBool = Field(..., description="separate consent to the processing of personal information "
                                                 "(个人信息处理单独同意); must be true")

    model_config = {"json_schema_extra": {"examples": [{
        "psn_no": "99990100000001", "certno": "999901198001010011",
        "device_public_key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "consent": True}]}}


class ActivateResponse(BaseModel):
    ecert_id: str
    status: str = "active"
    userName: str = Field(..., description="the holder's name, masked: for the app to show whose e-certificate it is")
    idNo: str = Field(..., description="the holder's ID number, masked")

    model_config = {"json_schema_extra": {"examples": [{
        "ecert_id": "EC7K2M9QX4", "status": "active", "userName": "王**", "idNo": "999901********0011"}]}}


class CodeRequest(BaseModel):
    ecert_id: str = Field(..., examples=["EC7K2M9QX4"])
    business_type: str = Field(..., description=_BT_HELP, examples=["01301"])
    timestamp: int = Field(..., description="unix seconds, ±120 s of server time", examples=[1767225600])
    device_signature: str = Field(..., description='hex Ed25519 signature of "{ecert_id}|{business_type}|{timestamp}"')

    model_config = {"json_schema_extra": {"examples": [{
        "ecert_id": "EC7K2M9QX4", "business_type": "01301", "timestamp": 1767225600,
        "device_signature": "9c0e…(128 hex digits)"}]}}


class CodeResponse(BaseModel):
    payload: str = Field(..., description="the QR code's content")
    expires_at: datetime
    refresh_in_s: int = Field(..., description="ask for a new code after this many seconds")
    svg: str = Field(..., description="the QR code as an SVG document, ready to inline")

    model_config = {"json_schema_extra": {"examples": [{
        "payload": "MPEC1.eyJ2IjoxLCJlYyI6IkVDN0syTTlRWDQiLC….<signature>", "expires_at": "2026-01-01T00:01:00Z",
        "refresh_in_s": 50, "svg": "<svg xmlns=\"http://www.w3.org/2000/svg\" …</svg>"}]}}


@router.post("/ecert/activate", response_model=ActivateResponse, responses=_ERRORS,
             summary="激活医保电子凭证 / activate an e-certificate on this device")
def activate(req: ActivateRequest, svc: EcertService = Depends(ecert_service)) -> ActivateResponse:
    ecert_id = svc.activate(req.psn_no, req.certno, req.device_public_key, req.consent)
    return ActivateResponse(ecert_id=ecert_id, **svc.holder(ecert_id))


@router.post("/ecert/code", response_model=CodeResponse, responses=_ERRORS,
             summary="展码 / a fresh dynamic QR code (valid 60 s) for one business type")
def code(req: CodeRequest, svc: EcertService = Depends(ecert_service)) -> Response:
    payload, expires_at = svc.issue_code(req.ecert_id, req.business_type, req.device_signature, req.timestamp)
    body = CodeResponse(payload=payload, expires_at=expires_at, refresh_in_s=_refresh_in(svc),
                        svg=qr_images.render_svg(payload, title="医保电子凭证"))
    return Response(body.model_dump_json(), media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/ecert/code.png", responses={**_ERRORS, 200: {"content": {"image/png": {}},
                                                          "description": "the QR code as PNG"}},
            response_class=Response, summary="展码 PNG / the dynamic QR code as a PNG download")
def code_png(ecert_id: str = Query(..., examples=["EC7K2M9QX4"]),
             business_type: str = Query(..., description=_BT_HELP, examples=["01301"]),
             timestamp: int = Query(..., description="unix seconds, ±120 s"),
             device_signature: str = Query(..., description='hex Ed25519 of "{ecert_id}|{business_type}|{timestamp}"'),
             scale: int = Query(8, ge=2, le=20, description="pixels per module"),
             svc: EcertService = Depends(ecert_service)) -> Response:
    payload, expires_at = svc.issue_code(ecert_id, business_type, device_signature, timestamp)
    return Response(qr_images.render_png(payload, scale=scale), media_type="image/png", headers={
        "Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="ecert-{business_type}.png"',
        "X-Expires-At": expires_at.isoformat()})


def _refresh_in(svc: EcertService) -> int:
    return max(1, svc.code_ttl_s - 10)
