"""The database half of authenticating an institution request: its nonce is new, its sign-in is open.

The gateway signature is checked from the headers alone (``GatewayAuth.authenticate``, with the token cached).
What needs the database is written and checked by the request's *first* transaction, so a settlement costs
one transaction, not three:

- the (timestamp, nonce) is inserted into ``gateway_nonces`` (a conflict on the primary key is a replay: 401);
- the ``sign_no`` must be an open 9001 sign-in of the institution (else −2 naming ``sign_no``).

Both in one statement when all is well (INSERT … SELECT … WHERE EXISTS(open sign-in)); only when it inserts
nothing does a second statement tell a replay from a missing sign-in.

The guard exists from the moment the headers are authenticated (the signature covers the headers, not the
body: a refused request must use up its nonce too, or its headers could be replayed with another body).
``with active(guard):`` around the request's handler makes ``unit_of_work`` call ``guard.admit`` first in the
first transaction it opens. The guard is done once that transaction commits. A request that was refused (its
transaction rolled back) or opened no transaction calls ``finish``: it records the nonce in a transaction of its
own and checks the sign-in, so the caller hears "sign_no" before anything the handler found.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

from sqlalchemy import BigInteger, Connection, String, and_, bindparam, exists, select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.base import UtcDateTime
from medpay.adapters.db.gateway_tables import GatewayNonceRow, SignInRow
from medpay.adapters.db.statements import INSERTS, insert_ignore
from medpay.services.errors import AuthError, Invalid

_nonces = GatewayNonceRow.__table__
_sign_ins = SignInRow.__table__
_OPEN_SIGN_IN = select(_sign_ins.c.sign_no).where(and_(
    _sign_ins.c.sign_no == bindparam("sign_no"), _sign_ins.c.fixmedins_code == bindparam("code"),
    _sign_ins.c.sign_out_time.is_(None)))
# The happy path in one round trip: the nonce is inserted only if the sign-in is open.
_NONCE_IF_SIGNED_IN = {
    name: variant(_nonces).from_select(
        ["paasid", "ts", "nonce", "seen_at"],
        select(bindparam("paasid", type_=String()), bindparam("ts", type_=BigInteger()),
               bindparam("nonce", type_=String()), bindparam("seen_at", type_=UtcDateTime())
               ).where(exists(_OPEN_SIGN_IN)),
    ).on_conflict_do_nothing().returning(_nonces.c.nonce)
    for name, variant in INSERTS.items()
}

_current: ContextVar["RequestGuard | None"] = ContextVar("medpay_request_guard", default=None)


def record_nonce(conn: Connection, paasid: str, nonce: str, ts: int, seen_at: datetime) -> bool:
    """Insert the nonce; False when (paasid, ts, nonce) was accepted before (a replay). Concurrent inserts of one
    nonce serialise on the key (PostgreSQL) or the write lock (SQLite): exactly one wins."""
    return insert_ignore(conn, GatewayNonceRow, {"paasid": paasid, "ts": ts, "nonce": nonce, "seen_at": seen_at},
                         GatewayNonceRow.nonce)


def sign_in_open(conn: Connection, fixmedins_code: str, sign_no: str) -> bool:
    """Is ``sign_no`` an open 9001 sign-in of the institution?"""
    return conn.execute(_OPEN_SIGN_IN, {"sign_no": sign_no, "code": fixmedins_code}).first() is not None


@dataclass
class RequestGuard:
    paasid: str
    nonce: str
    ts: int  # x-tif-timestamp: with the nonce, the replay key
    seen_at: datetime
    fixmedins_code: str
    sign_no: str | None = None  # None: no sign-in needed (9001, 9002), or not known yet (the envelope unread)
    done: bool = False  # the nonce is committed (by the request's first transaction or by finish)
    replayed: bool = False
    holding: bool = False  # an open transaction of this request has inserted the nonce

    def admit(self, conn: Connection, *, check_sign_in: bool = True) -> bool:
        """Insert the nonce and check the sign-in in the transaction of ``conn``; False (and nothing done)
        when the request is done or another open transaction of it already holds the nonce."""
        if self.done or self.holding:
            return False
        if check_sign_in and self.sign_no is not None:
            params = {"paasid": self.paasid, "ts": self.ts, "nonce": self.nonce, "seen_at": self.seen_at,
                      "sign_no": self.sign_no, "code": self.fixmedins_code}
            if conn.execute(_NONCE_IF_SIGNED_IN[conn.dialect.name], params).first() is None:
                if not record_nonce(conn, self.paasid, self.nonce, self.ts, self.seen_at):
                    self._replayed()
                raise Invalid("sign_no", "no active sign-in with this sign_no (9001 first)")
        elif not record_nonce(conn, self.paasid, self.nonce, self.ts, self.seen_at):
            self._replayed()
        self.holding = True
        return True

    def _replayed(self) -> None:
        self.replayed = True
        raise AuthError("x-tif-nonce", "nonce already used: replayed request refused")

    def settled(self, committed: bool) -> None:
        """The transaction that admitted the request has ended."""
        self.holding = False
        self.done = self.done or committed

    def finish(self, factory: sessionmaker[Session], *, check_sign_in: bool = True) -> None:
        """Record the nonce if no transaction of the request did, in a transaction of its own; then, unless a
        committed transaction of the request checked the sign-in (or not ``check_sign_in``), check it now:
        raises ``Invalid`` naming ``sign_no`` (the nonce stays recorded) or, for a replay, ``AuthError``."""
        if self.done or self.replayed:
            return
        session = factory()
        committed = False
        try:
            with session.begin():
                conn = session.connection()
                self.admit(conn, check_sign_in=False)
                signed_in = (not check_sign_in or self.sign_no is None
                             or sign_in_open(conn, self.fixmedins_code, self.sign_no))
            committed = True
        finally:
            self.settled(committed)
            session.close()
        if not signed_in:
            raise Invalid("sign_no", "no active sign-in with this sign_no (9001 first)")


def pending() -> RequestGuard | None:
    """The guard of the request in progress, while its nonce is not yet committed."""
    guard = _current.get()
    return guard if guard is not None and not guard.done else None


@contextmanager
def active(guard: RequestGuard) -> Iterator[RequestGuard]:
    token = _current.set(guard)
    try:
        yield guard
    finally:
        _current.reset(token)
