"""Exactly once per message id: a write and the record of its first answer commit together.

``once(factory, scope, key, operation, body, work)`` runs ``work`` in a unit of work and records its answer
under (``scope``, ``key``) — the institution and its ``msgid`` — in the same transaction, last. The record's
primary key decides who was first:

- a retry, or a concurrent duplicate that loses the race, finds the key taken when it records: all its work
  is rolled back and it answers with the first request's stored answer;
- a request refused *because* an earlier one with its key took effect (the lines are settled now, say)
  answers the same way;
- the same key with another body (a hash of ``operation`` and ``body``) is refused, and so is a key that a
  2601 reversal marked ``REVERSED``.

``present`` turns the stored answer into the caller's, inside the transaction (e.g. adding the person's
decrypted name, which is not stored with the answer).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from medpay.services import records
from medpay.services.errors import Conflict, Invalid, ServiceError, Unauthorized
from medpay.services.unit_of_work import UnitOfWork, unit_of_work

REVERSED = "reversed"  # the operation of a record undone (or pre-empted) by a 2601 reversal

Work = Callable[[UnitOfWork], dict]
Present = Callable[[Connection, dict], dict]


class _KeyTaken(Exception):
    """The key was recorded by another request first: roll this one back and answer with the first."""


def once(factory: sessionmaker[Session], clock: Callable[[], datetime], scope: str, key: str, operation: str,
         body: dict, work: Work, present: Present | None = None, *, look_first: bool = False,
         legacy_body: dict | None = None) -> dict:
    """``clock`` stamps the record. ``look_first``: read the key before the work (one more statement) — for work
    that would otherwise hold shared rows or store large data before a retry learns it is one.
    ``legacy_body``: the body as an earlier version hashed it, so its retries still match."""
    if not key:
        raise Invalid("msgid", "missing")
    digest = records.request_hash({"op": operation, **body})
    digests = {digest} | ({records.request_hash({"op": operation, **legacy_body})} if legacy_body is not None else set())
    refusal: ServiceError | None = None
    try:
        with unit_of_work(factory) as uow:
            if look_first:
                prior = records.idempotency_record(uow.conn, scope, key)
                if prior is not None:
                    response = replay(prior, operation, digests, key)
                    return present(uow.conn, response) if present else response
            response = work(uow)
            if records.record_idempotency(uow.conn, scope, key, digest, operation, response, clock()):
                return present(uow.conn, response) if present else response
            raise _KeyTaken
    except _KeyTaken:
        pass  # a key is taken only by a committed record: answer with it
    except Unauthorized:
        raise
    except ServiceError as e:
        refusal = e  # perhaps refused because the first request with this key took effect
    with unit_of_work(factory) as uow:  # commits even when the refusal stands: it records the nonce
        prior = records.idempotency_record(uow.conn, scope, key)
        if prior is not None:
            response = replay(prior, operation, digests, key)
            return present(uow.conn, response) if present else response
    raise refusal or Conflict("msgid", f"message id {key!r} is being processed; send it again")


def write(factory: sessionmaker[Session], clock: Callable[[], datetime], scope: str, key: str | None,
          operation: str, body: dict, work: Work, **options: Any) -> dict:
    """One unit of work; exactly once (``once``, with its ``options``) when the caller gives a key."""
    if key is not None:
        return once(factory, clock, scope, key, operation, body, work, **options)
    with unit_of_work(factory) as uow:
        return work(uow)


def replay(prior: Any, operation: str, digests: set[str], key: str) -> dict:
    """The stored first answer, if ``prior`` (the key's record) was made by the same request."""
    if prior.operation == REVERSED:
        raise Conflict("msgid", f"message {key!r} was reversed (2601); nothing was done — send it again with a new msgid")
    if prior.request_hash not in digests:
        raise Conflict("msgid", f"message id {key!r} was already used for a different request ({prior.operation})")
    return prior.response
