"""The platform's Ed25519 signing key (it signs e-certificate and bill codes), and Ed25519 key helpers.

The signing key is the newest ``signing`` key of the keyring (``medpay.adapters.keyring``), kept in
``MEDPAY_SIGNING_KEY_FILE`` (default ``var/signing.key``; production: a key managed outside the database's
reach). Every process of one deployment must load the same file, or codes issued by one worker won't verify at
another: the database records the key's fingerprint and a process with another refuses to start.
Device and terminal keys are single keys in files of their own (``load_or_create_key``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medpay.adapters.crypto import load_or_create_secret
from medpay.adapters.keyring import SIGNING_FILE, Keyring, default_keyring

KEY_FILE_ENV = SIGNING_FILE.env
DEFAULT_KEY_FILE = SIGNING_FILE.default


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


@lru_cache(maxsize=8)
def signing_key_of(keyring: Keyring) -> Ed25519PrivateKey:
    """The newest signing key of ``keyring``."""
    return Ed25519PrivateKey.from_private_bytes(keyring.newest("signing").secret)


def default_signing_key() -> Ed25519PrivateKey:
    """The signing key of the process's keyring (``medpay.adapters.keyring.default_keyring``)."""
    return signing_key_of(default_keyring())
