"""Face doors (刷脸): a face terminal's verification (``cn.nhsa.ec.auth`` → ``cn.nhsa.auth.check``), enrolment at a
counter (staff key) and from the app (device key, a live selfie performing a challenge), and withdrawal of
consent.

Face terminals are terminals of kind ``face`` (``medpay ecert terminal-register --kind face``) and sign every
request like any terminal (``X-Terminal-Id``, ``X-Timestamp``, ``X-Nonce``, ``X-Signature``). Photos and frames
travel as multipart/form-data (``api/http_guard.PHOTO_PATHS``: 9 MiB); they are decoded in memory and dropped.
Every refusal is the door's one error shape, naming the field and saying that the QR code or ID card can be used
instead.
"""

from __future__ import annotations

import os
import random
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictStr
from starlette.concurrency import run_in_threadpool

from medpay.adapters.face.dlib_encoder import default_encoder
from medpay.adapters.face.vault import TemplateVault
from medpay.adapters.keyring import default_keyring, load_keyring
from medpay.adapters.platform_keys import default_signing_key
from medpay.adapters.region_settings import builtin_face_settings
from medpay.api import described
from medpay.api.bodies import json_body
from medpay.api.deps import staff
from medpay.api.mobile.ecert import signed_by_device
from medpay.api.terminal import ecert_service
from medpay.api.uploads import read_multipart
from medpay.domain.ecert_code import BUSINESS_TYPES
from medpay.money import parse_yuan
from medpay.services.errors import Forbidden, Invalid, NotFound
from medpay.services.face.enrolment import CONSENT_VERSION, MAX_PHOTOS, FaceEnrolment, check_terms
from medpay.services.face.enrolment_liveness import EnrolmentLiveness
from medpay.services.face.faces import FaceRejected
from medpay.services.face.terminal_refusals import TerminalRefusals
from medpay.services.face.verification import FaceVerification
from medpay.services.qr.ecert import TerminalAuthError
from medpay.services.staff import Staff

SESSIONS = "/api/v1/terminal/face/sessions"
VERIFY = "/api/v1/terminal/face/verify"
AUTH_CHECK = "/api/v1/terminal/face/auth-check"
COUNTER_ENROL = "/api/v1/admin/face/enrolments"
APP_ENROL = "/api/v1/mobile/face/enrolment"
SEED_ENV = "MEDPAY_FACE_CHALLENGE_SEED"  # tests only: honoured only with MEDPAY_ENV=test

terminal_router = APIRouter(prefix="/api/v1/terminal/face", tags=["terminal"])
admin_router = APIRouter(prefix="/api/v1/admin/face", tags=["admin"])
mobile_router = APIRouter(prefix="/api/v1/mobile/face", tags=["mobile"])


def challenge_rng(environ: dict[str, str] | None = None) -> random.Random:
    """The system's randomness; a seeded generator only when the test configuration asks (a fake camera loops one
    recorded video, so a browser test must know its challenge). Anything else stops the start."""
    env = os.environ if environ is None else environ
    seed = env.get(SEED_ENV, "").strip()
    if not seed:
        return random.SystemRandom()
    if env.get("MEDPAY_ENV") != "test":
        raise SystemExit(f"{SEED_ENV} makes face challenges predictable: it is for tests only (MEDPAY_ENV=test)")
    return random.Random(seed)


def face_services(request: Request) -> tuple[FaceEnrolment, FaceVerification]:
    """Built once per app from the Platform: the checked keyring's face keys (re-read from its file on an unknown
    key id), dlib's encoder, the region settings beside the policies."""
    svc = getattr(request.app.state, "face", None)
    if svc is None:
        p = request.app.state.platform
        files = default_keyring().files
        vault = TemplateVault(lambda: load_keyring(files).of("face"))
        encoder = default_encoder()
        svc = request.app.state.face = (
            FaceEnrolment(p.factory, p.cipher, vault, encoder, clock=p.persons.clock),
            FaceVerification(p.factory, p.cipher, vault, encoder, p.persons, default_signing_key(),
                             builtin_face_settings(), clock=p.persons.clock, rng=challenge_rng()))
    return svc


def enrolment_liveness(request: Request) -> EnrolmentLiveness:
    """The app enrolment's challenge, checked by the verification service's rules and replay memory."""
    return EnrolmentLiveness(face_services(request)[1])


def terminal_refusals(request: Request) -> TerminalRefusals:
    """The face doors' account of refused terminal signatures (one per app: it holds the per-minute counts)."""
    refusals = getattr(request.app.state, "face_refusals", None)
    if refusals is None:
        p = request.app.state.platform
        refusals = request.app.state.face_refusals = TerminalRefusals(p.factory, clock=p.persons.clock)
    return refusals


async def face_terminal(request: Request, body: bytes) -> tuple[str, str]:
    """(terminal_id, fixmedins_code) of the face terminal that signed this request; a refused signature that
    names a registered terminal is audited (``services/face/terminal_refusals``)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        return await run_in_threadpool(ecert_service(request).verify_terminal, request.headers, request.method,
                                       target, body, "face")
    except TerminalAuthError as e:
        await run_in_threadpool(terminal_refusals(request).note, request.headers, e)
        raise


def _org(org_id: Any, fixmedins_code: str) -> None:
    if not isinstance(org_id, str) or not org_id:
        raise Invalid("orgId", "missing: the terminal's institution code (定点医药机构编号)")
    if org_id != fixmedins_code:
        raise Forbidden("orgId", f"this terminal belongs to {fixmedins_code}, not {org_id}")


def _form(request: Request, body: bytes, prefix: str) -> tuple[dict[str, str], list[bytes]]:
    """Text fields and the files named ``<prefix>0``, ``<prefix>1`` … in order."""
    fields, files = read_multipart(request.headers.get("content-type", ""), body)
    photos = []
    while f"{prefix}{len(photos)}" in files:
        photos.append(files[f"{prefix}{len(photos)}"])
    extra = sorted(set(files) - {f"{prefix}{i}" for i in range(len(photos))})
    if extra:
        raise Invalid(extra[0], f"unexpected file: send {prefix}0, {prefix}1 … in order")
    return fields, photos


def _multipart(required: list[str], props: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": required, "properties": props}}}}}


_FILE = {"type": "string", "format": "binary"}
_FALLBACK_NOTE = " Every refusal names the field and offers the QR code or ID card instead."

# -- the terminal: cn.nhsa.ec.auth (session, verify) and cn.nhsa.auth.check ----------------------------------------


class SessionRequest(BaseModel):
    orgId: StrictStr = Field(..., max_length=12, description="定点医药机构编号: the terminal's institution")
    businessType: StrictStr = Field("01301", description="用码业务类型: " + ", ".join(BUSINESS_TYPES))
    amount: StrictStr = Field(..., max_length=16, description="the bill about to be paid, yuan: a region asks for a "
                                                              "closer match above its amount", examples=["60.00"])
    outBizNo: StrictStr = Field("", max_length=64, description="the terminal's own reference (unique per request)")

    model_config = {"extra": "forbid"}


class AuthCheck(BaseModel):
    orgId: StrictStr = Field(..., max_length=12)
    authNo: StrictStr = Field(..., min_length=1, max_length=64, description="实人认证业务流水号 from verify")

    model_config = {"extra": "forbid"}


_T = "/api/v1/terminal/face"


@terminal_router.post("/sessions", summary="刷脸会话 / open a verification session: a random signed liveness challenge",
                      openapi_extra={**described.signed("terminal"), **described.json_body(SessionRequest)},
                      responses=described.answers(_T, {401: "terminal signature refused",
                                                       403: "not a face terminal, or orgId is not its institution",
                                                       422: "a field is missing or malformed"}))
async def open_session(request: Request) -> JSONResponse:
    body = await request.body()
    terminal_id, code = await face_terminal(request, body)
    req = json_body(SessionRequest, body)
    _org(req.orgId, code)
    amount = parse_yuan(req.amount, "amount")
    _, verification = face_services(request)
    out = await run_in_threadpool(verification.open_session, terminal_id, code, amount, req.businessType)
    return JSONResponse({**out, "expires_at": out["expires_at"].isoformat()}, headers={"Cache-Control": "no-store"})


@terminal_router.post("/verify", summary="刷脸认证 cn.nhsa.ec.auth / frames + PIN → one-time authNo",
                      description="Frames (JPEG/PNG, `frame0` … in order, 4–40) filmed while the patient performs the "
                                  "session's challenge, the PIN set at enrolment (`pin`) and optionally the last 4 "
                                  "characters of the ID number (`id_last4`)." + _FALLBACK_NOTE,
                      openapi_extra={**described.signed("terminal"), **_multipart(
                          ["orgId", "session_id", "pin", "frame0"],
                          {"orgId": {"type": "string"}, "session_id": {"type": "string"},
                           "pin": {"type": "string", "pattern": "^[0-9]{6}$"}, "id_last4": {"type": "string"},
                           **{f"frame{i}": _FILE for i in range(4)}})},
                      responses=described.answers(_T, {
                          401: "terminal signature refused", 403: "liveness failed, frames replayed or frozen, face "
                                                                  "and PIN do not match, or face payment locked",
                          404: "unknown session", 409: "the session is over or expired",
                          422: "a field is missing or malformed; no face, several faces, too small, dark or blurred"}))
async def verify(request: Request) -> JSONResponse:
    body = await request.body()
    terminal_id, code = await face_terminal(request, body)
    fields, frames = _form(request, body, "frame")
    _org(fields.get("orgId"), code)
    _, verification = face_services(request)
    out = await run_in_threadpool(verification.verify, terminal_id, code, fields.get("session_id", ""), frames,
                                  fields.get("pin", ""), fields.get("id_last4") or None)
    return JSONResponse({**out, "expires_at": out["expires_at"].isoformat()}, headers={"Cache-Control": "no-store"})


@terminal_router.post("/auth-check", summary="cn.nhsa.auth.check / authNo → masked identity + ecToken (once)",
                      openapi_extra={**described.signed("terminal"), **described.json_body(AuthCheck)},
                      responses=described.answers(_T, {401: "terminal signature refused",
                                                       403: "not a face terminal; the authNo expired",
                                                       404: "unknown authNo", 409: "already exchanged",
                                                       422: "a field is missing or malformed"}))
async def auth_check(request: Request) -> JSONResponse:
    body = await request.body()
    terminal_id, code = await face_terminal(request, body)
    req = json_body(AuthCheck, body)
    _org(req.orgId, code)
    _, verification = face_services(request)
    out = await run_in_threadpool(verification.auth_check, terminal_id, code, req.authNo)
    return JSONResponse({"orgId": code, "code": 0, "message": "成功", "data": out},
                        headers={"Cache-Control": "no-store"})


# -- enrolment ----------------------------------------------------------------------------------------------------

_ENROL_FIELDS = {"pin": {"type": "string", "pattern": "^[0-9]{6}$"},
                 "consent": {"type": "string", "enum": ["true"], "description": "单独同意: separate consent"},
                 "consent_version": {"type": "string", "enum": [CONSENT_VERSION]},
                 **{f"image{i}": _FILE for i in range(MAX_PHOTOS)}}
_ENROL_ANSWERS = {404: "unknown psn_no",
                  422: "a field is missing or malformed; a photo failed the quality gate (named: images[i])"}


def _enrolled(out: dict) -> JSONResponse:
    return JSONResponse({**out, "enrolled_at": out["enrolled_at"].isoformat()}, headers={"Cache-Control": "no-store"})


@admin_router.post("/enrolments", summary="柜台开通刷脸 / enrol at a counter (ID card seen; staff key)",
                   openapi_extra=_multipart(["psn_no", "certno", "pin", "consent", "consent_version", "image0"],
                                            {"psn_no": {"type": "string"}, "certno": {"type": "string"},
                                             **_ENROL_FIELDS}),
                   responses=described.answers("/api/v1/admin", _ENROL_ANSWERS))
async def counter_enrol(request: Request, who: Staff = Depends(staff)) -> JSONResponse:
    fields, photos = _form(request, await request.body(), "image")
    enrolment, _ = face_services(request)
    out = await run_in_threadpool(
        enrolment.enrol, fields.get("psn_no", ""), photos, fields.get("pin", ""),
        consent=fields.get("consent") == "true", consent_version=fields.get("consent_version", ""),
        channel="counter", by=f"staff:{who.key_id}", certno=fields.get("certno", ""))
    return _enrolled(out)


@admin_router.delete("/enrolments/{psn_no}", summary="柜台撤回同意 / withdraw consent at a counter: template deleted",
                     responses=described.answers("/api/v1/admin", {404: "nothing enrolled"}))
async def counter_withdraw(psn_no: str, request: Request, who: Staff = Depends(staff)) -> JSONResponse:
    enrolment, _ = face_services(request)
    if not await run_in_threadpool(enrolment.withdraw, psn_no, via=f"counter:{who.key_id}", by=f"staff:{who.key_id}"):
        raise NotFound("psn_no", "no face enrolment or consent for this person")
    return JSONResponse({"psn_no": psn_no, "status": "withdrawn"})


class EnrolmentChallenge(BaseModel):
    challenge: list[dict[str, str]] = Field(..., description="the actions to perform in order: action, zh, en")
    challenge_token: str = Field(..., description="send it back with the frames; bound to this e-certificate")
    expires_at: str = Field(..., description="film and send before this (ISO 8601)")


@mobile_router.post("/enrolment/challenge", response_model=EnrolmentChallenge,
                    summary="App 开通刷脸：活体动作 / the liveness challenge a selfie enrolment must perform",
                    description="A random challenge (e.g. blink, then turn the head left), signed by the platform "
                                "and bound to the e-certificate that asked; the same checks as at a face terminal "
                                "apply to the frames sent with it. The body is empty.",
                    openapi_extra=described.signed("device"),
                    responses=described.answers("/api/v1/mobile", {401: "device signature refused"}))
async def app_enrol_challenge(request: Request) -> JSONResponse:
    ecert_id, psn_no = await signed_by_device(request, await request.body())
    out = await run_in_threadpool(enrolment_liveness(request).challenge, ecert_id, psn_no)
    return JSONResponse({**out, "expires_at": out["expires_at"].isoformat()}, headers={"Cache-Control": "no-store"})


@mobile_router.post("/enrolment", summary="App 开通刷脸 / enrol from the app: a live selfie (the device signs)",
                    description="The separate consent to the current text, a PIN of six digits, the "
                                "`challenge_token` from `POST /api/v1/mobile/face/enrolment/challenge` and the "
                                "frames (`frame0` … in order, 4–40, JPEG/PNG) filmed while the person performed it. "
                                "The challenge is checked as at a face terminal (one face per frame, no frozen or "
                                "replayed frames, the actions in order); the template is made from the frame at "
                                "rest, which must pass the quality gate. No image is kept.",
                    openapi_extra={**described.signed("device"), **_multipart(
                        ["pin", "consent", "consent_version", "challenge_token", "frame0"],
                        {**{k: v for k, v in _ENROL_FIELDS.items() if not k.startswith("image")},
                         "challenge_token": {"type": "string"}, **{f"frame{i}": _FILE for i in range(4)}})},
                    responses=described.answers("/api/v1/mobile", {
                        401: "device signature refused",
                        403: "the challenge was not performed, or frames replayed or frozen; the challenge token "
                             "expired or is another e-certificate's",
                        422: "a field is missing or malformed; no face, several faces, too small, dark or blurred "
                             "(named: frames[i])"}))
async def app_enrol(request: Request) -> JSONResponse:
    body = await request.body()
    ecert_id, psn_no = await signed_by_device(request, body)
    fields, frames = _form(request, body, "frame")
    consent, version, pin = fields.get("consent") == "true", fields.get("consent_version", ""), fields.get("pin", "")
    check_terms(consent, version, "app", pin)  # before a frame is looked at
    enrolment, _ = face_services(request)
    rest = await run_in_threadpool(enrolment_liveness(request).live_frame, ecert_id, psn_no,
                                   fields.get("challenge_token", ""), frames)
    try:
        out = await run_in_threadpool(enrolment.enrol, psn_no, [frames[rest]], pin, consent=consent,
                                      consent_version=version, channel="app", by=f"ecert:{ecert_id}")
    except FaceRejected as e:  # the quality gate on the frame at rest: name that frame
        raise FaceRejected(f"frames[{rest}]", e.message) from None
    return _enrolled(out)


@mobile_router.delete("/enrolment", summary="App 撤回同意 / withdraw consent from the app: template deleted at once",
                      openapi_extra=described.signed("device"),
                      responses=described.answers("/api/v1/mobile", {401: "device signature refused"}))
async def app_withdraw(request: Request) -> JSONResponse:
    ecert_id, psn_no = await signed_by_device(request)
    enrolment, _ = face_services(request)
    done = await run_in_threadpool(enrolment.withdraw, psn_no, via="app", by=f"ecert:{ecert_id}")
    return JSONResponse({"status": "withdrawn" if done else "not_enrolled"})
