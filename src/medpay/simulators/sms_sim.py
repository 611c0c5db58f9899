"""An SMS service simulator (短信网关模拟器), run as its own process.

    MEDPAY_SMS_API_KEY=KEY python -m medpay.simulators.sms_sim --port 8101

Nothing is really sent: each message is kept in memory (lost on restart) for tests and the demo to read. The API
key comes from the environment, never the command line (``ps`` shows command lines to every user).

Provider API (``Authorization: Bearer <api key>``), what ``medpay.adapters.sms.http_sms`` speaks:

    POST /messages {to, text, ref}   → 200 {message_id, status: "sent"}; the same ref again → the same message_id
                                       and no second message; 400 a malformed request; 401 a wrong key

Test/demo door (unauthenticated — never expose it):

    GET    /sim/messages[?to=PHONE&since=SEQ]   what was "sent", oldest first, each with its seq
    POST   /sim/faults {mode, count?, delay?}    fail (503, nothing sent), timeout (send, then answer after
                                                 ``delay`` s: the caller gives up not knowing), delay (answer after
                                                 ``delay`` s); ``count``: the next n messages (omitted: all, until
                                                 cleared)
    DELETE /sim/faults                           clear them
    GET    /healthz
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

API_KEY_ENV = "MEDPAY_SMS_API_KEY"
MODES = ("fail", "timeout", "delay")
PHONE = re.compile(r"1[3-9]\d{9}")
MAX_TEXT = 500  # characters: a long message is split into 70-character parts by carriers, not refused
REF = re.compile(r"[A-Za-z0-9._:-]{1,80}")


@dataclass
class Fault:
    mode: str
    remaining: int | None  # None: until cleared
    delay: float


class Outbox:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []
        self.by_ref: dict[str, dict[str, Any]] = {}
        self.faults: deque[Fault] = deque()

    def next_fault(self) -> Fault | None:
        with self.lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.popleft()
            return fault

    def send(self, to: str, text: str, ref: str) -> dict[str, Any]:
        with self.lock:
            if ref in self.by_ref:
                return self.by_ref[ref]
            message = {"seq": len(self.messages) + 1, "message_id": f"SM{len(self.messages) + 1:08d}", "to": to,
                       "text": text, "ref": ref, "sent_at": time.time()}
            self.messages.append(message)
            self.by_ref[ref] = message
            return message


def _error(status: int, code: str, field: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "field": field, "message": message}}, status_code=status)


def create_app(api_key: str) -> FastAPI:
    app = FastAPI(title="SMS simulator (not a real SMS service)", docs_url=None, redoc_url=None, openapi_url=None)
    outbox = Outbox()

    @app.post("/messages")
    async def send(request: Request) -> JSONResponse:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            return _error(401, "unauthorized", "authorization", "wrong or missing API key")
        try:
            doc = await request.json()
        except ValueError:
            return _error(400, "invalid", "body", "not JSON")
        if not isinstance(doc, dict):
            return _error(400, "invalid", "body", "must be a JSON object")
        to, text, ref = doc.get("to"), doc.get("text"), doc.get("ref")
        if not isinstance(to, str) or not PHONE.fullmatch(to):
            return _error(400, "invalid", "to", "must be an 11-digit mainland mobile number")
        if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT:
            return _error(400, "invalid", "text", f"1 to {MAX_TEXT} characters")
        if not isinstance(ref, str) or not REF.fullmatch(ref):
            return _error(400, "invalid", "ref", "1 to 80 characters of A-Z a-z 0-9 . _ : -")
        fault = outbox.next_fault()
        if fault is not None and fault.mode == "fail":
            return _error(503, "unavailable", "", "simulated failure: nothing sent")
        message = outbox.send(to, text, ref)
        if fault is not None:
            await asyncio.sleep(fault.delay)  # timeout: sent, but the answer comes too late
        return JSONResponse({"message_id": message["message_id"], "status": "sent"})

    @app.get("/sim/messages")
    def messages(to: str | None = None, since: int = 0) -> dict[str, Any]:
        with outbox.lock:
            return {"messages": [m for m in outbox.messages if m["seq"] > since and (to is None or m["to"] == to)]}

    @app.post("/sim/faults")
    async def add_fault(request: Request) -> JSONResponse:
        try:
            doc = await request.json()
        except ValueError:
            return _error(400, "invalid", "body", "not JSON")
        mode = doc.get("mode") if isinstance(doc, dict) else None
        if mode not in MODES:
            return _error(400, "invalid", "mode", f"one of {', '.join(MODES)}")
        count, delay = doc.get("count"), doc.get("delay", 5.0 if mode == "timeout" else 1.0)
        if count is not None and (not isinstance(count, int) or count < 1):
            return _error(400, "invalid", "count", "a whole number ≥ 1, or omitted (until cleared)")
        if not isinstance(delay, (int, float)) or not 0 <= delay <= 60:
            return _error(400, "invalid", "delay", "0 to 60 seconds")
        with outbox.lock:
            outbox.faults.append(Fault(mode, count, float(delay)))
        return JSONResponse({"queued": len(outbox.faults)}, status_code=201)

    @app.delete("/sim/faults")
    def clear_faults() -> dict[str, int]:
        with outbox.lock:
            outbox.faults.clear()
        return {"queued": 0}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "sms simulator"}

    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m medpay.simulators.sms_sim",
                                description=f"SMS service simulator; the API key is read from ${API_KEY_ENV}")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8101)
    p.add_argument("--log-level", default="warning")
    a = p.parse_args(argv)
    api_key = os.environ.get(API_KEY_ENV, "")
    if not api_key:
        p.error(f"set ${API_KEY_ENV} (the key the platform sends as Authorization: Bearer …)")
    import uvicorn

    uvicorn.run(create_app(api_key), host=a.host, port=a.port, log_level=a.log_level, timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
