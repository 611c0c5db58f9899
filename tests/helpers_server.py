"""Run `medpay serve` as a real server process for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


from medpay.processes import wait_until_healthy
from medpay.services import demo

STAFF = {"authorization": f"Bearer {demo.STAFF[1]}"}  # the demo's staff key, for the admin door


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def medpay_env(db_url: str, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MEDPAY_DATABASE_URL=db_url, MEDPAY_DATA_KEY_FILE=str(tmp / "data.key"), PYTHONUNBUFFERED="1")
    return env


def run_cli(args: list[str], db_url: str, tmp: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medpay.cli", *args], env=medpay_env(db_url, tmp), cwd=tmp,
                          capture_output=True, text=True, timeout=120, **kw)


@contextmanager
def server(db_url: str, tmp: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``medpay serve`` on a free port; ``env`` adds to its environment (MEDPAY_* settings)."""
    port = free_port()
    log = open(tmp / "server.log", "w")
    if not any(a.startswith("--gateway") for a in extra):
        extra = (*extra, "--no-gateway-sim")  # tests that want the gateway simulator ask for it
    proc = subprocess.Popen([sys.executable, "-m", "medpay.cli", "serve", "--port", str(port), *extra],
                            env={**medpay_env(db_url, tmp), **(env or {})}, cwd=tmp, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_healthy(f"{base}/healthz", proc, timeout=60, what="medpay server")
        except RuntimeError as e:
            raise RuntimeError(f"{e}:\n" + (tmp / "server.log").read_text()) from None
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def backend_db_url(backend: str, tmp: Path) -> Iterator[str]:
    """A database URL of its own for ``backend``; the PostgreSQL schema is dropped when the generator closes."""
    from tests.conftest import _postgresql_schema_url

    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'medpay.db'}"
    else:
        yield from _postgresql_schema_url()


def backend_server(backend: str, tmp: Path) -> Iterator[str]:
    """A served platform on its own database of ``backend`` ("sqlite" or "postgresql"), for module fixtures."""
    from tests.conftest import _postgresql_schema_url

    urls = iter([f"sqlite:///{tmp / 'medpay.db'}"]) if backend == "sqlite" else _postgresql_schema_url()
    db_url = next(urls)
    try:
        with server(db_url, tmp) as url:
            yield url
    finally:
        for _ in urls:  # drops the PostgreSQL schema
            pass
