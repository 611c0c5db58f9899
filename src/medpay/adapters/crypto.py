"""Field encryption for personal data at rest, and blind indexes to look it up.

Identity numbers, names and credentials are stored as AES-256-GCM ciphertext (random 96-bit nonce,
the column name as associated data, so a value can't be moved to another column unnoticed). Lookups
by ID-card or card number go through an HMAC-SHA256 blind index computed with a separate key.
The key file is created on first use (mode 0600); production points ``MEDPAY_DATA_KEY_FILE`` at a
key managed outside the database's reach.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
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


def _load_or_create_key(path: Path) -> bytes:
    if path.exists():
        raw = base64.b64decode(path.read_bytes().strip())
        if len(raw) != 32:
            raise ValueError(f"{path}: key must be 32 bytes, base64-encoded")
        return raw
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64encode(key))
    return key


@lru_cache(maxsize=4)
def _cipher_for(path: str) -> FieldCipher:
    return FieldCipher(_load_or_create_key(Path(path)))


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
