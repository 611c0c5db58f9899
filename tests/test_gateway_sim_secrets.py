"""The gateway simulator gets its API key and callback secret from its environment, never on its command line
(``/proc/<pid>/cmdline`` and ``ps`` show a command line to every user of the host)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from medpay.adapters.gateway.http_gateway import sign_request
from medpay.simulators.gateway_sim import API_KEY_ENV, SECRET_ENV
from tests.helpers_server import free_port, server


def simulator_pid(port: int) -> int:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if b"medpay.simulators.gateway_sim" in args and any(
                a == b"--port" and b == str(port).encode() for a, b in zip(args, args[1:])):
            return int(proc.name)
    raise AssertionError(f"no gateway simulator on port {port}")


def test_the_simulator_serve_starts_has_no_secret_on_its_command_line(tmp_path: Path) -> None:
    api_key, secret = f"api-key-{secrets.token_hex(8)}", f"cb-secret-{secrets.token_hex(8)}"
    port = free_port()
    with server(f"sqlite:///{tmp_path / 'medpay.db'}", tmp_path, "--gateway-port", str(port),
                env={API_KEY_ENV: api_key, SECRET_ENV: secret}):
        pid = simulator_pid(port)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert api_key.encode() not in cmdline and secret.encode() not in cmdline, cmdline
        ps = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True).stdout
        assert "gateway_sim" in ps and api_key not in ps and secret not in ps
        # yet it has the key: a request signed with it is authenticated, another is not
        path, ts = "/payments/no-such-intent", int(time.time())

        def get(key: str) -> int:
            headers = {"X-Merchant-Id": "medpay-demo", "X-Timestamp": str(ts),
                       "X-Signature": sign_request(key, "GET", path, ts, b"")}
            return httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=5).status_code

        assert get(api_key) == 404 and get("another-key") == 401


def test_the_simulator_asks_for_its_secrets_in_the_environment(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (API_KEY_ENV, SECRET_ENV)}
    r = subprocess.run([sys.executable, "-m", "medpay.simulators.gateway_sim", "--port", str(free_port()),
                        "--state-file", str(tmp_path / "sim.db")], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and f"set {API_KEY_ENV}" in r.stderr and SECRET_ENV in r.stderr
    old_way = subprocess.run([sys.executable, "-m", "medpay.simulators.gateway_sim", "--api-key", "k", "--secret", "s"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert old_way.returncode == 2 and "unrecognized arguments: --api-key" in old_way.stderr


def test_a_gateway_without_its_callback_secret_stops_the_start(monkeypatch, tmp_path) -> None:
    """An empty secret would let anyone sign a gateway callback: a platform configured so refuses to start."""
    from medpay.adapters.crypto import FieldCipher
    from medpay.api.platform import build_platform

    monkeypatch.setenv("MEDPAY_GATEWAY_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("MEDPAY_GATEWAY_SECRET", raising=False)
    with pytest.raises(ValueError, match="MEDPAY_GATEWAY_SECRET is not"):
        build_platform(f"sqlite:///{tmp_path / 'x.db'}", cipher=FieldCipher(os.urandom(32)))
