"""The admin door's pages (医保经办): the loaded policies at ``/admin/policies`` and one policy at
``/admin/policies/{policy_id}`` — its tiers in words, its sources, its worked examples with the expected and the
computed amounts and whether they agree. zh-CN first; ``?lang=en`` for English.

The pages are templates without data. Their script asks for the staff key once per browser tab, keeps it in
``sessionStorage`` (never in a URL, a cookie or a query) and calls ``GET /api/v1/admin/policies`` and
``GET /api/v1/admin/policies/{policy_id}`` with it in the ``Authorization`` header, as any admin client does; a
wrong or revoked key is forgotten and asked for again. They run only their own scripts (the mobile pages' CSP).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from medpay.api.admin_text import admin_text
from medpay.api.mobile.pages import HEADERS as PAGE_HEADERS, STATIC_PATH, templates

router = APIRouter(prefix="/admin", tags=["pages"])

# the mobile pages' headers, without the camera they need
HEADERS = {**PAGE_HEADERS, "Permissions-Policy": "camera=(), microphone=(), geolocation=()"}


def _page(request: Request, name: str, lang: str, **context) -> HTMLResponse:
    lang = "en" if lang == "en" else "zh"
    return templates.TemplateResponse(request, f"admin_{name}.html", {
        "t": admin_text(lang), "lang": lang, "static": STATIC_PATH, **context}, headers=HEADERS)


@router.get("/policies", response_class=HTMLResponse, summary="政策 / the loaded policies (admin page, staff key)")
def policies_page(request: Request, lang: str = "zh") -> HTMLResponse:
    return _page(request, "policies", lang)


@router.get("/policies/{policy_id}", response_class=HTMLResponse,
            summary="政策详情 / one policy: tiers, sources, worked examples (admin page, staff key)")
def policy_page(request: Request, policy_id: str, lang: str = "zh") -> HTMLResponse:
    return _page(request, "policy", lang, policy_id=policy_id)
