"""SQLite's writers queue on the database's writer gate instead of SQLite's busy handler. With SQLite's busy
timeout at zero — any writer that met another's lock would fail at once with "database is locked" — threads and
processes writing together all succeed: each BEGIN IMMEDIATE came after the previous COMMIT had run. The gate is
free again however a transaction ends, a forked child starts with a gate of its own, and a thread that begins a
second transaction inside its own first one gets SQLite's answer instead of waiting on itself forever."""

from __future__ import annotations

import fcntl
import gc
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text
from sqlalchemy.exc import OperationalError

from medpay.adapters.db import engine as engine_module
from medpay.adapters.db.engine import make_engine
from medpay.adapters.db.sqlite_gate import writer_gate as sqlite_writer_gate

metadata = MetaData()
rows = Table("rows", metadata, Column("id", Integer, primary_key=True), Column("who", String(20)))


@pytest.fixture
def sqlite(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 0)  # meeting another writer's lock is an error
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def test_concurrent_writers_all_land_and_leave_the_gate_free(sqlite) -> None:
    gate = sqlite_writer_gate(sqlite)
    assert gate is not None and not gate.held
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(40):
                with sqlite.begin() as conn:  # read, then write on what was read: needs the write lock throughout
                    seen = conn.execute(select(func.count()).select_from(rows)).scalar_one()
                    conn.execute(insert(rows).values(who=f"w{n}-{i}-{seen}"))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sqlite.connect() as conn:
        counts = [int(w.rsplit("-", 1)[1]) for w in conn.execute(select(rows.c.who)).scalars()]
    assert sorted(counts) == list(range(240))  # each writer saw every earlier write: one writer at a time
    assert not gate.held


WRITER_PROCESS = """
import sys, threading
from sqlalchemy import func, insert, select
from medpay.adapters.db.engine import make_engine
from tests.test_sqlite_writer_gate import rows

from medpay.adapters.db import engine as engine_module
engine_module.SQLITE_BUSY_TIMEOUT_MS = 0  # as in the test: meeting another writer's lock is an error
engine = make_engine(sys.argv[1])

def writer(n):
    for i in range(25):
        with engine.begin() as conn:
            seen = conn.execute(select(func.count()).select_from(rows)).scalar_one()
            conn.execute(insert(rows).values(who=f"{sys.argv[2]}{n}-{i}-{seen}"))

threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
[t.start() for t in threads]
[t.join() for t in threads]
"""


def test_processes_on_one_database_take_turns_through_the_lock_file(sqlite, tmp_path: Path) -> None:
    url = str(sqlite.url)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER_PROCESS, url, tag], cwd=Path(__file__).parents[1],
                              stderr=subprocess.PIPE, text=True) for tag in ("a", "b", "c")]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    with sqlite.connect() as conn:
        counts = [int(w.rsplit("-", 1)[1]) for w in conn.execute(select(rows.c.who)).scalars()]
    assert sorted(counts) == list(range(3 * 3 * 25))  # one writer at a time across the processes


def test_the_gate_is_free_after_a_rollback_an_error_and_an_invalidated_connection(sqlite) -> None:
    gate = sqlite_writer_gate(sqlite)
    with pytest.raises(ZeroDivisionError):
        with sqlite.begin() as conn:
            conn.execute(insert(rows).values(who="rolled back"))
            assert gate.held
            1 / 0
    assert not gate.held
    with pytest.raises(OperationalError):
        with sqlite.begin() as conn:
            conn.execute(text("INSERT INTO no_such_table VALUES (1)"))
    assert not gate.held
    conn = sqlite.connect()
    trans = conn.begin()
    assert gate.held
    conn.invalidate()  # the DBAPI connection is thrown away (a disconnect)
    trans.rollback()
    conn.close()
    assert not gate.held
    conn = sqlite.connect()
    conn.begin()
    assert gate.held
    del conn  # dropped without commit, rollback or close: the pool takes the connection back when it is collected
    gc.collect()
    assert not gate.held
    with sqlite.begin() as conn:
        conn.execute(insert(rows).values(who="after"))
    with sqlite.connect() as conn:
        assert conn.execute(select(rows.c.who)).scalars().all() == ["after"]


@pytest.mark.timeout(120)  # waiting on itself would hang until this timeout
def test_a_second_transaction_inside_the_first_gets_sqlites_answer(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 200)
    monkeypatch.setattr(engine_module, "SQLITE_GATE_TIMEOUT_S", 3600.0)
    engine = make_engine(f"sqlite:///{tmp_path / 'nested.db'}")
    metadata.create_all(engine)
    try:
        with engine.begin() as outer:
            outer.execute(insert(rows).values(who="outer"))
            with pytest.raises(OperationalError, match="locked"):
                with engine.begin():
                    pass
        assert not sqlite_writer_gate(engine).held
        with engine.connect() as conn:
            assert conn.execute(select(rows.c.who)).scalars().all() == ["outer"]
    finally:
        engine.dispose()


def test_a_forked_child_has_a_free_gate_of_its_own(sqlite) -> None:
    import os

    gate = sqlite_writer_gate(sqlite)
    with sqlite.begin() as conn:
        conn.execute(insert(rows).values(who="parent"))  # the parent holds the gate, and the lock file's flock
        assert gate.held
        pid = os.fork()
        if pid == 0:  # the child: report by exit code, never return into pytest
            code = 1
            try:
                code = 0 if not gate.held and gate._fd is None and not gate._flocked else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert gate.held
        other = os.open(gate.lock_path, os.O_RDONLY)  # the child closing its copy left the parent's flock
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    assert not gate.held


def test_postgresql_engines_have_no_gate() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:5432/test")
    try:
        assert sqlite_writer_gate(engine) is None
    finally:
        engine.dispose()
