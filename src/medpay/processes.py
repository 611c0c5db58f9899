"""Waiting for a child process's HTTP service to come up (the platform, the gateway simulator)."""

from __future__ import annotations

import ssl
import subprocess
import time

import httpx


def wait_until_healthy(url: str, proc: subprocess.Popen, timeout: float = 30.0, what: str = "service",
                       verify: bool | ssl.SSLContext = True) -> None:
    """Poll ``url`` until it answers 200; raise RuntimeError if the process exits or time runs out. ``verify``:
    httpx's, e.g. a context trusting the CA that signed an HTTPS server's certificate."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1, verify=verify).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the {what} exited with code {proc.returncode} before answering {url}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {what} did not answer {url} within {timeout:.0f} s")
        time.sleep(0.1)
