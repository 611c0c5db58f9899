"""SM3withSM2 signatures (GB/T 32918, GM/T 0009) over request bodies, on top of the pure-Python ``gmssl``.

- Keys are hex: private key ``d`` 64 hex digits; public key ``x||y`` 128 hex digits, optionally prefixed
  with ``04`` (uncompressed point, 130 digits). Public keys are checked to lie on the curve.
- The signed digest is ``e = SM3(Z || M)`` with ``Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)`` and
  the default user id ``1234567812345678``.
- ``sign_sm2`` returns ``r||s`` as 128 lowercase hex digits. ``verify_sm2`` accepts ``r||s`` or a DER
  ``SEQUENCE{r, s}`` (what Java/BouncyCastle emits), each as hex or base64.

Two defects of ``gmssl`` 3.2 are avoided here: its random nonce comes from ``random.choice`` (we pass
``k`` from ``secrets``), and it strips a ``04`` prefix with ``str.lstrip`` (mangling keys whose x starts
with 0 or 4; we set the normalised key ourselves). gmssl does no range checks on r and s; we do.
Pure Python: a signature or a verification costs tens of milliseconds.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from Cryptodome.Util.asn1 import DerSequence
from gmssl import sm3
from gmssl.sm2 import CryptSM2, default_ecc_table

DEFAULT_USER_ID = "1234567812345678"

_P = int(default_ecc_table["p"], 16)
_A = int(default_ecc_table["a"], 16)
_B = int(default_ecc_table["b"], 16)
_N = int(default_ecc_table["n"], 16)
_HEX = frozenset("0123456789abcdefABCDEF")


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in _HEX for c in text)


def normalize_public_key(public_key_hex: str) -> str:
    """``x||y`` as 128 lowercase hex digits; ValueError unless it is a point of the SM2 curve."""
    key = public_key_hex.strip()
    if len(key) == 130 and key[:2] == "04":
        key = key[2:]
    if len(key) != 128 or not _is_hex(key):
        raise ValueError("SM2 public key must be 128 hex digits (x||y), optionally prefixed with 04")
    x, y = int(key[:64], 16), int(key[64:], 16)
    if not (x < _P and y < _P and (y * y - (x * x * x + _A * x + _B)) % _P == 0):
        raise ValueError("SM2 public key is not a point of the SM2 curve")
    return key.lower()


def _private_scalar(private_key_hex: str) -> int:
    key = private_key_hex.strip()
    if len(key) != 64 or not _is_hex(key):
        raise ValueError("SM2 private key must be 64 hex digits")
    d = int(key, 16)
    if not 1 <= d <= _N - 2:
        raise ValueError("SM2 private key out of range")
    return d


def _crypt(private_hex: str, public_hex: str) -> CryptSM2:
    crypt = CryptSM2(private_key=private_hex, public_key="")
    crypt.public_key = public_hex  # bypass gmssl's lstrip("04")
    return crypt


def public_key_from_private(private_key_hex: str) -> str:
    d = _private_scalar(private_key_hex)
    return _crypt("%064x" % d, "")._kg(d, default_ecc_table["g"])


def generate_keypair() -> tuple[str, str]:
    """(private key hex, public key hex x||y) from the OS random generator."""
    d = secrets.randbelow(_N - 2) + 1
    private_hex = "%064x" % d
    return private_hex, public_key_from_private(private_hex)


def _digest(public_hex: str, body: bytes, user_id: str) -> bytes:
    uid = user_id.encode("utf-8")
    if len(uid) * 8 > 0xFFFF:
        raise ValueError("SM2 user id too long")
    z_input = (len(uid) * 8).to_bytes(2, "big") + uid + bytes.fromhex(
        default_ecc_table["a"] + default_ecc_table["b"] + default_ecc_table["g"] + public_hex)
    z = bytes.fromhex(sm3.sm3_hash(list(z_input)))
    return bytes.fromhex(sm3.sm3_hash(list(z + body)))


def sign_sm2(private_key_hex: str, body_bytes: bytes, user_id: str = DEFAULT_USER_ID) -> str:
    """SM3withSM2 signature of ``body_bytes``: ``r||s`` as 128 lowercase hex digits."""
    private_hex = "%064x" % _private_scalar(private_key_hex)
    public_hex = public_key_from_private(private_hex)
    crypt = _crypt(private_hex, public_hex)
    e = _digest(public_hex, bytes(body_bytes), user_id)
    while True:
        k = "%064x" % (secrets.randbelow(_N - 1) + 1)
        signature = crypt.sign(e, k)  # None in the (negligible) degenerate cases: draw another k
        if signature is not None:
            return signature


def _decode_signature(signature: str) -> list[tuple[int, int]]:
    """Every (r, s) the text can mean: r||s or DER, as hex or base64."""
    text = signature.strip()
    blobs: list[bytes] = []
    if len(text) % 2 == 0 and _is_hex(text):
        blobs.append(bytes.fromhex(text))
    try:
        blobs.append(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        pass
    candidates = []
    for blob in blobs:
        if len(blob) == 64:
            candidates.append((int.from_bytes(blob[:32], "big"), int.from_bytes(blob[32:], "big")))
            continue
        try:
            seq = DerSequence().decode(blob, strict=True)
            if len(seq) == 2 and seq.hasOnlyInts() and seq[0] >= 0 and seq[1] >= 0:
                candidates.append((int(seq[0]), int(seq[1])))
        except (ValueError, TypeError, IndexError, EOFError):
            pass
    return candidates


def verify_sm2(public_key_hex: str, body_bytes: bytes, signature: str, user_id: str = DEFAULT_USER_ID) -> bool:
    """True when ``signature`` is a valid SM3withSM2 signature of ``body_bytes`` under the public key.

    A malformed or wrong signature gives False; a malformed public key raises ValueError."""
    public_hex = normalize_public_key(public_key_hex)
    if not isinstance(signature, str) or len(signature) > 1024:
        return False
    crypt = _crypt("", public_hex)
    e = _digest(public_hex, bytes(body_bytes), user_id)
    for r, s in _decode_signature(signature):
        if not (1 <= r < _N and 1 <= s < _N):
            continue
        try:
            if crypt.verify("%064x%064x" % (r, s), e):
                return True
        except (TypeError, ValueError):  # gmssl trips over the point at infinity
            continue
    return False
