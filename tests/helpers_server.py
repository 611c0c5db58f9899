"""Run `medpay serve` as a real server process for end-to-end tests."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


from medpay.processes import wait_until_healthy
from medpay.services import demo

STAFF = {"authorization": f"Bearer {demo.STAFF[1]}"}  # the demo's staff key, for the admin door


class Served(str):
    """The base URL of a served platform; ``.sms`` is its SMS simulator's (what it "texted": ``/sim/messages``)."""

    sms: str = ""
    db_url: str = ""
    verify: bool | ssl.SSLContext = True  # httpx's verify: trusting the served certificate when it serves HTTPS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def medpay_env(db_url: str, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MEDPAY_DATABASE_URL=db_url, MEDPAY_DATA_KEY_FILE=str(tmp / "data.key"), PYTHONUNBUFFERED="1")
    return env


def run_cli(args: list[str], db_url: str, tmp: Path, env: dict[str, str] | None = None,
            **kw) -> subprocess.CompletedProcess:
    """``medpay ARGS`` in a process of its own; ``env`` adds to its environment."""
    return subprocess.run([sys.executable, "-m", "medpay.cli", *args], env={**medpay_env(db_url, tmp), **(env or {})},
                          cwd=tmp, capture_output=True, text=True, timeout=120, **kw)


@contextmanager
def server(db_url: str, tmp: Path, *extra: str, env: dict[str, str] | None = None,
           tls: tuple[Path, Path] | None = None) -> Iterator[Served]:
    """``medpay serve`` on a free port; ``env`` adds to its environment (MEDPAY_* settings). With ``tls``
    (certificate, key: ``tests/helpers_tls``) it serves HTTPS, and ``.verify`` is the certificate to trust."""
    port = free_port()
    if tls:
        env = {**(env or {}), "MEDPAY_TLS_CERT_FILE": str(tls[0]), "MEDPAY_TLS_KEY_FILE": str(tls[1])}
    log = open(tmp / "server.log", "w")
    if not any(a.startswith("--gateway") for a in extra):
        extra = (*extra, "--no-gateway-sim")  # tests that want the gateway simulator ask for it
    sms_port = free_port()
    if not any(a.startswith("--sms") or a.startswith("--no-sms") for a in extra):
        extra = (*extra, "--sms-port", str(sms_port))  # the SMS simulator, on a port of its own
    proc = subprocess.Popen([sys.executable, "-m", "medpay.cli", "serve", "--port", str(port), *extra],
                            env={**medpay_env(db_url, tmp), **(env or {})}, cwd=tmp, stdout=log,
                            stderr=subprocess.STDOUT)
    base = Served(f"{'https' if tls else 'http'}://127.0.0.1:{port}")
    base.sms = f"http://127.0.0.1:{sms_port}"
    base.verify = ssl.create_default_context(cafile=str(tls[0])) if tls else True
    try:
        try:
            wait_until_healthy(f"{base}/healthz", proc, timeout=60, what="medpay server", verify=base.verify)
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


def backend_server(backend: str, tmp: Path, env: dict[str, str] | None = None) -> Iterator[Served]:
    """A served platform on its own database of ``backend`` ("sqlite" or "postgresql"), for module fixtures; ``env``
    adds to its environment. ``.db_url`` is its database."""
    from tests.conftest import _postgresql_schema_url

    urls = iter([f"sqlite:///{tmp / 'medpay.db'}"]) if backend == "sqlite" else _postgresql_schema_url()
    db_url = next(urls)
    try:
        with server(db_url, tmp, env=env) as url:
            url.db_url = db_url
            yield url
    finally:
        for _ in urls:  # drops the PostgreSQL schema
            pass


def texted_code(served: Served, phone: str, since: int = 0) -> str:
    """The last one-time code the SMS simulator "texted" to ``phone``."""
    import re

    import httpx

    messages = httpx.get(f"{served.sms}/sim/messages", params={"to": phone, "since": since}, timeout=5).json()["messages"]
    assert messages, f"nothing was texted to {phone}"
    return re.search(r"验证码(\d{6})", messages[-1]["text"]).group(1)


def activate(served: Served, person, device_key) -> dict:
    """The patient's app over HTTP: start an activation, read the texted code, confirm with the device key."""
    import json

    import httpx

    from medpay.adapters.platform_keys import public_key_hex
    from medpay.services.qr.ecert import sign_device_request

    start = httpx.post(f"{served}/api/v1/mobile/ecert/activate", json={
        "psn_no": person.psn_no, "certno": person.certno, "consent": True}, timeout=30)
    assert start.status_code == 202, start.text
    started = start.json()
    path = "/api/v1/mobile/ecert/activate/confirm"
    body = json.dumps({"device_public_key": public_key_hex(device_key), "activation_id": started["activation_id"],
                       "code": texted_code(served, person.phone)}).encode()
    done = httpx.post(served + path, content=body, timeout=30, headers={
        "content-type": "application/json", **sign_device_request(device_key, None, "POST", path, body)})
    assert done.status_code == 200, done.text
    return done.json()


def audit_events(db_url: str, action: str) -> list:
    """The audit log's events of ``action``, oldest first."""
    from sqlalchemy import select

    from medpay.adapters.db.audit_tables import AuditEventRow
    from medpay.adapters.db.engine import make_engine, session_factory

    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as s:
            return list(s.execute(select(AuditEventRow).where(AuditEventRow.action == action)
                                  .order_by(AuditEventRow.id)).scalars())
    finally:
        engine.dispose()


def signed_in_client(base: str, inst=demo.INSTITUTIONS[0], shown=()) -> "HisClient":
    """A HIS of demo institution ``inst`` at ``base``, signed in, that has identified (1101) the ``shown``
    persons by ID card."""
    from medpay.his_client import HisClient

    code, name, _level, paasid, token = inst
    c = HisClient(base, code, name, paasid, token, mdtrtarea_admvs="999901", retries=0)
    c.sign_in("1001")
    for person in shown:
        c.person_info("02", person.certno)
    return c


def row_count(db_url: str, model, *where) -> int:
    """How many rows of ``model`` match ``where``, read straight from the server's database."""
    from sqlalchemy import func, select

    from medpay.adapters.db.engine import make_engine

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one()
    finally:
        engine.dispose()
