"""Refused signatures at the face doors: an attack on a real kiosk leaves an audit record; noise does not.

A face-terminal request refused for its signature headers is recorded in the audit log when it names a
*registered* terminal (``X-Terminal-Id``): a forged, stale or replayed signature, or a revoked terminal, is
someone trying a real kiosk's identity. A refusal naming no terminal, or one nobody registered, is only logged
(one short line) and counted: auditing it would let anyone write to the audit log at will.

Throttled, because the audit log is append-only and an attacker may send thousands: per terminal and kind of
refusal, the first refusal of a minute writes a record at once (in its own transaction, so a crash loses
nothing of it); the others of that minute are folded into a count. The count is written as ``folded:N`` on the
next record of that terminal and kind (the first refusal of a later minute) or by ``flush`` (at shutdown), so
each record says how many refusals of its kind came since the one before it. The count lives in this process:
with W workers a terminal writes at most W records per kind per minute — still bounded, and never one per
request.

A record holds the terminal id, the kind, the header at fault and the count — never a header's value, the
request body or anything biometric.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.base import utcnow
from medpay.adapters.db.ecert_tables import TerminalRow
from medpay.services import audit
from medpay.services.errors import ServiceError
from medpay.services.qr.ecert import HEADER_TERMINAL_ID
from medpay.services.signed_requests import HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP
from medpay.services.unit_of_work import unit_of_work

log = logging.getLogger("medpay.face.terminal_refusals")
ACTION = "face.terminal_refuse"
WINDOW = timedelta(minutes=1)
MAX_TERMINAL_ID = 20  # what read_signed accepts in X-Terminal-Id


def refusal_kind(field: str, message: str) -> str:
    """What a terminal signature refusal means, from the header it names: ``forged`` (the signature does not
    verify), ``stale`` (timestamp outside the window), ``replayed`` (nonce used before), ``revoked`` (the
    terminal is disabled), ``malformed`` (anything else about the headers)."""
    if field == HEADER_SIGNATURE and message.startswith("does not verify"):
        return "forged"
    if field == HEADER_TIMESTAMP and message.startswith("stale"):
        return "stale"
    if field == HEADER_NONCE and "already used" in message:
        return "replayed"
    if field == HEADER_TERMINAL_ID and "disabled" in message:
        return "revoked"
    return "malformed"


@dataclass
class _Window:
    opened: datetime
    folded: int = 0  # refusals since the record that opened it, not yet written


class TerminalRefusals:
    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime] = utcnow,
                 window: timedelta = WINDOW):
        self.factory = factory
        self.clock = clock
        self.window = window
        self.unattributed = 0  # refusals naming no registered terminal: logged and counted, not audited
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()

    def note(self, headers: Mapping[str, str], refusal: ServiceError) -> bool:
        """Account for one refused request; True when it wrote an audit record."""
        terminal_id = _named_terminal(headers)
        kind = refusal_kind(refusal.field, refusal.message)
        now = self.clock()
        with self._lock:  # a burst inside an open window is folded without asking the database again
            window = self._windows.get((terminal_id, kind))
            if window is not None and now - window.opened < self.window:
                window.folded += 1
                return False
        if not terminal_id or not self._registered(terminal_id):
            with self._lock:
                self.unattributed += 1
            log.warning("face terminal request refused (%s: %s), no registered terminal named", refusal.field, kind)
            return False
        with self._lock:
            window = self._windows.get((terminal_id, kind))
            if window is not None and now - window.opened < self.window:  # another thread opened it meanwhile
                window.folded += 1
                return False
            folded = window.folded if window is not None else 0
            self._windows[(terminal_id, kind)] = _Window(now)
        try:
            self._record(terminal_id, kind, now, (f"field:{refusal.field}", f"folded:{folded}"))
        except Exception:
            with self._lock:  # not written: keep the count for the next record
                self._windows[(terminal_id, kind)].folded += folded
            raise
        return True

    def flush(self) -> int:
        """Write the counts folded and not yet recorded (at shutdown); the number of records written."""
        now = self.clock()
        with self._lock:
            pending = [(key, w.folded) for key, w in self._windows.items() if w.folded]
            self._windows.clear()
        for (terminal_id, kind), folded in pending:
            self._record(terminal_id, kind, now, (f"folded:{folded}",))
        return len(pending)

    def _registered(self, terminal_id: str) -> bool:
        with self.factory() as s:
            return s.get(TerminalRow, terminal_id) is not None

    def _record(self, terminal_id: str, kind: str, now: datetime, fields: tuple[str, ...]) -> None:
        with unit_of_work(self.factory) as uow:
            audit.record(uow.session, actor_kind="terminal", actor=terminal_id, action=ACTION, psn_no="",
                         fields=(f"reason:{kind}", *fields), at=now)


def _named_terminal(headers: Mapping[str, str]) -> str:
    """The ``X-Terminal-Id`` a request names, if it could be one (a header too long or unprintable names none)."""
    value = (headers.get(HEADER_TERMINAL_ID) or headers.get(HEADER_TERMINAL_ID.lower()) or "").strip()
    return value if 0 < len(value) <= MAX_TERMINAL_ID and value.isascii() and value.isprintable() else ""
