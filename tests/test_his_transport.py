"""The HIS client's HTTP transport against a real local HTTP server: paths, keep-alive, and each failure."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from medpay.his_transport import HttpTransport, TransportFailure, TransportTimeout


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["content-length"]))
        server = self.server
        server.seen.append((self.path, body, self.headers.get("x-probe"), self.client_address[1]))
        if self.path.endswith("/slow"):
            time.sleep(1.0)
        reply = b'{"infcode":0,"path":"%s"}' % self.path.encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        if self.path.endswith("/close"):
            self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.seen = []
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def base(httpd, path: str = "") -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}{path}"


def test_posts_under_the_base_path_and_keeps_the_connection(server):
    t = HttpTransport(base(server, "/ebus/rio_fsi/"), timeout=5)
    first = t.post("/fsi/api/x", b'{"a":1}', lambda: {"content-type": "application/json", "x-probe": "1"})
    t.post("/fsi/api/y", b'{"a":2}', lambda: {"content-type": "application/json", "x-probe": "2"})
    assert first.status == 200 and b"/ebus/rio_fsi/fsi/api/x" in first.body
    assert [s[0] for s in server.seen] == ["/ebus/rio_fsi/fsi/api/x", "/ebus/rio_fsi/fsi/api/y"]
    assert [s[1] for s in server.seen] == [b'{"a":1}', b'{"a":2}'] and [s[2] for s in server.seen] == ["1", "2"]
    assert server.seen[0][3] == server.seen[1][3]  # one keep-alive connection (same client port)
    t.close()


def test_a_connection_the_server_closed_is_replaced(server):
    t = HttpTransport(base(server), timeout=5)
    assert t.post("/close", b"{}", dict).status == 200  # the server says it closes the connection
    assert t.post("/after", b"{}", dict).status == 200
    assert server.seen[0][3] != server.seen[1][3]
    t.close()


def test_an_idle_connection_dropped_by_the_server_is_resent_once(server):
    t = HttpTransport(base(server), timeout=5)
    assert t.post("/one", b"{}", dict).status == 200
    conn = t._local.conn
    conn.sock.shutdown(socket.SHUT_RDWR)  # as if the server had timed out the idle keep-alive connection
    probes = iter(["first try", "resent"])
    assert t.post("/two", b"{}", lambda: {"x-probe": next(probes)}).status == 200
    assert [s[0] for s in server.seen] == ["/one", "/two"]
    assert server.seen[1][2] == "resent"  # the resend asked for its headers again (a fresh nonce)
    t.close()


def test_timeout_and_refused_connection_are_told_apart(server):
    t = HttpTransport(base(server), timeout=0.2)
    with pytest.raises(TransportTimeout):
        t.post("/slow", b"{}", dict)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransportFailure):
        HttpTransport(f"http://127.0.0.1:{port}", timeout=1).post("/x", b"{}", dict)
    with pytest.raises(ValueError):
        HttpTransport("ftp://example.test")


class _Dropper:
    """A server that reads each request and hangs up without answering; counts the connections it took."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.recv(65536)
            conn.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"


def test_a_fresh_connection_that_breaks_is_not_resent_and_a_stale_one_only_once(server):
    dropper = _Dropper()
    try:
        t = HttpTransport(dropper.url, timeout=5)
        with pytest.raises(TransportFailure):
            t.post("/x", b"{}", dict)
        assert dropper.connections == 1  # a new connection broke: the outcome is the caller's to judge
        # a reused connection that breaks is sent once more, on a new connection — and no more than once
        t = HttpTransport(base(server), timeout=5)
        assert t.post("/one", b"{}", dict).status == 200
        t._local.conn.sock.shutdown(socket.SHUT_RDWR)
        t._host, t._port = "127.0.0.1", int(dropper.url.rsplit(":", 1)[1])  # the resend meets the dropper
        with pytest.raises(TransportFailure):
            t.post("/two", b"{}", dict)
        assert dropper.connections == 2
    finally:
        dropper.sock.close()
