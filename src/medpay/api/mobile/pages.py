"""The patient's mobile web app (医保码), served by the platform under ``/m/``: activate the e-certificate on this
device, show the dynamic QR code, pay a bill code from the window's screen or what the doctor ordered, enrol for
face payment with a live selfie (and withdraw that consent), sign in to the account. zh-CN first; ``?lang=en``
for English.

The pages are templates without personal data; their plain JavaScript (``web/static``, no build step) talks to the
mobile API with the device's Ed25519 key, kept non-extractable in IndexedDB.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from medpay.api.mobile.text import business_type_groups, page_text
from medpay.services.face.enrolment import CONSENT_VERSION

WEB = Path(__file__).resolve().parents[2] / "web"
STATIC_PATH = "/m/static"

router = APIRouter(prefix="/m", tags=["pages"])
templates = Jinja2Templates(directory=WEB / "templates")
static_files = StaticFiles(directory=WEB / "static")

# The pages run only their own scripts and talk only to this origin; they are never framed or cached.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",  # the selfie page films; nothing else
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _page(request: Request, name: str, lang: str, **context) -> HTMLResponse:
    lang = "en" if lang == "en" else "zh"  # anything else: the Chinese page
    return templates.TemplateResponse(request, f"mobile_{name}.html", {
        "t": page_text(lang), "lang": lang, "page": name, "static": STATIC_PATH, **context}, headers=HEADERS)


@router.get("/", response_class=HTMLResponse, summary="医保码 / the patient's dynamic QR code (mobile page)")
def code_page(request: Request, lang: str = "zh") -> HTMLResponse:
    return _page(request, "code", lang, business_types=business_type_groups(lang), default_business_type="01301")


@router.get("/activate", response_class=HTMLResponse, summary="激活 / activate the e-certificate on this device")
def activate_page(request: Request, lang: str = "zh") -> HTMLResponse:
    return _page(request, "activate", lang)


@router.get("/pay", response_class=HTMLResponse, summary="扫码付 / pay a bill code shown at the window")
def pay_page(request: Request, lang: str = "zh") -> HTMLResponse:
    return _page(request, "pay", lang)


@router.get("/bills", response_class=HTMLResponse, summary="待缴费 / pay what the doctor ordered (诊间支付)")
def bills_page(request: Request, lang: str = "zh") -> HTMLResponse:
    return _page(request, "bills", lang)


@router.get("/book", response_class=HTMLResponse, summary="预约挂号 / book a visit: slots, my bookings, cancel")
def book_page(request: Request, lang: str = "zh") -> HTMLResponse:
    return _page(request, "book", lang)


@router.get("/stay", response_class=HTMLResponse,
            summary="住院 / a hospital stay: deposit, fees so far, top-up, discharge and its settlement")
def stay_page(request: Request, lang: str = "zh") -> HTMLResponse:
    return _page(request, "stay", lang)


@router.get("/account", response_class=HTMLResponse,
            summary="我的 / sign in with a phone number; the account, its person, its signed-in browsers")
def account_page(request: Request, lang: str = "zh") -> HTMLResponse:
    return _page(request, "account", lang)


@router.get("/records", response_class=HTMLResponse,
            summary="报销记录 / the year's settlements, the signed slip (PDF), the CSV export")
def records_page(request: Request, lang: str = "zh") -> HTMLResponse:
    return _page(request, "records", lang)


@router.get("/verify", response_class=HTMLResponse,
            summary="核验结算单 / check a settlement slip's QR code (public; the slip's code is in ?code=)")
def verify_page(request: Request, lang: str = "zh") -> HTMLResponse:
    return _page(request, "verify", lang)


@router.get("/face", response_class=HTMLResponse, summary="刷脸开通 / enrol for face payment (consent, live selfie, PIN)")
def face_page(request: Request, lang: str = "zh") -> HTMLResponse:
    return _page(request, "face", lang, consent_version=CONSENT_VERSION)
