"""Statements several stores need, written once for both backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

INSERTS = {"postgresql": pg_insert, "sqlite": sqlite_insert}  # INSERT … ON CONFLICT, per backend
_PREPARED: dict[tuple, Any] = {}


def dialect_name(db: Connection | Session) -> str:
    return db.get_bind().dialect.name if isinstance(db, Session) else db.dialect.name


def insert_ignore(db: Connection | Session, table: Any, values: dict[str, Any], returning: Any) -> bool:
    """INSERT, or nothing when the key exists; True when this call inserted the row. Concurrent inserts of
    one key serialise on the key (PostgreSQL) or the write lock (SQLite): exactly one wins. (RETURNING
    tells, because rowcount is not reliable for INSERT … ON CONFLICT on every driver.) The statement is
    built once per table, columns and backend."""
    table = getattr(table, "__table__", table)
    dialect = dialect_name(db)
    key = (table.name, tuple(sorted(values)), dialect, returning.key)
    stmt = _PREPARED.get(key)
    if stmt is None:
        stmt = _PREPARED[key] = (
            INSERTS[dialect](table)
            .values({name: bindparam(name, type_=table.c[name].type) for name in key[1]})
            .on_conflict_do_nothing()
            .returning(returning)
        )
    return db.execute(stmt, values).first() is not None
