"""我的数据 (PIPL): a person downloads everything the platform holds about them, and asks for it to be deleted —
with what the law makes us keep said plainly (``services.mobile.my_data``). The export is signed by the device that
holds the person's e-certificate; the deletion request needs that device and the signed-in account that speaks for
the person as themselves (with its CSRF token)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from medpay.api import described
from medpay.api.mobile.account import CHANGES, signed_in
from medpay.api.mobile.ecert import openapi_signed, signed_by_device
from medpay.interface_format import to_yuan
from medpay.services.mobile.my_data import MyDataService

router = APIRouter(prefix="/api/v1/mobile/my-data", tags=["mobile"])
_DEVICE = {401: "the device signature is refused (missing, stale, wrong, replayed)", 403: "the e-certificate was revoked"}


def my_data_service(request: Request) -> MyDataService:
    svc = getattr(request.app.state, "my_data", None)
    if svc is None:
        p = request.app.state.platform
        svc = request.app.state.my_data = MyDataService(p.factory, p.cipher, clock=p.settlement.clock)
    return svc


class Deletion(BaseModel):
    request_id: str
    requested_at: datetime
    erased: list[str] = Field(..., description="erased at once: app_account, sessions, family_links, e_certificates, "
                                               "payment_method, face_template")
    kept: list[str] = Field(..., description="kept as the law requires: settlements_and_ledger (the fund's records, "
                                             "at least 15 years), audit_log, insurance_registration (the bureau's)")


@router.get("", openapi_extra=openapi_signed(None), response_class=Response,
            summary="导出我的数据 / download everything the platform holds about me (JSON)",
            responses={200: {"content": {"application/json": {}}, "description": "one JSON document (amounts in "
                                                                                   "yuan), as a download"},
                       **described.answers(router.prefix, _DEVICE)})
async def export(request: Request) -> Response:
    ecert_id, psn_no = await signed_by_device(request)
    doc = to_yuan(await run_in_threadpool(my_data_service(request).export, psn_no, ecert_id))
    body = json.dumps(doc, ensure_ascii=False, indent=2, default=_text)
    return Response(body, media_type="application/json", headers={
        "Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="medpay-my-data-{psn_no}.json"'})


@router.post("/deletion", response_model=Deletion, openapi_extra=openapi_signed(None),
             summary="申请删除我的个人信息 / ask for my personal data to be deleted",
             description="Erased at once: the app account and its sessions, family links, e-certificates and their "
                         "device keys, the bound payment method, the face template. Kept, as the law requires: the "
                         "fund's settlement and ledger records, the audit log, the insurance registration.",
             responses=described.answers(router.prefix, {**_DEVICE, **CHANGES, 404: "the signed-in account does "
                                                         "not speak for this device's person as themselves"}))
async def deletion(request: Request) -> dict[str, Any]:
    body = await request.body()
    _ecert_id, psn_no = await signed_by_device(request, body)
    caller = await signed_in(request, changes_state=True)
    return await run_in_threadpool(my_data_service(request).request_deletion, caller, psn_no)


def _text(value: Any) -> str:
    """Dates and times in the export as ISO 8601 text."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
