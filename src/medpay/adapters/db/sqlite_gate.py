"""The writer gate of a SQLite database: writers queue here rather than in SQLite's busy handler.

SQLite has one writer at a time. A writer that finds the database locked sleeps in the busy handler — 1, 2, 5 …
up to 100 ms at a time — and may oversleep the lock's release by as much, so under a few concurrent writers the
tail latency is made of sleeps. The gate serialises writers before ``BEGIN IMMEDIATE``: the threads of one
process on a lock that wakes the next one at once, the processes on one database (``medpay serve --workers``,
the CLI) on an exclusive ``flock`` of a file beside it, polled every millisecond or two.

It is given back when the transaction commits or rolls back, and also when its database connection is
invalidated or returned to the pool without either (a connection dropped unclosed). A thread that holds the
gate and begins a second transaction, or one that waits longer than the busy timeout, goes on to
``BEGIN IMMEDIATE`` without it and gets SQLite's own answer, so nothing waits on itself forever.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: threads are still gated, processes meet the busy handler
    fcntl = None  # type: ignore[assignment]

LOCK_SUFFIX = ".writer-lock"
_POLL_S = (0.0005, 0.001, 0.002)  # between flock attempts: then every 2 ms

_GATES: "weakref.WeakKeyDictionary[Any, WriterGate]" = weakref.WeakKeyDictionary()


def register_gate(engine: Any, gate: "WriterGate") -> "WriterGate":
    _GATES[engine] = gate
    return gate


def writer_gate(engine: Any) -> "WriterGate | None":
    """The writer gate of a SQLite engine made by ``make_engine`` (None for PostgreSQL)."""
    return _GATES.get(engine)


class WriterGate:
    def __init__(self, database: Path | None, timeout_s: float):
        """``database``: the SQLite file (None in memory: threads only)."""
        self.timeout_s = timeout_s
        self.lock_path = database.with_name(database.name + LOCK_SUFFIX) if database and fcntl else None
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._owner: int | None = None  # the thread holding the gate
        self._holder: Any = None  # a weak reference to its Connection (a dropped one must stay collectable)
        self._holder_dbapi = 0  # id() of that connection's DBAPI connection, alive while the gate is held
        self._flocked = False

    @property
    def held(self) -> bool:
        return self._lock.locked()

    def enter(self, connection: Any) -> None:
        me = threading.get_ident()
        if self._owner == me:  # nested in this thread's own transaction: waiting here would never end
            return
        deadline = time.monotonic() + self.timeout_s
        if not self._lock.acquire(timeout=self.timeout_s):
            return
        self._owner, self._holder = me, weakref.ref(connection)
        self._holder_dbapi = id(connection.connection.dbapi_connection)
        self._flocked = self._flock(deadline)

    def leave(self, connection: Any) -> None:  # commit, rollback
        if self._holder is not None and self._holder() is connection:
            self._release()

    def dropped(self, dbapi_connection: Any, *_rest: Any) -> None:  # pool checkin, invalidate
        if dbapi_connection is not None and id(dbapi_connection) == self._holder_dbapi:
            self._release()

    def _flock(self, deadline: float) -> bool:
        if self.lock_path is None:
            return False
        if self._fd is None:  # opened by the first writer of this process, kept for the engine's life
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        for attempt in range(1_000_000):
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(_POLL_S[min(attempt, len(_POLL_S) - 1)])
        return False

    def _release(self) -> None:
        if self._flocked:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._flocked = False
        self._owner = self._holder = None
        self._holder_dbapi = 0
        self._lock.release()
