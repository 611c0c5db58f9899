"""报销记录 in the app (``services.mobile.records``): the year's settlements, their CSV, a settlement slip as a PDF
the platform signs — each signed by the device key, ``?for=psn_no`` for a family member the signed-in account
acts for —, the account's activity and who was shown the person's data (one's own only), and the public check of
a slip's code (``GET /api/v1/mobile/slips/verify``, and the page ``/m/verify``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from medpay.adapters.keyring import default_keyring
from medpay.adapters.slips import pdf
from medpay.adapters.slips.font import NoCjkFont
from medpay.api import described
from medpay.api.mobile.ecert import openapi_signed, signed_by_device
from medpay.api.mobile.family import For, patient
from medpay.api.mobile.text import page_text
from medpay.interface_format import to_yuan
from medpay.local_time import format_local, local_date
from medpay.money import format_yuan, yuan_number
from medpay.services.audit import AuditLog
from medpay.services.errors import ServiceError
from medpay.services.mobile.records import RecordsService

router = APIRouter(prefix="/api/v1/mobile", tags=["mobile"])
_ANSWERS = {401: "the device signature is refused; with ?for=, no session",
            403: "the e-certificate was revoked; with ?for=, no family link in force"}
Year = Query(None, ge=2000, le=2100, description="the year (local); this year when absent")


class NoFont(ServiceError):
    status = 503
    code = "no_font"


def records_service(request: Request) -> RecordsService:
    svc = getattr(request.app.state, "records", None)
    if svc is None:
        p = request.app.state.platform
        keys = [Ed25519PrivateKey.from_private_bytes(k.secret) for k in reversed(default_keyring().of("signing"))]
        svc = request.app.state.records = RecordsService(p.factory, p.cipher, keys, clock=p.persons.clock)
    return svc


async def _whose(request: Request, for_psn: str | None) -> tuple[str, str]:
    """(psn_no whose records, the viewer for the audit log)."""
    ecert_id, device_psn = await signed_by_device(request)
    psn_no, _payer = await patient(request, device_psn, for_psn)
    return psn_no, ecert_id


class FundLine(BaseModel):
    fund_pay_type: str
    name: str
    fund_payamt: float = Field(..., description="yuan")


class CashRefund(BaseModel):
    captured: float
    refunded: float
    state: str = Field(..., description="none (not cancelled), pending or done")


class Record(BaseModel):
    setl_id: str
    setl_time: datetime
    fixmedins_code: str
    fixmedins_name: str
    mdtrt_id: str
    med_type: str
    insutype: str
    medfee_sumamt: float
    fund_pay_sumamt: float
    acct_pay: float = Field(..., description="personal account, family aid included")
    acct_mulaid_pay: float
    psn_cash_pay: float
    policy_ver: str
    status: str = Field(..., description="standing or cancelled")
    cancelled_at: datetime | None
    cash_refund: CashRefund | None = Field(None, description="the cash paid through the gateway and its refund")
    setldetail: list[FundLine]


class YearRecords(BaseModel):
    year: int
    settlements: list[Record]
    totals: dict[str, float] = Field(..., description="standing settlements' sums (yuan) and their count")
    accumulators: list[dict[str, Any]] = Field(..., description="the year's totals the policy counts: key, value "
                                                                 "(fen for amounts, a count for admissions)")


def _year(request: Request, year: int | None) -> int:
    return year if year is not None else local_date(request.app.state.platform.persons.clock()).year


@router.get("/records", response_model=YearRecords, openapi_extra=openapi_signed(None),
            summary="报销记录 / the year's settlements, fund by fund, and the year's accumulators",
            responses=described.answers(router.prefix, _ANSWERS))
async def year_records(request: Request, year: int | None = Year, for_psn: str | None = For) -> dict[str, Any]:
    psn_no, viewer = await _whose(request, for_psn)
    data = await run_in_threadpool(records_service(request).year, psn_no, _year(request, year), viewer)
    accumulators = data.pop("accumulators")
    out = to_yuan(data)
    for record in out["settlements"]:
        if record["cash_refund"]:
            record["cash_refund"] = {k: yuan_number(v) if k != "state" else v
                                     for k, v in record["cash_refund"].items()}
    return {**out, "accumulators": accumulators}


@router.get("/records.csv", response_class=Response, openapi_extra=openapi_signed(None),
            summary="导出 / the year's settlements as CSV (UTF-8, yuan)",
            responses={**described.answers(router.prefix, _ANSWERS),
                       200: {"content": {"text/csv": {}}, "description": "one line per settlement"}})
async def year_csv(request: Request, year: int | None = Year, for_psn: str | None = For) -> Response:
    psn_no, viewer = await _whose(request, for_psn)
    y = _year(request, year)
    text = await run_in_threadpool(records_service(request).csv, psn_no, y, viewer)
    return Response(text.encode("utf-8"), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="medpay-{y}.csv"', "Cache-Control": "no-store"})


@router.get("/records/{setl_id}/slip.pdf", response_class=Response, openapi_extra=openapi_signed(None),
            summary="结算单 / the settlement slip as a PDF the platform signs (a check code anyone can scan)",
            responses={**described.answers(router.prefix, {**_ANSWERS, 404: "no settlement of yours with this id",
                                                           503: "no CJK font installed on the server"}),
                       200: {"content": {"application/pdf": {}}, "description": "the slip"}})
async def slip_pdf(request: Request, setl_id: str = PathParam(..., min_length=1, max_length=30,
                                                              pattern=r"^[A-Za-z0-9]+$"),
                   lang: str = Query("zh", pattern="^(zh|en)$"), for_psn: str | None = For) -> Response:
    psn_no, viewer = await _whose(request, for_psn)
    data = await run_in_threadpool(records_service(request).slip, psn_no, setl_id, viewer)
    check_url = f"{str(request.base_url).rstrip('/')}/m/verify?code={data['check_code']}"
    try:
        body = await run_in_threadpool(pdf.render, slip_layout(data, check_url, lang))
    except NoCjkFont as e:
        raise NoFont("font", str(e)) from None
    return Response(body, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="slip-{setl_id}.pdf"', "Cache-Control": "no-store"})


def slip_layout(data: dict[str, Any], check_url: str, lang: str) -> pdf.Slip:
    """The slip's words in ``lang`` around the record's facts."""
    t = page_text(lang)
    y = lambda fen: f"¥{format_yuan(fen)}"  # noqa: E731
    amounts = [(t["total"], y(data["medfee_sumamt"])), (t["part_fund"], y(data["fund_pay_sumamt"])),
               (t["part_account"], y(data["acct_pay"]))]
    if data["acct_mulaid_pay"]:
        amounts.append((f"  {t['part_family']}", y(data["acct_mulaid_pay"])))
    amounts.append((t["part_cash"], y(data["psn_cash_pay"])))
    if data["setldetail"]:  # fund by fund, as the interface lists them (the personal account among them)
        amounts.append((t["slip_funds"], ""))
        amounts += [(f"  {line['name'] or line['fund_pay_type']}", y(line["fund_payamt"]))
                    for line in data["setldetail"]]
    status = ""
    if data["status"] == "cancelled":
        status = t["slip_cancelled"].format(when=format_local(data["cancelled_at"])[:16] if data["cancelled_at"]
                                            else "")
    return pdf.Slip(
        title=t["slip_title"], subtitle=t["slip_subtitle"],
        facts=[(t["slip_setl_id"], data["setl_id"]), (t["slip_institution"], data["fixmedins_name"]),
               (t["slip_visit"], data["mdtrt_id"]),
               (t["slip_med_type"], t["med_types"].get(data["med_type"], data["med_type"])),
               (t["slip_time"], format_local(data["setl_time"])[:19]),
               (t["slip_holder"], f"{data['holder']['name']}（{data['holder']['certno']}）"),
               (t["slip_policy"], data["policy_ver"])],
        amounts=amounts, status=status, check_url=check_url, check_label=t["slip_check"],
        footer=t["slip_footer"].format(when=format_local(data["issued_at"])[:19]))


class Access(BaseModel):
    at: datetime
    actor_kind: str = Field(..., description="institution, terminal, patient, operator, system")
    actor: str = Field(..., description="who: an institution's code, a terminal, an e-certificate, a staff key …")
    action: str = Field(..., description="what for, e.g. settlement.answer, ec.query, records.view")
    fields: list[str] = Field(..., description="which of your data were shown (':masked': masked)")


@router.get("/accesses", response_model=list[Access], openapi_extra=openapi_signed(None),
            summary="谁查看了我的信息 / who was shown your personal data, newest first (the audit log)",
            description="Your own only: a family member's list is theirs to see.",
            responses=described.answers(router.prefix, _ANSWERS))
async def accesses(request: Request, limit: int = Query(50, ge=1, le=200)) -> list[dict[str, Any]]:
    _ecert, psn_no = await signed_by_device(request)
    rows = await run_in_threadpool(AuditLog(request.app.state.platform.factory).of_person, psn_no, limit)
    return [{"at": r.at, "actor_kind": r.actor_kind, "actor": r.actor, "action": r.action,
             "fields": [f for f in r.fields.split(",") if f]} for r in rows]


class Notice(BaseModel):
    at: datetime
    kind: str = Field(..., description="settled, cancelled, refunded, activated, revoked")
    setl_id: str | None = None
    fixmedins_name: str | None = None
    medfee_sumamt: float | None = None
    psn_cash_pay: float | None = None
    amount: float | None = Field(None, description="refunded: the cash given back (yuan)")
    ecert_id: str | None = None
    reason: str | None = Field(None, description="revoked: reactivated (another device), lost_device, revoked")


@router.get("/notices", response_model=list[Notice], response_model_exclude_none=True,
            openapi_extra=openapi_signed(None),
            summary="账户动态 / what happened on your account: settlements, cancellations, refunds, activations",
            description="Your own only. Derived from the records, so nothing is missed or told twice.",
            responses=described.answers(router.prefix, _ANSWERS))
async def notices(request: Request, limit: int = Query(50, ge=1, le=200)) -> list[dict[str, Any]]:
    _ecert, psn_no = await signed_by_device(request)
    return to_yuan(await run_in_threadpool(records_service(request).notices, psn_no, limit))


class SlipCheck(BaseModel):
    genuine: bool = Field(..., description="the code is the platform's and the amounts printed are the settlement's")
    status: str = Field(..., description="standing, or cancelled since the slip was printed")
    setl_id: str
    fixmedins_code: str
    fixmedins_name: str
    setl_time: datetime
    medfee_sumamt: float
    fund_pay_sumamt: float
    acct_pay: float
    psn_cash_pay: float
    cancelled_at: datetime | None


@router.get("/slips/verify", response_model=SlipCheck,
            summary="核验结算单 / is a slip's check code the platform's, and does its settlement stand (public)",
            responses=described.answers(router.prefix, {422: "not a check code, or not one the platform issued"}))
async def verify_slip(request: Request, code: str = Query(..., min_length=1, max_length=600)) -> dict[str, Any]:
    result = await run_in_threadpool(records_service(request).verify, code)
    result.pop("settled_at_printed", None)
    return to_yuan(result)
