"""HTTP transport of the institution interface: the single callService endpoint and per-transaction paths.

Every answer is a response envelope: infcode 0 success, −2 a refused request (err_msg names the field;
nothing was written), −1 a system fault (the HIS should reverse with 2601). Authentication failures
are HTTP 401 with the same envelope.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from medpay.api.institution import examples
from medpay.api.institution.envelope import EnvelopeError, parse_envelope, response
from medpay.api.institution.transactions import HANDLERS, NO_SIGN_IN, Call
from medpay.api.institution import reconciliation_handlers  # noqa: F401  (registers 3201/3202/9101/9102)
from medpay.api.platform import Platform
from medpay.nhsa_paths import CALL_SERVICE, PATHS
from medpay.services.errors import ServiceError
from medpay.services.gateway_auth import AuthError

log = logging.getLogger("medpay.institution")
router = APIRouter(tags=["institution"])
RECEIVER_ADMDVS = "999901"  # inf_refmsgid prefix: this platform's region


def dispatch(platform: Platform, headers: dict[str, str], body: bytes, infno_from_path: str | None) -> JSONResponse:
    received = platform.settlement.clock()
    started = time.perf_counter()
    status, infcode, output, err, infno, msgid = 200, 0, None, None, infno_from_path or "", ""
    try:
        code = platform.gateway.verify(headers)
        env = parse_envelope(body, infno_from_path)
        infno, msgid = env.infno, env.msgid
        if env.fixmedins_code != code:
            raise AuthError("fixmedins_code", "does not match the institution of the gateway credentials")
        platform.gateway.verify_body(code, env.raw)
        handler = HANDLERS.get(env.infno)
        if handler is None:
            raise EnvelopeError("infno", f"unknown transaction {env.infno!r}")
        if env.infno not in NO_SIGN_IN and not platform.sign_in.check(code, env.get("sign_no")):
            raise EnvelopeError("sign_no", "no active sign-in with this sign_no (9001 first)")
        output = handler(Call(env, code, platform))
    except AuthError as e:
        status, infcode, err = 401, -2, f"{e.field}: {e.message}"
    except (EnvelopeError, ServiceError) as e:
        infcode, err = -2, f"{e.field}: {e.message}"
    except Exception:  # a fault of ours: logged with its trace, never shown to the caller
        log.exception("institution interface fault infno=%s msgid=%s", infno, msgid)
        infcode, err = -1, "系统错误 system fault; the outcome is unknown to the caller — reverse with 2601 if it was a write"
    now = platform.settlement.clock()
    log.info("infno=%s msgid=%s infcode=%s %.1fms", infno, msgid, infcode, (time.perf_counter() - started) * 1000)
    return JSONResponse(status_code=status, content=response(infcode, output, err, admdvs=RECEIVER_ADMDVS,
                                                             received=received, now=now))


async def _handle(request: Request, infno: str | None) -> JSONResponse:
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    return await run_in_threadpool(dispatch, request.app.state.platform, headers, body, infno)


def _openapi(infnos: list[str]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": examples.ENVELOPE_SCHEMA,
        "examples": {i: examples.EXAMPLES[i] for i in infnos if i in examples.EXAMPLES}}}},
        "parameters": examples.HEADER_PARAMETERS,
        "responses": {"200": {"description": "response envelope", "content": {"application/json": {
            "schema": examples.RESPONSE_SCHEMA}}},
            "401": {"description": "authentication failed (x-tif-* headers, fixmedins_code)"}}}


@router.post(CALL_SERVICE, summary="统一交易入口 / all transactions, chosen by infno",
             description="Every transaction of the interface: " + ", ".join(sorted(HANDLERS)),
             openapi_extra=_openapi(sorted(HANDLERS)), response_class=JSONResponse)
async def call_service(request: Request) -> JSONResponse:
    return await _handle(request, None)


def _path_endpoint(infno: str):
    async def endpoint(request: Request) -> JSONResponse:
        return await _handle(request, infno)

    endpoint.__name__ = f"infno_{infno}"
    return endpoint


for _infno, _path in PATHS.items():
    router.add_api_route(_path, _path_endpoint(_infno), methods=["POST"], response_class=JSONResponse,
                         summary=f"{_infno} {examples.TITLES.get(_infno, '')}", openapi_extra=_openapi([_infno]))
