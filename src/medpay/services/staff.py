"""The admin door's keys: who of the bureau's staff is asking.

A key is ``mpk_<key_id>_<secret>`` (a 12-character id, a 43-character secret from ``secrets.token_urlsafe``);
it is shown once when made (``medpay staff key-create``) and stored as the SHA-256 of its secret — the secret
has 256 random bits, so a plain hash is enough. Requests carry it as ``Authorization: Bearer mpk_…``. A revoked
key stops working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.base import utcnow
from medpay.adapters.db.staff_tables import StaffKeyRow
from medpay.services.errors import AuthError, Conflict, Invalid, NotFound
from medpay.services.unit_of_work import unit_of_work

PREFIX = "mpk"
_MAX_NAME = 100


@dataclass(frozen=True)
class Staff:
    key_id: str
    name: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _split(key: str) -> tuple[str, str]:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        raise AuthError("authorization", "expected a staff key: Bearer mpk_<id>_<secret>")
    return parts[1], parts[2]


class StaffKeys:
    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.clock = clock

    def create(self, name: str, key: str | None = None) -> str:
        """A new key for ``name``; returns the full key (the only time it is shown). ``key``: a given one (the
        demo's fixed key): made if new, kept if it is there already; refused (``Conflict``) if its id is there
        with another secret or revoked — a revoked demo key stays revoked."""
        name = (name or "").strip()
        if not name or len(name) > _MAX_NAME or not name.isprintable():
            raise Invalid("name", f"a staff member's name, 1–{_MAX_NAME} printable characters")
        key = key or f"{PREFIX}_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
        key_id, secret = _split(key)
        with unit_of_work(self.factory) as uow:
            row = uow.session.get(StaffKeyRow, key_id)
            if row is None:
                uow.session.add(StaffKeyRow(key_id=key_id, secret_hash=_hash(secret), name=name,
                                            created_at=self.clock(), revoked_at=None))
            elif row.revoked_at is not None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
                raise Conflict("key", f"staff key {key_id!r} exists with another secret or was revoked")
        return key

    def revoke(self, key_id: str) -> None:
        with unit_of_work(self.factory) as uow:
            done = uow.session.execute(update(StaffKeyRow).where(
                StaffKeyRow.key_id == key_id, StaffKeyRow.revoked_at.is_(None)).values(revoked_at=self.clock()))
            if done.rowcount != 1:
                raise NotFound("key_id", f"no active staff key {key_id!r}")

    def authenticate(self, authorization: str | None) -> Staff:
        """The staff member of an ``Authorization: Bearer mpk_…`` header; AuthError (401) otherwise."""
        if not authorization:
            raise AuthError("authorization", "the admin door needs a staff key: Authorization: Bearer mpk_…")
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthError("authorization", "use the Bearer scheme: Authorization: Bearer mpk_…")
        key_id, secret = _split(key.strip())
        with self.factory() as session:
            row = session.execute(select(StaffKeyRow).where(StaffKeyRow.key_id == key_id)).scalar_one_or_none()
        if row is None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
            raise AuthError("authorization", "unknown staff key")
        if row.revoked_at is not None:
            raise AuthError("authorization", "this staff key was revoked")
        return Staff(row.key_id, row.name)
