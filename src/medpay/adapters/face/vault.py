"""Face templates encrypted at rest under envelope keys.

Each template gets a fresh 256-bit key; the embeddings are encrypted with it (AES-256-GCM, the person and the
model as associated data, so a template can't be moved to another person unnoticed). That key is stored wrapped
(AES-256-GCM) by the keyring's newest ``face`` key, whose id leads the wrapped value: ``<key id>:<base64url>``.
Rotation adds a ``face`` key and re-wraps every template's key (``rewrap``): 48 bytes a row, the templates
themselves untouched; the old key stays in the ring until no row names it.

A process that meets a key id it does not hold (a rotation done by another process since it started) reads its
key file again once, so verification goes on through a rotation without a restart.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medpay.adapters.keyring import Key


class VaultError(Exception):
    pass


class TemplateVault:
    def __init__(self, keys: Callable[[], list[Key]]):
        """``keys``: the keyring's ``face`` keys, oldest first — called again when a key id is missing."""
        self._load = keys
        self._lock = threading.Lock()
        self._keys = {k.key_id: k for k in keys()}
        self._newest = list(self._keys)[-1] if self._keys else None

    def reload(self) -> None:
        """Read the keys again (after a rotation added one)."""
        with self._lock:
            self._keys = {k.key_id: k for k in self._load()}
            self._newest = list(self._keys)[-1] if self._keys else None

    def _key(self, key_id: str) -> bytes:
        key = self._keys.get(key_id)
        if key is None:
            self.reload()
            key = self._keys.get(key_id)
        if key is None:
            raise VaultError(f"face key {key_id} is not in the keyring")
        return key.secret

    @property
    def newest_id(self) -> str:
        if self._newest is None:
            raise VaultError("the keyring holds no face key (medpay keys rotate face adds one)")
        return self._newest

    def seal(self, psn_no: str, model: str, embeddings: np.ndarray) -> tuple[bytes, str]:
        """(encrypted template, wrapped key) of ``embeddings`` (k × d float32)."""
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        body = np.ascontiguousarray(embeddings, dtype="<f4")
        shape = np.array(body.shape, dtype="<u2").tobytes()
        sealed = nonce + AESGCM(data_key).encrypt(nonce, shape + body.tobytes(), _aad(psn_no, model))
        return sealed, self._wrap(psn_no, data_key, self.newest_id)

    def open(self, psn_no: str, model: str, sealed: bytes, wrapped: str) -> np.ndarray:
        data_key = self._unwrap(psn_no, wrapped)
        plain = AESGCM(data_key).decrypt(sealed[:12], sealed[12:], _aad(psn_no, model))
        rows, cols = np.frombuffer(plain[:4], dtype="<u2")
        return np.frombuffer(plain[4:], dtype="<f4").reshape(int(rows), int(cols))

    def rewrap(self, psn_no: str, wrapped: str) -> str | None:
        """The template key wrapped by the newest face key, or None when it already is."""
        if wrapped.split(":", 1)[0] == self.newest_id:
            return None
        return self._wrap(psn_no, self._unwrap(psn_no, wrapped), self.newest_id)

    def _wrap(self, psn_no: str, data_key: bytes, key_id: str) -> str:
        nonce = os.urandom(12)
        wrapped = nonce + AESGCM(self._key(key_id)).encrypt(nonce, data_key, b"face-key|" + psn_no.encode())
        return f"{key_id}:{base64.urlsafe_b64encode(wrapped).decode('ascii')}"

    def _unwrap(self, psn_no: str, wrapped: str) -> bytes:
        key_id, _, body = wrapped.partition(":")
        raw = base64.urlsafe_b64decode(body)
        return AESGCM(self._key(key_id)).decrypt(raw[:12], raw[12:], b"face-key|" + psn_no.encode())


def _aad(psn_no: str, model: str) -> bytes:
    return f"face-template|{psn_no}|{model}".encode()
