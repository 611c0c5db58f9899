"""The app's account (``services.mobile.accounts``): sign in with a phone number and a texted code, the account
page's data, sign-out (here or everywhere), and the person the account speaks for.

A signed-in browser carries the ``medpay_session`` cookie — httpOnly (no script reads it), SameSite=Strict (no
other site's page sends it), Secure over HTTPS — and sends ``X-CSRF-Token`` with every state-changing request; a
request with an ``Origin`` other than this server's is refused as well. Paying still takes the device key: a
session shows, the e-certificate's key pays.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictStr

from medpay.api import described
from medpay.api.mobile.ecert import signed_by_device
from medpay.api.platform import whole_number_from_env
from medpay.services.mobile.accounts import IP_HOURLY, SESSION_MAX, AccountService, Caller, CsrfRefused

router = APIRouter(prefix="/api/v1/mobile", tags=["mobile"])

COOKIE = "medpay_session"
CSRF_HEADER = "X-CSRF-Token"
SIGNED_IN = {401: "not signed in: no session cookie, a forged one, or the session ended"}
CHANGES = {**SIGNED_IN, 403: "the CSRF token is missing or wrong, or the request came from another origin"}


def account_service(request: Request) -> AccountService:
    svc = getattr(request.app.state, "accounts", None)
    if svc is None:
        p = request.app.state.platform
        svc = request.app.state.accounts = AccountService(
            p.factory, p.cipher, p.sms, clock=p.persons.clock,
            ip_hourly=whole_number_from_env("MEDPAY_SIGN_IN_IP_HOURLY", IP_HOURLY, 1, 100000))
    return svc


def _same_origin(request: Request) -> None:
    """A browser names the page's origin on every cross-site POST: one that isn't ours is refused (besides the
    CSRF token, which such a page can't read)."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if origin.split("://", 1)[-1] != host:
        raise CsrfRefused("Origin", "the request came from another site's page")


async def signed_in(request: Request, *, changes_state: bool = False) -> Caller:
    """The account whose session cookie came with the request (for a change: with its CSRF token, from our
    origin)."""
    if changes_state:
        _same_origin(request)
    return await run_in_threadpool(account_service(request).caller, request.cookies.get(COOKIE),
                                   request.headers.get(CSRF_HEADER), changes_state=changes_state)


def _secure(request: Request) -> bool:
    setting = os.environ.get("MEDPAY_COOKIE_SECURE", "auto").strip().lower()
    return request.url.scheme == "https" if setting == "auto" else setting in ("1", "true", "yes")


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


# -- sign in -----------------------------------------------------------------------------------------------------


class SignInStart(BaseModel):
    phone: StrictStr = Field(..., min_length=11, max_length=11, pattern=r"^1[3-9][0-9]{9}$",
                             description="手机号: an 11-digit mainland mobile number", examples=["13800000001"])
    model_config = {"extra": "forbid"}


class CodeSentAnswer(BaseModel):
    challenge_id: str = Field(..., description="send it back with the texted code")
    phone: str = Field(..., description="where the code went, masked")
    expires_at: datetime
    resend_at: datetime = Field(..., description="another code may be asked for from this time")


class SignInConfirm(BaseModel):
    challenge_id: StrictStr = Field(..., min_length=32, max_length=32, pattern="^[0-9a-f]{32}$")
    phone: StrictStr = Field(..., min_length=11, max_length=11, pattern=r"^1[3-9][0-9]{9}$")
    code: StrictStr = Field(..., min_length=6, max_length=6, pattern="^[0-9]{6}$",
                            description="the 6 digits texted to the phone")
    model_config = {"extra": "forbid"}


class SignedInAnswer(BaseModel):
    account_id: str
    new_account: bool = Field(..., description="the number's first sign-in (or the first after it lay silent "
                                                "long enough to have been given to someone else)")
    csrf_token: str = Field(..., description=f"send it as {CSRF_HEADER} with every state-changing request")
    expires_at: datetime = Field(..., description="the session's latest end (it ends sooner when idle)")


class LinkedPerson(BaseModel):
    psn_no: str
    name: str = Field(..., description="masked")
    relation: str = Field(..., description="self, spouse, parent or child")
    status: str = Field(..., description="active, or pending: waiting for the member's consent")
    consent: str | None = Field(None, description="device (self), member (the member consented), guardian_minor "
                                                  "(a parent acts for a minor child)")
    linked_at: datetime


class SessionInfo(BaseModel):
    current: bool = Field(..., description="the browser asking")
    created_at: datetime
    last_seen_at: datetime
    user_agent: str


class AccountAnswer(BaseModel):
    account_id: str
    phone: str = Field(..., description="masked")
    created_at: datetime
    csrf_token: str = Field(..., description=f"this session's token for {CSRF_HEADER}")
    persons: list[LinkedPerson]
    sessions: list[SessionInfo]


class SignedOut(BaseModel):
    ended: int = Field(..., description="how many sessions ended")


class Linked(BaseModel):
    psn_no: str
    linked: bool = Field(..., description="false when the account already spoke for this person")


@router.post("/sign-in", status_code=202, response_model=CodeSentAnswer, operation_id="start_sign_in",
             summary="登录(一) / sign in, step 1: a code texted to the phone number",
             description="Answers alike whether or not the number has an account. One code a minute and "
                         "10 a day per number, 20 an hour per client address.",
             responses=described.answers(router.prefix, {
                 403: "sent from another site's page (Origin)",
                 422: "not a mainland mobile number", 429: "too many codes asked for (the message says when to "
                                                           "try again)",
                 503: "the code could not be texted; try again"}))
async def start_sign_in(request: Request, req: SignInStart) -> CodeSentAnswer:
    _same_origin(request)  # another site's page may not text codes in our name
    sent = await run_in_threadpool(account_service(request).start, req.phone, _client_ip(request))
    return CodeSentAnswer(challenge_id=sent.challenge_id, phone=sent.phone, expires_at=sent.expires_at,
                          resend_at=sent.resend_at)


@router.post("/sign-in/confirm", response_model=SignedInAnswer, operation_id="confirm_sign_in",
             summary="登录(二) / step 2: the texted code; sets the session cookie",
             responses=described.answers(router.prefix, {
                 409: "another first sign-in of this number at the same moment",
                 403: "sent from another site's page (Origin)",
                 422: "wrong, expired, used or unknown code (5 wrong tries end a code)"}))
async def confirm_sign_in(request: Request, req: SignInConfirm) -> JSONResponse:
    _same_origin(request)  # nor sign a visitor into an account of its choosing
    done = await run_in_threadpool(account_service(request).confirm, req.challenge_id, req.code, req.phone,
                                   request.headers.get("user-agent", ""))
    answer = SignedInAnswer(account_id=done.account_id, new_account=done.new_account, csrf_token=done.csrf_token,
                            expires_at=done.expires_at)
    response = JSONResponse(answer.model_dump(mode="json"), headers={"Cache-Control": "no-store"})
    response.set_cookie(COOKIE, done.token, max_age=int(SESSION_MAX.total_seconds()), path="/", httponly=True,
                        samesite="strict", secure=_secure(request))
    return response


# -- the account -------------------------------------------------------------------------------------------------


@router.get("/account", response_model=AccountAnswer, openapi_extra=described.signed("session"),
            summary="我的账号 / the account: number, the persons it speaks for, signed-in browsers, CSRF token",
            responses=described.answers(router.prefix, SIGNED_IN))
async def account(request: Request) -> JSONResponse:
    caller = await signed_in(request)
    data = await run_in_threadpool(account_service(request).account, caller)
    answer = AccountAnswer(**data, csrf_token=caller.csrf_token)
    return JSONResponse(answer.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


def _ended(request: Request, ended: int) -> JSONResponse:
    response = JSONResponse(SignedOut(ended=ended).model_dump(), headers={"Cache-Control": "no-store"})
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
    return response


@router.post("/sign-out", response_model=SignedOut, openapi_extra=described.signed("session+csrf"),
             summary="退出登录 / sign out this browser", responses=described.answers(router.prefix, CHANGES))
async def sign_out(request: Request) -> JSONResponse:
    caller = await signed_in(request, changes_state=True)
    return _ended(request, await run_in_threadpool(account_service(request).sign_out, caller))


@router.post("/sign-out/everywhere", response_model=SignedOut, openapi_extra=described.signed("session+csrf"),
             summary="退出所有设备 / sign out every browser of the account (a lost phone)",
             responses=described.answers(router.prefix, CHANGES))
async def sign_out_everywhere(request: Request) -> JSONResponse:
    caller = await signed_in(request, changes_state=True)
    return _ended(request, await run_in_threadpool(account_service(request).sign_out, caller, True))


@router.post("/account/persons", response_model=Linked, status_code=200,
             openapi_extra=described.signed("session+csrf+device"),
             summary="关联本人 / the account speaks for the person whose e-certificate this device holds",
             description="Signed by the device key of an active e-certificate (its activation went to the phone on "
                         "the person's record): a sign-in proves a phone, the device proves the person. A link of "
                         "the person to another account ends.",
             responses=described.answers(router.prefix, {
                 **CHANGES, 401: "not signed in, or the device signature is refused",
                 409: "linked elsewhere at the same moment"}))
async def link_self(request: Request) -> dict[str, Any]:
    body = await request.body()
    caller = await signed_in(request, changes_state=True)
    ecert_id, psn_no = await signed_by_device(request, body)
    linked = await run_in_threadpool(account_service(request).link_self, caller, ecert_id, psn_no)
    return {"psn_no": psn_no, "linked": linked}


class Revoked(BaseModel):
    ecert_id: str
    status: str = "revoked"


@router.post("/account/persons/{psn_no}/revoke-device", response_model=Revoked,
             openapi_extra=described.signed("session+csrf"),
             summary="挂失 / a lost phone: the person's e-certificate stops working at once",
             description="From any signed-in browser of the account that speaks for the person as themselves. The "
                         "lost device is told why on its next request; activate again on the new phone.",
             responses=described.answers(router.prefix, {**CHANGES, 404: "the account does not speak for such a "
                                                                          "person, or no active e-certificate"}))
async def revoke_device(request: Request, psn_no: str = PathParam(..., min_length=1, max_length=30,
                                                                  pattern=r"^[A-Za-z0-9]+$")) -> Revoked:
    caller = await signed_in(request, changes_state=True)
    return Revoked(ecert_id=await run_in_threadpool(account_service(request).revoke_device, caller, psn_no))


@router.delete("/account/persons/{psn_no}", response_model=Linked, openapi_extra=described.signed("session+csrf"),
               summary="取消关联 / the account no longer speaks for this person (at once)",
               responses=described.answers(router.prefix, {**CHANGES, 404: "the account does not speak for such "
                                                                            "a person"}))
async def unlink(request: Request, psn_no: str = PathParam(..., min_length=1, max_length=30,
                                                           pattern=r"^[A-Za-z0-9]+$")) -> dict[str, Any]:
    caller = await signed_in(request, changes_state=True)
    await run_in_threadpool(account_service(request).unlink, caller, psn_no)
    return {"psn_no": psn_no, "linked": False}
