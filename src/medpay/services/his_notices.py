"""Notices to an institution's HIS about what happened outside it (a booking made or cancelled in the app).

An outbox: a notice is queued in its own row (one per event, ref and target, so a repeat queues nothing) and POSTed
to the institution's registered notify URL (``medpay ecert notify-url``), signed like ``settle.notify`` (HMAC of the
body under the institution's token, ``X-Medpay-Timestamp`` / ``X-Medpay-Signature``). A notice the HIS did not take
is tried again by ``deliver()`` (the housekeeping runs it) up to ``MAX_ATTEMPTS`` times; a sender holds a short
lease on a row so that two never send the same notice at once.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Callable

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.booking_tables import HisNoticeRow
from medpay.adapters.db.tables import InstitutionRow
from medpay.adapters.gateway.port import sign_callback
from medpay.services.unit_of_work import unit_of_work

MAX_ATTEMPTS = 8
LEASE = timedelta(seconds=30)


def post_signed(http: httpx.Client, url: str, payload: dict[str, Any], token: str, now: datetime) -> str:
    """POST ``payload`` signed with the institution's token; "" when the HIS took it, else what went wrong."""
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
    ts = str(int(now.timestamp()))  # the gateway's callback convention, under our own headers and the HIS's token
    headers = {"content-type": "application/json", "X-Medpay-Timestamp": ts,
               "X-Medpay-Signature": sign_callback(body, token, ts)}
    try:
        r = http.post(url, content=body, headers=headers)
    except httpx.HTTPError as e:
        return f"{type(e).__name__}: {e}"[:300]
    return "" if r.status_code < 300 else f"HTTP {r.status_code}"


def claim(factory: sessionmaker[Session], table: Any, row_id: int, now: datetime, lease: timedelta = LEASE) -> bool:
    """Take a short lease on an undelivered outbox row (``table``: an outbox with ``delivered_at`` and
    ``claimed_until``); False when another sender holds it or it went out."""
    with unit_of_work(factory) as uow:
        taken = uow.session.execute(update(table).where(
            table.id == row_id, table.delivered_at.is_(None),
            table.claimed_until.is_(None) | (table.claimed_until < now)).values(claimed_until=now + lease)).rowcount
    return taken == 1


class HisNotices:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher, clock: Callable[[], datetime] = utcnow,
                 http: httpx.Client | None = None):
        self.factory = factory
        self.cipher = cipher
        self.clock = clock
        self.http = http or httpx.Client(timeout=2.0)

    def queue(self, session: Session, fixmedins_code: str, event: str, ref: str, payload: dict[str, Any]) -> None:
        """Queue ``event`` inside the caller's transaction, so the notice exists exactly when what it tells does.
        An institution with no notify URL registered gets none (it polls)."""
        url = session.execute(select(InstitutionRow.notify_url)
                              .where(InstitutionRow.fixmedins_code == fixmedins_code)).scalar_one_or_none()
        if not url:
            return
        exists = session.execute(select(HisNoticeRow.id).where(
            HisNoticeRow.event == event, HisNoticeRow.ref == ref, HisNoticeRow.target == url)).first()
        if exists is None:
            session.add(HisNoticeRow(fixmedins_code=fixmedins_code, event=event, ref=ref, target=url,
                                     payload={"event": event, **payload}, attempts=0, last_error="",
                                     created_at=self.clock()))

    def deliver(self, ref: str | None = None) -> int:
        """Send pending notices (of one ref, or all); the number delivered."""
        with self.factory() as s:
            query = select(HisNoticeRow).where(HisNoticeRow.delivered_at.is_(None),
                                               HisNoticeRow.attempts < MAX_ATTEMPTS)
            if ref is not None:
                query = query.where(HisNoticeRow.ref == ref)
            pending = list(s.execute(query.order_by(HisNoticeRow.id)).scalars())
            tokens = {c: self.cipher.decrypt(t, "inst_token") for c, t in s.execute(
                select(InstitutionRow.fixmedins_code, InstitutionRow.token_enc)
                .where(InstitutionRow.fixmedins_code.in_({n.fixmedins_code for n in pending}))) if t}
        delivered = 0
        for note in pending:
            if not claim(self.factory, HisNoticeRow, note.id, self.clock()):
                continue
            error = post_signed(self.http, note.target, note.payload, tokens.get(note.fixmedins_code, ""),
                                self.clock())
            with unit_of_work(self.factory) as uow:
                row = uow.session.get(HisNoticeRow, note.id)
                row.attempts += 1
                row.last_error, row.claimed_until = error, None
                if not error:
                    row.delivered_at = self.clock()
                    delivered += 1
        return delivered
