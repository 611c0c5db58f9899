"""诊间支付: the patient's app lists the visits whose fee lines the HIS uploaded, shows a bill with its
pre-settlement split, and pays it in one step (``services.mobile.visit_pay``). Every request is signed by the
e-certificate's device key, like the rest of the app (see ``api.mobile.ecert``). With ``?for=psn_no`` the app acts
for a family member (``api.mobile.family``): the signed-in account must act for them, and the device's person pays
the cash part."""

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
from medpay.api.payments import Payment, payment_answer
from medpay.interface_format import to_yuan
from medpay.services.mobile.visit_pay import VisitPayService

router = APIRouter(prefix="/api/v1/mobile/visits", tags=["mobile"])
_ANSWERS = {401: "the device signature is refused (missing, stale, wrong, replayed); with ?for=, no session",
            403: "the e-certificate was revoked; with ?for=, no family link in force (or no CSRF token)",
            404: "no such visit of yours (another person's visit answers the same)"}

Code = PathParam(..., min_length=1, max_length=30, pattern=r"^[A-Za-z0-9]+$", description="定点医药机构编号")
MdtrtId = PathParam(..., min_length=1, max_length=30, pattern=r"^[A-Za-z0-9]+$", description="就诊ID")


def visit_pay_service(request: Request) -> VisitPayService:
    svc = getattr(request.app.state, "visit_pay", None)
    if svc is None:
        p = request.app.state.platform
        svc = request.app.state.visit_pay = VisitPayService(p.factory, p.settlement, p.persons, p.one_scan,
                                                            clock=p.settlement.clock)
    return svc


class DueVisit(BaseModel):
    fixmedins_code: str
    fixmedins_name: str
    mdtrt_id: str
    med_type: str
    begntime: datetime
    line_count: int
    medfee_sumamt: float = Field(..., description="yuan")
    bill_ready_at: str = Field(..., description="last fee upload, local time")
    version: str = Field(..., description="the bill's version: pay names it; a changed bill has another")


class BillLine(BaseModel):
    feedetl_sn: str
    name: str
    chrgitm_lv: str = Field(..., description="收费项目等级: 01 甲类, 02 乙类, 03 丙类 (自费)")
    cnt: str
    pric: str
    det_item_fee_sumamt: float = Field(..., description="yuan")
    selfpay_prop: str = Field(..., description="自付比例 of a 乙类 item")
    fulamt_ownpay_amt: float = Field(..., description="全自费 (丙类), yuan")
    preselfpay_amt: float = Field(..., description="先行自付 (乙类 first self-pay), yuan")
    overlmt_amt: float = Field(..., description="超限价自费: what the price limit cut off, yuan")
    pric_uplmt_amt: float | None = Field(None, description="the item's price limit, yuan")


class Presettlement(BaseModel):
    medfee_sumamt: float
    fulamt_ownpay_amt: float
    overlmt_selfpay: float
    preselfpay_amt: float
    inscp_scp_amt: float
    fund_pay_sumamt: float
    acct_pay: float = Field(..., description="personal account, family aid included")
    acct_mulaid_pay: float = Field(..., description="family members' accounts (家庭共济)")
    psn_cash_pay: float = Field(..., description="what the patient pays through the gateway")
    policy_ver: str


class Bill(BaseModel):
    fixmedins_code: str
    fixmedins_name: str
    mdtrt_id: str
    med_type: str
    begntime: datetime
    state: str = Field(..., description="due, or nothing_due (paid or withdrawn)")
    version: str
    bill_ready_at: str
    lines: list[BillLine]
    presettlement: Presettlement | None


class PayVisit(BaseModel):
    version: StrictStr = Field(..., min_length=24, max_length=24, description="the version the bill showed")
    model_config = {"extra": "forbid"}


@router.get("", response_model=list[DueVisit], openapi_extra=openapi_signed(None),
            summary="待缴费 / my visits with fees to pay", responses=described.answers(router.prefix, _ANSWERS))
async def due_visits(request: Request, for_psn: str | None = For) -> list[dict[str, Any]]:
    _ecert, device_psn = await signed_by_device(request)
    psn_no, _payer = await patient(request, device_psn, for_psn)
    return [to_yuan(v) for v in await run_in_threadpool(visit_pay_service(request).due, psn_no)]


@router.get("/{fixmedins_code}/{mdtrt_id}", response_model=Bill, openapi_extra=openapi_signed(None),
            summary="账单明细与预结算 / a visit's bill: lines and the pre-settlement split (nothing paid)",
            responses=described.answers(router.prefix, {**_ANSWERS, 409: "an admission: settled at discharge"}))
async def bill(request: Request, fixmedins_code: str = Code, mdtrt_id: str = MdtrtId,
               for_psn: str | None = For) -> dict[str, Any]:
    _ecert, device_psn = await signed_by_device(request)
    psn_no, _payer = await patient(request, device_psn, for_psn)
    return to_yuan(await run_in_threadpool(visit_pay_service(request).bill, psn_no, fixmedins_code, mdtrt_id))


@router.post("/{fixmedins_code}/{mdtrt_id}/pay", response_model=Payment, openapi_extra=openapi_signed(PayVisit),
             summary="确认支付 / pay the bill as shown, in one step (fund, account, cash through the gateway)",
             description="Names the bill's `version`. A repeat (double tap, reload, lost answer) continues or "
                         "repeats the first payment; a bill the HIS changed since is refused (409) and nothing paid.",
             responses=described.answers(router.prefix, {
                 **_ANSWERS, 409: "the bill changed since it was shown, nothing is due, or an admission",
                 422: "a field is missing or malformed, or no payment gateway is configured"}))
async def pay(request: Request, fixmedins_code: str = Code, mdtrt_id: str = MdtrtId,
              for_psn: str | None = For) -> dict[str, Any]:
    body = await request.body()
    _ecert, device_psn = await signed_by_device(request, body)
    psn_no, cash_payer = await patient(request, device_psn, for_psn, changes_state=True)
    req = json_body(PayVisit, body)
    res = await run_in_threadpool(visit_pay_service(request).pay, psn_no, fixmedins_code, mdtrt_id, req.version,
                                  cash_payer)
    return payment_answer(res)


@router.get("/{fixmedins_code}/{mdtrt_id}/payments/{version}", response_model=Payment,
            openapi_extra=openapi_signed(None),
            summary="支付状态 / where the payment of a bill stands (after a reload or a lost answer)",
            responses=described.answers(router.prefix, {**_ANSWERS, 404: "no such visit of yours, or no payment "
                                                                         "of this bill version"}))
async def payment(request: Request, fixmedins_code: str = Code, mdtrt_id: str = MdtrtId,
                  version: str = PathParam(..., min_length=24, max_length=24, pattern=r"^[0-9a-f]+$"),
                  for_psn: str | None = For) -> dict[str, Any]:
    _ecert, device_psn = await signed_by_device(request)
    psn_no, _payer = await patient(request, device_psn, for_psn)
    res = await run_in_threadpool(visit_pay_service(request).payment, psn_no, fixmedins_code, mdtrt_id, version)
    return payment_answer(res)
