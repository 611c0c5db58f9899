"""住院: the patient's admissions with their running balance, deposit top-ups through the gateway and the request to
be discharged and settled (``services.mobile.stay``). Signed by the e-certificate's device key like the rest of the
app; ``?for=psn_no`` acts for a family member (``api.mobile.family``), whose top-ups the device's person pays."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, StrictStr

from medpay.api import described
from medpay.api.bodies import json_body
from medpay.api.mobile.ecert import openapi_signed, signed_by_device
from medpay.api.mobile.family import For, patient
from medpay.interface_format import to_yuan
from medpay.services.his_notices import HisNotices
from medpay.services.mobile.stay import StayService

router = APIRouter(prefix="/api/v1/mobile/stays", tags=["mobile"])
_ANSWERS = {401: "the device signature is refused (missing, stale, wrong, replayed); with ?for=, no session",
            403: "the e-certificate was revoked; with ?for=, no family link in force (or no CSRF token)",
            404: "no such admission of yours (another person's answers the same)"}
Code = PathParam(..., min_length=1, max_length=30, pattern=r"^[A-Za-z0-9]+$", description="定点医药机构编号")
MdtrtId = PathParam(..., min_length=1, max_length=30, pattern=r"^[A-Za-z0-9]+$", description="就诊ID of the admission")


def stay_service(request: Request) -> StayService:
    svc = getattr(request.app.state, "stay", None)
    if svc is None:
        p = request.app.state.platform
        clock = p.settlement.clock
        gateway = p.one_scan.gateway if p.one_scan is not None else None
        svc = request.app.state.stay = StayService(p.factory, p.settlement, gateway, p.cipher,
                                                   HisNotices(p.factory, p.cipher, clock), clock=clock)
    return svc


class DepositPayment(BaseModel):
    payment_id: str
    amount: float = Field(..., description="yuan")
    state: str = Field(..., description="created, held, captured, deposited (done), declined, voided, refunded "
                                        "(the stay closed before it could be posted), or in_doubt (recovery resolves it)")
    refund_amt: float = Field(..., description="given back through the gateway (the unused deposit at discharge), yuan")
    created_at: datetime | None = None
    error: str = ""
    mdtrt_id: str | None = None


class FinalSettlement(BaseModel):
    setl_id: str
    medfee_sumamt: float
    fund_pay_sumamt: float
    acct_pay: float
    psn_cash_pay: float
    deposit_applied: float = Field(..., description="paid from the deposits")
    deposit_refund: float = Field(..., description="the unused deposit, back the way it came")


class Stay(BaseModel):
    fixmedins_code: str
    fixmedins_name: str
    mdtrt_id: str
    med_type: str
    begntime: datetime
    endtime: datetime | None
    status: str = Field(..., description="open (in hospital), discharged (2402), settled (2304)")
    deposit_total: float = Field(..., description="押金 paid in, yuan")
    fee_sumamt: float = Field(..., description="the fees uploaded so far, yuan")
    own_share: float | None = Field(None, description="the patient's share of them if settled now, yuan")
    deposit_balc: float = Field(..., description="deposit minus the patient's share so far; negative asks for a top-up")
    discharge_requested_at: datetime | None
    payments: list[DepositPayment]
    settlement: FinalSettlement | None


class TopUp(BaseModel):
    amount: StrictStr | float = Field(..., description="yuan, at most two decimals")
    request_id: StrictStr = Field(..., min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                                  description="made by the app once per top-up: a retry repeats it")
    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{"amount": "2000.00",
                                                                           "request_id": "b7e1c9a0-topup"}]}}


@router.get("", response_model=list[Stay], openapi_extra=openapi_signed(None),
            summary="住院 / my admissions: deposits, fees so far, the balance",
            responses=described.answers(router.prefix, _ANSWERS))
async def stays(request: Request, for_psn: str | None = For) -> list[dict[str, Any]]:
    _ecert, device_psn = await signed_by_device(request)
    psn_no, _payer = await patient(request, device_psn, for_psn)
    return [to_yuan(s) for s in await run_in_threadpool(stay_service(request).stays, psn_no)]


@router.post("/{fixmedins_code}/{mdtrt_id}/deposits", response_model=DepositPayment,
             openapi_extra=openapi_signed(TopUp),
             summary="补缴押金 / top up the deposit through the gateway",
             description="A repeat of `request_id` continues or repeats the same payment, never a second one. A stay "
                         "that is no longer open takes no deposit (409), and nothing is charged.",
             responses=described.answers(router.prefix, {
                 **_ANSWERS, 409: "the stay is discharged, settled or cancelled; or the request id was used for "
                                  "another amount",
                 422: "a field is missing or malformed, no bound payment method, or no gateway configured"}))
async def top_up(request: Request, fixmedins_code: str = Code, mdtrt_id: str = MdtrtId,
                 for_psn: str | None = For) -> dict[str, Any]:
    body = await request.body()
    _ecert, device_psn = await signed_by_device(request, body)
    psn_no, payer = await patient(request, device_psn, for_psn, changes_state=True)
    req = json_body(TopUp, body)
    return to_yuan(await run_in_threadpool(stay_service(request).top_up, psn_no, fixmedins_code, mdtrt_id,
                                           req.amount, req.request_id, payer))


@router.post("/{fixmedins_code}/{mdtrt_id}/discharge", response_model=Stay, openapi_extra=openapi_signed(None),
             summary="申请出院结算 / ask to be discharged and settled: the hospital is told",
             description="The HIS is notified (`discharge.requested`) and does its 2402 and 2304 as usual; the stay "
                         "then shows the settlement and the unused deposit going back the way it came.",
             responses=described.answers(router.prefix, {**_ANSWERS, 409: "the stay is settled or cancelled"}))
async def discharge(request: Request, fixmedins_code: str = Code, mdtrt_id: str = MdtrtId,
                    for_psn: str | None = For) -> dict[str, Any]:
    body = await request.body()
    _ecert, device_psn = await signed_by_device(request, body)
    psn_no, _payer = await patient(request, device_psn, for_psn, changes_state=True)
    return to_yuan(await run_in_threadpool(stay_service(request).request_discharge, psn_no, fixmedins_code,
                                           mdtrt_id))
