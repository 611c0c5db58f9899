"""The FastAPI application: one process serves every door (institution interface, terminals, the patient's app
and its pages, partners, admin)."""

from __future__ import annotations

from fastapi import FastAPI

from medpay import __version__
from medpay.api import admin, errors, mobile, mobile_pages, pages, payments, terminal
from medpay.api.institution import routes as institution
from medpay.api.platform import Platform, build_platform

DESCRIPTION = """
medpay 医保便捷支付平台 — 门诊、急诊、住院费用一站式结算：统筹基金、个人账户（含家庭共济）与个人自付。

Unified medical-insurance convenient payment for a region. Amounts at this interface are **yuan** with
two decimals; inside, everything is integer fen. Errors share one shape:
`{"error": {"code", "field", "message"}}`.
"""


def create_app(platform: Platform | None = None) -> FastAPI:
    app = FastAPI(
        title="medpay 医保便捷支付", version=__version__, description=DESCRIPTION,
        openapi_tags=[
            {"name": "institution", "description": "定点医药机构接口 — the NHSA-style interface HIS systems call (infno transactions)"},
            {"name": "terminal", "description": "扫码终端 — ec.query and one-scan settlement for an institution's signed terminals"},
            {"name": "mobile", "description": "移动端 — e-certificate activation, the dynamic QR code and paying bill codes (device-key signed)"},
            {"name": "partner", "description": "合作方 — signed callbacks of the payment gateway"},
            {"name": "admin", "description": "医保经办 — policies, quotes and ledger checks for the bureau's staff"},
            {"name": "pages", "description": "网页 — human pages: the home page, and the patient's mobile app under /m/"},
        ],
    )
    app.state.platform = platform or build_platform()
    errors.install(app)
    app.include_router(institution.router)
    app.include_router(terminal.router)
    app.include_router(payments.terminal_router)
    app.include_router(mobile.router)
    app.include_router(payments.mobile_router)
    app.include_router(payments.partner_router)
    app.include_router(payments.admin_router)
    app.include_router(admin.router)
    app.include_router(pages.router)
    app.include_router(mobile_pages.router)
    app.mount(mobile_pages.STATIC_PATH, mobile_pages.static_files, name="mobile-static")
    return app
