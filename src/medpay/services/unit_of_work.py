"""A unit of work: one database transaction, committed only if the whole use case succeeds.

Services read and write through ``uow.conn`` (SQLAlchemy Core on the transaction's connection: the hot paths
pay for no ORM bookkeeping) or ``uow.session`` (ORM, where a service prefers objects). Both are the same
transaction.

An authenticated request of the institution interface has things to write and check with its first write
(its nonce, its sign-in): ``medpay.services.request_guard``. While such a request is in progress, the first
unit of work opened for it does them before anything else, so the request costs one transaction.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import cached_property
from typing import Iterator

from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.ledger_store import LedgerStore
from medpay.services import request_guard


class UnitOfWork:
    def __init__(self, session: Session):
        self.session = session

    @cached_property
    def conn(self) -> Connection:
        return self.session.connection()

    @cached_property
    def ledger(self) -> LedgerStore:
        return LedgerStore(self.conn)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[UnitOfWork]:
    session = factory()
    guard = request_guard.pending()
    admitted = committed = False
    try:
        with session.begin():
            uow = UnitOfWork(session)
            admitted = guard is not None and guard.admit(uow.conn)
            yield uow
        committed = True
    finally:
        if admitted:
            guard.settled(committed)
        session.close()
