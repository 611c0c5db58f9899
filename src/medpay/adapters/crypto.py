"""Field encryption for personal data at rest, and blind indexes to look it up.

Identity numbers, names and credentials are stored as AES-256-GCM ciphertext (random 96-bit nonce,
the column name as associated data, so a value can't be moved to another column unnoticed). Lookups
by ID-card or card number go through an HMAC-SHA256 blind index computed with a separate key.
The key file is created on first use (mode 0600); production points ``MEDPAY_DATA_KEY_FILE`` at a
key managed outside the database's reach.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE_ENV = "MEDPAY_DATA_KEY_FILE"
DEFAULT_KEY_FILE = "var/data.key"
_VERSION = b"v1"


class FieldCipher:
    def __init__(self, master_key: bytes):
        if len(master_key) != 32:
            raise ValueError("master key must be 32 bytes")
        # two independent subkeys: one encrypts, one indexes
        self._aead = AESGCM(hmac.new(master_key, b"medpay-encrypt", hashlib.sha256).digest())
        self._index_key = hmac.new(master_key, b"medpay-index", hashlib.sha256).digest()

    def encrypt(self, plaintext: str, column: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, plaintext.encode("utf-8"), column.encode())
        return (_VERSION + b":" + base64.urlsafe_b64encode(nonce + ct)).decode("ascii")

    def decrypt(self, token: str, column: str) -> str:
        version, _, body = token.encode("ascii").partition(b":")
        if version != _VERSION:
            raise ValueError(f"unknown ciphertext version {version!r}")
        raw = base64.urlsafe_b64decode(body)
        return self._aead.decrypt(raw[:12], raw[12:], column.encode()).decode("utf-8")

    def blind_index(self, value: str, kind: str) -> str:
        return hmac.new(self._index_key, f"{kind}:{value.strip().upper()}".encode(), hashlib.sha256).hexdigest()


def load_or_create_secret(path: Path, what: str = "key") -> bytes:
    """32 secret bytes kept base64-encoded in ``path``; created there (0600, exclusive create) on first use.

    Safe when several processes start at once on a fresh ``var/``: the loser of the create race waits for
    the winner's bytes and uses them.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = os.urandom(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(base64.b64encode(secret) + b"\n")
            return secret
    text = path.read_bytes().strip()
    for _ in range(40):  # a concurrent creator may not have written yet
        if text:
            break
        time.sleep(0.05)
        text = path.read_bytes().strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"{path}: {what} must be 32 bytes, base64-encoded")
    return raw


@lru_cache(maxsize=4)
def _cipher_for(path: str) -> FieldCipher:
    return FieldCipher(load_or_create_secret(Path(path), "data key"))


def default_cipher() -> FieldCipher:
    return _cipher_for(os.environ.get(KEY_FILE_ENV) or DEFAULT_KEY_FILE)


def mask_certno(certno: str) -> str:
    """110101********1234 — for logs and screens."""
    if len(certno) <= 8:
        return "*" * len(certno)
    return certno[:6] + "*" * (len(certno) - 10) + certno[-4:]


def mask_name(name: str) -> str:
    """张*  /  欧阳** — keep the family name only."""
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1) if len(name) <= 3 else name[:2] + "*" * (len(name) - 2)
