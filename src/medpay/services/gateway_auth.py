"""Authentication of institution requests at the gateway (x-tif-* headers) and of SM2-signed bodies.

``GatewayAuth.authenticate(headers)`` returns the ``Credential`` of the institution that signed the headers or
raises ``AuthError`` naming the header at fault (the HTTP layer answers 401). Checks, cheapest first:

1. the four headers are present, single-valued and well-formed;
2. ``x-tif-timestamp`` is within ±``skew_s`` of the server clock ("stale" otherwise);
3. ``x-tif-paasid`` belongs to an institution with a gateway token;
4. ``x-tif-signature`` equals SHA256(timestamp + token + nonce + timestamp), compared in constant time
   (lower- or uppercase hex).

Tokens are kept decrypted in memory for ``token_ttl_s`` (10 s), with the institution's sign-in setting:
checking a signature costs no database read. A signature that fails against a cached token is checked once more against a fresh read, so a new
token works at once; a withdrawn one stops working within the TTL on every worker.

5. The (timestamp, nonce) pair must not have been accepted before for this paasid. Both are signed, so a
   replay carries both unchanged, and a short nonce (real clients send 1–10 digits or 6 letters) collides
   only with one of the same second. It is inserted into ``gateway_nonces`` by the request's first transaction
   (``medpay.services.request_guard``), so replay protection costs no transaction of its own; a conflict on the
   primary key means a replay. Every request that passed 1–4
   writes its nonce, answered or refused. ``verify(headers)`` does 1–5 in one call (its own transaction),
   for callers without a request guard.

A nonce must be remembered as long as a request carrying it can still pass check 2: its timestamp is at
least ``seen_at - skew``, so it is stale once ``seen_at + 2·skew`` has passed. ``purge_nonces`` deletes
nonces older than that (call it periodically).

``verify_body(fixmedins_code, envelope)`` checks the SM3withSM2 body signature. An institution with a
registered SM2 key (``institution_keys``) must send ``signtype`` "SM2" and in ``cainfo`` a signature of
``canonical_body(envelope)`` under that key (or, for a grace period after a rotation, under the previous one):
a body without it is refused, so a signature can't be stripped. An institution without a key may still send
"SM2" (refused: nothing to verify with); other signtypes leave its ``cainfo`` alone (河北 puts an encrypted card
password there). The keys are read with the token and cached with it: no database read per request; a key
registered, rotated or removed takes effect within ``token_ttl_s`` on every worker (at once for a body the
cached keys refuse, which is checked again against a fresh read).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.gateway_tables import GatewayNonceRow, InstitutionKeyRow
from medpay.adapters.db.tables import InstitutionRow
from medpay.adapters.sm2 import normalize_public_key, verify_sm2
from medpay.domain.interface_settings import SignIn
from medpay.domain.gateway_signature import (
    HEADER_NONCE,
    HEADER_PAASID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    HEADERS,
    SIGNATURE_FIELD,
    canonical_body,
    compute_signature,
    sign_headers,
)
from medpay.services import audit
from medpay.services.errors import AuthError, Invalid, NotFound
from medpay.services.request_guard import record_nonce
from medpay.services.request_headers import collect, printable
from medpay.services.unit_of_work import unit_of_work

log = logging.getLogger("medpay.gateway_auth")

__all__ = ["AuthError", "Credential", "GatewayAuth", "InstitutionKeys", "Sm2Keys", "sign_headers"]

TOKEN_COLUMN = "inst_token"  # associated data of the encrypted gateway token
MAX_ID_LENGTH = 64  # paasid and nonce columns
MIN_NONCE_LENGTH = 1  # the gateway's rule is "a random string not repeated": no length is set anywhere
MAX_TIMESTAMP_DIGITS = 12
MAX_SM2_GRACE = timedelta(days=30)  # how long a rotated-out SM2 key may still be accepted, at most


@dataclass(frozen=True)
class Credential:
    """Who signed a request, the (timestamp, nonce) it must use up, and whether the institution must sign in."""

    fixmedins_code: str
    paasid: str
    nonce: str
    seen_at: datetime
    timestamp: int  # x-tif-timestamp, unix seconds as signed
    sign_in_required: bool = True  # institutions.sign_in: a request without sign_no passes when "optional"


@dataclass(frozen=True)
class Sm2Keys:
    """An institution's SM2 public keys: the current one, and the one it replaced while its grace lasts."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def in_grace(self, now: datetime) -> bool:
        return self.previous is not None and self.previous_until is not None and now < self.previous_until


@dataclass(frozen=True)
class _Institution:
    """What authenticating an institution's requests needs, as read at ``read_at`` (monotonic seconds)."""

    fixmedins_code: str
    paasid: str | None
    token: str | None
    sm2: Sm2Keys | None
    sign_in_required: bool
    read_at: float


class GatewayAuth:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher,
                 clock: Callable[[], datetime] = utcnow, skew_s: int = 300, token_ttl_s: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic):
        if skew_s <= 0:
            raise ValueError("skew_s must be positive")
        self.factory = factory
        self.cipher = cipher
        self.clock = clock
        self.skew_s = skew_s
        self.token_ttl_s = token_ttl_s
        self.monotonic = monotonic  # measures the age of a cached token
        self._tokens: dict[str, _Institution] = {}  # paasid → the institution, token and SM2 keys as read
        self._by_code: dict[str, _Institution] = {}  # the same entries by fixmedins_code
        self._tokens_lock = threading.Lock()

    # -- x-tif-* headers ---------------------------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str]) -> Credential:
        """Checks 1–4: the credential of the institution that signed these headers; AuthError otherwise."""
        h = collect(headers, HEADERS, AuthError)
        paasid, ts_text, nonce, signature = (h.get(name, "") for name in HEADERS)
        if not paasid:
            raise AuthError(HEADER_PAASID, "missing header")
        if len(paasid) > MAX_ID_LENGTH or not printable(paasid):
            raise AuthError(HEADER_PAASID, f"must be at most {MAX_ID_LENGTH} printable ASCII characters")
        if not ts_text:
            raise AuthError(HEADER_TIMESTAMP, "missing header")
        if not (ts_text.isascii() and ts_text.isdigit()):
            raise AuthError(HEADER_TIMESTAMP, "must be unix time in whole seconds (digits only)")
        if len(ts_text) > MAX_TIMESTAMP_DIGITS:
            raise AuthError(HEADER_TIMESTAMP, "must be unix time in seconds, not milliseconds")
        if not nonce:
            raise AuthError(HEADER_NONCE, "missing header")
        if not (MIN_NONCE_LENGTH <= len(nonce) <= MAX_ID_LENGTH) or not printable(nonce):
            raise AuthError(HEADER_NONCE, f"must be {MIN_NONCE_LENGTH} to {MAX_ID_LENGTH} printable ASCII "
                                          "characters")
        if not signature:
            raise AuthError(HEADER_SIGNATURE, "missing header")
        if len(signature) != 64 or not all(c in "0123456789abcdefABCDEF" for c in signature):
            raise AuthError(HEADER_SIGNATURE, "must be 64 hex digits (SHA-256)")

        now = self.clock()
        drift = int(ts_text) - now.timestamp()
        if abs(drift) > self.skew_s:
            raise AuthError(HEADER_TIMESTAMP, f"stale: {drift:+.0f} s from server time; allowed ±{self.skew_s} s")

        given = signature.lower().encode("ascii")
        try:
            entry, fresh = self._token(paasid, reload=False)
        except AuthError:
            # an unknown paasid is refused exactly like a wrong signature, so paasids can't be probed; the log
            # tells an operator which it was (a paasid is no secret and no personal data)
            hmac.compare_digest(compute_signature(ts_text, "", nonce).encode("ascii"), given)
            log.info("gateway signature refused: unknown x-tif-paasid %r", paasid)
            raise AuthError(HEADER_SIGNATURE, "signature does not match") from None
        if not hmac.compare_digest(compute_signature(ts_text, entry.token, nonce).encode("ascii"), given):
            if fresh:
                raise AuthError(HEADER_SIGNATURE, "signature does not match")
            entry, _fresh = self._token(paasid, reload=True)  # the token may have just changed
            if not hmac.compare_digest(compute_signature(ts_text, entry.token, nonce).encode("ascii"), given):
                raise AuthError(HEADER_SIGNATURE, "signature does not match")
        return Credential(entry.fixmedins_code, paasid, nonce, now, int(ts_text), entry.sign_in_required)

    def verify(self, headers: Mapping[str, str]) -> str:
        """Checks 1–5 in a transaction of its own: the fixmedins_code of the institution that signed these
        headers; AuthError otherwise."""
        cred = self.authenticate(headers)
        with unit_of_work(self.factory) as uow:
            if not record_nonce(uow.conn, cred.paasid, cred.nonce, cred.timestamp, cred.seen_at):
                raise AuthError(HEADER_NONCE, "nonce already used: replayed request refused")
        return cred.fixmedins_code

    def _token(self, paasid: str, *, reload: bool) -> tuple[_Institution, bool]:
        """(the institution of ``paasid``, with its token; read just now?): from the cache unless stale or
        ``reload``."""
        cached = self._tokens.get(paasid)
        if cached is not None and not reload and self.monotonic() - cached.read_at < self.token_ttl_s:
            return cached, False
        entry = self._read(InstitutionRow.paasid == paasid)
        if entry is None or entry.token is None:
            with self._tokens_lock:
                self._tokens.pop(paasid, None)
            raise AuthError(HEADER_PAASID, "unknown paasid")
        return entry, True

    def _read(self, where: ColumnElement[bool]) -> _Institution | None:
        """The institution ``where`` selects, with its token and SM2 keys (one read), cached; None if none."""
        with self.factory() as session:
            row = session.execute(
                select(InstitutionRow.fixmedins_code, InstitutionRow.paasid, InstitutionRow.token_enc,
                       InstitutionRow.sign_in, InstitutionKeyRow.sm2_public_key, InstitutionKeyRow.previous_sm2_public_key,
                       InstitutionKeyRow.previous_valid_until)
                .outerjoin(InstitutionKeyRow, InstitutionKeyRow.fixmedins_code == InstitutionRow.fixmedins_code)
                .where(where)
            ).one_or_none()
        if row is None:
            return None
        token = self.cipher.decrypt(row.token_enc, TOKEN_COLUMN) if row.token_enc else None
        sm2 = (Sm2Keys(row.sm2_public_key, row.previous_sm2_public_key, row.previous_valid_until)
               if row.sm2_public_key else None)
        entry = _Institution(row.fixmedins_code, row.paasid, token, sm2, row.sign_in != SignIn.OPTIONAL.value,
                             self.monotonic())
        with self._tokens_lock:
            self._by_code[entry.fixmedins_code] = entry
            if entry.paasid is not None and token is not None:
                self._tokens[entry.paasid] = entry
        return entry

    def _sm2_keys(self, fixmedins_code: str, *, reload: bool) -> tuple[Sm2Keys | None, bool]:
        """(the institution's SM2 keys, read just now): cached with its token unless stale or ``reload``."""
        cached = self._by_code.get(fixmedins_code)
        if cached is not None and not reload and self.monotonic() - cached.read_at < self.token_ttl_s:
            return cached.sm2, False
        entry = self._read(InstitutionRow.fixmedins_code == fixmedins_code)
        return (entry.sm2 if entry is not None else None), True

    def _forget(self, fixmedins_code: str) -> None:
        """Drop the cached entry of an institution whose keys this process just changed."""
        with self._tokens_lock:
            entry = self._by_code.pop(fixmedins_code, None)
            if entry is not None and entry.paasid is not None:
                self._tokens.pop(entry.paasid, None)

    def purge_nonces(self, older_than: datetime | None = None) -> int:
        """Delete nonces seen before ``older_than`` (default and latest allowed: now − 2·skew, so a nonce
        that could still be replayed is never forgotten). Returns the number deleted."""
        safe = self.clock() - timedelta(seconds=2 * self.skew_s)
        cutoff = safe if older_than is None else min(older_than, safe)
        with unit_of_work(self.factory) as uow:
            result = uow.session.execute(delete(GatewayNonceRow).where(GatewayNonceRow.seen_at < cutoff))
            return result.rowcount or 0

    # -- SM3withSM2 body signature ------------------------------------------------------------------------

    def set_sm2_public_key(self, fixmedins_code: str, public_key_hex: str | None, *, operator: str = "system",
                           replace: bool = True) -> None:
        """``InstitutionKeys.set``, seen at once by this process."""
        InstitutionKeys(self.factory, self.clock).set(fixmedins_code, public_key_hex, operator=operator,
                                                      replace=replace)
        self._forget(fixmedins_code)

    def rotate_sm2_public_key(self, fixmedins_code: str, public_key_hex: str, grace: timedelta, *,
                              operator: str = "system") -> Sm2Keys:
        """``InstitutionKeys.rotate``, seen at once by this process."""
        keys = InstitutionKeys(self.factory, self.clock).rotate(fixmedins_code, public_key_hex, grace,
                                                                operator=operator)
        self._forget(fixmedins_code)
        return keys

    def verify_body(self, fixmedins_code: str, envelope: Mapping[str, Any]) -> None:
        """An institution with a registered SM2 key: ``signtype`` must be "SM2" and ``cainfo`` its SM3withSM2
        signature of ``canonical_body(envelope)``. Without a key: "SM2" is refused (nothing to verify with),
        any other signtype passes. AuthError otherwise."""
        keys, fresh = self._sm2_keys(fixmedins_code, reload=False)
        error = self._body_error(keys, envelope)
        if error is not None and not fresh:
            reread, _ = self._sm2_keys(fixmedins_code, reload=True)  # registered, rotated or removed just now?
            if reread != keys:
                error = self._body_error(reread, envelope)
        if error is not None:
            raise error

    def _body_error(self, keys: Sm2Keys | None, envelope: Mapping[str, Any]) -> AuthError | None:
        signtype = envelope.get("signtype")
        if not isinstance(signtype, str) or signtype.strip().upper() != "SM2":
            if keys is None:
                return None
            return AuthError("signtype", "must be SM2: this institution registered an SM2 key, so every body it "
                                         "sends must carry its SM2 signature in cainfo")
        cainfo = envelope.get(SIGNATURE_FIELD)
        if not isinstance(cainfo, str) or not cainfo.strip():
            return AuthError(SIGNATURE_FIELD, "signtype SM2 requires the body signature in cainfo")
        if keys is None:
            return AuthError("signtype", "no SM2 public key is registered for this institution")
        try:
            body = canonical_body(envelope)
        except (TypeError, ValueError):
            return AuthError(SIGNATURE_FIELD, "envelope cannot be canonicalised for signature check")
        if verify_sm2(keys.current, body, cainfo):
            return None
        if keys.previous is not None and verify_sm2(keys.previous, body, cainfo):
            if keys.in_grace(self.clock()):
                return None
            return AuthError(SIGNATURE_FIELD, "signed with the institution's previous SM2 key, whose grace period "
                                              "has ended: sign with the current key")
        return AuthError(SIGNATURE_FIELD, "SM2 signature does not verify")


class InstitutionKeys:
    """Registering, rotating and removing institutions' SM2 keys (operators' use cases, each audited). Workers
    see a change within their cache's TTL (``GatewayAuth``)."""

    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.clock = clock

    def set(self, fixmedins_code: str, public_key_hex: str | None, *, operator: str = "system",
            replace: bool = True) -> None:
        """Register (or with None remove) the institution's SM2 public key (x||y hex, optional 04 prefix): from
        then on its bodies must be SM2-signed. Takes effect at once, with no grace for a key it replaces
        (``rotate`` gives one); ``replace=False`` refuses to replace a key. Audited."""
        key = None if public_key_hex is None else _sm2_key(public_key_hex)
        with unit_of_work(self.factory) as uow:
            row = self._key_row(uow.session, fixmedins_code)
            if key is None:
                if row is None:
                    raise NotFound("fixmedins_code", f"{fixmedins_code} has no SM2 key registered")
                uow.session.delete(row)
                self._audit(uow.session, operator, "institution.sm2_key.remove", fixmedins_code, None)
            elif row is None:
                uow.session.add(InstitutionKeyRow(fixmedins_code=fixmedins_code, sm2_public_key=key))
                self._audit(uow.session, operator, "institution.sm2_key.set", fixmedins_code, key)
            elif not replace:
                raise Invalid("fixmedins_code", f"{fixmedins_code} already has an SM2 key: rotate it (its "
                                                "workstations may keep the old key for a grace period) or remove it")
            else:
                row.sm2_public_key, row.previous_sm2_public_key, row.previous_valid_until = key, None, None
                self._audit(uow.session, operator, "institution.sm2_key.set", fixmedins_code, key)

    def rotate(self, fixmedins_code: str, public_key_hex: str, grace: timedelta, *,
               operator: str = "system") -> Sm2Keys:
        """Replace the institution's SM2 key; the replaced one is still accepted for ``grace`` (up to 30 days),
        so its workstations can switch one by one. A previous key still in its grace is dropped. Audited."""
        key = _sm2_key(public_key_hex)
        if not timedelta(0) <= grace <= MAX_SM2_GRACE:
            raise Invalid("grace", f"must be from 0 to {int(MAX_SM2_GRACE.total_seconds())} seconds")
        with unit_of_work(self.factory) as uow:
            row = self._key_row(uow.session, fixmedins_code)
            if row is None:
                raise NotFound("fixmedins_code", f"{fixmedins_code} has no SM2 key to rotate: set one first")
            if row.sm2_public_key == key:
                raise Invalid("public_key", "is the key already registered")
            keys = Sm2Keys(key, row.sm2_public_key, self.clock() + grace)
            row.sm2_public_key, row.previous_sm2_public_key, row.previous_valid_until = keys.current, keys.previous, \
                keys.previous_until
            self._audit(uow.session, operator, "institution.sm2_key.rotate", fixmedins_code, key)
        return keys

    def get(self, fixmedins_code: str) -> Sm2Keys | None:
        """The institution's registered SM2 keys (read now), None if it has none."""
        with self.factory() as session:
            row = self._key_row(session, fixmedins_code)
            return None if row is None else Sm2Keys(row.sm2_public_key, row.previous_sm2_public_key,
                                                     row.previous_valid_until)

    @staticmethod
    def _key_row(session: Session, fixmedins_code: str) -> InstitutionKeyRow | None:
        if session.get(InstitutionRow, fixmedins_code) is None:
            raise NotFound("fixmedins_code", f"unknown institution {fixmedins_code!r}")
        return session.get(InstitutionKeyRow, fixmedins_code)

    def _audit(self, session: Session, operator: str, action: str, fixmedins_code: str, key: str | None) -> None:
        # no person's data: psn_no stays empty; ref names the institution and the key (a digest of it)
        ref = fixmedins_code if key is None else f"{fixmedins_code} sm2:{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        audit.record(session, actor_kind="operator", actor=operator, action=action, psn_no="",
                     fields=("sm2_public_key",), at=self.clock(), ref=ref)


def _sm2_key(public_key_hex: str) -> str:
    try:
        return normalize_public_key(public_key_hex)
    except ValueError as e:
        raise Invalid("public_key", str(e)) from None
