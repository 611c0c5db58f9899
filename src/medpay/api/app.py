"""The FastAPI application: one process serves every door (institution interface, terminals, the patient's app
and its pages, partners, admin)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

from medpay import __version__
from medpay.api import admin, admin_pages, described, errors, face, kiosk, pages, payments, terminal
from medpay.api.mobile import account as mobile_account, ecert as mobile, pages as mobile_pages
from medpay.api.mobile import booking as mobile_booking, family as mobile_family, records as mobile_records
from medpay.api.mobile import my_data as mobile_my_data, stay as mobile_stay, visits as mobile_visits
from medpay.api import admin_resettlements
from medpay.api.http_guard import HttpGuard
from medpay.api.deps import staff
from medpay.api.institution import routes as institution
from medpay.api.platform import Platform, build_platform
from medpay.services.audit import AuditLog
from medpay.services.housekeeping import Housekeeping
from medpay.services.reconciliation import ReconciliationService

log = logging.getLogger("medpay.app")

DESCRIPTION = """
medpay 医保便捷支付平台 — 门诊、急诊、住院费用一站式结算：统筹基金、个人账户（含家庭共济）与个人自付。

Unified medical-insurance convenient payment for a region. Amounts at this interface are **yuan** with
two decimals; inside, everything is integer fen. Errors share one shape:
`{"error": {"code", "field", "message"}}`.
"""


def housekeeping_of(app: FastAPI) -> Housekeeping:
    p: Platform = app.state.platform
    clock = p.settlement.clock
    return Housekeeping(p.factory, clock, p.gateway, p.persons, ReconciliationService(p.factory, clock),
                        AuditLog(p.factory, clock))


def _lifespan(every_s: float):
    """While serving, a housekeeping pass every ``every_s`` seconds (0: none); at shutdown, the refused face
    terminal requests counted but not yet audited are written (``TerminalRefusals.flush``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(_housekeeping_loop(app, every_s)) if every_s > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            refusals = getattr(app.state, "face_refusals", None)
            if refusals is not None:  # the refused face-terminal requests counted and not yet audited
                await anyio.to_thread.run_sync(refusals.flush)

    return lifespan


async def _housekeeping_loop(app: FastAPI, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await anyio.to_thread.run_sync(housekeeping_of(app).run)
        except Exception:  # logged; the next pass tries again
            log.exception("housekeeping pass failed")


def create_app(platform: Platform | None = None, *, housekeeping_every_s: float = 0) -> FastAPI:
    # /docs from files in the package, not a CDN: a hospital's intranet often has no internet. (No /redoc: its
    # page still loads a logo from the internet.)
    app = FastAPIOffline(
        redoc_url=None, title="medpay 医保便捷支付", version=__version__, description=DESCRIPTION,
        lifespan=_lifespan(housekeeping_every_s),
        openapi_tags=[
            {"name": "institution", "description": "定点医药机构接口 — the NHSA-style interface HIS systems call (infno transactions)"},
            {"name": "terminal", "description": "扫码终端 — ec.query and one-scan settlement for an institution's signed terminals"},
            {"name": "mobile", "description": "移动端 — e-certificate activation, the dynamic QR code, paying bill codes and what the doctor ordered (device-key signed); phone sign-in and the account (session cookie + CSRF token)"},
            {"name": "partner", "description": "合作方 — signed callbacks of the payment gateway"},
            {"name": "admin", "description": "医保经办 — policies, quotes, ledger checks and payment recovery for the bureau's staff (staff key required)"},
            {"name": "pages", "description": "网页 — human pages: the home page, the patient's mobile app under /m/, the face kiosk at /t/face, the admin door's policy pages under /admin/ (staff key kept in the tab)"},
        ],
    )
    app.state.platform = platform or build_platform()
    errors.install(app)
    app.add_middleware(HttpGuard)  # body limits and timeouts, JSON depth: see api/http_guard.py
    institution.install(app)
    app.include_router(terminal.router)
    app.include_router(payments.terminal_router)
    app.include_router(face.terminal_router)
    app.include_router(kiosk.terminal_router)
    app.include_router(face.mobile_router)
    app.include_router(mobile.router)
    app.include_router(payments.mobile_router)
    app.include_router(mobile_visits.router)
    app.include_router(mobile_booking.router)
    app.include_router(mobile_booking.institution_router)
    app.include_router(mobile_stay.router)
    app.include_router(mobile_my_data.router)
    app.include_router(mobile_account.router)
    app.include_router(mobile_family.router)
    app.include_router(mobile_records.router)
    app.include_router(payments.partner_router)
    staff_only = described.answers("/api/v1/admin", {401: "no staff key, or a wrong or revoked one"})
    app.include_router(payments.admin_router, dependencies=[Depends(staff)], responses=staff_only)
    app.include_router(admin.router, dependencies=[Depends(staff)], responses=staff_only)
    app.include_router(admin_resettlements.router, dependencies=[Depends(staff)], responses=staff_only)
    app.include_router(face.admin_router, dependencies=[Depends(staff)], responses=staff_only)
    app.include_router(pages.router)
    app.include_router(mobile_pages.router)
    app.include_router(kiosk.page_router)
    app.include_router(admin_pages.router)
    app.mount(mobile_pages.STATIC_PATH, mobile_pages.static_files, name="mobile-static")
    _describe(app)
    return app


def _describe(app: FastAPI) -> None:
    """/openapi.json as ``described.finalize`` completes it (made once, on first request)."""
    generate = app.openapi

    def openapi() -> dict:
        if getattr(app.state, "described", None) is None:
            app.state.described = described.finalize(generate())
        return app.state.described

    app.openapi = openapi  # type: ignore[method-assign]
