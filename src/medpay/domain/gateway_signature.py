"""Gateway request signature (政务网关 TIF convention used in front of the NHSA institution interface).

Every request carries four headers::

    x-tif-paasid     the institution's gateway id
    x-tif-timestamp  unix seconds
    x-tif-nonce      a fresh random string (a GUID), never reused
    x-tif-signature  lowercase hex SHA-256(timestamp + token + nonce + timestamp)

``token`` is the institution's shared gateway secret; it never travels. Pure functions only: the server
(``medpay.services.gateway_auth``) and the HIS client compute the same thing.

``canonical_body`` is the byte string an SM3withSM2 body signature (``signtype`` "SM2", signature in
``cainfo``) covers: the envelope without ``cainfo``, as compact JSON with sorted keys, UTF-8.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

HEADER_PAASID = "x-tif-paasid"
HEADER_TIMESTAMP = "x-tif-timestamp"
HEADER_NONCE = "x-tif-nonce"
HEADER_SIGNATURE = "x-tif-signature"
HEADERS = (HEADER_PAASID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)

SIGNATURE_FIELD = "cainfo"  # envelope field that carries the SM2 body signature


def compute_signature(timestamp: str, token: str, nonce: str) -> str:
    """Lowercase hex SHA-256 of ``timestamp + token + nonce + timestamp`` (UTF-8)."""
    return hashlib.sha256(f"{timestamp}{token}{nonce}{timestamp}".encode("utf-8")).hexdigest()


def sign_headers(paasid: str, token: str, now: datetime | float | int | None = None,
                 nonce: str | None = None) -> dict[str, str]:
    """The four gateway headers for one request. ``now``: aware datetime or unix seconds (default: the
    current time); ``nonce``: default a fresh UUID4. Use a new nonce for every request, retries included."""
    if now is None:
        seconds = int(time.time())
    elif isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError(f"naive datetime {now!r}: use an aware datetime")
        seconds = int(now.timestamp())
    else:
        seconds = int(now)
    timestamp = str(seconds)
    nonce = nonce if nonce is not None else str(uuid.uuid4())
    return {
        HEADER_PAASID: paasid,
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: compute_signature(timestamp, token, nonce),
    }


def canonical_body(envelope: Mapping[str, Any]) -> bytes:
    """Bytes covered by the SM2 body signature: the envelope minus ``cainfo``, sorted-key compact JSON."""
    unsigned = {k: v for k, v in envelope.items() if k != SIGNATURE_FIELD}
    return json.dumps(unsigned, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")
