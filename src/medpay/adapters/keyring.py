"""One keyring for the platform's secret keys: field encryption, lookup indexes and signing.

Every key has a **purpose** and a **key id**:

- ``data``: AES-256-GCM keys that encrypt personal data and credentials at rest. A ciphertext begins with the
  id of the key that made it (``medpay.adapters.crypto``); new values are written with the newest data key, so
  a key is rotated by adding a newer one while the older ones stay in the ring to read older rows.
- ``index``: HMAC-SHA256 keys of the blind indexes (lookups by ID-card or card number). A lookup only finds
  rows indexed with the same key, so a database pins the index key it was written with (see
  ``medpay.adapters.db.key_check``); an index key is never rotated by adding one (that would need every index
  recomputed, which nothing does yet).
- ``signing``: Ed25519 keys that sign e-certificate and bill codes; the newest signs.
- ``face``: AES-256 key-encryption keys of face templates (``medpay.adapters.face.vault``): each template has a
  key of its own, wrapped by the newest face key; rotating re-wraps every template's key.

Later purposes (bank credentials) are one more entry in ``PURPOSES``. A purpose added by an upgrade gets its
first key in the existing file when a process first opens the database (``ensure_purposes``).

Keys live in two files, one key a line, ``<purpose> <key id> <32 bytes, base64>``; the last line of a purpose
is its newest key. Each file is created on a fresh installation with a random key per purpose (mode 0600,
written whole under a temporary name and linked into place, so a process never reads half a file and of
several processes starting at once exactly one creates it):

- ``MEDPAY_DATA_KEY_FILE`` (default ``var/data.key``): data and index keys;
- ``MEDPAY_SIGNING_KEY_FILE`` (default ``var/signing.key``): signing keys.

A file from before the keyring holds one bare base64 line. In the data file that is the master key from which
the data and index keys ``v1`` are derived as they always were (its ``v1:`` ciphertexts decrypt unchanged); in
the signing file it is the Ed25519 key ``v1``. Adding a key to such a file keeps that line.

A process must load the keys its database was written with: ``medpay.adapters.db.key_check.open_keyring``
checks that at start and refuses otherwise. Fingerprints (HMAC-SHA256 of a fixed label under the key) name
a key without revealing it; the key itself is never printed or logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


class KeyringError(Exception):
    """A keyring that can't be used; the message names the file (and database) and what to do."""


@dataclass(frozen=True)
class KeyFileKind:
    """One of the keyring's files: where it is configured, what it holds, what a pre-keyring file meant."""

    name: str
    env: str
    default: str
    purposes: tuple[str, ...]  # created (one random key each) when the file is created


DATA_FILE = KeyFileKind("data key file", "MEDPAY_DATA_KEY_FILE", "var/data.key", ("data", "index", "face"))
SIGNING_FILE = KeyFileKind("signing key file", "MEDPAY_SIGNING_KEY_FILE", "var/signing.key", ("signing",))
KINDS = (DATA_FILE, SIGNING_FILE)
PURPOSES = {purpose: kind for kind in KINDS for purpose in kind.purposes}  # purpose → the file that holds it
ROTATABLE = frozenset({"data", "signing", "face"})  # not "index": stored indexes would stop matching

LEGACY_KEY_ID = "v1"
_KEY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
_FINGERPRINT_LABEL = b"medpay key fingerprint"
_HEADER = ("# medpay keyring: secret (mode 0600; keep it out of the database's backups). One key a line:\n"
           "# <purpose> <key id> <32 bytes, base64>. The last key of a purpose is its newest.\n")


@dataclass(frozen=True)
class Key:
    purpose: str
    key_id: str
    secret: bytes = field(repr=False)
    source: Path

    @property
    def fingerprint(self) -> str:
        """A one-way name of the key (64 hex digits): the same key always gives it; it reveals nothing of it."""
        label = b"%s|%s|%s" % (_FINGERPRINT_LABEL, self.purpose.encode(), self.key_id.encode())
        return hmac.new(self.secret, label, hashlib.sha256).hexdigest()


class Keyring:
    """Keys by purpose, oldest first. ``index_key_id``: the index key in use (the database's), else the first."""

    def __init__(self, keys: list[Key], files: dict[KeyFileKind, Path], index_key_id: str | None = None):
        self.keys = list(keys)
        self.files = dict(files)
        seen: set[tuple[str, str]] = set()
        for k in self.keys:
            if (k.purpose, k.key_id) in seen:
                raise KeyringError(f"{k.source}: {k.purpose} key {k.key_id} appears twice")
            seen.add((k.purpose, k.key_id))
        if index_key_id is not None and self.get("index", index_key_id) is None:
            raise KeyringError(f"index key {index_key_id} is not in the keyring")
        self.index_key_id = index_key_id

    @classmethod
    def from_master(cls, master_key: bytes, source: Path = Path("<memory>")) -> "Keyring":
        """The keyring of a pre-keyring data key: data and index keys ``v1`` derived from one 32-byte master."""
        return cls(_legacy_keys(DATA_FILE, master_key, source), {DATA_FILE: source})

    def of(self, purpose: str) -> list[Key]:
        return [k for k in self.keys if k.purpose == purpose]

    def get(self, purpose: str, key_id: str) -> Key | None:
        return next((k for k in self.keys if k.purpose == purpose and k.key_id == key_id), None)

    def newest(self, purpose: str) -> Key:
        keys = self.of(purpose)
        if not keys:
            raise KeyringError(f"{self.file_of(purpose)} holds no {purpose} key")
        return keys[-1]

    def index_key(self) -> Key:
        if self.index_key_id is not None:
            return self.get("index", self.index_key_id)  # type: ignore[return-value]  (checked in __init__)
        keys = self.of("index")
        if not keys:
            raise KeyringError(f"{self.file_of('index')} holds no index key")
        return keys[0]

    def with_index_key(self, key_id: str) -> "Keyring":
        return Keyring(self.keys, self.files, key_id)

    def file_of(self, purpose: str) -> Path:
        kind = PURPOSES[purpose]
        return self.files.get(kind) or key_file(kind)


# -- files -------------------------------------------------------------------------------------------------


def key_file(kind: KeyFileKind, path: str | Path | None = None) -> Path:
    """The file of ``kind``: ``path``, else its environment variable, else its default; absolute, so that a
    message names it unambiguously."""
    return Path(path or os.environ.get(kind.env) or kind.default).absolute()


def key_files(data_file: str | Path | None = None, signing_file: str | Path | None = None) -> dict[KeyFileKind, Path]:
    return {DATA_FILE: key_file(DATA_FILE, data_file), SIGNING_FILE: key_file(SIGNING_FILE, signing_file)}


def _legacy_keys(kind: KeyFileKind, raw: bytes, source: Path) -> list[Key]:
    if kind is DATA_FILE:  # the derivation every v1 ciphertext and index was made with
        return [Key("data", LEGACY_KEY_ID, hmac.new(raw, b"medpay-encrypt", hashlib.sha256).digest(), source),
                Key("index", LEGACY_KEY_ID, hmac.new(raw, b"medpay-index", hashlib.sha256).digest(), source)]
    return [Key(kind.purposes[0], LEGACY_KEY_ID, raw, source)]


def decode_key(text: str | bytes) -> bytes | None:
    """The 32 bytes ``text`` holds in base64, None if it holds anything else."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def _secret(text: str, path: Path, line_no: int) -> bytes:
    raw = decode_key(text)
    if raw is None:
        raise KeyringError(f"{path}, line {line_no}: a key must be 32 bytes, base64-encoded")
    return raw


def parse_key_file(kind: KeyFileKind, path: Path, text: str) -> list[Key]:
    keys: list[Key] = []
    for line_no, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) == 1:  # a pre-keyring file
            keys += _legacy_keys(kind, _secret(words[0], path, line_no), path)
            continue
        if len(words) != 3:
            raise KeyringError(f"{path}, line {line_no}: expected <purpose> <key id> <base64 key>")
        purpose, key_id, secret = words
        if purpose not in kind.purposes:
            raise KeyringError(f"{path}, line {line_no}: a {kind.name} holds {' or '.join(kind.purposes)} keys, "
                               f"not {purpose!r}")
        if not _KEY_ID.match(key_id):
            raise KeyringError(f"{path}, line {line_no}: key id {key_id!r} must be 1-31 of a-z, 0-9 and '-'")
        keys.append(Key(purpose, key_id, _secret(secret, path, line_no), path))
    if not keys:
        raise KeyringError(f"{path} holds no key")
    return keys


def read_key_file(kind: KeyFileKind, path: Path) -> list[Key]:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise KeyringError(f"{kind.name} {path} does not exist (set {kind.env} to where it is)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KeyringError(f"{kind.name} {path} can't be read: {e}") from None
    return parse_key_file(kind, path, text)


def _new_line(purpose: str) -> str:
    key_id = f"{purpose[0]}-{secrets.token_hex(4)}"
    return f"{purpose} {key_id} {base64.b64encode(os.urandom(32)).decode('ascii')}\n"


def _write_new(path: Path, text: str) -> Path:
    """``text`` in a new 0600 file beside ``path``, flushed to disk; its name is returned."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def create_key_file(kind: KeyFileKind, path: Path) -> bool:
    """A new file at ``path`` with a random key for each of ``kind``'s purposes, unless one exists already.
    True when this call created it. Several processes may race here: the file appears whole, and only once
    (``link`` fails when the name exists, unlike ``rename``)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _write_new(path, _HEADER + "".join(_new_line(p) for p in kind.purposes))
    except OSError as e:
        raise KeyringError(f"the {kind.name} {path} can't be created: {e.strerror or e}") from None
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        raise KeyringError(f"the {kind.name} {path} can't be created: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)


def add_key(purpose: str, files: dict[KeyFileKind, Path] | None = None) -> Key:
    """Rotate: append a new, newest key of ``purpose`` to its file (rewritten whole, atomically, mode 0600).
    Processes load their keys at start: restart them after copying the file to every host."""
    if purpose not in PURPOSES:
        raise KeyringError(f"unknown key purpose {purpose!r}: one of {', '.join(PURPOSES)}")
    if purpose not in ROTATABLE:
        raise KeyringError(f"{purpose} keys are not rotated by adding one: lookups by the stored indexes would "
                           "miss (they would all need recomputing)")
    kind = PURPOSES[purpose]
    path = (files or key_files())[kind]
    keys = read_key_file(kind, path)
    text = path.read_text(encoding="ascii")
    line = _new_line(purpose)
    while any(k.purpose == purpose and k.key_id == line.split()[1] for k in keys):  # ids are random: rare
        line = _new_line(purpose)
    tmp = _write_new(path, text + ("" if text.endswith("\n") else "\n") + line)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return parse_key_file(kind, path, line)[0]


def ensure_purposes(files: dict[KeyFileKind, Path], recorded: set[str]) -> list[Key]:
    """A first key for every purpose an existing file lacks (a purpose newer than the file), unless the database
    recorded keys of it (then the file is the wrong one, and the check says so). The keys added are returned."""
    added = []
    for kind, path in files.items():
        if not path.exists():
            continue
        have = {k.purpose for k in read_key_file(kind, path)}
        added += [add_key(p, files) for p in kind.purposes if p not in have and p not in recorded and p in ROTATABLE]
    return added


def load_keyring(files: dict[KeyFileKind, Path] | None = None) -> Keyring:
    """The keys in ``files`` (default: the environment's); KeyringError if a file is missing or malformed."""
    files = key_files() if files is None else files
    return Keyring([k for kind, path in files.items() for k in read_key_file(kind, path)], files)


# -- the process's keyring ----------------------------------------------------------------------------------

_CHECKED: dict[tuple[Path, ...], Keyring] = {}  # files → the keyring a database check bound (see key_check)


def remember_checked(keyring: Keyring) -> None:
    _CHECKED[tuple(keyring.files.values())] = keyring


@lru_cache(maxsize=8)
def _created_and_loaded(paths: tuple[Path, ...]) -> Keyring:
    files = dict(zip(KINDS, paths))
    for kind, path in files.items():
        if not path.exists():
            create_key_file(kind, path)
    return load_keyring(files)


def default_keyring() -> Keyring:
    """The keyring of the files the environment names. After ``open_keyring`` checked it against the database,
    that checked keyring; without a check (tests, tools with no database), the files as they are, created when
    missing. Every process that reads or writes the database checks first."""
    paths = tuple(key_files().values())
    return _CHECKED.get(paths) or _created_and_loaded(paths)
