"""The payment-gateway port: what the settlement service asks of a card/wallet gateway.

A payment is identified by the caller's ``intent_id``. Its life: ``authorise`` places a hold on the payer's
funds; ``capture`` takes at most the held amount (the rest of the hold is released); ``void`` releases a hold;
``refund`` gives back part or all of what was captured, once per ``refund_id``. Every call is idempotent by
its id, so a retry after an unknown outcome never charges twice.

Outcomes:

* a :class:`GatewayResult` — the gateway answered. ``result.ok`` (no ``error_code``) means the operation
  happened (or had already happened: a retry). A refusal (``insufficient_funds``, ``amount_exceeds_hold``,
  ``already_voided`` …) changes nothing; its ``state`` is the payment's state as the gateway sees it then
  (``declined`` for a declined authorisation, ``unknown`` for a payment the gateway has never seen). Always
  check ``ok``/``error_code`` before trusting ``state``: a capture refused as ``amount_exceeds_hold`` answers
  ``state="held"``.
* :class:`GatewayTimeout` — the request may or may not have been processed. Resolve with :meth:`status`
  (or retry with the same id) — never assume either way.
* :class:`GatewayUnavailable` — connection refused or a 5xx: most likely not processed, but still resolve
  with :meth:`status` before acting on that.
* :class:`GatewayProtocolError` — the gateway refused the request itself (authentication, malformed
  request): nothing happened; a configuration or programming error.

Amounts are integer fen. ``amount_held`` is what is *still* on hold (0 after capture or void),
``amount_captured`` what was taken, ``amount_refunded`` the sum of refunds.

Callbacks: the gateway POSTs a JSON event on capture, void (also a hold expiring) and refund, signed with
HMAC-SHA256 over ``timestamp + "." + body`` (hex, header ``X-Gateway-Signature``; the Unix timestamp in
``X-Gateway-Timestamp``). :func:`verify_callback` checks one and returns the event. A gateway may deliver an
event more than once, late, or never: receivers dedupe by ``event_id`` and never depend on a callback
arriving — :meth:`status` is the source of truth.

Statements: one CSV per day in China Standard Time (:data:`STATEMENT_TZ`), columns
:data:`STATEMENT_COLUMNS`; one row per capture (positive ``amount_fen``) and per refund (negative), so the
column sums to captured − refunded for the day.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal, Protocol, runtime_checkable

State = Literal["held", "captured", "voided", "refunded", "partially_refunded", "declined", "unknown"]
STATES: tuple[str, ...] = ("held", "captured", "voided", "refunded", "partially_refunded", "declined", "unknown")

CALLBACK_TIMESTAMP_HEADER = "X-Gateway-Timestamp"
CALLBACK_SIGNATURE_HEADER = "X-Gateway-Signature"
CALLBACK_TOLERANCE_S = 300

STATEMENT_TZ = timezone(timedelta(hours=8), "CST")
STATEMENT_COLUMNS = ("date", "gateway_ref", "intent_id", "type", "amount_fen", "merchant_id", "refund_id")


@dataclass(frozen=True)
class GatewayResult:
    intent_id: str
    state: State
    amount_held: int = 0
    amount_captured: int = 0
    amount_refunded: int = 0
    gateway_ref: str | None = None  # the payment's ref (its capture's statement row); a refund's own ref for refund()
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GatewayResult":
        state = d.get("state")
        if state not in STATES:
            raise ValueError(f"state: unknown gateway state {state!r}")
        return cls(intent_id=str(d["intent_id"]), state=state, amount_held=int(d.get("amount_held") or 0),
                   amount_captured=int(d.get("amount_captured") or 0),
                   amount_refunded=int(d.get("amount_refunded") or 0), gateway_ref=d.get("gateway_ref"),
                   error_code=d.get("error_code"), error_message=d.get("error_message"))


class GatewayError(Exception):
    """Base of the exceptions a gateway call raises (a refusal is a result, not an exception)."""


class GatewayOutcomeUnknown(GatewayError):
    """The call may or may not have taken effect: resolve with ``status(intent_id)`` or a same-id retry."""


class GatewayTimeout(GatewayOutcomeUnknown):
    """No answer in time; the gateway may have processed the request."""


class GatewayUnavailable(GatewayOutcomeUnknown):
    """Connection refused or a 5xx before processing; still resolve with a status query before acting."""


class GatewayProtocolError(GatewayError):
    """The gateway refused the request itself (authentication, malformed request): nothing happened."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


@runtime_checkable
class PaymentGateway(Protocol):
    def authorise(self, intent_id: str, amount_fen: int, payer_token: str, description: str) -> GatewayResult:
        """Hold ``amount_fen`` of the payer's funds. Idempotent by ``intent_id`` (same arguments → same answer;
        other arguments → ``idempotency_key_reused``). Declines come back as ``state="declined"``."""
        ...

    def capture(self, intent_id: str, amount_fen: int) -> GatewayResult:
        """Take ``amount_fen`` ≤ the hold; the rest is released. More than the hold → ``amount_exceeds_hold``,
        nothing taken."""
        ...

    def void(self, intent_id: str) -> GatewayResult:
        """Release the whole hold."""
        ...

    def refund(self, intent_id: str, refund_id: str, amount_fen: int) -> GatewayResult:
        """Give back ``amount_fen``; idempotent by ``refund_id``; all refunds together ≤ captured."""
        ...

    def status(self, intent_id: str) -> GatewayResult:
        """The payment as the gateway sees it; ``state="unknown"`` (``hold_not_found``) if it never saw it."""
        ...

    def statement(self, day: date) -> bytes:
        """The day's statement file (CSV, :data:`STATEMENT_COLUMNS`; the day in :data:`STATEMENT_TZ`)."""
        ...


# ---------------------------------------------------------------------------------------------- callbacks

class CallbackRejected(ValueError):
    """A callback that must not be trusted. ``field`` names the header or part at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def sign_callback(body: bytes | str, secret: bytes | str, timestamp: int | str) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}." + body`` under ``secret``."""
    msg = str(int(timestamp)).encode("ascii") + b"." + _bytes(body)
    return hmac.new(_bytes(secret), msg, hashlib.sha256).hexdigest()


def callback_headers(body: bytes | str, secret: bytes | str, timestamp: int | None = None) -> dict[str, str]:
    """The two headers a signed callback carries."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {CALLBACK_TIMESTAMP_HEADER: str(ts), CALLBACK_SIGNATURE_HEADER: sign_callback(body, secret, ts)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lname = name.lower()
        for k, v in headers.items():
            if k.lower() == lname:
                return v
    return value


def verify_callback(headers: Mapping[str, str], body: bytes | str, secret: bytes | str, *,
                    now: float | None = None, tolerance: int = CALLBACK_TOLERANCE_S) -> dict[str, Any]:
    """Check a callback's signature and freshness and return its JSON object; raise :class:`CallbackRejected`.

    ``headers`` is any mapping (names matched case-insensitively); ``body`` the raw bytes as received.
    Replays inside the window are not detected here: dedupe by the event's ``event_id``.
    """
    ts_text = _header(headers, CALLBACK_TIMESTAMP_HEADER)
    sig = _header(headers, CALLBACK_SIGNATURE_HEADER)
    if not ts_text:
        raise CallbackRejected(CALLBACK_TIMESTAMP_HEADER, "missing")
    if not sig:
        raise CallbackRejected(CALLBACK_SIGNATURE_HEADER, "missing")
    ts_text = ts_text.strip()
    if not ts_text.isdigit() or len(ts_text) > 12:
        raise CallbackRejected(CALLBACK_TIMESTAMP_HEADER, f"not a Unix timestamp: {ts_text[:20]!r}")
    ts = int(ts_text)
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise CallbackRejected(CALLBACK_TIMESTAMP_HEADER, f"outside ±{tolerance} s of now")
    expected = sign_callback(body, secret, ts)
    if not hmac.compare_digest(expected, sig.strip().lower()):
        raise CallbackRejected(CALLBACK_SIGNATURE_HEADER, "does not match the body")
    try:
        event = json.loads(_bytes(body))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CallbackRejected("body", "not JSON") from None
    if not isinstance(event, dict):
        raise CallbackRejected("body", "not a JSON object")
    return event


# ---------------------------------------------------------------------------------------------- statements

def statement_day(moment: datetime | float | None = None) -> date:
    """The statement day (China Standard Time) of a moment (aware datetime or Unix time; default now)."""
    if moment is None:
        moment = time.time()
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    return moment.astimezone(STATEMENT_TZ).date()


def parse_statement(data: bytes | str) -> list[dict[str, Any]]:
    """A statement file → rows (``amount_fen`` as int); raises ValueError naming the line at fault."""
    text = _bytes(data).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in STATEMENT_COLUMNS[:6] if c not in (reader.fieldnames or ())]
    if missing:
        raise ValueError(f"statement header: missing columns {missing}")
    rows = []
    for n, row in enumerate(reader, start=2):
        if row["type"] not in ("capture", "refund"):
            raise ValueError(f"statement line {n}: type {row['type']!r}")
        try:
            row["amount_fen"] = int(row["amount_fen"])
        except ValueError:
            raise ValueError(f"statement line {n}: amount_fen {row['amount_fen']!r}") from None
        rows.append(row)
    return rows
