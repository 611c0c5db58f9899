"""The payment-gateway simulator as a real process, and a tiny callback receiver, for tests and benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx

from medpay.processes import wait_until_healthy
from medpay.simulators.gateway_sim import API_KEY_ENV, SECRET_ENV

from tests.helpers_server import free_port

API_KEY = "sim-api-key-for-tests"
SECRET = "sim-callback-secret-for-tests"


@dataclass
class Callback:
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


class CallbackReceiver:
    """An HTTP server on a thread that records every POST; ``status`` is what it answers (default 200)."""

    def __init__(self) -> None:
        self.received: list[Callback] = []
        self.status = 200
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.received.append(Callback(dict(self.headers.items()), body, time.monotonic()))
                    receiver._cond.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/callback"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "CallbackReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def clear(self) -> None:
        with self._cond:
            self.received.clear()
            self.status = 200

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Callback]:
        """Wait until at least ``n`` callbacks arrived; returns them all (fewer on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.received)


@dataclass
class GatewaySim:
    """A running simulator process; ``restart()`` stops it and starts it again on the same state file."""

    tmp: Path
    state_file: Path
    callback_url: str | None
    extra: tuple[str, ...] = ()
    port: int = 0
    proc: subprocess.Popen | None = None
    api_key: str = API_KEY
    secret: str = SECRET
    _logs: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        args = [sys.executable, "-m", "medpay.simulators.gateway_sim", "--port", str(self.port),
                "--state-file", str(self.state_file), *self.extra]
        env = {**os.environ, API_KEY_ENV: self.api_key, SECRET_ENV: self.secret}  # never on the command line
        if self.callback_url:
            args += ["--callback-url", self.callback_url]
        log_path = self.tmp / f"gateway-sim-{len(self._logs)}.log"
        log = open(log_path, "w")
        self._logs.append(log)
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp, env=env)
        try:
            wait_until_healthy(f"{self.url}/healthz", self.proc, what="gateway simulator")
        except RuntimeError as e:
            self.stop()
            raise RuntimeError(f"{e}:\n" + log_path.read_text()) from None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for log in self._logs:
            log.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    # --- the test door
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(f"{self.url}{path}", json=body, timeout=5)
        r.raise_for_status()
        return r.json()

    def payer(self, balance_fen: int, token: str | None = None) -> str:
        body: dict[str, Any] = {"balance_fen": balance_fen}
        if token:
            body["payer_token"] = token
        return self._post("/sim/payers", body)["payer_token"]

    def payer_info(self, token: str) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/sim/payers/{token}", timeout=5)
        r.raise_for_status()
        return r.json()

    def fault(self, operation: str, mode: str, count: int | None = 1, delay: float | None = None) -> None:
        spec: dict[str, Any] = {"operation": operation, "mode": mode}
        if count is not None:
            spec["count"] = count
        if delay is not None:
            spec["delay"] = delay
        self._post("/sim/faults", spec)

    def log(self, kind: str | None = None) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/sim/log", params={"kind": kind} if kind else None, timeout=5)
        r.raise_for_status()
        return r.json()["entries"]

    def reset(self) -> None:
        self._post("/sim/reset", {})

    def advance_clock(self, seconds: float) -> None:
        self._post("/sim/clock", {"advance_seconds": seconds})


@contextmanager
def gateway_simulator(tmp: Path, callback_url: str | None = None, *extra: str,
                      state_file: Path | None = None) -> Iterator[GatewaySim]:
    sim = GatewaySim(tmp, state_file or tmp / "gateway-sim.db", callback_url, tuple(extra))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()
