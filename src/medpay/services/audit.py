"""Who was shown whose personal data: recorded with the access, sealed in hash-chained blocks, verifiable.

``record`` writes one event inside the transaction that discloses the data, so an answer that was never sent
(its transaction rolled back) leaves no event, and an answer that was sent always has one. The events table is
append-only; ``AuditLog.seal`` (run by housekeeping) chains every event older than ``SEAL_AFTER`` into the next
seal: ``digest = SHA-256(prev_digest, then each event's canonical line in id order)``. ``verify`` recomputes
the chain and reports any event changed, removed or added inside a sealed range, and any broken link. The
latest digest is what to keep outside the database (the CLI prints it): with it, even cutting off the newest
seals shows.

Events wait ``SEAL_AFTER`` before they are sealed, so a slow transaction can't commit an event into a range
that is already sealed (PostgreSQL hands out ids at insert, not at commit).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.audit_tables import AuditEventRow, AuditSealRow
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.statements import insert_ignore
from medpay.services.unit_of_work import unit_of_work

events = AuditEventRow.__table__
seals = AuditSealRow.__table__
SEAL_AFTER = timedelta(minutes=5)
BLOCK = 10_000  # events per seal at most
GENESIS = "0" * 64
IDENTITY = ("psn_name", "certno")  # what a settlement answer and 1101 show in full
MASKED_IDENTITY = ("psn_name:masked", "certno:masked")

_INSERT = insert(events)


def record(db: Connection | Session, *, actor_kind: str, actor: str, action: str, psn_no: str,
           fields: Iterable[str], at: datetime, ref: str = "") -> None:
    """One access, in the caller's transaction."""
    db.execute(_INSERT, {"at": at, "actor_kind": actor_kind, "actor": actor[:40], "action": action[:40],
                         "psn_no": psn_no, "fields": ",".join(fields)[:120], "ref": (ref or "")[:64]})


def _line(e: Any) -> bytes:
    at = e.at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return "|".join((str(e.id), at, e.actor_kind, e.actor, e.action, e.psn_no, e.fields, e.ref)).encode("utf-8")


def _digest(prev: str, rows: Iterable[Any]) -> str:
    h = hashlib.sha256(prev.encode("ascii"))
    for e in rows:
        h.update(b"\n")
        h.update(_line(e))
    return h.hexdigest()


@dataclass(frozen=True)
class Verification:
    seals: int
    sealed_events: int
    unsealed_events: int
    latest_digest: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditLog:
    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime] = utcnow,
                 seal_after: timedelta = SEAL_AFTER):
        self.factory = factory
        self.clock = clock
        self.seal_after = seal_after

    def seal(self) -> int:
        """Seal the events old enough, a block at a time; the number sealed. Safe to run in many processes at
        once: a range is sealed once (``first_id`` is unique), the loser seals nothing."""
        sealed = 0
        while True:
            with unit_of_work(self.factory) as uow:
                conn = uow.conn
                last = conn.execute(select(seals).order_by(seals.c.id.desc()).limit(1)).first()
                after, prev = (last.last_id, last.digest) if last else (0, GENESIS)
                cutoff = self.clock() - self.seal_after
                rows = []
                for e in conn.execute(select(events).where(events.c.id > after).order_by(events.c.id).limit(BLOCK)):
                    if e.at >= cutoff:  # the rest are too young: a slower transaction may still add among them
                        break
                    rows.append(e)
                if not rows:
                    return sealed
                won = insert_ignore(conn, seals, {
                    "first_id": rows[0].id, "last_id": rows[-1].id, "events": len(rows), "prev_digest": prev,
                    "digest": _digest(prev, rows), "sealed_at": self.clock()}, seals.c.id)
                if not won:
                    return sealed
                sealed += len(rows)

    def verify(self) -> Verification:
        problems: list[str] = []
        prev, after, covered = GENESIS, 0, 0
        with self.factory() as session:
            all_seals = list(session.execute(select(seals).order_by(seals.c.id)))
            for s in all_seals:
                if s.prev_digest != prev:
                    problems.append(f"seal {s.id}: does not follow the seal before it (a seal was removed or changed)")
                if s.first_id <= after:
                    problems.append(f"seal {s.id}: its range {s.first_id}–{s.last_id} overlaps the one before")
                between = session.execute(select(func.count()).select_from(events).where(
                    events.c.id > after, events.c.id < s.first_id)).scalar_one()
                if between:
                    problems.append(f"seal {s.id}: {between} event(s) appeared between sealed ranges")
                rows = list(session.execute(select(events).where(
                    events.c.id >= s.first_id, events.c.id <= s.last_id).order_by(events.c.id)))
                if len(rows) != s.events:
                    problems.append(f"seal {s.id}: {s.events} events were sealed in {s.first_id}–{s.last_id}, "
                                    f"{len(rows)} are there now")
                elif _digest(s.prev_digest, rows) != s.digest:
                    problems.append(f"seal {s.id}: an event in {s.first_id}–{s.last_id} was changed")
                prev, after, covered = s.digest, s.last_id, covered + len(rows)
            unsealed = session.execute(select(func.count()).select_from(events).where(events.c.id > after)).scalar_one()
        return Verification(len(all_seals), covered, unsealed, prev, tuple(problems))

    def of_person(self, psn_no: str, limit: int = 200) -> list[Any]:
        """The newest accesses to a person's data (what the person may ask to see)."""
        with self.factory() as session:
            return list(session.execute(select(events).where(events.c.psn_no == psn_no)
                                        .order_by(events.c.id.desc()).limit(limit)))
