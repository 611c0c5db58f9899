"""Authentication of institution requests at the gateway (x-tif-* headers) and of SM2-signed bodies.

``GatewayAuth.verify(headers)`` returns the authenticated ``fixmedins_code`` or raises ``AuthError`` naming
the header at fault (the HTTP layer answers 401). Checks, cheapest first:

1. the four headers are present, single-valued and well-formed;
2. ``x-tif-timestamp`` is within ±``skew_s`` of the server clock ("stale" otherwise);
3. ``x-tif-paasid`` belongs to an institution with a gateway token;
4. ``x-tif-signature`` equals SHA256(timestamp + token + nonce + timestamp), compared in constant time
   (lower- or uppercase hex);
5. the nonce was not accepted before for this paasid: it is inserted into ``gateway_nonces`` in a short
   transaction of its own; a conflict on the primary key means a replay. Only requests that passed 1–4
   write a nonce, and a refused request writes nothing.

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
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.gateway_tables import GatewayNonceRow, InstitutionKeyRow
from medpay.adapters.db.statements import insert_ignore
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
from medpay.services.errors import Invalid, NotFound, Unauthorized
from medpay.services.request_headers import collect, printable
from medpay.services.unit_of_work import unit_of_work

__all__ = ["AuthError", "GatewayAuth", "sign_headers"]

TOKEN_COLUMN = "inst_token"  # associated data of the encrypted gateway token
MAX_ID_LENGTH = 64  # paasid and nonce columns
MIN_NONCE_LENGTH = 8
MAX_TIMESTAMP_DIGITS = 12


class AuthError(Unauthorized):
    """The institution gateway's request is not authenticated (``field``: the header or envelope field)."""


class GatewayAuth:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher,
                 clock: Callable[[], datetime] = utcnow, skew_s: int = 300):
        if skew_s <= 0:
            raise ValueError("skew_s must be positive")
        self.factory = factory
        self.cipher = cipher
        self.clock = clock
        self.skew_s = skew_s

    # -- x-tif-* headers ---------------------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str]) -> str:
        """The fixmedins_code of the institution that signed these headers; AuthError otherwise."""
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

        with self.factory() as session, session.begin():
            row = session.execute(
                select(InstitutionRow.fixmedins_code, InstitutionRow.token_enc).where(InstitutionRow.paasid == paasid)
            ).one_or_none()
            if row is None or not row.token_enc:
                raise AuthError(HEADER_PAASID, "unknown paasid")
            token = self.cipher.decrypt(row.token_enc, TOKEN_COLUMN)
            expected = compute_signature(ts_text, token, nonce)
            if not hmac.compare_digest(expected.encode("ascii"), signature.lower().encode("ascii")):
                raise AuthError(HEADER_SIGNATURE, "signature does not match")
            if not _insert_nonce(session, paasid, nonce, now):
                raise AuthError(HEADER_NONCE, "nonce already used: replayed request refused")
        return row.fixmedins_code

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


def _insert_nonce(session: Session, paasid: str, nonce: str, now: datetime) -> bool:
    """Insert the nonce; False when (paasid, nonce) is already there (a replay)."""
    return insert_ignore(session, GatewayNonceRow, {"paasid": paasid, "nonce": nonce, "seen_at": now},
                         GatewayNonceRow.nonce)
