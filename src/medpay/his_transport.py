"""How ``medpay.his_client`` puts a request on the wire: one POST, one answer, or a clear failure.

``HttpTransport`` is the real one: the standard library's ``http.client`` over keep-alive connections, one per
thread (a HIS client is shared by a hospital's threads). It costs a quarter of the CPU of a general-purpose
client per request, which matters when the client runs on the same machine as the server it loads.

Failures are two kinds, because the caller handles them differently: ``TransportTimeout`` (sent, no answer in
time) and ``TransportFailure`` (no connection, or the connection broke). A request on a *reused* connection
that the server had already closed is sent again once on a new connection, as every keep-alive client does:
every write of the institution interface is exactly once by msgid, so a resend never acts twice (a resent
1101 records its presentation again, which is harmless). The headers are asked for again for the resend
(``headers`` is a function): a signed request must not reuse its nonce.
"""

from __future__ import annotations

import http.client
import socket
import threading
import weakref
from dataclasses import dataclass
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: bytes


class TransportTimeout(Exception):
    """The request went out, no answer came in time: its outcome is unknown."""


class TransportFailure(Exception):
    """No connection, or it broke before an answer: the outcome may be unknown."""


Headers = Callable[[], dict[str, str]]  # fresh headers for each attempt on the wire


class Transport(Protocol):
    def post(self, path: str, body: bytes, headers: Headers) -> HttpResult: ...

    def close(self) -> None: ...


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class HttpTransport:
    def __init__(self, base_url: str, timeout: float = 10.0):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port], got {base_url!r}")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._local = threading.local()
        # the open connections, for close(); a finished thread's goes with its thread-local
        self._all: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()
        self._lock = threading.Lock()

    def post(self, path: str, body: bytes, headers: Headers) -> HttpResult:
        conn, reused = self._connection()
        try:
            return self._exchange(conn, path, body, headers())
        except _STALE as exc:
            self._drop(conn)
            if not reused:
                raise TransportFailure(f"{type(exc).__name__}: {exc}") from None
        except TransportFailure:
            self._drop(conn)
            raise
        conn, _reused = self._connection()  # the server had closed the idle connection: once more, afresh
        try:
            return self._exchange(conn, path, body, headers())
        except (*_STALE, TransportFailure) as exc:
            self._drop(conn)
            raise TransportFailure(f"{type(exc).__name__}: {exc}") from None

    def _exchange(self, conn: http.client.HTTPConnection, path: str, body: bytes,
                  headers: dict[str, str]) -> HttpResult:
        try:
            conn.request("POST", self._prefix + path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (socket.timeout, TimeoutError) as exc:
            self._drop(conn)
            raise TransportTimeout(f"no answer within {self._timeout} s ({type(exc).__name__})") from None
        except _STALE:
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise TransportFailure(f"{type(exc).__name__}: {exc}") from None
        if response.will_close:
            self._drop(conn)
        return HttpResult(response.status, data)

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self._timeout)
        self._local.conn = conn
        with self._lock:
            self._all.add(conn)
        return conn, False

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            self._all.discard(conn)

    def close(self) -> None:
        with self._lock:
            conns, self._all = list(self._all), weakref.WeakSet()
        for conn in conns:
            conn.close()
        self._local = threading.local()
