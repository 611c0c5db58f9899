"""The stack floor: what the HTTP stack alone costs, measured beside the platform in the same run.

A server built the way ``medpay serve`` serves the institution interface — uvicorn with the same workers,
FastAPI, the request body read on the event loop and handled in the thread pool behind the same admission
limit, a JSON response envelope — that does no work: it answers every transaction with the answer the
platform gave to the first one of its ``infno`` in this run (recorded by :class:`RecordingTransport`). The
benchmark's HIS clients, unchanged, drive it. Its settlements per second are the most any server on this stack
could reach on this machine with these clients: no signature check, no database, no policy.

Run as ``uvicorn benchmarks.stack_floor:app`` with ``MEDPAY_FLOOR_ANSWERS`` naming the recorded answers.
"""

import json
import os
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ANSWERS_ENV = "MEDPAY_FLOOR_ANSWERS"


class RecordingTransport:
    """Wraps a HIS client's transport and keeps the first successful answer body per ``infno``."""

    def __init__(self, inner: Any, answers: dict[str, Any], lock: threading.Lock):
        self._inner, self._answers, self._lock = inner, answers, lock

    def post(self, path: str, body: bytes, headers: Any) -> Any:
        result = self._inner.post(path, body, headers)
        infno = json.loads(body).get("infno", "")
        if infno not in self._answers and result.status == 200:
            answer = json.loads(result.body)
            if str(answer.get("infcode")) == "0":
                with self._lock:
                    self._answers.setdefault(infno, answer)
        return result

    def close(self) -> None:
        self._inner.close()


def _app() -> FastAPI:  # (no ``from __future__ import annotations``: FastAPI reads the handlers' annotations)
    from medpay.api.institution.routes import admission_limiter
    from medpay.nhsa_paths import CALL_SERVICE

    answers: dict[str, Any] = json.loads(Path(os.environ[ANSWERS_ENV]).read_text()) if ANSWERS_ENV in os.environ else {}
    floor = FastAPI(title="stack floor (benchmark only)")

    def answer(headers: dict[str, str], body: bytes) -> JSONResponse:  # (headers: built as medpay's are, unread)
        envelope = json.loads(body)
        canned = answers.get(envelope.get("infno", ""))
        if canned is None:
            return JSONResponse({"infcode": -2, "err_msg": "infno: not recorded", "output": None})
        return JSONResponse({**canned, "inf_refmsgid": envelope.get("msgid", "")})

    @floor.post(CALL_SERVICE)
    async def call_service(request: Request) -> JSONResponse:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        return await anyio.to_thread.run_sync(answer, headers, body, limiter=admission_limiter(request.app.state))

    @floor.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return floor


app = _app()
