"""A unit of work: one database transaction, committed only if the whole use case succeeds."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.ledger_store import LedgerStore


class UnitOfWork:
    def __init__(self, session: Session):
        self.session = session
        self.ledger = LedgerStore(session)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[UnitOfWork]:
    session = factory()
    try:
        with session.begin():
            yield UnitOfWork(session)
    finally:
        session.close()
