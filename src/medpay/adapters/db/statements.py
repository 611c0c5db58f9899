"""Statements several stores need, written once for both backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


def insert_ignore(session: Session, table: Any, values: dict[str, Any], returning: Any) -> bool:
    """INSERT, or nothing when the key exists; True when this call inserted the row. Concurrent inserts of
    one key serialise on the key (PostgreSQL) or the write lock (SQLite): exactly one wins. (RETURNING
    tells, because rowcount is not reliable for INSERT … ON CONFLICT on every driver.)"""
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        variant = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = variant(table).values(**values).on_conflict_do_nothing().returning(returning)
        return session.execute(stmt).first() is not None
    try:
        with session.begin_nested():
            session.execute(insert(table).values(**values))
    except IntegrityError:
        return False
    return True
