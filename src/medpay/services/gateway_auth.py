"""Authentication of institution requests at the gateway (x-tif-* headers) and of SM2-signed bodies.

``GatewayAuth.authenticate(headers)`` returns the ``Credential`` of the institution that signed the headers or
raises ``AuthError`` naming the header at fault (the HTTP layer answers 401). Checks, cheapest first:

1. the four headers are present, single-valued and well-formed;
2. ``x-tif-timestamp`` is within ±``skew_s`` of the server clock ("stale" otherwise);
3. ``x-tif-paasid`` belongs to an institution with a gateway token;
4. ``x-tif-signature`` equals SHA256(timestamp + token + nonce + timestamp), compared in constant time
   (lower- or uppercase hex).

Tokens are kept decrypted in memory for ``token_ttl_s`` (10 s): checking a signature costs no database
read. A signature that fails against a cached token is checked once more against a fresh read, so a new
token works at once; a withdrawn one stops working within the TTL on every worker.

5. The nonce must not have been accepted before for this paasid. It is inserted into ``gateway_nonces`` by
   the request's first transaction (``medpay.services.request_guard``), so replay protection costs no
   transaction of its own; a conflict on the primary key means a replay. Every request that passed 1–4
   writes its nonce, answered or refused. ``verify(headers)`` does 1–5 in one call (its own transaction),
   for callers without a request guard.

A nonce must be remembered as long as a request carrying it can still pass check 2: its timestamp is at
least ``seen_at - skew``, so it is stale once ``seen_at + 2·skew`` has passed. ``purge_nonces`` deletes
nonces older than that (call it periodically).

``verify_body(fixmedins_code, envelope)`` checks the optional SM3withSM2 body signature: when the envelope's
``signtype`` is "SM2", ``cainfo`` must be a valid signature of ``canonical_body(envelope)`` under the
institution's registered key (``institution_keys``). Other signtypes leave ``cainfo`` alone (河北 puts an
encrypted card password there).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.gateway_tables import GatewayNonceRow, InstitutionKeyRow
from medpay.adapters.db.tables import InstitutionRow
from medpay.adapters.sm2 import normalize_public_key, verify_sm2
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
from medpay.services.errors import AuthError, Invalid, NotFound
from medpay.services.request_guard import record_nonce
from medpay.services.request_headers import collect, printable
from medpay.services.unit_of_work import unit_of_work

__all__ = ["AuthError", "Credential", "GatewayAuth", "sign_headers"]

TOKEN_COLUMN = "inst_token"  # associated data of the encrypted gateway token
MAX_ID_LENGTH = 64  # paasid and nonce columns
MIN_NONCE_LENGTH = 8
MAX_TIMESTAMP_DIGITS = 12


@dataclass(frozen=True)
class Credential:
    """Who signed a request, and the nonce it must use up."""

    fixmedins_code: str
    paasid: str
    nonce: str
    seen_at: datetime


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
        self._tokens: dict[str, tuple[str, str, float]] = {}  # paasid → (fixmedins_code, token, read at)
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
                                          "characters (a GUID)")
        if not signature:
            raise AuthError(HEADER_SIGNATURE, "missing header")
        if len(signature) != 64 or not all(c in "0123456789abcdefABCDEF" for c in signature):
            raise AuthError(HEADER_SIGNATURE, "must be 64 hex digits (SHA-256)")

        now = self.clock()
        drift = int(ts_text) - now.timestamp()
        if abs(drift) > self.skew_s:
            raise AuthError(HEADER_TIMESTAMP, f"stale: {drift:+.0f} s from server time; allowed ±{self.skew_s} s")

        given = signature.lower().encode("ascii")
        code, token, fresh = self._token(paasid, reload=False)
        if not hmac.compare_digest(compute_signature(ts_text, token, nonce).encode("ascii"), given):
            if fresh:
                raise AuthError(HEADER_SIGNATURE, "signature does not match")
            code, token, _fresh = self._token(paasid, reload=True)  # the token may have just changed
            if not hmac.compare_digest(compute_signature(ts_text, token, nonce).encode("ascii"), given):
                raise AuthError(HEADER_SIGNATURE, "signature does not match")
        return Credential(code, paasid, nonce, now)

    def verify(self, headers: Mapping[str, str]) -> str:
        """Checks 1–5 in a transaction of its own: the fixmedins_code of the institution that signed these
        headers; AuthError otherwise."""
        cred = self.authenticate(headers)
        with unit_of_work(self.factory) as uow:
            if not record_nonce(uow.conn, cred.paasid, cred.nonce, cred.seen_at):
                raise AuthError(HEADER_NONCE, "nonce already used: replayed request refused")
        return cred.fixmedins_code

    def _token(self, paasid: str, *, reload: bool) -> tuple[str, str, bool]:
        """(fixmedins_code, token, read just now) for ``paasid``, from the cache unless stale or ``reload``."""
        cached = self._tokens.get(paasid)
        if cached is not None and not reload and self.monotonic() - cached[2] < self.token_ttl_s:
            return cached[0], cached[1], False
        with self.factory() as session:
            row = session.execute(
                select(InstitutionRow.fixmedins_code, InstitutionRow.token_enc).where(InstitutionRow.paasid == paasid)
            ).one_or_none()
        if row is None or not row.token_enc:
            with self._tokens_lock:
                self._tokens.pop(paasid, None)
            raise AuthError(HEADER_PAASID, "unknown paasid")
        token = self.cipher.decrypt(row.token_enc, TOKEN_COLUMN)
        with self._tokens_lock:
            self._tokens[paasid] = (row.fixmedins_code, token, self.monotonic())
        return row.fixmedins_code, token, True

    def purge_nonces(self, older_than: datetime | None = None) -> int:
        """Delete nonces seen before ``older_than`` (default and latest allowed: now − 2·skew, so a nonce
        that could still be replayed is never forgotten). Returns the number deleted."""
        safe = self.clock() - timedelta(seconds=2 * self.skew_s)
        cutoff = safe if older_than is None else min(older_than, safe)
        with unit_of_work(self.factory) as uow:
            result = uow.session.execute(delete(GatewayNonceRow).where(GatewayNonceRow.seen_at < cutoff))
            return result.rowcount or 0

    # -- SM3withSM2 body signature ------------------------------------------------------------------------

    def set_sm2_public_key(self, fixmedins_code: str, public_key_hex: str | None) -> None:
        """Register (or with None remove) the institution's SM2 public key (x||y hex, optional 04 prefix)."""
        key = None
        if public_key_hex is not None:
            try:
                key = normalize_public_key(public_key_hex)
            except ValueError as e:
                raise Invalid("sm2_public_key", str(e)) from None
        with unit_of_work(self.factory) as uow:
            if uow.session.get(InstitutionRow, fixmedins_code) is None:
                raise NotFound("fixmedins_code", f"unknown institution {fixmedins_code!r}")
            row = uow.session.get(InstitutionKeyRow, fixmedins_code)
            if key is None:
                if row is not None:
                    uow.session.delete(row)
            elif row is None:
                uow.session.add(InstitutionKeyRow(fixmedins_code=fixmedins_code, sm2_public_key=key))
            else:
                row.sm2_public_key = key

    def verify_body(self, fixmedins_code: str, envelope: Mapping[str, Any]) -> None:
        """When ``signtype`` is "SM2", require ``cainfo`` to be the institution's SM3withSM2 signature of
        ``canonical_body(envelope)``; AuthError otherwise. Any other signtype: nothing to check."""
        signtype = envelope.get("signtype")
        if not isinstance(signtype, str) or signtype.strip().upper() != "SM2":
            return
        cainfo = envelope.get(SIGNATURE_FIELD)
        if not isinstance(cainfo, str) or not cainfo.strip():
            raise AuthError(SIGNATURE_FIELD, "signtype SM2 requires the body signature in cainfo")
        with self.factory() as session:
            key = session.execute(
                select(InstitutionKeyRow.sm2_public_key).where(InstitutionKeyRow.fixmedins_code == fixmedins_code)
            ).scalar_one_or_none()
        if key is None:
            raise AuthError("signtype", "no SM2 public key is registered for this institution")
        try:
            body = canonical_body(envelope)
        except (TypeError, ValueError):
            raise AuthError(SIGNATURE_FIELD, "envelope cannot be canonicalised for signature check") from None
        if not verify_sm2(key, body, cainfo):
            raise AuthError(SIGNATURE_FIELD, "SM2 signature does not verify")

