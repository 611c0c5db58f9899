"""HTTP transport of the institution interface: every URL style of ``medpay.nhsa_paths`` (single endpoints, named
per-transaction paths, a base URL with the infno appended).

Every answer is a response envelope: infcode 0 success, −2 a refused request (err_msg names the field;
nothing was written), −1 a system fault (the HIS should reverse with 2601). Authentication failures
are HTTP 401 with the same envelope.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from medpay.api.http_guard import BODY_KEY, BodyRefused, json_depth_error
from medpay.api import described
from medpay.api.institution import examples
from medpay.api.institution.envelope import EnvelopeError, parse_envelope, response
from medpay.api.institution.transactions import HANDLERS, NO_SIGN_IN, Call
from medpay.api.institution import (  # noqa: F401  (they register their transactions)
    catalog_handlers, dictionary_handlers, filing_handlers, query_handlers, reconciliation_handlers)
from medpay.api.institution import person_query_handlers, settlement_list_handlers  # noqa: F401
from medpay.api.institution import pharmacy_handlers  # noqa: F401  (2101/2102/2103)
from medpay.api.institution import visit_info_handlers  # noqa: F401  (2203, 2401, 2402)
from medpay.api.platform import Platform
from medpay.interface_format import conform
from medpay.nhsa_paths import CALL_SERVICE, ENDPOINTS, NAMED, Route, institution_paths
from medpay.services import request_guard
from medpay.services.errors import AuthError, ServiceError
from medpay.services.gateway_auth import Credential, GatewayAuth
from medpay.services.request_guard import RequestGuard

log = logging.getLogger("medpay.institution")
router = APIRouter(tags=["institution"])
RECEIVER_ADMDVS = "999901"  # inf_refmsgid prefix: this platform's region


def dispatch(platform: Platform, headers: dict[str, str], body: bytes | BodyRefused, route: Route | None,
             cred: Credential | AuthError | None = None) -> JSONResponse:
    """One request of the interface, answered with an envelope. ``route``: the transactions the URL names (None:
    the body's infno decides); ``cred``: the headers' credential (or why they were refused) when the caller has
    checked them already; ``body``: what the transport could not take instead of the body, if so."""
    received = platform.settlement.clock()
    started = time.perf_counter()
    infno = route.infnos[0] if route is not None and route.infnos else ""
    status, infcode, output, err, msgid = 200, 0, None, None, ""
    guard: RequestGuard | None = None
    handled = False  # the envelope was sound and the transaction's handler ran
    try:
        if cred is None:
            cred = platform.gateway.authenticate(headers)
        elif isinstance(cred, AuthError):
            raise cred
        # from here on the request uses up its nonce, whatever the answer
        guard = RequestGuard(cred.paasid, cred.nonce, cred.timestamp, cred.seen_at, cred.fixmedins_code)
        if isinstance(body, BodyRefused):  # too large, too slow, the client gone: said in the transaction line
            status = body.status
            raise EnvelopeError(body.field, body.message)
        why = json_depth_error(body)
        if why is not None:
            raise EnvelopeError("body", why)
        env = parse_envelope(body, route)
        infno, msgid = env.infno, env.msgid
        if env.fixmedins_code != cred.fixmedins_code:
            raise AuthError("fixmedins_code", "does not match the institution of the gateway credentials")
        platform.gateway.verify_body(cred.fixmedins_code, env.raw)
        sign_no = env.get("sign_no")
        # a sign_no given is always checked; none at all passes where the institution's sign-in is optional
        guard.sign_no = None if env.infno in NO_SIGN_IN or (not sign_no and not cred.sign_in_required) else sign_no
        handler = HANDLERS.get(env.infno)
        if handler is None:
            raise EnvelopeError("infno", f"unknown transaction {env.infno!r}")
        if guard.sign_no == "":
            raise EnvelopeError("sign_no", "no active sign-in with this sign_no (9001 first)")
        handled = True
        with request_guard.active(guard):
            output = conform(handler(Call(env, cred.fixmedins_code, platform)))
        guard.finish(platform.factory)
    except AuthError as e:
        status, infcode, output, err = 401, -2, None, f"{e.field}: {e.message}"
    except (EnvelopeError, ServiceError) as e:
        infcode, output, err = -2, None, f"{e.field}: {e.message}"
    except Exception:  # a fault of ours: logged with its trace, never shown to the caller
        log.exception("institution interface fault infno=%s msgid=%s", infno, msgid)
        infcode, output, err = -1, None, "系统错误 system fault; the outcome is unknown to the caller — reverse with 2601 if it was a write"
    if infcode != 0 and guard is not None:
        status, err = _use_up_nonce(platform, guard, status, err, check_sign_in=handled)
    now = platform.settlement.clock()
    log.info("infno=%s msgid=%s infcode=%s %.1fms%s", infno, msgid, infcode, (time.perf_counter() - started) * 1000,
             f" ({err})" if isinstance(body, BodyRefused) else "")
    return JSONResponse(status_code=status, content=response(infcode, output, err, admdvs=RECEIVER_ADMDVS,
                                                             received=received, now=now))


def _use_up_nonce(platform: Platform, guard: RequestGuard, status: int, err: str | None, *,
                  check_sign_in: bool) -> tuple[int, str | None]:
    """A refused request's nonce is recorded too (its own transaction rolled back): it can't be replayed. A
    sound envelope without an open sign-in hears that first, whatever its handler found."""
    try:
        guard.finish(platform.factory, check_sign_in=check_sign_in)
    except AuthError as e:  # a copy of this request got there first
        return 401, f"{e.field}: {e.message}"
    except ServiceError as e:  # the sign-in is not open
        return status, f"{e.field}: {e.message}"
    except Exception:  # the answer stands; the nonce is still stale after the skew window
        log.exception("could not record the nonce of a refused request")
    return status, err


# Admission control: at most this many institution transactions of a worker process run at once; the rest
# wait their turn on the event loop. On a small machine more would only add lock waits, GIL hand-offs and
# database backends competing for the same cores (MEDPAY_INSTITUTION_CONCURRENCY to change it).
DEFAULT_CONCURRENCY = 6


def concurrency() -> int:
    value = os.environ.get("MEDPAY_INSTITUTION_CONCURRENCY", "")
    if not value:
        return DEFAULT_CONCURRENCY
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"MEDPAY_INSTITUTION_CONCURRENCY must be a whole number of at least 1, not {value!r}")
    return int(value)


def admission_limiter(state: Any) -> anyio.CapacityLimiter:
    """The app's admission limit (``state`` is ``app.state``): one per app, made on its event loop."""
    limiter = getattr(state, "institution_limiter", None)
    if limiter is None:
        limiter = state.institution_limiter = anyio.CapacityLimiter(concurrency())
    return limiter


class _DatabaseNeeded(Exception):
    pass


def _no_database() -> Any:
    raise _DatabaseNeeded


def _loop_gateway(state: Any) -> GatewayAuth:
    """The platform's GatewayAuth for the event loop: a shallow copy sharing its token cache, whose database
    raises instead of blocking the loop."""
    gateway: GatewayAuth = state.platform.gateway
    pair = getattr(state, "loop_gateway", None)
    if pair is None or pair[0] is not gateway:
        shallow = copy.copy(gateway)
        shallow.factory = _no_database
        pair = state.loop_gateway = (gateway, shallow)
    return pair[1]


async def authenticate(state: Any, headers: dict[str, str]) -> Credential | AuthError:
    """The x-tif-* headers' credential, checked before a byte of the body is read: on the event loop while the
    institution's token is cached (no thread hop on the hot path), in the thread pool when it must be read."""
    try:
        return _loop_gateway(state).authenticate(headers)
    except AuthError as e:
        return e
    except _DatabaseNeeded:
        pass
    try:
        return await anyio.to_thread.run_sync(state.platform.gateway.authenticate, headers)
    except AuthError as e:
        return e


async def _handle(request: Request, route: Route) -> JSONResponse:
    state = request.app.state
    headers = {k.lower(): v for k, v in request.headers.items()}
    cred = await authenticate(state, headers)
    if isinstance(cred, AuthError):  # 401: no nonce to use up, nothing to write; the body is never read
        return dispatch(state.platform, headers, b"", route, cred)
    body: bytes | BodyRefused
    try:
        body = await request.scope[BODY_KEY].read()
    except BodyRefused as refused:  # its nonce is used up all the same
        body = refused
    return await anyio.to_thread.run_sync(dispatch, state.platform, headers, body, route, cred,
                                          limiter=admission_limiter(state))


def _openapi(infnos: list[str], *, infno_in_path: bool = False) -> dict[str, Any]:
    schema = examples.ENVELOPE_SCHEMA
    if infno_in_path:  # the path names the transaction: the envelope needn't
        infno = {k: v for k, v in schema["properties"]["infno"].items() if k != "minLength"}
        schema = {**schema, "required": [name for name in schema["required"] if name != "infno"],
                  "properties": {**schema["properties"], "infno": {**infno, "type": ["string", "number", "null"]}}}
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schema,
        "examples": {i: examples.EXAMPLES[i] for i in infnos if i in examples.EXAMPLES}}}},
        **described.signed("institution"),
        "responses": {"200": {"description": "the response envelope: infcode 0, or −2 naming the field at fault "
                                             "(nothing written but the nonce), or −1 for a fault of ours",
                              "content": {"application/json": {"schema": described.ENVELOPE_RESPONSE}}},
                      **{str(code): answer for code, answer in described.answers(CALL_SERVICE, {
                          401: "authentication failed: the x-tif-* headers, the SM2 body signature, or a "
                               "fixmedins_code other than the credentials' (err_msg names which)"}).items()}}}


def _endpoint(route: Route, name: str):
    async def endpoint(request: Request) -> JSONResponse:
        return await _handle(request, route)

    endpoint.__name__ = name
    return endpoint


# Documented routes: the single endpoints and the named paths of nhsa_paths.toml. Any other path it resolves (a base
# URL with the infno appended, a configured base path) is served by PathStyleRoute, installed after them.
for _path in sorted(ENDPOINTS):
    router.add_api_route(_path, _endpoint(Route(), "call_service" if _path == CALL_SERVICE
                                          else "call_service" + _path.replace("/", "_").replace("-", "_")),
                         methods=["POST"], response_class=JSONResponse,
                         summary="统一交易入口 / all transactions, chosen by infno" if _path == CALL_SERVICE
                         else "统一交易入口（地方地址）/ the same, at a region's URL",
                         description="Every transaction of the interface: " + ", ".join(sorted(HANDLERS)),
                         openapi_extra=_openapi(sorted(HANDLERS)))
for _path, _route in NAMED.items():
    router.add_api_route(_path, _endpoint(_route, "infno_" + "_".join(_route.infnos)), methods=["POST"],
                         response_class=JSONResponse, openapi_extra=_openapi(list(_route.infnos), infno_in_path=True),
                         summary=" / ".join(f"{i} {examples.TITLES.get(i, '')}".strip() for i in _route.infnos))


class PathStyleRoute(BaseRoute):
    """Every other path ``nhsa_paths`` resolves: ``<base>/<infno>`` under /fsi/ or a configured base path, and
    named paths behind a configured base. Only POST (405 otherwise, in the interface's envelope)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        route = institution_paths().route(scope["path"])
        if route is None:
            return Match.NONE, {}
        return (Match.FULL if scope["method"] == "POST" else Match.PARTIAL), {"medpay.route": route}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            raise StarletteHTTPException(405, headers={"Allow": "POST"})
        response = await _handle(Request(scope, receive), scope["medpay.route"])
        await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """The interface's routes: the documented ones, then the path-style route (it takes no other door's path:
    ``parse_base_paths`` keeps bases out of theirs)."""
    app.include_router(router)
    app.router.routes.append(PathStyleRoute())
