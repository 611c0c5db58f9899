"""The edges of every HTTP door, over real sockets against `medpay serve` (SQLite and PostgreSQL): body size limits
(declared and chunked), the institution signature checked before a byte of the body is read, deeply nested JSON,
a client gone mid-body, slow heads and slow bodies, and 404/405/non-UTF-8/malformed JSON — each answered in the
door's own error shape naming the field, with no traceback in the server's log."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medpay.adapters.platform_keys import load_or_create_key
from medpay.api.http_guard import (ADMIN_BODY_BYTES, INSTITUTION_BODY_BYTES, SMALL_BODY_BYTES, body_limit,
                                   json_depth_error, settings)
from medpay.api.uploads import MAX_BODY_BYTES as PHOTO_BODY_BYTES
from medpay.domain.gateway_signature import sign_headers
from medpay.nhsa_paths import CALL_SERVICE
from medpay.services import demo
from tests.helpers_qr import terminal_post
from medpay.services.qr.ecert import sign_device_request
from tests.helpers_server import STAFF, activate, backend_db_url, medpay_env, run_cli, server

MiB = 1024 * 1024
HEAD_TIMEOUT_S = 2
BODY_TIMEOUT_S = 2
SERVER_ENV = {"MEDPAY_HEADER_TIMEOUT_S": str(HEAD_TIMEOUT_S), "MEDPAY_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)}
_CODE, _NAME, _LEVEL, PAASID, TOKEN = demo.INSTITUTIONS[0]

# (path, the door's error shape) of every endpoint that takes a JSON body
JSON_DOORS = [
    (CALL_SERVICE, "institution"),
    ("/api/v1/terminal/ec/query", "ec_query"),
    ("/api/v1/terminal/settle", "rest"),
    ("/api/v1/terminal/bills", "rest"),
    ("/api/v1/mobile/ecert/activate", "rest"),
    ("/api/v1/mobile/ecert/code", "rest"),
    ("/api/v1/mobile/bills/preview", "rest"),
    ("/api/v1/mobile/bills/pay", "rest"),
    ("/api/v1/partner/gateway/callback", "rest"),
    ("/api/v1/admin/quote", "rest"),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("edges")
    for db_url in backend_db_url(request.param, tmp):
        with server(db_url, tmp, env=SERVER_ENV) as url:
            reg = run_cli(["ecert", "terminal-register", "--fixmedins-code", _CODE, "--name", "window",
                           "--key-file", str(tmp / "terminal.key")], db_url, tmp)
            assert reg.returncode == 0, reg.stderr
            (tmp / "terminal.json").write_text(reg.stdout)
            yield url, tmp


@pytest.fixture(scope="module")
def terminal(served) -> dict:
    """A registered terminal of the demo institution, for ``terminal_post``."""
    return {"base": served[0], "terminal_id": json.loads((served[1] / "terminal.json").read_text())["terminal_id"],
            "terminal_key": load_or_create_key(served[1] / "terminal.key")}


@pytest.fixture(scope="module")
def device(served) -> dict:
    """The patient's phone: a device key holding an active e-certificate (activated with the texted code)."""
    key = Ed25519PrivateKey.generate()
    return {"key": key, "ecert_id": activate(served[0], demo.PERSONS[0], key)["ecert_id"]}


DEVICE_SIGNED = ("/api/v1/mobile/ecert/code", "/api/v1/mobile/bills/pay")


@pytest.fixture(scope="module")
def port(served) -> int:
    return int(served[0].rsplit(":", 1)[1])


@pytest.fixture()
def log_of(served):
    """The server log written during the test (read it after the server has had a moment to write)."""
    path = served[1] / "server.log"
    start = path.stat().st_size

    def read() -> str:
        time.sleep(0.3)
        with path.open("rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")

    return read


# -- raw HTTP ------------------------------------------------------------------------------------------------


def connect(port: int, timeout: float = 30) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    return s


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_answer(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer (status, lowercased headers, body) from the socket; a reset after it is fine."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed without an answer: {data!r}")
        data += chunk
    top, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    want = int(headers.get("content-length", "0"))
    while len(body) < want:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def closed_by_server(s: socket.socket) -> bool:
    """Does the server close the connection (within the socket's timeout), after what it sent last?"""
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False
    return True


def signed(body_len: int | None = None, *, forged: bool = False, **extra: str) -> dict[str, str]:
    h = sign_headers(PAASID, TOKEN if not forged else "not-the-token", nonce=uuid.uuid4().hex)
    h["Content-Type"] = "application/json"
    if body_len is not None:
        h["Content-Length"] = str(body_len)
    return {**h, **extra}


def envelope(infno: str = "9001", input_: object | None = None) -> dict:
    return {"infno": infno, "msgid": f"{_CODE}{uuid.uuid4().hex[:16]}", "fixmedins_code": _CODE,
            "mdtrtarea_admvs": "999901", "insuplc_admdvs": "999901", "recer_sys_code": "MPTEST", "infver": "V1.0",
            "opter_type": "1", "opter": "1001", "opter_name": "test", "inf_time": "2026-01-01 08:00:00",
            "sign_no": "", "signtype": "", "cainfo": "",
            "input": input_ if input_ is not None else {"signIn": {"opter_no": "1001", "mac": "", "ip": ""}}}


def field_of(door: str, body: bytes) -> str:
    """The field an error answer names, checking it has the door's shape."""
    doc = json.loads(body)
    if door == "institution":
        assert set(doc) >= {"infcode", "err_msg", "output", "inf_refmsgid"}, doc
        assert doc["infcode"] == -2, doc
        return doc["err_msg"].split(":", 1)[0]
    if door == "ec_query":
        assert set(doc) == {"orgId", "code", "message", "data"} and doc["code"] != 0, doc
        return doc["message"].split(":", 1)[0]
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "field", "message"}, doc
    return doc["error"]["field"]


def no_traceback(log: str) -> None:
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]


# -- memory ---------------------------------------------------------------------------------------------------


def server_pids(port: int) -> list[int]:
    """The `medpay serve` process listening on ``port`` and its descendants (uvicorn's workers)."""
    cmdlines = {}
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdlines[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    main = [pid for pid, argv in cmdlines.items() if b"serve" in argv and str(port).encode() in argv]
    assert len(main) == 1, main
    found = list(main)
    for pid in found:
        found += [child for child, parent in parents.items() if parent == pid and child not in found]
    return found


def rss_mib(port: int) -> float:
    total = 0
    for pid in server_pids(port):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


# -- huge bodies ------------------------------------------------------------------------------------------------

HUGE = 200 * MiB
HUGE_DOORS = [  # (method, path, headers, door, limit)
    ("POST", CALL_SERVICE, "signed", "institution", INSTITUTION_BODY_BYTES),
    ("POST", "/api/v1/terminal/ec/query", {"Content-Type": "multipart/form-data; boundary=x"}, "ec_query",
     PHOTO_BODY_BYTES),
    ("POST", "/api/v1/terminal/settle", {"Content-Type": "application/json"}, "rest", SMALL_BODY_BYTES),
    ("POST", "/api/v1/mobile/ecert/activate", {"Content-Type": "application/json"}, "rest", SMALL_BODY_BYTES),
    ("POST", "/api/v1/mobile/bills/preview", {"Content-Type": "multipart/form-data; boundary=x"}, "rest",
     PHOTO_BODY_BYTES),
    ("POST", "/api/v1/partner/gateway/callback", {"Content-Type": "application/json"}, "rest", SMALL_BODY_BYTES),
    ("POST", "/api/v1/admin/quote", {"Content-Type": "application/json", **STAFF}, "rest", ADMIN_BODY_BYTES),
    ("GET", "/", {}, "rest", 0),  # a page: it takes no body
    ("GET", "/api/v1/admin/ledger/check", dict(STAFF), "rest", 0),
]


def _headers(spec: object) -> dict[str, str]:
    return signed() if spec == "signed" else dict(spec)  # type: ignore[arg-type]


@pytest.mark.parametrize("method, path, spec, door, limit", HUGE_DOORS, ids=[d[1] + ":" + d[0] for d in HUGE_DOORS])
def test_a_declared_huge_body_is_refused_before_it_is_read(port: int, log_of, method, path, spec, door,
                                                           limit) -> None:
    """Content-Length: 200 MB, and not one byte of the body sent: the answer comes at once (today the server
    waits to read it all), 413 in the door's shape, and the connection is closed."""
    before = rss_mib(port)
    for _ in range(3):
        with connect(port) as s:
            s.sendall(head(method, path, {**_headers(spec), "Content-Length": str(HUGE)}))
            status, headers, body = read_answer(s)
            assert status == 413 and headers.get("connection") == "close"
            assert field_of(door, body) == "body"
            assert closed_by_server(s)
    assert rss_mib(port) - before < 10
    no_traceback(log_of())


def test_a_body_where_no_endpoint_is_answers_404_or_405_unread(port: int, log_of) -> None:
    """A body sent to a method or path that has no endpoint is never read: the router's 404 or 405 answers at
    once (in the door's shape) and the connection is closed."""
    for method, path, status, field in (("POST", "/", 405, "method"), ("PUT", "/api/v1/admin/policies", 405, "method"),
                                        ("POST", "/api/v1/nothing", 404, "path")):
        with connect(port) as s:
            s.sendall(head(method, path, {"Content-Length": str(HUGE)}))
            answer, headers, body = read_answer(s)
            assert (answer, headers.get("connection"), field_of("rest", body)) == (status, "close", field)
            assert closed_by_server(s)
    no_traceback(log_of())


@pytest.mark.parametrize("method, path, spec, door, limit", HUGE_DOORS, ids=[d[1] + ":" + d[0] for d in HUGE_DOORS])
def test_a_chunked_huge_body_is_refused_as_it_passes_the_limit(port: int, log_of, method, path, spec, door,
                                                               limit) -> None:
    """200 MB chunked, sent as fast as the server takes it: 413 in the door's shape once the body passes the
    door's limit (plus what the sockets hold), never the whole body read; memory grows by the limit at most,
    and not again on a second try."""
    piece = b"%x\r\n%s\r\n" % (MiB, b"x" * MiB)
    growth = []
    for _ in range(2):
        before = rss_mib(port)
        with connect(port) as s:
            s.sendall(head(method, path, {**_headers(spec), "Transfer-Encoding": "chunked"}))
            sent = 0
            try:
                while sent < HUGE:
                    s.sendall(piece)
                    sent += MiB
            except (BrokenPipeError, ConnectionResetError):
                pass
            status, headers, body = read_answer(s)
        assert status == 413 and field_of(door, body) == "body"
        assert sent <= limit + 16 * MiB, f"the server read {sent} bytes before refusing"
        growth.append(rss_mib(port) - before)
    assert growth[0] < limit / MiB + 16 and max(growth[1:]) < 10, growth
    no_traceback(log_of())


def test_a_200_mb_body_with_a_forged_institution_signature_is_refused_without_reading_it(port: int,
                                                                                           log_of) -> None:
    """The issue's attack: 200 MB behind a forged x-tif-signature took a worker from 120 MB to 510 MB. Now the
    headers are checked first: 401 while the body has not even started, the connection closed, memory flat."""
    before = rss_mib(port)
    for body_len in (HUGE, 1000):
        with connect(port) as s:
            s.sendall(head("POST", CALL_SERVICE, signed(body_len, forged=True)))
            status, headers, body = read_answer(s)
            assert status == 401 and headers.get("connection") == "close"
            assert field_of("institution", body) == "x-tif-signature"
    with connect(port) as s:  # chunked likewise; some of it sent, the rest never asked for
        s.sendall(head("POST", CALL_SERVICE, signed(forged=True, **{"Transfer-Encoding": "chunked"})))
        s.sendall(b"%x\r\n%s\r\n" % (MiB, b"x" * MiB))
        status, _headers, body = read_answer(s)
        assert status == 401
    assert rss_mib(port) - before < 10
    no_traceback(log_of())


def test_a_refused_institution_body_uses_up_its_nonce(port: int, served) -> None:
    """A request that passed the signature uses up its nonce whatever happens to its body (too large here): its
    headers can't be replayed with another body."""
    headers = signed(HUGE)
    with connect(port) as s:
        s.sendall(head("POST", CALL_SERVICE, headers))
        status, _h, body = read_answer(s)
    assert status == 413 and json.loads(body)["err_msg"].startswith("body: ")
    small = json.dumps(envelope()).encode()
    replay = httpx.post(served[0] + CALL_SERVICE, content=small, headers={**headers, "Content-Length": str(len(small))})
    assert replay.status_code == 401 and replay.json()["err_msg"].startswith("x-tif-nonce: ")


def test_bodies_within_the_limit_still_work(served) -> None:
    """A 9101-sized envelope reaches the interface (refused for its content, not its size), and a signed 9001
    with a chunked body signs in."""
    base = served[0]
    big = json.dumps(envelope("9101", {"fsUploadIn": {"in": "A" * (28 * MiB), "filename": "x.zip",
                                                      "fixmedins_code": _CODE}})).encode()
    r = httpx.post(base + CALL_SERVICE, content=big, headers=signed(), timeout=60)
    assert r.status_code == 200 and r.json()["infcode"] == -2 and not r.json()["err_msg"].startswith("body")
    body = json.dumps(envelope()).encode()
    r = httpx.post(base + CALL_SERVICE, content=iter([body[:10], body[10:]]), headers=signed())
    assert r.status_code == 200 and r.json()["infcode"] == 0, r.json()


# -- deep JSON ---------------------------------------------------------------------------------------------------

DEEP = b"[" * 1000 + b"]" * 1000


@pytest.mark.parametrize("path, door", JSON_DOORS, ids=[d[0] for d in JSON_DOORS])
@pytest.mark.parametrize("shape", ["array", "object", "inside"])
def test_deep_json_is_refused_naming_the_body(served, log_of, path: str, door: str, shape: str) -> None:
    doc = {"array": DEEP, "object": b'{"a":' * 1000 + b"1" + b"}" * 1000,
           "inside": b'{"orgId": "H1", "bill": "x", "input": ' + DEEP + b"}"}[shape]
    if path == CALL_SERVICE and shape == "inside":
        doc = json.dumps(envelope("9001", [])).encode().replace(b'"input": []', b'"input": ' + DEEP)
    headers = signed() if door == "institution" else {"Content-Type": "application/json", **STAFF}
    r = httpx.post(served[0] + path, content=doc, headers=headers)
    assert 400 <= r.status_code < 500 or (door == "institution" and r.status_code == 200), r.text
    assert field_of(door, r.content) == "body"
    assert "nested more than 32" in r.text
    no_traceback(log_of())


def test_json_nested_32_deep_is_still_parsed(served) -> None:
    doc = b'{"bill": "x", "deep": ' + b"[" * 31 + b"]" * 31 + b"}"
    r = httpx.post(served[0] + "/api/v1/mobile/bills/preview", content=doc, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] != "body"  # the bill code is refused, not the nesting


# -- a client gone mid-body -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path, door", JSON_DOORS, ids=[d[0] for d in JSON_DOORS])
def test_a_client_gone_mid_body_leaves_one_short_line(port: int, log_of, path: str, door: str) -> None:
    headers = signed(1000) if door == "institution" else {"Content-Type": "application/json", "Content-Length": "1000"}
    with connect(port) as s:
        s.sendall(head("POST", path, headers) + b'{"a": "')
        time.sleep(0.2)
    log = log_of()
    no_traceback(log)
    lines = [ln for ln in log.splitlines() if "went away" in ln]
    assert len(lines) == 1 and "INFO" in lines[0] and len(lines[0]) < 200, log
    assert "ERROR" not in log and "WARNING" not in log, log


# -- slow connections -----------------------------------------------------------------------------------------------


def test_60_slow_heads_are_closed_within_the_timeout(port: int, log_of) -> None:
    """Slowloris: 60 connections, each sending a header line every half second, never finish their head. The
    server closes all of them within the header timeout (+ a generous margin), with a 408."""
    conns = {connect(port, timeout=5): 0.0 for _ in range(60)}
    started = time.monotonic()
    for s in conns:
        s.sendall(b"GET /api/v1/admin/policies HTTP/1.1\r\nHost: x\r\n")
    answers = 0
    while time.monotonic() - started < HEAD_TIMEOUT_S + 5 and not all(conns.values()):
        still_open = [s for s, closed_at in conns.items() if not closed_at]
        readable, _, _ = select.select(still_open, [], [], 0.5)
        # stop trickling just before the timeout: a line written after the server closed would draw a reset that
        # destroys the 408 still unread in our buffer, and the test would count answers by luck
        trickle = time.monotonic() - started < HEAD_TIMEOUT_S - 1
        for s in still_open:
            if s not in readable and not trickle:
                continue
            try:
                data = s.recv(65536) if s in readable else s.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):  # closed while we were writing
                data = b""
            if data is None:
                continue
            if data:
                assert data.startswith(b"HTTP/1.1 408") and b'"field":"headers"' in data, data
                answers += 1
                closed_by_server(s)
            conns[s] = time.monotonic() - started
    for s in conns:
        s.close()
    closed = sorted(t for t in conns.values() if t)
    assert len(closed) == 60, f"{60 - len(closed)} of 60 slow connections still open after {HEAD_TIMEOUT_S + 5} s"
    assert HEAD_TIMEOUT_S - 0.5 < closed[0] and closed[-1] < HEAD_TIMEOUT_S + 5, closed
    assert answers == 60
    no_traceback(log_of())


def test_an_idle_connection_is_closed_within_the_header_timeout(port: int) -> None:
    started = time.monotonic()
    with connect(port, timeout=HEAD_TIMEOUT_S + 5) as s:
        assert s.recv(100) == b""
    assert time.monotonic() - started < HEAD_TIMEOUT_S + 5


@pytest.mark.parametrize("path, door", [("/api/v1/mobile/ecert/activate", "rest"), (CALL_SERVICE, "institution")])
def test_an_endless_head_is_refused_at_64_kib(port: int, log_of, path: str, door: str) -> None:
    """A header that never ends is not buffered without bound while its deadline runs: 431 past 64 KiB."""
    with connect(port) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Endless: ".encode())
        try:
            for _ in range(64):
                s.sendall(b"a" * 4096)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, headers, body = read_answer(s)
    assert status == 431 and headers.get("connection") == "close" and field_of(door, body) == "headers"
    no_traceback(log_of())


SLOW_DOORS = [*JSON_DOORS, ("/api/v1/terminal/face/verify", "rest"), ("/api/v1/admin/face/enrolments", "rest")]


@pytest.mark.parametrize("path, door", SLOW_DOORS, ids=[d[0] for d in SLOW_DOORS])
def test_a_slow_body_gets_408_in_the_doors_shape(port: int, log_of, path: str, door: str) -> None:
    headers = signed(100) if door == "institution" else {"Content-Type": "application/json", "Content-Length": "100"}
    started = time.monotonic()
    with connect(port, timeout=BODY_TIMEOUT_S + 5) as s:
        s.sendall(head("POST", path, headers) + b"{")
        s.settimeout(0.5)
        answer = b""
        while not answer and time.monotonic() - started < BODY_TIMEOUT_S + 5:
            try:
                s.sendall(b" ")  # a byte a half-second: 2 bytes/s
                answer = s.recv(65536, socket.MSG_PEEK)
            except socket.timeout:
                continue
        s.settimeout(5)
        status, headers_, body = read_answer(s)
    assert status == 408 and headers_.get("connection") == "close"
    assert field_of(door, body) == "body"
    assert time.monotonic() - started < BODY_TIMEOUT_S + 5
    no_traceback(log_of())


# -- one error shape per door ------------------------------------------------------------------------------------------

SHAPE_CASES = [  # (method, path, door, field)
    ("POST", "/fsi/api/noSuchService/call", "institution", "path"),
    ("GET", CALL_SERVICE, "institution", "method"),
    ("GET", "/api/v1/terminal/ec/query", "ec_query", "method"),
    ("GET", "/api/v1/terminal/settle", "rest", "method"),
    ("POST", "/api/v1/terminal/nothing", "rest", "path"),
    ("GET", "/api/v1/mobile/ecert/activate", "rest", "method"),
    ("GET", "/api/v1/mobile/nothing", "rest", "path"),
    ("GET", "/api/v1/partner/gateway/callback", "rest", "method"),
    ("GET", "/api/v1/admin/quote", "rest", "method"),
    ("GET", "/api/v1/admin/nothing", "rest", "path"),
    ("GET", "/m/nothing", "rest", "path"),
    ("PUT", "/", "rest", "method"),
    ("GET", "/no/such/page", "rest", "path"),
]


@pytest.mark.parametrize("method, path, door, field", SHAPE_CASES, ids=[f"{c[0]} {c[1]}" for c in SHAPE_CASES])
def test_404_and_405_answer_in_the_doors_shape(served, log_of, method: str, path: str, door: str, field: str) -> None:
    r = httpx.request(method, served[0] + path, headers=STAFF)
    assert r.status_code == (404 if field == "path" else 405)
    assert field_of(door, r.content) == field
    if field == "method":
        assert r.headers["allow"]
    no_traceback(log_of())


BAD_BODIES = {"not UTF-8": b'{"psn_no": "\xff\xfe\xfd"}', "malformed": b'{"psn_no": "1",', "not JSON": b"\x00\x01"}


@pytest.mark.parametrize("path, door", JSON_DOORS, ids=[d[0] for d in JSON_DOORS])
@pytest.mark.parametrize("what", sorted(BAD_BODIES))
def test_an_unparseable_body_is_refused_naming_the_body(served, terminal, device, log_of, path: str, door: str,
                                                        what: str) -> None:
    body = BAD_BODIES[what]
    if path.startswith("/api/v1/terminal/"):  # signed over the body: sign it, so the body is what is refused
        r = terminal_post(terminal, path, body, "application/json")
    elif path in DEVICE_SIGNED:  # likewise signed by the device key
        r = httpx.post(served[0] + path, content=body, headers={
            "Content-Type": "application/json", **sign_device_request(device["key"], device["ecert_id"], "POST", path,
                                                                      body)})
    else:
        headers = signed() if door == "institution" else {"Content-Type": "application/json", **STAFF}
        r = httpx.post(served[0] + path, content=body, headers=headers)
    if path.endswith("/callback"):  # the gateway's HMAC covers the body and is checked first: the header is named
        assert r.status_code == 401 and field_of(door, r.content).lower().startswith("x-gateway-")
        return
    assert r.status_code == (200 if door == "institution" else 422), r.text
    assert field_of(door, r.content) == "body", r.text
    no_traceback(log_of())


UNSTORABLE = {"NUL": (b'{"psn_no": "F\\u0000x", "certno": "1", "bill": "x"}', "NUL"),
              "lone surrogate": (b'{"psn_no": "\\udb39x", "certno": "1", "bill": "x"}', "surrogate")}
REST_JSON_DOORS = [(p, d) for p, d in JSON_DOORS if d != "institution" and not p.endswith("/callback")] + [
    ("/api/v1/admin/ecert/counter-activations", "rest")]


@pytest.mark.parametrize("path, door", REST_JSON_DOORS, ids=[d[0] for d in REST_JSON_DOORS])
@pytest.mark.parametrize("what", sorted(UNSTORABLE))
def test_text_no_database_can_store_is_refused_naming_the_field(served, terminal, device, log_of, path: str,
                                                                door: str, what: str) -> None:
    """NUL (PostgreSQL's text can't hold it) and unpaired surrogates (not UTF-8) are refused at the door, naming
    the field, before any query sees them: found by Schemathesis as a 500 on the counter activation."""
    body, why = UNSTORABLE[what]
    if path.startswith("/api/v1/terminal/"):
        r = terminal_post(terminal, path, body, "application/json")
    elif path in DEVICE_SIGNED:
        r = httpx.post(served[0] + path, content=body, headers={
            "Content-Type": "application/json", **sign_device_request(device["key"], device["ecert_id"], "POST", path,
                                                                      body)})
    else:
        r = httpx.post(served[0] + path, content=body, headers={"Content-Type": "application/json", **STAFF})
    assert r.status_code == 422, r.text
    assert field_of(door, r.content) == "psn_no", r.text
    assert why in r.text
    no_traceback(log_of())


# -- settings and units ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, value", [("MEDPAY_HEADER_TIMEOUT_S", "0"), ("MEDPAY_HEADER_TIMEOUT_S", "ten"),
                                          ("MEDPAY_BODY_TIMEOUT_S", "nan"), ("MEDPAY_BODY_TIMEOUT_S", "-1"),
                                          ("MEDPAY_BODY_MIN_RATE", "1.5"), ("MEDPAY_BODY_MIN_RATE", "10")])
def test_a_wrong_setting_is_refused_with_a_clear_message(name: str, value: str) -> None:
    with pytest.raises(SystemExit, match=f"{name} must be .* not {value!r}"):
        settings({name: value})


def test_serve_refuses_a_wrong_setting_before_it_starts(tmp_path: Path) -> None:
    env = {**medpay_env(f"sqlite:///{tmp_path / 'm.db'}", tmp_path), "MEDPAY_HEADER_TIMEOUT_S": "forever"}
    r = subprocess.run([sys.executable, "-m", "medpay.cli", "serve", "--no-gateway-sim", "--port", "1"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "MEDPAY_HEADER_TIMEOUT_S must be a number of seconds" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr + r.stdout and not (tmp_path / "m.db").exists()


def test_settings_defaults_and_values() -> None:
    assert settings({}) == settings({"MEDPAY_HEADER_TIMEOUT_S": "10", "MEDPAY_BODY_TIMEOUT_S": " 30 "})
    s = settings({"MEDPAY_HEADER_TIMEOUT_S": "2.5", "MEDPAY_BODY_MIN_RATE": "4096"})
    assert s.header_timeout_s == 2.5 and s.body_min_rate == 4096


def test_body_limits_per_door() -> None:
    assert body_limit("POST", CALL_SERVICE) == 32 * MiB
    assert body_limit("POST", "/api/v1/terminal/ec/query", "multipart/form-data; boundary=x") == 9 * MiB
    assert body_limit("POST", "/api/v1/terminal/ec/query", "application/json") == 64 * 1024
    assert body_limit("POST", "/api/v1/mobile/bills/pay") == 64 * 1024
    assert body_limit("POST", "/api/v1/admin/quote") == MiB
    assert body_limit("GET", "/api/v1/admin/policies") == body_limit("POST", "/") == 0


@pytest.mark.parametrize("depth", [1, 31, 32, 33, 100, 5000])
def test_json_depth_is_measured_exactly_without_recursion(depth: int) -> None:
    for doc in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth,
                b'[1, "]]]", {"x": "\\"[["}' + (b", " + b"[" * (depth - 1) + b"]" * (depth - 1)) * (depth > 1) + b"]",
                b"[" + b",".join([b"[" * (depth - 1) + b"0" + b"]" * (depth - 1)] * 3000) + b"]"):
        assert (json_depth_error(doc) is not None) == (depth > 32), doc[:60]
        if depth <= 32:
            json.loads(doc)


def test_json_depth_ignores_brackets_in_strings_and_refuses_unbalanced_ones() -> None:
    assert json_depth_error(json.dumps({"note": "[{" * 500, "esc": '\\"[' * 100}).encode()) is None
    assert json_depth_error(b"[" * 100) == "is not valid JSON (its brackets do not balance)"
    assert json_depth_error(b"]" * 40 + b"[" * 40) is not None


def test_the_guard_runs_in_every_worker(tmp_path: Path) -> None:
    """`medpay serve --workers 2`: the protocol with the head deadline reaches uvicorn's worker processes."""
    with server(f"sqlite:///{tmp_path / 'm.db'}", tmp_path, "--workers", "2", "--no-seed", env=SERVER_ENV) as url:
        port = int(url.rsplit(":", 1)[1])
        assert len(server_pids(port)) >= 3  # the supervisor and its workers
        conns = [connect(port, timeout=HEAD_TIMEOUT_S + 5) for _ in range(8)]
        started = time.monotonic()
        for s in conns:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        for s in conns:
            status, _headers, body = read_answer(s)
            assert status == 408 and json.loads(body)["error"]["field"] == "headers"
            s.close()
        assert time.monotonic() - started < HEAD_TIMEOUT_S + 5
        with connect(port) as s:
            s.sendall(head("POST", "/api/v1/mobile/ecert/activate", {"Content-Length": str(HUGE)}))
            assert read_answer(s)[0] == 413
    no_traceback((tmp_path / "server.log").read_text())
