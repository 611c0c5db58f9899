"""The face kiosk (刷脸自助机), served by the platform: the page ``/t/face`` and the one terminal call it needs
besides the face and settlement doors — the bills due for the patient it identified.

The page runs in the kiosk's browser over HTTPS (camera and WebCrypto need a secure context). Its signing key
is made there with WebCrypto, non-extractable, kept in the browser's IndexedDB: the page shows the public key,
staff register it (``medpay ecert terminal-register --kind face --public-key HEX``) and type the terminal id
the command prints into the page's set-up form. The private key never leaves the kiosk.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field, StrictStr
from starlette.concurrency import run_in_threadpool

from medpay.api import described
from medpay.api.bodies import json_body
from medpay.api.kiosk_text import kiosk_text
from medpay.api.mobile.pages import HEADERS, STATIC_PATH, templates
from medpay.api.terminal import verify_terminal
from medpay.interface_format import to_yuan
from medpay.services.due_visits import DueVisits
from medpay.services.errors import Forbidden, Invalid

DUE_VISITS = "/api/v1/terminal/due-visits"

terminal_router = APIRouter(prefix="/api/v1/terminal", tags=["terminal"])
page_router = APIRouter(prefix="/t", tags=["pages"])

class DueVisitsRequest(BaseModel):
    orgId: StrictStr = Field(..., max_length=12, description="定点医药机构编号: the terminal's institution")
    ecToken: StrictStr = Field(..., min_length=1, max_length=64,
                               description="the token from auth-check (face) or ec.query (QR code)")

    model_config = {"extra": "forbid"}


class DueVisit(BaseModel):
    mdtrt_id: str = Field(..., description="就诊ID: what POST /api/v1/terminal/settle pays")
    med_type: str = Field(..., description="医疗类别: 11 普通门诊, 13 急诊, 14 门诊慢特病 …")
    begntime: str = Field(..., description="when the visit began (ISO 8601)")
    medfee_sumamt: float = Field(..., description="医疗费总额, yuan")
    fund_pay_sumamt: float = Field(..., description="基金支付, yuan")
    acct_pay: float = Field(..., description="个人账户支付 (family mutual aid included), yuan")
    acct_mulaid_pay: float = Field(..., description="of which 家庭共济, yuan")
    psn_cash_pay: float = Field(..., description="现金支付: what the payment gateway will charge, yuan")


class DueVisitsAnswer(BaseModel):
    orgId: str
    fixmedins_name: str = Field(..., description="定点医药机构名称")
    visits: list[DueVisit] = Field(..., description="newest first, each pre-settled as it would settle now")


def due_visits_service(request: Request) -> DueVisits:
    svc = getattr(request.app.state, "due_visits", None)
    if svc is None:
        p = request.app.state.platform
        svc = request.app.state.due_visits = DueVisits(p.factory, p.settlement, clock=p.settlement.clock)
    return svc


@terminal_router.post(
    DUE_VISITS.removeprefix("/api/v1/terminal"), response_model=DueVisitsAnswer,
    summary="待缴费用 / the bills due for the patient a token names, pre-settled (nothing written but the audit)",
    description="A self-service terminal shows these — total, fund, personal account, family mutual aid, cash — "
                "before the patient confirms; `POST /api/v1/terminal/settle` then pays the chosen `mdtrt_id` with the "
                "same token. The token is checked (this institution, live), not bound or spent.",
    openapi_extra={**described.signed("terminal"), **described.json_body(DueVisitsRequest)},
    responses=described.answers("/api/v1/terminal", {
        401: "terminal signature refused", 403: "the token is for another institution, expired or used up",
        404: "unknown token", 422: "a field is missing or malformed"}))
async def due_visits(request: Request) -> JSONResponse:
    body = await request.body()
    terminal_id, code = await verify_terminal(request, body)
    req = json_body(DueVisitsRequest, body)
    if req.orgId != code:
        raise Forbidden("orgId", f"this terminal belongs to {code}, not {req.orgId}")
    out: dict[str, Any] = await run_in_threadpool(due_visits_service(request).for_token, terminal_id, code,
                                                  req.ecToken)
    visits = [{**v, "begntime": v["begntime"].isoformat()} for v in out["visits"]]
    return JSONResponse(to_yuan({"orgId": code, "fixmedins_name": out["fixmedins_name"], "visits": visits}),
                        headers={"Cache-Control": "no-store"})


@page_router.get("/face", response_class=HTMLResponse, summary="刷脸自助机 / the face kiosk's page (HTTPS)")
def face_kiosk_page(request: Request, lang: str = "zh") -> HTMLResponse:
    lang = "en" if lang == "en" else "zh"
    if request.url.scheme != "https" and request.url.hostname not in ("127.0.0.1", "localhost"):
        raise Invalid("scheme", "the face kiosk needs HTTPS (camera and WebCrypto): serve with MEDPAY_TLS_CERT_FILE "
                                "and MEDPAY_TLS_KEY_FILE")
    return templates.TemplateResponse(request, "kiosk_face.html", {
        "t": kiosk_text(lang), "lang": lang, "static": STATIC_PATH}, headers=HEADERS)  # the pages' own: this origin's camera, nobody may frame it
