"""One error shape per door, and no traceback ever leaves the process.

- the institution interface (``/fsi/…`` and the other paths ``nhsa_paths`` resolves): the NHSA response envelope, ``infcode`` −2 (−1 for a fault of ours)
  with ``err_msg`` = ``"<field>: <why>"``;
- the terminal's ``ec.query`` (``/api/v1/terminal/ec/query``): the e-certificate envelope
  ``{orgId, code, message, data}`` (``api/terminal.py``);
- everything else: ``{"error": {"code", "field", "message"}}``.

``door_error`` answers in the shape of the door a path belongs to; the transport guard (``api/http_guard``:
sizes, timeouts, nesting) and the handlers below (unknown path, wrong method, unparseable body, validation)
all answer through it, so a caller of a door hears one shape whatever went wrong.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from medpay.nhsa_paths import institution_paths
from medpay.services.errors import ServiceError

log = logging.getLogger("medpay.api")

EC_QUERY_PATH = "/api/v1/terminal/ec/query"


class ErrorBody(BaseModel):
    code: str
    field: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_response(status: int, code: str, field: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "field": field, "message": message}})


def door_of(path: str) -> str:
    """"institution", "ec_query" or "rest": whose error shape answers a request for ``path``."""
    if institution_paths().is_institution(path):
        return "institution"
    if path == EC_QUERY_PATH:
        return "ec_query"
    return "rest"


def door_error(path: str, status: int, code: str, field: str, message: str, *, close: bool = False,
               headers: dict[str, str] | None = None) -> JSONResponse:
    """The refusal in the shape of ``path``'s door. ``close``: the body was not read (whole), so the connection
    can't carry another request."""
    extra = dict(headers or {})
    if close:
        extra["Connection"] = "close"
    door = door_of(path)
    if door == "institution":
        # (imported here: the institution routes import the transport guard, which imports this module)
        from medpay.api.institution.envelope import response
        from medpay.api.institution.routes import RECEIVER_ADMDVS

        now = datetime.now(timezone.utc)
        body = response(-1 if status >= 500 else -2, None, f"{field}: {message}", admdvs=RECEIVER_ADMDVS,
                        received=now, now=now)
        return JSONResponse(status_code=status, content=body, headers=extra)
    if door == "ec_query":
        from medpay.api.terminal import _error as ec_error

        answer = ec_error(status, code, field, message, None)
        answer.headers.update(extra)
        return answer
    return JSONResponse(status_code=status, content={"error": {"code": code, "field": field, "message": message}},
                        headers=extra)


def _http_exception(request: Request, exc: StarletteHTTPException) -> tuple[int, str, str, str]:
    """(status, code, field, message) for the HTTPExceptions routing and FastAPI raise themselves."""
    status = exc.status_code
    if status == 404:
        return status, "not_found", "path", f"no endpoint at {request.scope['path']}"
    if status == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return status, "method_not_allowed", "method", f"{request.method} is not allowed here (use {allowed})"
    if status == 400 and exc.detail == "There was an error parsing the body":  # FastAPI's, for a body json.loads refused
        why = "is not UTF-8 text" if isinstance(exc.__cause__, UnicodeDecodeError) else "could not be parsed as JSON"
        return 422, "invalid", "body", why
    if status == 401:
        return status, "unauthorized", "authorization", str(exc.detail)
    return status, "invalid" if status < 500 else "internal", "request", str(exc.detail)


def _validation_field(error: dict[str, Any]) -> tuple[str, str]:
    """(field, message) of pydantic's or FastAPI's first complaint: the dotted path of the field; ``body`` for a
    body that is not JSON at all (FastAPI puts the character offset where the field would be)."""
    if error.get("type") == "json_invalid":
        where = error.get("loc", ("body", "?"))[-1]
        return "body", f"is not valid JSON ({error.get('ctx', {}).get('error', 'decode error')} at character {where})"
    field = field_path(p for p in error.get("loc", ()) if p not in ("body", "query", "path", "header"))
    return field or "body", str(error.get("msg", "invalid request"))


def field_path(loc: Any) -> str:
    """pydantic's location of a field as the interface spells paths: ``lines[0].chrgitm_lv``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _routes(routes: Any) -> Any:
    """Every route, those of included routers too (FastAPI keeps an included router as one entry whose
    ``effective_candidates()`` are its routes)."""
    for route in routes:
        nested = getattr(route, "effective_candidates", None)
        if callable(nested):
            yield from _routes(nested())
        else:
            yield route


def _allowed(request: Request) -> set[str]:
    """Every method the routes of this path take."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in _routes(request.app.routes):
        if getattr(route, "methods", None) and route.matches({**request.scope, "method": "GET"})[0] is not Match.NONE:
            methods |= set(route.methods)
    return methods


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return door_error(request.scope["path"], exc.status, exc.code, exc.field, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        field, message = _validation_field(exc.errors()[0] if exc.errors() else {})
        return door_error(request.scope["path"], 422, "invalid", field, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:  # Starlette names only the first route's methods; a path may have several routes
            named = {m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()}
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(named | _allowed(request)))}
        status, code, field, message = _http_exception(request, exc)
        allow = {"Allow": exc.headers["Allow"]} if exc.headers and "Allow" in exc.headers else None
        return door_error(request.scope["path"], status, code, field, message, headers=allow)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")  # the log keeps the trace; the caller gets a plain message
        return door_error(request.scope["path"], 500, "internal", "request",
                          "internal error; the request was not applied")
