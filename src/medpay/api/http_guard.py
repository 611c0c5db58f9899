"""The edges of every HTTP door: how much of a body we read, how long we wait for it, how deep its JSON may nest,
and how long a connection may take to send a request's head.

**Body size, per door** (``body_limit``), enforced while the body streams in: a ``Content-Length`` over the limit
is refused before a byte is read, a chunked body as soon as it passes the limit. Refusals are 413 in the door's
error shape (``api/errors.door_error``) with ``Connection: close``, so nothing more is read from that connection.

| door | limit |
|---|---|
| institution interface (``/fsi/…``, ``nhsa_paths``) | 32 MiB (a 9101 upload: a 20 MiB zip, base64-encoded, in a JSON envelope) |
| terminal ``ec/query``, mobile ``bills/preview``, face ``verify`` and enrolments | 9 MiB as multipart/form-data (photos), else 64 KiB |
| other terminal, mobile and partner endpoints; unknown ``/api/`` paths | 64 KiB |
| admin ``/api/v1/admin/…`` | 1 MiB |
| pages, docs, and any GET, HEAD, OPTIONS or DELETE | no body |

**The institution interface authenticates before it reads**: its ``x-tif-*`` signature covers the headers alone,
so ``HttpGuard`` leaves its body unread and hands the route a ``RequestBody``; the route checks the signature and
only then reads (and a request that passed the signature uses up its nonce, whatever happens to its body). Every
other door's body is read here, whole and within its limit, and replayed to the app exactly once.

**JSON nesting**: a body nested deeper than ``MAX_JSON_DEPTH`` is refused (the door's shape, field ``body``)
before any recursive parser sees it (``json_depth_error``).

**Timeouts** (``Settings``; ``MEDPAY_*`` environment variables, checked at start):

- the request head (request line and headers) must arrive within ``MEDPAY_HEADER_TIMEOUT_S`` of the connection
  opening or of the request's first byte; else 408 and the connection is closed. uvicorn has a keep-alive timeout
  (idle between requests) but nothing for a head that trickles in, so ``GuardedHttpToolsProtocol`` (uvicorn's
  httptools protocol plus this deadline and a 64 KiB cap on the head) is what ``medpay serve`` runs;
- the body must arrive within ``MEDPAY_BODY_TIMEOUT_S``, plus a second for every ``MEDPAY_BODY_MIN_RATE`` bytes
  received (a large upload over a slow line still gets through; a trickle does not); else 408 in the door's shape.

A client that goes away mid-body costs one INFO line, no traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from itertools import accumulate
from operator import neg
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from medpay.api.errors import door_error, door_of
from medpay.api.uploads import MAX_BODY_BYTES as PHOTO_BODY_BYTES

log = logging.getLogger("medpay.http")

KiB = 1024
MiB = 1024 * KiB
INSTITUTION_BODY_BYTES = 32 * MiB
SMALL_BODY_BYTES = 64 * KiB
ADMIN_BODY_BYTES = 1 * MiB
MAX_HEAD_BYTES = 64 * KiB  # request line and headers; real clients send well under 8 KiB
MAX_JSON_DEPTH = 32
BODY_KEY = "medpay.body"  # scope key: the institution route's RequestBody
PHOTO_PATHS = frozenset({"/api/v1/terminal/ec/query", "/api/v1/mobile/bills/preview",
                         # face: frames and enrolment photos (api/face.py)
                         "/api/v1/terminal/face/verify", "/api/v1/admin/face/enrolments", "/api/v1/mobile/face/enrolment"})
NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


def body_limit(method: str, path: str, content_type: str = "") -> int:
    """The most bytes of body a request may carry (see the table in the module's docstring)."""
    if method in NO_BODY_METHODS:
        return 0
    if door_of(path) == "institution":
        return INSTITUTION_BODY_BYTES
    if path in PHOTO_PATHS:
        return PHOTO_BODY_BYTES if content_type.lower().startswith("multipart/") else SMALL_BODY_BYTES
    if path.startswith("/api/v1/admin/"):
        return ADMIN_BODY_BYTES
    if path.startswith("/api/"):
        return SMALL_BODY_BYTES
    return 0


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n // KiB} KiB" if n >= KiB else f"{n} bytes"


# -- settings -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    body_min_rate: int = 32 * KiB  # bytes per second; 256 kbit/s


SETTINGS = (  # (environment variable, Settings field, lowest, highest, whole numbers only)
    ("MEDPAY_HEADER_TIMEOUT_S", "header_timeout_s", 0.5, 300, False),
    ("MEDPAY_BODY_TIMEOUT_S", "body_timeout_s", 0.5, 3600, False),
    ("MEDPAY_BODY_MIN_RATE", "body_min_rate", 1024, 1024 * MiB, True),
)


def settings(environ: dict[str, str] | None = None) -> Settings:
    """The transport settings from ``MEDPAY_*`` variables; a wrong value stops the start with a clear message."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, attr, low, high, whole in SETTINGS:
        text = env.get(name, "").strip()
        if not text:
            continue
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:  # (nan fails too)
            kind = "a whole number" if whole else "a number of seconds"
            raise SystemExit(f"{name} must be {kind} from {low:g} to {high:g}, not {text!r}")
        values[attr] = value
    return Settings(**values)


# -- bodies -------------------------------------------------------------------------------------------------


class BodyRefused(Exception):
    """The body can't be taken: too large (413), too slow (408), or not acceptable JSON (422)."""

    def __init__(self, status: int, code: str, message: str, field: str = "body"):
        super().__init__(f"{field}: {message}")
        self.status, self.code, self.field, self.message = status, code, field, message


class ClientGone(BodyRefused):
    """The client closed the connection before its body was complete: nobody is left to answer."""

    def __init__(self, received: int):
        super().__init__(400, "invalid", f"the client went away after {received} bytes")


class RequestBody:
    """One request's body, read at most once, within its door's limit and the body deadline."""

    __slots__ = ("receive", "limit", "declared", "chunked", "deadline", "timeout_s", "rate", "complete")

    def __init__(self, scope: Scope, receive: Receive, config: Settings):
        self.receive = receive
        declared: int | None = None
        self.chunked = False
        content_type = ""
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else -1  # (the HTTP parser has checked it already)
            elif name == b"transfer-encoding":
                self.chunked = True
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        self.declared = declared
        self.limit = body_limit(scope["method"], scope["path"], content_type)
        self.timeout_s = config.body_timeout_s
        self.deadline = asyncio.get_running_loop().time() + config.body_timeout_s
        self.rate = config.body_min_rate
        self.complete = not self.expected

    @property
    def expected(self) -> bool:
        """Does the request carry a body at all?"""
        return self.chunked or bool(self.declared)

    def too_large(self, size: str) -> BodyRefused:
        if self.limit == 0:
            return BodyRefused(413, "too_large", "this endpoint takes no body")
        return BodyRefused(413, "too_large", f"{size} than {_size(self.limit)}, this endpoint's limit")

    def refuse_early(self) -> BodyRefused | None:
        """413 from the headers alone: a declared length over the limit, or any body where none belongs."""
        if self.declared is not None and self.declared > self.limit:
            return self.too_large(f"{self.declared} bytes is more")
        if self.chunked and self.limit == 0:
            return self.too_large("")
        return None

    async def read(self) -> bytes:
        """The whole body; BodyRefused (413, 408) or ClientGone otherwise. One timer for the whole read, moved
        later by a second for every ``rate`` bytes that arrive."""
        if not self.expected:
            return b""
        refused = self.refuse_early()
        if refused is not None:
            raise refused
        chunks: list[bytes] = []
        received = 0
        try:
            async with asyncio.timeout_at(self.deadline) as timer:
                while True:
                    message = await self.receive()
                    if message["type"] == "http.disconnect":
                        raise ClientGone(received)
                    chunk = message.get("body", b"")
                    if chunk:
                        received += len(chunk)
                        if received > self.limit:
                            raise self.too_large("larger")
                        chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
                    timer.reschedule(self.deadline + received / self.rate)
        except TimeoutError:
            chunks.clear()
            raise BodyRefused(408, "timeout", f"not received in the time allowed ({self.timeout_s:g} s, and 1 s more "
                                              f"per {_size(self.rate)} received); {received} bytes came") from None
        except BaseException:
            chunks.clear()  # (the exception's frames would keep what was read alive)
            raise
        self.complete = True
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def closing(self, send: Send) -> Send:
        """``send``, adding ``Connection: close`` to an answer given before the body was read whole (what is left
        of it would be taken for the next request)."""

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and not self.complete:
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        return send_closing


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app ``body`` once, then whatever the connection says (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive_replayed() -> Message:
        return pending.pop() if pending else await receive()

    return receive_replayed


# -- JSON nesting -------------------------------------------------------------------------------------------

_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_RUNS = re.compile(rb"\[+|\]+")


def json_depth_error(body: bytes, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why ``body`` must not reach a JSON parser — nested deeper than ``limit``, or brackets that do not balance —
    or None. Linear, without recursion: brackets are counted first (most bodies stop there); only when there are
    more than ``limit`` are strings skipped and the nesting measured."""
    if body.count(b"{") + body.count(b"[") <= limit:
        return None
    if b'"' in body:  # brackets inside strings don't nest: drop escaped backslashes and quotes, then every string
        if b"\\" in body:
            body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
        body = b"".join(body.split(b'"')[::2])
    s = body.translate(_BRACKETS, _NOT_BRACKETS)  # only brackets left, all of them [ and ]
    if s.count(b"[") <= limit:
        return None
    # Peel innermost pairs while that shrinks s by much (each peel lowers the nesting by exactly one), then add up
    # the runs of what is left: at most len(s)/8 of them, so the Python-level work stays small.
    peeled = 0
    while peeled <= limit and s.count(b"[]") * 16 > len(s):
        s = s.replace(b"[]", b"")
        peeled += 1
    runs = [len(r) for r in _RUNS.findall(s)]
    if s.startswith(b"]"):
        runs.insert(0, 0)
    runs[1::2] = map(neg, runs[1::2])
    depths = list(accumulate(runs)) or [0]
    if min(depths) < 0 or depths[-1] != 0:
        return "is not valid JSON (its brackets do not balance)"
    if peeled + max(depths) > limit:
        return f"is nested more than {limit} levels deep"
    return None


def unstorable_text(body: bytes) -> tuple[str, str] | None:
    """(field, why) of the first JSON string no database can store — one holding NUL (PostgreSQL's text can't) or
    an unpaired surrogate (not UTF-8) — or None. Both arrive only as ``\\u`` escapes, so a body without one is
    passed at the cost of a byte search; a body with one is parsed to name the field."""
    lowered = body.lower()
    if b"\\u0000" not in lowered and b"\\ud" not in lowered:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None  # not JSON at all: the endpoint's parser names that

    def walk(value: Any, path: str) -> tuple[str, str] | None:
        if isinstance(value, str):
            if "\x00" in value:
                return path, "must not contain NUL characters"
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return path, "is not valid Unicode (unpaired surrogate)"
            return None
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            if isinstance(key, str) and walk(key, path) is not None:
                return (path or "body"), "has a key that is not storable text"
            found = walk(item, f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else key))
            if found is not None:
                return found
        return None

    found = walk(doc, "")
    return None if found is None else (found[0] or "body", found[1])


def _routed(scope: Scope) -> bool:
    """Is there an endpoint for this method and path? (Asked of requests that carry a body, before it is read.)"""
    router = getattr(scope.get("app"), "router", None)
    return router is not None and any(route.matches(scope)[0] is Match.FULL for route in router.routes)


def _is_multipart(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value[:10].lower() == b"multipart/"
    return False


# -- the ASGI guard -----------------------------------------------------------------------------------------


class HttpGuard:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would cost the hot path a task per request)."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.config = settings()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = RequestBody(scope, receive, self.config)
        path = scope["path"]
        if door_of(path) == "institution":  # the route authenticates the headers first, then reads
            scope[BODY_KEY] = body
            await self.app(scope, receive, body.closing(send) if body.expected else send)
            return
        if not body.expected:
            await self.app(scope, receive, send)
            return
        if not _routed(scope):
            # a body on a method or path that has no endpoint: left unread (the connection then closes), and the
            # router answers 404 or 405 as for any other request there
            await self.app(scope, replay(b"", receive), body.closing(send))
            return
        try:
            data = await body.read()
            if not _is_multipart(scope):
                why = json_depth_error(data)
                if why is not None:
                    raise BodyRefused(422, "invalid", why)
                unstorable = unstorable_text(data)
                if unstorable is not None:
                    raise BodyRefused(422, "invalid", unstorable[1], field=unstorable[0])
        except ClientGone as e:
            log.info("%s %s: %s", scope["method"], path, e.message)
            return
        except BodyRefused as e:
            await door_error(path, e.status, e.code, e.field, e.message, close=not body.complete)(scope, receive, send)
            return
        await self.app(scope, replay(data, receive), send)


# -- the request head ---------------------------------------------------------------------------------------


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for the request head and a cap on its size.

    The deadline runs from the connection's opening (its first request) or from a request's first byte (later
    requests: the idle time before it is the keep-alive timeout's business). A head that is late gets 408 and
    the connection is closed; a connection that never sent a byte is just closed.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._head_timeout_s = settings().header_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = False
        self._head_bytes = 0
        self._heads = 0  # requests begun on this connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        heads_before = self._heads
        super().data_received(data)
        # (a head that began in this read is counted from the next one: which part of it was the head is not known)
        if self._in_head and self._heads == heads_before and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse_head(431, "too_large", "headers", f"the request head is larger than {_size(MAX_HEAD_BYTES)}")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        self._heads += 1
        if self._head_timer is None:
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_timer()
        super().on_headers_complete()

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._head_timeout_s, self._head_late)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:  # still answering the previous request:
            self._arm_head_timer()  # the next one waits for us, not we for it
            return
        if not self._in_head:  # opened, never used
            self.transport.close()
            return
        log.info("closed a connection from %s: its request head did not arrive within %g s",
                 self.client[0] if self.client else "?", self._head_timeout_s)
        self._refuse_head(408, "timeout", "headers", f"the request head did not arrive within {self._head_timeout_s:g} s")

    def _refuse_head(self, status: int, code: str, field: str, message: str) -> None:
        """Answer in the door's shape (as far as the path has arrived) and close the connection."""
        path = self.url.split(b"?", 1)[0].decode("latin-1") if getattr(self, "url", b"") else "/"
        answer = door_error(path, status, code, field, message, close=True)
        head = [f"HTTP/1.1 {status} {'Request Timeout' if status == 408 else 'Request Header Fields Too Large'}"]
        head += [f"{k}: {v}" for k, v in answer.headers.items()]
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + answer.body)
        self.transport.close()
        self._disarm_head_timer()
        self._in_head = False
