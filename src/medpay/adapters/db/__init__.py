"""Database adapter: SQLAlchemy engine, declarative base, tables and stores."""

from medpay.adapters.db.base import Base, UtcDateTime
from medpay.adapters.db.engine import DEFAULT_URL, database_url, make_engine, session_factory

__all__ = ["Base", "DEFAULT_URL", "UtcDateTime", "database_url", "make_engine", "session_factory"]
