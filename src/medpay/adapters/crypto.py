"""Field encryption for personal data at rest, and blind indexes to look it up.

Identity numbers, names and credentials are stored as AES-256-GCM ciphertext (random 96-bit nonce,
the column name as associated data, so a value can't be moved to another column unnoticed):
``<key id>:<base64url(nonce || ciphertext)>``. The key id names the keyring's data key that made it
(``medpay.adapters.keyring``): new values use the newest data key, older ones decrypt with theirs. Values
written before the keyring start with ``v1:``, the id of the key derived from the old single data key.
Lookups by ID-card or card number go through an HMAC-SHA256 blind index under the keyring's index key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medpay.adapters.keyring import DATA_FILE, Keyring, decode_key, default_keyring

KEY_FILE_ENV = DATA_FILE.env
DEFAULT_KEY_FILE = DATA_FILE.default


class FieldCipher:
    """Encrypts with the keyring's newest data key, decrypts with the key a ciphertext names, indexes with
    the keyring's index key. A 32-byte ``keys`` is a pre-keyring master key (keys ``v1``)."""

    def __init__(self, keys: bytes | Keyring):
        if not isinstance(keys, Keyring):
            if len(keys) != 32:
                raise ValueError("master key must be 32 bytes")
            keys = Keyring.from_master(bytes(keys))
        self._aeads = {k.key_id: AESGCM(k.secret) for k in keys.of("data")}
        self._newest = keys.newest("data").key_id
        self._prefix = self._newest.encode("ascii") + b":"
        self._index_key = keys.index_key().secret

    def encrypt(self, plaintext: str, column: str) -> str:
        nonce = os.urandom(12)
        ct = self._aeads[self._newest].encrypt(nonce, plaintext.encode("utf-8"), column.encode())
        return (self._prefix + base64.urlsafe_b64encode(nonce + ct)).decode("ascii")

    def decrypt(self, token: str, column: str) -> str:
        key_id, _, body = token.partition(":")
        aead = self._aeads.get(key_id)
        if aead is None:
            raise ValueError(f"ciphertext of data key {key_id!r}, which this keyring does not hold")
        raw = base64.urlsafe_b64decode(body)
        return aead.decrypt(raw[:12], raw[12:], column.encode()).decode("utf-8")

    def blind_index(self, value: str, kind: str) -> str:
        return hmac.new(self._index_key, f"{kind}:{value.strip().upper()}".encode(), hashlib.sha256).hexdigest()


def load_or_create_secret(path: Path, what: str = "key") -> bytes:
    """32 secret bytes kept base64-encoded in ``path``; created there (0600, exclusive create) on first use.
    For single keys outside the keyring (a device's or terminal's Ed25519 key, a benchmark's).

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
    raw = decode_key(text)
    if raw is None:
        raise ValueError(f"{path}: {what} must be 32 bytes, base64-encoded")
    return raw


@lru_cache(maxsize=8)
def cipher_of(keyring: Keyring) -> FieldCipher:
    """The cipher of ``keyring`` (built once per keyring)."""
    return FieldCipher(keyring)


def default_cipher() -> FieldCipher:
    """The cipher of the process's keyring (``medpay.adapters.keyring.default_keyring``)."""
    return cipher_of(default_keyring())


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
