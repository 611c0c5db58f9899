"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

- ``db_url``: a database URL of its own per test. SQLite: a file under ``tmp_path``. PostgreSQL
  (``MEDPAY_TEST_PG_URL``, default below): a fresh schema, created before and dropped after the test, selected
  by the URL's ``options=-csearch_path=<schema>`` (passed to psycopg as a connect argument), so any engine
  built from the URL — ``make_engine(db_url)``, a CLI run with ``MEDPAY_DATABASE_URL`` — lands in it.
  An unreachable PostgreSQL fails the test; it never skips.
- ``engine``: ``make_engine(db_url)`` with every table of ``medpay.adapters.db.schema`` created.
- ``session_factory``: ``sessionmaker(expire_on_commit=False)`` bound to ``engine``.
- ``cipher``: a ``FieldCipher`` with a fresh random key.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db import schema
from medpay.adapters.db.engine import make_engine, normalize_url
from medpay.adapters.db.engine import session_factory as make_session_factory

PG_URL_ENV = "MEDPAY_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgresql_schema_url() -> Iterator[str]:
    base_url = normalize_url(os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL)
    shown = base_url.render_as_string(hide_password=True)
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    schema_name = f"test_{uuid.uuid4().hex[:16]}"
    unreachable = None
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema_name}"'))
    except OperationalError as error:
        unreachable = error.orig
    if unreachable is not None:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is unreachable at {shown}: {unreachable}\n"
            f"Start it, or point {PG_URL_ENV} at a database this user may create schemas in.",
            pytrace=False,
        )
    # application_name tags this test's connections so teardown can close any a test left open.
    url = base_url.update_query_dict({"options": f"-csearch_path={schema_name}", "application_name": schema_name})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": schema_name},
            )
            conn.execute(text(f'DROP SCHEMA "{schema_name}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'medpay.db'}"
    else:
        yield from _postgresql_schema_url()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    schema.metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher(os.urandom(32))


@pytest.fixture
def seeded_platform(db_url):
    """The platform as ``medpay serve`` builds it, in process, on a migrated database with the demo data."""
    from medpay.adapters.db import migrate
    from medpay.api.platform import build_platform
    from medpay.services import demo

    cipher = FieldCipher(os.urandom(32))
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    demo.seed(make_session_factory(engine), cipher)
    engine.dispose()
    p = build_platform(db_url, cipher=cipher)
    try:
        yield p
    finally:
        p.engine.dispose()
