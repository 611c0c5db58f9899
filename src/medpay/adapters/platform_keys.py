"""The platform's Ed25519 signing key (it signs e-certificate QR payloads).

Kept like the data key (``medpay.adapters.crypto``): a file holding the 32-byte raw private key, base64,
created on first use with mode 0600. ``MEDPAY_SIGNING_KEY_FILE`` points elsewhere (production: a key managed
outside the database's reach); default ``var/signing.key``. Every process of one deployment must load the same
file, or codes issued by one worker won't verify at another.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medpay.adapters.crypto import load_or_create_secret

KEY_FILE_ENV = "MEDPAY_SIGNING_KEY_FILE"
DEFAULT_KEY_FILE = "var/signing.key"


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """64 hex digits of the raw public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def parse_public_key_hex(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from 64 hex digits; ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError("must be a string of 64 hex digits")
    text = text.strip()
    if len(text) != 64:
        raise ValueError(f"must be 64 hex digits (32-byte Ed25519 public key), got {len(text)} characters")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError("must be 64 hex digits") from None
    return Ed25519PublicKey.from_public_bytes(raw)


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The key in ``path``; a new one is written there (0600, exclusive create) if the file doesn't exist.
    Any 32 random bytes are an Ed25519 private key, so the data key's file format serves here too."""
    return Ed25519PrivateKey.from_private_bytes(load_or_create_secret(path, "signing key"))


@lru_cache(maxsize=4)
def _key_for(path: str) -> Ed25519PrivateKey:
    return load_or_create_key(Path(path))


def default_signing_key() -> Ed25519PrivateKey:
    return _key_for(os.environ.get(KEY_FILE_ENV) or DEFAULT_KEY_FILE)
