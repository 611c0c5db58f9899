"""Engines for SQLite (single node, development, small deployments) and PostgreSQL (production).

Both backends give a writer exclusive use of the rows it reads before writing them:
- SQLite: every transaction starts with ``BEGIN IMMEDIATE``, so writers queue on the database lock
  (``busy_timeout``) instead of reading a balance another writer is about to change;
- PostgreSQL: READ COMMITTED plus explicit ``SELECT … FOR UPDATE`` on the rows a write depends on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db import sqlite_gate

DEFAULT_URL = "sqlite:///var/medpay.db"
URL_ENV = "MEDPAY_DATABASE_URL"

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_GATE_TIMEOUT_S = 30.0  # how long a writer queues at the writer gate before it goes on to BEGIN IMMEDIATE
# Per process: the institution interface runs at most MEDPAY_INSTITUTION_CONCURRENCY transactions at once,
# the other doors a few more; two workers stay well inside PostgreSQL's default 100 connections.
PG_POOL_SIZE = 12
PG_MAX_OVERFLOW = 12


def database_url() -> str:
    return os.environ.get(URL_ENV) or DEFAULT_URL


def normalize_url(url: str | URL) -> URL:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 here."""
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, **engine_kwargs: Any) -> Engine:
    """Engine for ``url`` with the concurrency settings above; ``engine_kwargs`` override defaults."""
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, engine_kwargs)
    if backend == "postgresql":
        return _postgresql_engine(parsed, engine_kwargs)
    shown = parsed.render_as_string(hide_password=True)
    raise ValueError(f"unsupported database url {shown!r}: use sqlite or postgresql")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit: services return them to callers once the unit of work is done.
    return sessionmaker(bind=engine, expire_on_commit=False)


def _sqlite_engine(url: URL, engine_kwargs: dict[str, Any]) -> Engine:
    database = url.database or ""
    in_memory = (database in ("", ":memory:") or database.startswith("file::memory:") or "mode=memory" in database
                 or url.query.get("mode") == "memory")
    if not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **engine_kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite (it would BEGIN late and DEFERRED); SQLAlchemy's
        # "begin" event below emits the BEGIN instead. Recipe from the SQLAlchemy pysqlite docs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")  # readers don't block the writer, nor it them
        finally:
            cursor.close()

    gate = sqlite_gate.install(engine, None if in_memory else Path(database).expanduser(), SQLITE_GATE_TIMEOUT_S)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: two settlements can't both read a balance and then write it. Writers
        # of this database queue at its gate first (medpay.adapters.db.sqlite_gate), not in SQLite's busy handler.
        dbapi_connection = connection.connection.dbapi_connection
        try:
            gate.enter(dbapi_connection)
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            gate.opened(dbapi_connection)
            raise

    return engine


def _postgresql_engine(url: URL, engine_kwargs: dict[str, Any]) -> Engine:
    options: dict[str, Any] = {
        "pool_size": PG_POOL_SIZE,
        "max_overflow": PG_MAX_OVERFLOW,
        # No ping per checkout (a round trip on every request). A connection that broke (a server restart)
        # fails its next statement; SQLAlchemy recognises the disconnect and drops every pooled connection
        # of that age, so one request per worker sees the fault: −1 or a 5xx, which callers retry safely.
        "pool_pre_ping": False,
        "pool_recycle": 3600,
        "pool_timeout": 30,
        "isolation_level": "READ COMMITTED",
    }
    options.update(engine_kwargs)
    return create_engine(url, **options)
