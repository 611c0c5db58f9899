"""Start the simulators of outside parties (the payment gateway, the SMS service) next to the platform (demo and
tests) and point the platform at them."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.payment_tables import PaymentMethodRow
from medpay.processes import wait_until_healthy
from medpay.simulators.gateway_sim import API_KEY_ENV, SECRET_ENV
from medpay.services import demo
from medpay.services.unit_of_work import unit_of_work

DEMO_WALLET_FEN = 5_000_000  # 50000.00 in each demo patient's simulated wallet


@dataclass
class RunningSimulator:
    url: str
    proc: subprocess.Popen

    def wait(self) -> None:
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _die_with_parent() -> None:
    """Linux: the simulator gets SIGTERM when `medpay serve` ends, however it ends."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_gateway_simulator(host: str, port: int, callback_url: str, state_dir: str = "var") -> RunningSimulator:
    """Start the simulator process and set MEDPAY_GATEWAY_* so the platform's workers use it. The API key and
    callback secret (random unless set) reach it in its environment: a command line is visible to every user
    of the host (``ps``), an environment only to the process's owner, like a 0600 file but with nothing left on
    disk; the platform reads the same variables."""
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    api_key = os.environ.setdefault(API_KEY_ENV, secrets.token_hex(16))
    secret = os.environ.setdefault(SECRET_ENV, secrets.token_hex(16))
    url = f"http://{host}:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "medpay.simulators.gateway_sim", "--host", host, "--port", str(port),
                             "--callback-url", callback_url, "--state-file", str(Path(state_dir) / "gateway-sim.db")],
                            env={**os.environ, API_KEY_ENV: api_key, SECRET_ENV: secret}, preexec_fn=_die_with_parent)
    wait_until_healthy(f"{url}/healthz", proc, what="gateway simulator")
    os.environ["MEDPAY_GATEWAY_URL"] = url
    os.environ.setdefault("MEDPAY_GATEWAY_MERCHANT", "medpay-demo")
    return RunningSimulator(url, proc)


def bind_demo_wallets(factory: sessionmaker[Session], cipher: FieldCipher, sim: RunningSimulator) -> None:
    """Each demo person gets a simulated wallet and binds it as their payment method (idempotent)."""
    for person in demo.PERSONS:
        token = f"demo-wallet-{person.psn_no}"
        r = httpx.post(f"{sim.url}/sim/payers", json={"payer_token": token, "balance_fen": DEMO_WALLET_FEN}, timeout=5)
        if r.status_code not in (201, 409):
            r.raise_for_status()
        with unit_of_work(factory) as uow:
            row = uow.session.get(PaymentMethodRow, person.psn_no)
            if row is None:
                uow.session.add(PaymentMethodRow(psn_no=person.psn_no, gateway="gateway",
                                                 payer_token_enc=cipher.encrypt(token, "payer_token")))


def start_sms_simulator(host: str, port: int) -> RunningSimulator:
    """Start the SMS simulator and set MEDPAY_SMS_* so the platform's workers text through it. Its API key travels
    in the child's environment, not on its command line."""
    from medpay.simulators.sms_sim import API_KEY_ENV

    api_key = os.environ.setdefault("MEDPAY_SMS_API_KEY", secrets.token_hex(16))
    url = f"http://{host}:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "medpay.simulators.sms_sim", "--host", host, "--port", str(port)],
                            env={**os.environ, API_KEY_ENV: api_key}, preexec_fn=_die_with_parent)
    wait_until_healthy(f"{url}/healthz", proc, what="SMS simulator")
    os.environ["MEDPAY_SMS_URL"] = url
    return RunningSimulator(url, proc)
