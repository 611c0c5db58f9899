"""A card/wallet payment-gateway simulator, run as its own process.

    MEDPAY_GATEWAY_API_KEY=… MEDPAY_GATEWAY_SECRET=… python -m medpay.simulators.gateway_sim --port 9100 \\
        --callback-url http://127.0.0.1:8000/gateway/callback --state-file var/gateway-sim.db [--fault capture=timeout:1]

The API key and the callback secret come from the environment, never from the command line: any user on the
host can read a process's command line (``ps``), only its owner its environment.

It behaves like a real gateway: payers (``payer_token``) are accounts with balances; an authorisation holds
funds (available = balance − held); capture takes at most the hold and releases the rest; void releases the
hold; refunds give back at most what was captured; holds expire after ``--hold-ttl`` seconds. State lives in
a SQLite file, so a restart keeps holds, captures and idempotency records. Statements and movements use the
simulator's clock (real time + a test offset, ``POST /sim/clock``); days are China Standard Time.

Merchant API (signed, see ``medpay.adapters.gateway.http_gateway``; any ``X-Merchant-Id`` with the API key):

    POST /payments                         {intent_id, amount_fen, payer_token, description}   authorise
    POST /payments/{intent_id}/capture     {amount_fen}
    POST /payments/{intent_id}/void        {}
    POST /payments/{intent_id}/refunds     {refund_id, amount_fen}
    GET  /payments/{intent_id}                                                                   status
    GET  /statements/{yyyy-mm-dd}          CSV: date,gateway_ref,intent_id,type,amount_fen,merchant_id,refund_id

POSTs need ``Idempotency-Key``. Same key + same request → the first answer again (``Idempotent-Replayed:
true``), without a second effect; same key + another request → 409 ``idempotency_key_reused``. Refusals that
change nothing (``amount_exceeds_hold`` …) are not remembered, so a corrected request may reuse the key; a
declined authorisation is remembered (the payment exists, declined).

Payment answers are the ``GatewayResult`` JSON: 200 done; 402 declined; 404 ``hold_not_found``; 409 the other
refusals (``amount_exceeds_hold``, ``already_voided``, ``already_captured``, ``hold_expired``,
``not_captured``, ``intent_declined``, ``refund_exceeds_capture``, ``duplicate_intent``,
``idempotency_key_reused``). Malformed requests: 400, bad signatures: 401, both ``{"error": {code, field,
message}}``.

Callbacks: on capture, void, hold expiry (a void with ``"reason": "expired"``) and refund, a signed JSON event
is POSTed to ``--callback-url`` (see ``medpay.adapters.gateway.port.verify_callback``), retried
``--callback-retries`` times on failure. Pending deliveries are lost on restart (status is the source of truth).

Test/demo door (unauthenticated — never expose it):

    POST /sim/payers {payer_token?, balance_fen}   GET /sim/payers/{token}
    POST /sim/faults {operation, mode, count?, delay?} or {"faults": [...]}   GET/DELETE /sim/faults
    GET  /sim/log[?kind=request|callback&since=SEQ]     POST /sim/reset     GET/POST /sim/clock {advance_seconds}

Faults, per operation (authorise, capture, void, refund, status): ``timeout`` (do it, then sleep ``delay``
seconds before answering — the caller times out not knowing), ``timeout_before`` (sleep, do nothing, 504),
``fail`` (503, nothing done), ``decline`` (refused ``declined_by_issuer``; not for status); for callbacks
(operation ``callback``): ``duplicate`` (delivered twice), ``late`` (after ``delay`` s), ``never``. ``count``
= how many of the next calls it applies to (omitted: all, until cleared); faults queue per operation.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import hmac
import io
import json
import logging
import os
import secrets
import sqlite3
import time
from collections import deque
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from medpay.adapters.gateway.http_gateway import ID_PATTERN, sign_request
from medpay.adapters.gateway.port import STATEMENT_COLUMNS, callback_headers, statement_day

log = logging.getLogger("medpay.gateway_sim")

OPERATIONS = ("authorise", "capture", "void", "refund", "status")
OP_MODES = ("timeout", "timeout_before", "fail", "decline")
CALLBACK_MODES = ("duplicate", "late", "never")
REQUEST_TOLERANCE_S = 300
API_KEY_ENV, SECRET_ENV = "MEDPAY_GATEWAY_API_KEY", "MEDPAY_GATEWAY_SECRET"  # the names the platform reads too
MAX_AMOUNT_FEN = 10**13

REFUSAL_STATUS = {"insufficient_funds": 402, "payer_not_found": 402, "declined_by_issuer": 402,
                  "hold_not_found": 404}


# ---------------------------------------------------------------------------------------------- config

@dataclass
class Fault:
    operation: str
    mode: str
    count: int | None = None  # None: every call until cleared
    delay: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "mode": self.mode, "count": self.count, "delay": self.delay}


@dataclass
class SimConfig:
    state_file: str
    api_key: str
    secret: str
    callback_url: str | None = None
    timeout_delay: float = 5.0  # how long a "timeout" fault sleeps by default
    late_delay: float = 3.0  # how late a "late" callback is by default
    hold_ttl: float = 7 * 86400
    callback_retries: int = 3
    faults: list[Fault] = field(default_factory=list)


class BadRequest(Exception):
    def __init__(self, field: str, message: str, code: str = "invalid_request", status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.code, self.status = field, message, code, status


def parse_fault(spec: dict[str, Any]) -> Fault:
    if not isinstance(spec, dict):
        raise BadRequest("faults", "each fault must be an object")
    op, mode = spec.get("operation"), spec.get("mode")
    if op == "callback":
        if mode not in CALLBACK_MODES:
            raise BadRequest("mode", f"callback modes are {', '.join(CALLBACK_MODES)}")
    elif op in OPERATIONS:
        if mode not in OP_MODES:
            raise BadRequest("mode", f"operation modes are {', '.join(OP_MODES)}")
        if op == "status" and mode == "decline":
            raise BadRequest("mode", "status cannot be declined")
    else:
        raise BadRequest("operation", f"one of {', '.join(OPERATIONS + ('callback',))}")
    count, delay = spec.get("count"), spec.get("delay")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise BadRequest("count", "a positive integer, or omitted for every call")
    if delay is not None and (not isinstance(delay, (int, float)) or isinstance(delay, bool) or not 0 <= delay <= 3600):
        raise BadRequest("delay", "seconds between 0 and 3600")
    return Fault(op, mode, count, float(delay) if delay is not None else None)


def parse_fault_flag(text: str) -> Fault:
    """``OP=MODE[:COUNT[:DELAY]]``, COUNT ``*`` or empty for every call."""
    try:
        op, rest = text.split("=", 1)
        parts = rest.split(":")
        spec: dict[str, Any] = {"operation": op.strip(), "mode": parts[0].strip()}
        if len(parts) > 1 and parts[1] not in ("", "*"):
            spec["count"] = int(parts[1])
        if len(parts) > 2 and parts[2]:
            spec["delay"] = float(parts[2])
        return parse_fault(spec)
    except (ValueError, BadRequest) as e:
        raise argparse.ArgumentTypeError(f"--fault {text!r}: expected OP=MODE[:COUNT[:DELAY]] ({e})") from None


class Faults:
    def __init__(self, initial: list[Fault]):
        self._initial = [Fault(**f.as_dict()) for f in initial]
        self._queues: dict[str, deque[Fault]] = {}
        self.reset()

    def reset(self) -> None:
        self._queues = {op: deque() for op in OPERATIONS + ("callback",)}
        for f in self._initial:
            self.add(Fault(**f.as_dict()))

    def clear(self) -> None:
        self._queues = {op: deque() for op in OPERATIONS + ("callback",)}

    def add(self, f: Fault) -> None:
        self._queues[f.operation].append(f)

    def take(self, op: str) -> Fault | None:
        q = self._queues[op]
        if not q:
            return None
        f = q[0]
        if f.count is not None:
            f.count -= 1
            if f.count <= 0:
                q.popleft()
        return f

    def listing(self) -> list[dict[str, Any]]:
        return [f.as_dict() for q in self._queues.values() for f in q]


# ---------------------------------------------------------------------------------------------- state

SCHEMA = """
CREATE TABLE IF NOT EXISTS payers (
  token TEXT PRIMARY KEY, balance INTEGER NOT NULL, held INTEGER NOT NULL DEFAULT 0,
  CHECK (held >= 0), CHECK (balance >= held));
CREATE TABLE IF NOT EXISTS intents (
  merchant_id TEXT NOT NULL, intent_id TEXT NOT NULL, payer_token TEXT NOT NULL, description TEXT NOT NULL,
  amount_authorised INTEGER NOT NULL, state TEXT NOT NULL, amount_held INTEGER NOT NULL DEFAULT 0,
  amount_captured INTEGER NOT NULL DEFAULT 0, amount_refunded INTEGER NOT NULL DEFAULT 0,
  gateway_ref TEXT NOT NULL, decline_code TEXT, decline_message TEXT, void_reason TEXT,
  created_at REAL NOT NULL, expires_at REAL NOT NULL, updated_at REAL NOT NULL,
  PRIMARY KEY (merchant_id, intent_id), CHECK (amount_refunded <= amount_captured));
CREATE INDEX IF NOT EXISTS intents_expiry ON intents (state, expires_at);
CREATE TABLE IF NOT EXISTS movements (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, day TEXT NOT NULL, at REAL NOT NULL, gateway_ref TEXT NOT NULL UNIQUE,
  merchant_id TEXT NOT NULL, intent_id TEXT NOT NULL, type TEXT NOT NULL, amount_fen INTEGER NOT NULL,
  refund_id TEXT);
CREATE INDEX IF NOT EXISTS movements_day ON movements (merchant_id, day);
CREATE TABLE IF NOT EXISTS idempotency (
  merchant_id TEXT NOT NULL, operation TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
  status_code INTEGER NOT NULL, body TEXT NOT NULL, at REAL NOT NULL,
  PRIMARY KEY (merchant_id, operation, key));
"""


class Refused(Exception):
    """A refusal that changes nothing."""

    def __init__(self, code: str, message: str, row: sqlite3.Row | None = None, intent_id: str = ""):
        super().__init__(message)
        self.code, self.message, self.row, self.intent_id = code, message, row, intent_id


def _ref(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class Store:
    def __init__(self, path: str, hold_ttl: float):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self.hold_ttl = hold_ttl

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def reset(self) -> None:
        with self.tx() as c:
            for t in ("payers", "intents", "movements", "idempotency"):
                c.execute(f"DELETE FROM {t}")

    # --- reads
    def intent(self, merchant: str, intent_id: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM intents WHERE merchant_id=? AND intent_id=?",
                                 (merchant, intent_id)).fetchone()

    def payer(self, token: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM payers WHERE token=?", (token,)).fetchone()

    def idem(self, merchant: str, op: str, key: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM idempotency WHERE merchant_id=? AND operation=? AND key=?",
                                 (merchant, op, key)).fetchone()

    def statement_rows(self, merchant: str, day: str) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM movements WHERE merchant_id=? AND day=? ORDER BY seq",
                                 (merchant, day)).fetchall()

    # --- writes (each inside the caller's transaction)
    def remember(self, c: sqlite3.Connection, merchant: str, op: str, key: str, fingerprint: str,
                 status_code: int, body: dict[str, Any], now: float) -> None:
        c.execute("INSERT INTO idempotency VALUES (?,?,?,?,?,?,?)",
                  (merchant, op, key, fingerprint, status_code, json.dumps(body), now))

    def _movement(self, c: sqlite3.Connection, now: float, ref: str, merchant: str, intent_id: str, kind: str,
                  amount: int, refund_id: str | None = None) -> None:
        c.execute("INSERT INTO movements (day, at, gateway_ref, merchant_id, intent_id, type, amount_fen, refund_id)"
                  " VALUES (?,?,?,?,?,?,?,?)",
                  (statement_day(now).isoformat(), now, ref, merchant, intent_id, kind, amount, refund_id))

    def authorise(self, c: sqlite3.Connection, merchant: str, intent_id: str, amount: int, payer_token: str,
                  description: str, now: float, decline: tuple[str, str] | None = None) -> sqlite3.Row:
        existing = self.intent(merchant, intent_id)
        if existing is not None:
            raise Refused("duplicate_intent", f"intent {intent_id} already exists ({existing['state']})",
                          existing)
        payer = self.payer(payer_token)
        if decline is None:
            if payer is None:
                decline = ("payer_not_found", "no such payer token")
            elif payer["balance"] - payer["held"] < amount:
                decline = ("insufficient_funds",
                           f"available {payer['balance'] - payer['held']} fen < {amount} fen")
        state, held = ("declined", 0) if decline else ("held", amount)
        c.execute("INSERT INTO intents (merchant_id, intent_id, payer_token, description, amount_authorised, state,"
                  " amount_held, gateway_ref, decline_code, decline_message, created_at, expires_at, updated_at)"
                  " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                  (merchant, intent_id, payer_token, description, amount, state, held, _ref("pay"),
                   decline[0] if decline else None, decline[1] if decline else None, now, now + self.hold_ttl, now))
        if not decline:
            c.execute("UPDATE payers SET held = held + ? WHERE token=?", (amount, payer_token))
        return self.intent(merchant, intent_id)

    def _held_intent(self, merchant: str, intent_id: str) -> sqlite3.Row:
        row = self.intent(merchant, intent_id)
        if row is None:
            raise Refused("hold_not_found", f"no payment {intent_id}", intent_id=intent_id)
        if row["state"] == "held":
            return row
        if row["state"] == "declined":
            raise Refused("intent_declined", "the authorisation was declined", row)
        if row["state"] == "voided":
            if row["void_reason"] == "expired":
                raise Refused("hold_expired", "the hold expired and was released", row)
            raise Refused("already_voided", "the hold was voided", row)
        raise Refused("already_captured", f"the payment is {row['state']}", row)

    def capture(self, c: sqlite3.Connection, merchant: str, intent_id: str, amount: int, now: float) -> sqlite3.Row:
        row = self._held_intent(merchant, intent_id)
        if amount > row["amount_held"]:
            raise Refused("amount_exceeds_hold", f"capture of {amount} fen exceeds the hold of "
                          f"{row['amount_held']} fen", row)
        c.execute("UPDATE payers SET held = held - ?, balance = balance - ? WHERE token=?",
                  (row["amount_held"], amount, row["payer_token"]))
        c.execute("UPDATE intents SET state='captured', amount_held=0, amount_captured=?, updated_at=?"
                  " WHERE merchant_id=? AND intent_id=?", (amount, now, merchant, intent_id))
        self._movement(c, now, row["gateway_ref"], merchant, intent_id, "capture", amount)
        return self.intent(merchant, intent_id)

    def void(self, c: sqlite3.Connection, merchant: str, intent_id: str, now: float,
             reason: str = "requested") -> sqlite3.Row:
        row = self._held_intent(merchant, intent_id)
        c.execute("UPDATE payers SET held = held - ? WHERE token=?", (row["amount_held"], row["payer_token"]))
        c.execute("UPDATE intents SET state='voided', amount_held=0, void_reason=?, updated_at=?"
                  " WHERE merchant_id=? AND intent_id=?", (reason, now, merchant, intent_id))
        return self.intent(merchant, intent_id)

    def refund(self, c: sqlite3.Connection, merchant: str, intent_id: str, refund_id: str, amount: int,
               now: float) -> tuple[sqlite3.Row, str]:
        row = self.intent(merchant, intent_id)
        if row is None:
            raise Refused("hold_not_found", f"no payment {intent_id}", intent_id=intent_id)
        if row["state"] == "held":
            raise Refused("not_captured", "nothing captured yet: void the hold instead", row)
        if row["state"] == "voided":
            raise Refused("already_voided", "the hold was voided; nothing was captured", row)
        if row["state"] == "declined":
            raise Refused("intent_declined", "the authorisation was declined", row)
        left = row["amount_captured"] - row["amount_refunded"]
        if amount > left:
            raise Refused("refund_exceeds_capture", f"refund of {amount} fen exceeds the {left} fen captured "
                          "and not yet refunded", row)
        refunded = row["amount_refunded"] + amount
        state = "refunded" if refunded == row["amount_captured"] else "partially_refunded"
        c.execute("UPDATE payers SET balance = balance + ? WHERE token=?", (amount, row["payer_token"]))
        c.execute("UPDATE intents SET state=?, amount_refunded=?, updated_at=? WHERE merchant_id=? AND intent_id=?",
                  (state, refunded, now, merchant, intent_id))
        ref = _ref("rfd")
        self._movement(c, now, ref, merchant, intent_id, "refund", -amount, refund_id)
        return self.intent(merchant, intent_id), ref

    def expire_holds(self, now: float) -> list[sqlite3.Row]:
        due = self.conn.execute("SELECT merchant_id, intent_id FROM intents WHERE state='held' AND expires_at <= ?",
                                (now,)).fetchall()
        out = []
        for r in due:
            with self.tx() as c:
                out.append(self.void(c, r["merchant_id"], r["intent_id"], now, reason="expired"))
        return out


def result_of(row: sqlite3.Row | None, intent_id: str = "", error: tuple[str, str] | None = None,
              gateway_ref: str | None = None) -> dict[str, Any]:
    if row is None:
        return {"intent_id": intent_id, "state": "unknown", "amount_held": 0, "amount_captured": 0,
                "amount_refunded": 0, "gateway_ref": None, "error_code": error[0] if error else "hold_not_found",
                "error_message": error[1] if error else f"no payment {intent_id}"}
    if error is None and row["state"] == "declined":
        error = (row["decline_code"], row["decline_message"])
    return {"intent_id": row["intent_id"], "state": row["state"], "amount_held": row["amount_held"],
            "amount_captured": row["amount_captured"], "amount_refunded": row["amount_refunded"],
            "gateway_ref": gateway_ref or row["gateway_ref"], "error_code": error[0] if error else None,
            "error_message": error[1] if error else None}


# ---------------------------------------------------------------------------------------------- app

def _error(status: int, code: str, fld: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "field": fld, "message": message}}, status_code=status)


def _int_amount(body: dict[str, Any], name: str = "amount_fen") -> int:
    v = body.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0 or v > MAX_AMOUNT_FEN:
        raise BadRequest(name, "must be a positive integer number of fen")
    return v


def _id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise BadRequest(name, "1–128 characters of A-Z a-z 0-9 . _ : -")
    return value


def create_app(config: SimConfig) -> FastAPI:
    store = Store(config.state_file, config.hold_ttl)
    faults = Faults(config.faults)
    events_log: deque[dict[str, Any]] = deque(maxlen=20000)
    seq = [0]
    clock = {"offset": 0.0}
    tasks: set[asyncio.Task] = set()
    http: dict[str, httpx.AsyncClient] = {}

    def now() -> float:
        return time.time() + clock["offset"]

    def record(entry: dict[str, Any]) -> dict[str, Any]:
        seq[0] += 1
        entry = {"seq": seq[0], "at": datetime.fromtimestamp(now(), timezone.utc).isoformat(), **entry}
        events_log.append(entry)
        return entry

    # --- callbacks
    def emit(kind: str, row: sqlite3.Row, amount: int, gateway_ref: str, refund_id: str | None = None,
             reason: str | None = None) -> None:
        event = {"event_id": _ref("evt"), "type": kind, "created_at": int(now()),
                 "merchant_id": row["merchant_id"], "intent_id": row["intent_id"], "amount_fen": amount,
                 "gateway_ref": gateway_ref, "payment": result_of(row)}
        if refund_id is not None:
            event["refund_id"] = refund_id
        if reason is not None:
            event["reason"] = reason
        fault = faults.take("callback")
        task = asyncio.get_running_loop().create_task(deliver(event, fault))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def deliver(event: dict[str, Any], fault: Fault | None) -> None:
        mode = fault.mode if fault else None
        base = {"kind": "callback", "event_id": event["event_id"], "type": event["type"],
                "intent_id": event["intent_id"], "mode": mode}
        if not config.callback_url:
            record({**base, "delivered": False, "error": "no callback url"})
            return
        if mode == "never":
            record({**base, "delivered": False, "suppressed": True})
            return
        if mode == "late":
            await asyncio.sleep(fault.delay if fault.delay is not None else config.late_delay)
        copies = 2 if mode == "duplicate" else 1
        body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
        for copy in range(copies):
            if copy:
                await asyncio.sleep(fault.delay if fault and fault.delay is not None else 0.1)
            for attempt in range(1 + config.callback_retries):
                headers = {"Content-Type": "application/json", **callback_headers(body, config.secret)}
                try:
                    resp = await http["client"].post(config.callback_url, content=body, headers=headers)
                    ok = 200 <= resp.status_code < 300
                    record({**base, "copy": copy + 1, "attempt": attempt + 1, "status_code": resp.status_code,
                            "delivered": ok})
                except httpx.HTTPError as e:
                    ok = False
                    record({**base, "copy": copy + 1, "attempt": attempt + 1, "error": type(e).__name__,
                            "delivered": False})
                if ok:
                    break
                await asyncio.sleep(0.5 * 2 ** attempt)

    def tick() -> None:
        for row in store.expire_holds(now()):
            record({"kind": "expiry", "intent_id": row["intent_id"], "merchant_id": row["merchant_id"]})
            emit("payment.voided", row, row["amount_authorised"], row["gateway_ref"], reason="expired")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        http["client"] = httpx.AsyncClient(timeout=5.0)
        try:
            yield
        finally:
            for t in list(tasks):
                t.cancel()
            await http["client"].aclose()
            store.conn.close()

    app = FastAPI(title="medpay payment-gateway simulator", lifespan=lifespan)

    @app.exception_handler(BadRequest)
    async def _bad(request: Request, e: BadRequest):
        return _error(e.status, e.code, e.field, e.message)

    @app.exception_handler(Exception)
    async def _boom(request: Request, e: Exception):
        log.exception("simulator fault")
        return _error(500, "internal", "", "internal error")

    # --- auth
    async def authenticate(request: Request) -> tuple[str, bytes]:
        raw = await request.body()
        merchant = request.headers.get("X-Merchant-Id", "")
        ts = request.headers.get("X-Timestamp", "")
        sig = request.headers.get("X-Signature", "")
        if not ID_PATTERN.fullmatch(merchant):
            raise BadRequest("X-Merchant-Id", "missing or malformed", "unauthorized", 401)
        if not ts.isdigit() or abs(time.time() - int(ts)) > REQUEST_TOLERANCE_S:
            raise BadRequest("X-Timestamp", f"missing or outside ±{REQUEST_TOLERANCE_S} s", "unauthorized", 401)
        path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?", 1)[0]
        expected = sign_request(config.api_key, request.method, path, ts, raw)
        if not hmac.compare_digest(expected, sig.lower()):
            raise BadRequest("X-Signature", "does not match", "unauthorized", 401)
        return merchant, raw

    def json_body(raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BadRequest("body", "not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("body", "must be a JSON object")
        return body

    def answer(status: int, body: dict[str, Any], replayed: bool = False) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"} if replayed else None)

    async def operate(request: Request, op: str, intent_id: str, validate, effect) -> JSONResponse:
        """Authentication, fault injection, idempotency, then ``effect(c, body, now, decline)``."""
        merchant, raw = await authenticate(request)
        body = json_body(raw)
        intent_id = _id(intent_id, "intent_id")
        validate(body)
        key = request.headers.get("Idempotency-Key", "")
        if not ID_PATTERN.fullmatch(key):
            raise BadRequest("Idempotency-Key", "required: 1–128 characters of A-Z a-z 0-9 . _ : -")
        tick()
        fault = faults.take(op)
        mode = fault.mode if fault else None
        delay = fault.delay if fault and fault.delay is not None else config.timeout_delay
        entry = {"kind": "request", "operation": op, "merchant_id": merchant, "intent_id": intent_id,
                 "idempotency_key": key, "fault": mode, "effect": False}
        if mode == "fail":
            record({**entry, "status_code": 503})
            return _error(503, "unavailable", "", "injected failure")
        if mode == "timeout_before":
            record({**entry, "status_code": 504, "note": "slept before processing"})
            await asyncio.sleep(delay)
            return _error(504, "timeout", "", "injected timeout before processing")
        replayed = False
        fingerprint = hashlib.sha256(json.dumps([request.url.path, body], sort_keys=True).encode()).hexdigest()
        prior = store.idem(merchant, op, key)
        if prior is not None:
            if prior["fingerprint"] != fingerprint:
                res = result_of(store.intent(merchant, intent_id), intent_id,
                                ("idempotency_key_reused", f"Idempotency-Key {key} was used with another request"))
                status = 409
            else:
                res, status, replayed = json.loads(prior["body"]), prior["status_code"], True
            record({**entry, "status_code": status, "replayed": replayed, "error_code": res["error_code"],
                    "state": res["state"]})
        else:
            t = now()
            decline = ("declined_by_issuer", "declined by the issuer (injected)") if mode == "decline" else None
            try:
                with store.tx() as c:
                    res, status, events = effect(c, merchant, intent_id, body, t, decline)
                    store.remember(c, merchant, op, key, fingerprint, status, res, t)
            except Refused as r:
                res = result_of(r.row, r.intent_id or intent_id, (r.code, r.message))
                status, events = REFUSAL_STATUS.get(r.code, 409), []
                record({**entry, "status_code": status, "error_code": r.code, "state": res["state"]})
            else:
                record({**entry, "effect": True, "status_code": status, "error_code": res["error_code"],
                        "state": res["state"]})
                for ev in events:
                    emit(*ev)
        if mode == "timeout":
            await asyncio.sleep(delay)
        return answer(status, res, replayed=replayed)

    # --- merchant API
    def v_authorise(body: dict[str, Any]) -> None:
        _int_amount(body)
        tok = body.get("payer_token")
        if not isinstance(tok, str) or not 0 < len(tok) <= 256:
            raise BadRequest("payer_token", "a non-empty string")
        if not isinstance(body.get("description", ""), str) or len(body.get("description", "")) > 500:
            raise BadRequest("description", "a string of at most 500 characters")

    @app.post("/payments")
    async def authorise(request: Request):
        raw = await request.body()
        try:
            intent_id = json.loads(raw or b"{}").get("intent_id")
        except (ValueError, AttributeError):
            intent_id = None

        def effect(c, merchant, iid, body, t, decline):
            row = store.authorise(c, merchant, iid, body["amount_fen"], body["payer_token"],
                                  body.get("description", ""), t, decline)
            res = result_of(row)
            return res, (402 if row["state"] == "declined" else 200), []

        if not isinstance(intent_id, str):
            intent_id = ""
        return await operate(request, "authorise", intent_id, v_authorise, effect)

    @app.post("/payments/{intent_id}/capture")
    async def capture(intent_id: str, request: Request):
        def effect(c, merchant, iid, body, t, decline):
            if decline:
                raise Refused(decline[0], decline[1], store._held_intent(merchant, iid))
            row = store.capture(c, merchant, iid, body["amount_fen"], t)
            return result_of(row), 200, [("payment.captured", row, row["amount_captured"], row["gateway_ref"])]

        return await operate(request, "capture", intent_id, lambda b: _int_amount(b), effect)

    @app.post("/payments/{intent_id}/void")
    async def void(intent_id: str, request: Request):
        def effect(c, merchant, iid, body, t, decline):
            before = store._held_intent(merchant, iid)
            if decline:
                raise Refused(decline[0], decline[1], before)
            row = store.void(c, merchant, iid, t)
            return result_of(row), 200, [("payment.voided", row, before["amount_held"], row["gateway_ref"])]

        return await operate(request, "void", intent_id, lambda b: None, effect)

    @app.post("/payments/{intent_id}/refunds")
    async def refund(intent_id: str, request: Request):
        def validate(body):
            _int_amount(body)
            _id(body.get("refund_id"), "refund_id")

        def effect(c, merchant, iid, body, t, decline):
            if decline:
                raise Refused(decline[0], decline[1], store.intent(merchant, iid), iid)
            row, ref = store.refund(c, merchant, iid, body["refund_id"], body["amount_fen"], t)
            return (result_of(row, gateway_ref=ref), 200,
                    [("payment.refunded", row, body["amount_fen"], ref, body["refund_id"])])

        return await operate(request, "refund", intent_id, validate, effect)

    @app.get("/payments/{intent_id}")
    async def status(intent_id: str, request: Request):
        merchant, _ = await authenticate(request)
        intent_id = _id(intent_id, "intent_id")
        tick()
        fault = faults.take("status")
        mode = fault.mode if fault else None
        delay = fault.delay if fault and fault.delay is not None else config.timeout_delay
        entry = {"kind": "request", "operation": "status", "merchant_id": merchant, "intent_id": intent_id,
                 "fault": mode, "effect": False}
        if mode == "fail":
            record({**entry, "status_code": 503})
            return _error(503, "unavailable", "", "injected failure")
        if mode == "timeout_before":
            record({**entry, "status_code": 504})
            await asyncio.sleep(delay)
            return _error(504, "timeout", "", "injected timeout before processing")
        res = result_of(store.intent(merchant, intent_id), intent_id)
        code = 404 if res["state"] == "unknown" else 200
        record({**entry, "status_code": code, "state": res["state"], "error_code": res["error_code"]})
        if mode == "timeout":
            await asyncio.sleep(delay)
        return answer(code, res)

    @app.get("/statements/{day}")
    async def statement(day: str, request: Request):
        merchant, _ = await authenticate(request)
        try:
            d = date.fromisoformat(day)
            if len(day) != 10:
                raise ValueError
        except ValueError:
            raise BadRequest("day", "a date yyyy-mm-dd") from None
        tick()
        rows = store.statement_rows(merchant, d.isoformat())
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(STATEMENT_COLUMNS)
        for r in rows:
            w.writerow([r["day"], r["gateway_ref"], r["intent_id"], r["type"], r["amount_fen"], r["merchant_id"],
                        r["refund_id"] or ""])
        total = sum(r["amount_fen"] for r in rows)
        record({"kind": "request", "operation": "statement", "merchant_id": merchant, "day": day,
                "rows": len(rows), "total_fen": total})
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"X-Statement-Total-Fen": str(total), "X-Statement-Rows": str(len(rows))})

    # --- test/demo door
    def payer_view(row: sqlite3.Row) -> dict[str, Any]:
        return {"payer_token": row["token"], "balance_fen": row["balance"], "held_fen": row["held"],
                "available_fen": row["balance"] - row["held"]}

    @app.post("/sim/payers", status_code=201)
    async def create_payer(request: Request):
        body = json_body(await request.body())
        token = body.get("payer_token") or _ref("tok")
        if not isinstance(token, str) or not 0 < len(token) <= 256:
            raise BadRequest("payer_token", "a non-empty string")
        bal = body.get("balance_fen", 0)
        if not isinstance(bal, int) or isinstance(bal, bool) or not 0 <= bal <= MAX_AMOUNT_FEN:
            raise BadRequest("balance_fen", "a non-negative integer number of fen")
        if store.payer(token) is not None:
            raise BadRequest("payer_token", "exists already", "payer_exists", 409)
        with store.tx() as c:
            c.execute("INSERT INTO payers (token, balance) VALUES (?, ?)", (token, bal))
        return JSONResponse(payer_view(store.payer(token)), status_code=201)

    @app.get("/sim/payers/{token}")
    async def get_payer(token: str):
        tick()
        row = store.payer(token)
        if row is None:
            raise BadRequest("payer_token", "no such payer", "not_found", 404)
        return payer_view(row)

    @app.post("/sim/faults")
    async def add_faults(request: Request):
        body = json_body(await request.body())
        specs = body["faults"] if isinstance(body.get("faults"), list) else [body]
        parsed = [parse_fault(s) for s in specs]
        for f in parsed:
            faults.add(f)
        return {"faults": faults.listing()}

    @app.get("/sim/faults")
    async def list_faults():
        return {"faults": faults.listing()}

    @app.delete("/sim/faults")
    async def clear_faults():
        faults.clear()
        return {"faults": []}

    @app.get("/sim/log")
    async def get_log(kind: str | None = None, since: int = 0):
        return {"entries": [e for e in events_log if e["seq"] > since and (kind is None or e["kind"] == kind)]}

    @app.post("/sim/reset")
    async def reset():
        for t in list(tasks):
            t.cancel()
        store.reset()
        faults.reset()
        events_log.clear()
        clock["offset"] = 0.0
        return {"reset": True}

    @app.get("/sim/clock")
    async def get_clock():
        return {"now": datetime.fromtimestamp(now(), timezone.utc).isoformat(), "offset_seconds": clock["offset"]}

    @app.post("/sim/clock")
    async def set_clock(request: Request):
        body = json_body(await request.body())
        adv = body.get("advance_seconds")
        if not isinstance(adv, (int, float)) or isinstance(adv, bool) or adv < 0:
            raise BadRequest("advance_seconds", "a non-negative number (the clock never goes back)")
        clock["offset"] += float(adv)
        tick()
        return await get_clock()

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    app.state.store = store
    app.state.faults = faults
    return app


# ---------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m medpay.simulators.gateway_sim",
                                description="Payment-gateway simulator (its own process).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    p.add_argument("--callback-url", default=None, help="where signed callbacks are POSTed")
    p.add_argument("--state-file", default="var/gateway-sim.db", help="SQLite file; a restart keeps its state")
    p.add_argument("--fault", action="append", default=[], type=parse_fault_flag, metavar="OP=MODE[:COUNT[:DELAY]]",
                   help="inject a fault (repeatable), e.g. capture=timeout:1:3, callback=duplicate")
    p.add_argument("--timeout-delay", type=float, default=5.0, help="seconds a timeout fault sleeps (default 5)")
    p.add_argument("--late-delay", type=float, default=3.0, help="seconds a late callback waits (default 3)")
    p.add_argument("--hold-ttl", type=float, default=7 * 86400, help="seconds until a hold expires (default 7 days)")
    p.add_argument("--callback-retries", type=int, default=3)
    p.add_argument("--log-level", default="warning")
    a = p.parse_args(argv)
    api_key, secret = os.environ.get(API_KEY_ENV, ""), os.environ.get(SECRET_ENV, "")
    if not api_key or not secret:
        p.error(f"set {API_KEY_ENV} (the key merchants sign requests with) and {SECRET_ENV} (the callback signing "
                "secret) in the environment; secrets are not taken on the command line, where ps shows them")
    config = SimConfig(state_file=a.state_file, api_key=api_key, secret=secret, callback_url=a.callback_url,
                       timeout_delay=a.timeout_delay, late_delay=a.late_delay, hold_ttl=a.hold_ttl,
                       callback_retries=a.callback_retries, faults=a.fault)
    import uvicorn

    logging.basicConfig(level=a.log_level.upper())
    uvicorn.run(create_app(config), host=a.host, port=a.port, log_level=a.log_level, timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
