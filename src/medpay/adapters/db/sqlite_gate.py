"""The writer gate of a SQLite database: writers queue here rather than in SQLite's busy handler.

SQLite has one writer at a time. A writer that finds the database locked sleeps in the busy handler — 1, 2, 5 …
up to 100 ms at a time — and may oversleep the lock's release by as much, so under a few concurrent writers the
tail latency is made of sleeps. The gate serialises writers before ``BEGIN IMMEDIATE``: the threads of one
process on a lock that wakes the next one at once, the processes on one database (``medpay serve --workers``,
the CLI) on an exclusive ``flock`` of a file beside it, polled every millisecond or two.

It opens once the transaction's COMMIT or ROLLBACK has run on the database connection (the engine's dialect
is wrapped for that: SQLAlchemy's commit and rollback *events* come before them), and also when the connection
is invalidated or goes back to the pool without either (a connection dropped unclosed). A thread that holds the
gate and begins a second transaction, or one that waits longer than the gate's timeout, goes on to
``BEGIN IMMEDIATE`` without it and gets SQLite's own answer, so nothing waits on itself forever. Where the lock
file can't be opened (another user's, a read-only directory) the processes meet the busy handler as before.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger("medpay.db")

LOCK_SUFFIX = ".writer-lock"
_POLL_S = (0.0005, 0.001, 0.002)  # between flock attempts: then every 2 ms

_GATES: "weakref.WeakKeyDictionary[Any, WriterGate]" = weakref.WeakKeyDictionary()  # engine → its gate


def install(engine: Any, database: Path | None, timeout_s: float) -> "WriterGate":
    """Gate ``engine``'s transactions (the caller's ``begin`` event calls :meth:`WriterGate.enter` before
    ``BEGIN IMMEDIATE``, and :meth:`WriterGate.opened` if that fails). ``database``: None in memory."""
    from sqlalchemy import event

    gate = _GATES[engine] = WriterGate(database, timeout_s)
    dialect = engine.dialect  # this engine's own instance: wrapping it touches no other engine

    def after(run: Any) -> Any:
        def wrapped(connection: Any) -> None:  # the pool's proxy of a DBAPI connection
            try:
                run(connection)
            finally:
                gate.opened(getattr(connection, "dbapi_connection", connection))
        return wrapped

    dialect.do_commit = after(dialect.do_commit)
    dialect.do_rollback = after(dialect.do_rollback)
    event.listen(engine, "checkin", gate.opened)  # returned without either
    event.listen(engine, "invalidate", gate.opened)
    return gate


def writer_gate(engine: Any) -> "WriterGate | None":
    """The writer gate of a SQLite engine made by ``make_engine`` (None for PostgreSQL)."""
    return _GATES.get(engine)


class WriterGate:
    def __init__(self, database: Path | None, timeout_s: float):
        self.timeout_s = timeout_s
        self.lock_path = database.absolute().with_name(database.name + LOCK_SUFFIX) if database and fcntl else None
        self._fd: int | None = None
        self._closer: Any = None  # closes _fd when the gate goes
        self._no_file = False  # the lock file could not be opened: threads only
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None  # the thread holding the gate
        self._holder = 0  # id() of its DBAPI connection, which is alive while the gate is held
        self._flocked = False

    @property
    def held(self) -> bool:
        return self._lock.locked()

    def enter(self, dbapi_connection: Any) -> None:
        me = threading.get_ident()
        if self._owner == me:  # nested in this thread's own transaction: waiting here would never end
            return
        deadline = time.monotonic() + self.timeout_s
        if not self._lock.acquire(timeout=self.timeout_s):
            return
        self._owner, self._holder = me, id(dbapi_connection)
        try:
            self._flocked = self._flock(deadline)
        except BaseException:
            self._release()
            raise

    def opened(self, dbapi_connection: Any, *_rest: Any) -> None:
        """``dbapi_connection``'s transaction is over (or the connection is gone): open the gate if it held it."""
        if dbapi_connection is not None and id(dbapi_connection) == self._holder:
            self._release()

    def _flock(self, deadline: float) -> bool:
        fd = self._lock_file()
        if fd is None:
            return False
        for attempt in range(1_000_000):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(_POLL_S[min(attempt, len(_POLL_S) - 1)])
        return False

    def _lock_file(self) -> int | None:
        """The lock file's descriptor, opened by the first writer of this process and closed with the gate."""
        if self._fd is not None or self.lock_path is None or self._no_file:
            return self._fd
        for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):  # flock works on a read-only descriptor too
            try:
                self._fd = os.open(self.lock_path, flags, 0o644)
                self._closer = weakref.finalize(self, os.close, self._fd)
                return self._fd
            except PermissionError:
                continue
            except OSError as e:
                log.warning("SQLite writer gate: cannot open %s (%s); processes will wait in SQLite's busy "
                            "handler", self.lock_path, e)
                break
        self._no_file = True
        return None

    def _release(self) -> None:
        if self._flocked:
            self._flocked = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._owner, self._holder = None, 0
        self._lock.release()

    def _after_fork_in_child(self) -> None:
        # the child has one thread: a gate some other thread of the parent held is not the child's, and the
        # flock belongs to the open file description it shares with the parent — closing the child's copy of
        # the descriptor leaves the parent's lock as it is; the child opens its own when it first writes
        self._reset()
        if self._closer is not None:
            self._closer()
        self._fd, self._closer, self._no_file = None, None, False


def _after_fork() -> None:
    for gate in list(_GATES.values()):
        gate._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
