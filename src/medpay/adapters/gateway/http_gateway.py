"""The payment-gateway port over HTTP (the API of ``medpay.simulators.gateway_sim``).

Wire protocol:

* ``POST /payments`` ``{intent_id, amount_fen, payer_token, description}`` — authorise (hold);
  ``POST /payments/{intent_id}/capture`` ``{amount_fen}``; ``POST /payments/{intent_id}/void`` ``{}``;
  ``POST /payments/{intent_id}/refunds`` ``{refund_id, amount_fen}``; ``GET /payments/{intent_id}``;
  ``GET /statements/{yyyy-mm-dd}`` (CSV).
* every request carries ``X-Merchant-Id``, ``X-Timestamp`` (Unix seconds) and ``X-Signature`` = hex
  HMAC-SHA256 under the API key of ``METHOD + "\\n" + path + "\\n" + timestamp + "\\n" + body``;
  POSTs carry ``Idempotency-Key`` (the intent id; the refund id for refunds).
* payment answers are a JSON :class:`GatewayResult` with any status code (2xx done, 4xx refused);
  401/400 with another body → :class:`GatewayProtocolError`; 5xx or no connection →
  :class:`GatewayUnavailable`; no answer in time → :class:`GatewayTimeout`.

The adapter makes one attempt per call: retrying (with the same id, which is safe) and resolving unknown
outcomes by ``status`` is the caller's policy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx

from medpay.adapters.gateway.port import (
    GatewayProtocolError,
    GatewayResult,
    GatewayTimeout,
    GatewayUnavailable,
)

MERCHANT_HEADER = "X-Merchant-Id"
TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_HEADER = "X-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign_request(api_key: str | bytes, method: str, path: str, timestamp: int | str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``METHOD\\npath\\ntimestamp\\n`` + body under ``api_key``."""
    key = api_key.encode("utf-8") if isinstance(api_key, str) else api_key
    msg = f"{method.upper()}\n{path}\n{int(timestamp)}\n".encode("utf-8") + body
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _check_id(name: str, value: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ValueError(f"{name}: must be 1–128 characters of A-Z a-z 0-9 . _ : -, got {value!r}")
    return value


def _check_amount(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name}: must be a positive integer number of fen, got {value!r}")
    return value


class HttpGateway:
    """:class:`~medpay.adapters.gateway.port.PaymentGateway` over HTTP. Thread-safe; ``close()`` when done."""

    def __init__(self, base_url: str, merchant_id: str, api_key: str, timeout: float = 2.0,
                 *, transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.merchant_id = _check_id("merchant_id", merchant_id)
        self._api_key = api_key
        self.timeout = timeout
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "HttpGateway":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -------------------------------------------------------------------------------------------- port

    def authorise(self, intent_id: str, amount_fen: int, payer_token: str, description: str) -> GatewayResult:
        _check_id("intent_id", intent_id)
        _check_amount("amount_fen", amount_fen)
        body = {"intent_id": intent_id, "amount_fen": amount_fen, "payer_token": payer_token,
                "description": description}
        return self._result("POST", "/payments", body, intent_id, idempotency_key=intent_id)

    def capture(self, intent_id: str, amount_fen: int) -> GatewayResult:
        _check_id("intent_id", intent_id)
        _check_amount("amount_fen", amount_fen)
        return self._result("POST", f"/payments/{quote(intent_id, safe='')}/capture", {"amount_fen": amount_fen},
                            intent_id, idempotency_key=intent_id)

    def void(self, intent_id: str) -> GatewayResult:
        _check_id("intent_id", intent_id)
        return self._result("POST", f"/payments/{quote(intent_id, safe='')}/void", {}, intent_id,
                            idempotency_key=intent_id)

    def refund(self, intent_id: str, refund_id: str, amount_fen: int) -> GatewayResult:
        _check_id("intent_id", intent_id)
        _check_id("refund_id", refund_id)
        _check_amount("amount_fen", amount_fen)
        return self._result("POST", f"/payments/{quote(intent_id, safe='')}/refunds",
                            {"refund_id": refund_id, "amount_fen": amount_fen}, intent_id,
                            idempotency_key=refund_id)

    def status(self, intent_id: str) -> GatewayResult:
        _check_id("intent_id", intent_id)
        return self._result("GET", f"/payments/{quote(intent_id, safe='')}", None, intent_id)

    def statement(self, day: date) -> bytes:
        resp = self._send("GET", f"/statements/{day.isoformat()}", None)
        if resp.status_code != 200:
            raise GatewayProtocolError(f"statement {day}: HTTP {resp.status_code} {resp.text[:200]}",
                                       resp.status_code)
        return resp.content

    # -------------------------------------------------------------------------------------------- wire

    def _send(self, method: str, path: str, body: dict[str, Any] | None,
              idempotency_key: str | None = None) -> httpx.Response:
        raw = b"" if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        ts = int(time.time())
        headers = {MERCHANT_HEADER: self.merchant_id, TIMESTAMP_HEADER: str(ts),
                   SIGNATURE_HEADER: sign_request(self._api_key, method, path, ts, raw)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        try:
            resp = self._client.request(method, path, content=raw if body is not None else None, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            # not sent: nothing can have happened at the gateway
            raise GatewayUnavailable(f"{method} {path}: cannot connect: {e}") from e
        except httpx.TimeoutException as e:
            raise GatewayTimeout(f"{method} {path}: no answer within {self.timeout} s") from e
        except httpx.TransportError as e:  # connection dropped mid-way: the request may have been processed
            raise GatewayTimeout(f"{method} {path}: connection lost: {e}") from e
        if resp.status_code >= 500:
            raise GatewayUnavailable(f"{method} {path}: HTTP {resp.status_code}")
        return resp

    def _result(self, method: str, path: str, body: dict[str, Any] | None, intent_id: str,
                idempotency_key: str | None = None) -> GatewayResult:
        resp = self._send(method, path, body, idempotency_key)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and "state" in data and "intent_id" in data:
            try:
                return GatewayResult.from_dict(data)
            except (ValueError, KeyError, TypeError) as e:
                raise GatewayProtocolError(f"{method} {path}: bad answer: {e}", resp.status_code) from e
        err = data.get("error") if isinstance(data, dict) else None
        message = f"{err.get('code')}: {err.get('message')}" if isinstance(err, dict) else resp.text[:200]
        raise GatewayProtocolError(f"{method} {path}: HTTP {resp.status_code} {message}", resp.status_code)
