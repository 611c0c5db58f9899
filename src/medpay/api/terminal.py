"""Terminal door (扫码终端): ``ec.query`` for scanners, kiosks and windows of an institution.

Every request is signed by the terminal's Ed25519 key (registered per institution)::

    X-Terminal-Id: TM…            X-Timestamp: unix seconds (±300 s)
    X-Nonce: 8–64 characters, once   X-Signature: hex(Ed25519(METHOD\\npath\\ntimestamp\\nnonce\\nsha256hex(body)))

Responses use the e-certificate interface's envelope ``{orgId, code, message, data}``: ``code`` 0 is success;
any other ``code`` comes with an HTTP 4xx status and ``message`` = ``"<field>: <why>"``. The nonzero codes are
medpay's own (the interface's 附录A.3 table is not in our sources): see ``EC_CODES``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from medpay.adapters.platform_keys import default_signing_key
from medpay.api import described
from medpay.api.uploads import read_multipart
from medpay.domain.ecert_code import BUSINESS_TYPES
from medpay.services.qr.ecert import EcertService
from medpay.services.errors import Forbidden, Invalid, ServiceError

router = APIRouter(prefix="/api/v1/terminal", tags=["terminal"])
EC_QUERY = "/api/v1/terminal/ec/query"

EC_CODES: dict[str, int] = {
    "invalid": 1001,  # a request field is missing or malformed
    "not_found": 1002,
    "forbidden": 1003,  # orgId is not the terminal's institution
    "conflict": 1004,
    "unauthorized": 1101,  # terminal signature headers: missing, stale, wrong, replayed nonce
    "too_large": 1102,
    "code_invalid": 2001,  # truncated, garbled, other version
    "code_forged": 2002,  # signature doesn't verify
    "code_expired": 2003,
    "code_used": 2004,  # scanned before
    "ecert_revoked": 2005,
    "business_type_mismatch": 2006,
    "image_invalid": 2007,  # no QR code, two codes, not an image
}


def ecert_service(request: Request) -> EcertService:
    """The app's EcertService: ``app.state.ecert`` if set, else built once from the Platform (same database,
    cipher, person service and code lifetime; the signing key from ``MEDPAY_SIGNING_KEY_FILE``)."""
    svc = getattr(request.app.state, "ecert", None)
    if svc is None:
        p = request.app.state.platform
        svc = EcertService(p.factory, p.cipher, default_signing_key(), p.persons, clock=p.persons.clock,
                           code_ttl_s=p.ecert_code_ttl_s)
        request.app.state.ecert = svc
    return svc


async def verify_terminal(request: Request, body: bytes) -> tuple[str, str]:
    """(terminal_id, fixmedins_code) of a request signed by a registered terminal; the signature covers the
    method, the request target as sent (path and query) and the body. Every terminal endpoint checks it so."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return await run_in_threadpool(ecert_service(request).verify_terminal, request.headers, request.method, target, body)


QUERY_EXAMPLE_JSON = {"orgId": "H99990100001", "businessType": "01301",
                      "qrCode": "MPEC1.eyJ2IjoxLCJlYyI6IkVDN0syTTlRWDQiLCJidCI6IjAxMzAxIiwiaWF0IjoxNzY3MjI1NjAwLCJleHAi"
                                "OjE3NjcyMjU2NjAsIm4iOiJXbEQ0S3pWd1RfOCJ9.<86 characters of signature>",
                      "operatorId": "0001", "operatorName": "收费员", "deviceType": "Window"}
QUERY_EXAMPLE_ENVELOPE = {"orgId": "H99990100001", "transType": "ec.query",
                          "data": {"businessType": "01101", "qrCode": "MPEC1.….…", "deviceType": "SelfService"}}
QUERY_OK = {"orgId": "H99990100001", "code": 0, "message": "成功", "data": {
    "idNo": "999901********0011", "idType": "01", "userName": "王**", "ecToken": "3f9a…(40 hex)",
    "insuOrg": "999901", "ecIndexNo": "EC7K2M9QX4", "gender": "1", "birthday": "1980-01-01",
    "businessType": "01301"}}

_IDENTITY = {"type": "object", "description": "the code's holder, masked, and the ecToken", "properties": {
    "idNo": {"type": "string", "description": "证件号码, masked"}, "idType": {"type": "string"},
    "userName": {"type": "string", "description": "姓名, masked"},
    "ecToken": {"type": "string", "description": "令牌 (40): mdtrt_cert_type 01 at this institution, one visit"},
    "insuOrg": {"type": "string", "description": "参保地区编码"}, "ecIndexNo": {"type": "string"},
    "gender": {"type": "string"}, "birthday": {"type": "string", "format": "date"},
    "businessType": {"type": "string", "enum": list(BUSINESS_TYPES)}}}

_OPENAPI = {
    **described.signed("terminal"),
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "required": ["orgId", "businessType", "qrCode"], "properties": {
                    "orgId": {"type": "string", "description": "定点医药机构编号: the terminal's institution"},
                    "businessType": {"type": "string", "enum": list(BUSINESS_TYPES),
                                     "description": "用码业务类型: " + ", ".join(f"{k} {v}" for k, v in
                                                                           BUSINESS_TYPES.items())},
                    "qrCode": {"type": "string", "description": "the scanned string"},
                    "operatorId": {"type": "string"}, "operatorName": {"type": "string"},
                    "officeId": {"type": "string"}, "officeName": {"type": "string"},
                    "deviceType": {"type": "string"}}},
                "examples": {"scanned": {"summary": "scanned string", "value": QUERY_EXAMPLE_JSON},
                             "envelope": {"summary": "interface envelope {orgId, transType, data}",
                                          "value": QUERY_EXAMPLE_ENVELOPE}},
            },
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["orgId", "businessType", "image"], "properties": {
                    "orgId": {"type": "string"}, "businessType": {"type": "string", "enum": list(BUSINESS_TYPES)},
                    "image": {"type": "string", "format": "binary",
                              "description": "a photo of the code (PNG/JPEG/…, ≤ 8 MiB); exactly one QR code"}}},
            },
        },
    },
}

_ERROR_EXAMPLE = {"orgId": "H99990100001", "code": 2006, "message": "businessType: this code was made for 01301 "
                  "门诊结算, not for 01101 门诊挂号; ask the patient to show a code for 门诊挂号", "data": None}
_REFUSALS = described.answers(EC_QUERY, {
    401: "terminal signature refused (code 1101): a missing, stale, wrong or replayed header",
    403: "orgId is not the terminal's institution, or the e-certificate was revoked",
    404: "the code names no e-certificate",
    409: "the code was scanned before (code 2004)",
    422: "the code or the request is refused: forged, expired, malformed, another business type, no single QR "
         "code in the photo"})
_REFUSALS[422]["content"]["application/json"]["example"] = _ERROR_EXAMPLE


@router.post(
    EC_QUERY.removeprefix(router.prefix), summary="二维码解码 ec.query / scanned code or photo → masked identity + ecToken",
    description="Checks the code (platform signature, ≤ 60 s old, business type, e-certificate active, never "
                "scanned before), then issues an **ecToken bound to the person and the terminal's institution**, "
                "usable as `mdtrt_cert_type=01` / `mdtrt_cert_no`. It opens one visit within 30 minutes and then "
                "works for that visit's 1101/2201/2204/2206/2207 (or 2401/2301/2303/2304) until the visit is settled "
                "or cancelled; a later discharge or a new visit needs a fresh code. A code is not tied to an "
                "institution: whichever institution's terminal scans it first gets the token, and only that "
                "institution can use it. A refused scan consumes nothing.",
    openapi_extra=_OPENAPI,
    responses={200: {"description": "identity", "content": {"application/json": {
                   "schema": {**described.EC_SCHEMA, "properties": {**described.EC_SCHEMA["properties"],
                                                                       "data": _IDENTITY}},
                   "example": QUERY_OK}}},
               **_REFUSALS},
)
async def ec_query(request: Request) -> JSONResponse:
    org_id: str | None = None
    try:
        body = await request.body()
        svc = ecert_service(request)
        terminal_id, fixmedins_code = await verify_terminal(request, body)
        org_id, business_type, scanned, image = _parse(request.headers.get("content-type", ""), body)
        if org_id is None:
            raise Invalid("orgId", "missing: the terminal's institution code (定点医药机构编号)")
        if org_id != fixmedins_code:
            raise Forbidden("orgId", f"this terminal belongs to {fixmedins_code}, not {org_id}")
        data = await run_in_threadpool(svc.query, terminal_id, fixmedins_code, scanned, image, business_type)
    except ServiceError as e:
        return _error(e.status, e.code, e.field, e.message, org_id)
    return JSONResponse({"orgId": fixmedins_code, "code": 0, "message": "成功", "data": data},
                        headers={"Cache-Control": "no-store"})


def _error(status: int, code: str, field: str, message: str, org_id: str | None) -> JSONResponse:
    number = EC_CODES.get(code) or (1101 if status == 401 else 1001)
    return JSONResponse(status_code=status, content={"orgId": org_id, "code": number,
                                                     "message": f"{field}: {message}", "data": None},
                        headers={"Cache-Control": "no-store"})


def _text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(field, "must be a string")
    return value.strip()


def _parse(content_type: str, body: bytes) -> tuple[str | None, Any, str | None, bytes | None]:
    """(orgId, businessType, qrCode, image) from a JSON body (flat, or the interface envelope with ``data``) or
    a multipart form."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        fields, files = read_multipart(content_type, body)
        image = files.get("image")
        if image is None and "image" in fields:
            raise Invalid("image", "must be sent as a file part (with a filename)")
        return (_text(fields.get("orgId"), "orgId"), _text(fields.get("businessType"), "businessType"),
                fields.get("qrCode"), image)
    if media not in ("application/json", ""):
        raise Invalid("body", f"content type {media!r}: send application/json or multipart/form-data")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise Invalid("body", "not valid JSON") from None
    if not isinstance(doc, dict):
        raise Invalid("body", "must be a JSON object")
    org_id = _text(doc.get("orgId"), "orgId")
    if "data" in doc:  # {orgId, transType, data, extra}
        trans = doc.get("transType")
        if trans not in (None, "ec.query"):
            raise Invalid("transType", f"this endpoint serves ec.query, not {trans!r}")
        doc = doc["data"]
        if not isinstance(doc, dict):
            raise Invalid("data", "must be a JSON object")
        org_id = org_id or _text(doc.get("orgId"), "data.orgId")
    scanned = doc.get("qrCode")
    if scanned is not None and not isinstance(scanned, str):
        raise Invalid("qrCode", "must be a string")
    return org_id, doc.get("businessType"), scanned, None
