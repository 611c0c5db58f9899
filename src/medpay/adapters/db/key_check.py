"""A process opens the keyring its database was written with, or refuses to start.

``open_keyring(engine)`` runs once per process at start (``build_platform``, ``medpay serve``, ``medpay demo
seed``, the CLI commands that read or write encrypted data), in one transaction that holds the database's write
lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: a lock on ``key_fingerprints``), so processes starting at once take
turns:

- the database has recorded fingerprints (``key_fingerprints``): every recorded key must be in the keyring
  with the same fingerprint; keys the keyring has beyond them (a rotation) are recorded; the recorded index key
  is the one lookups use;
- nothing recorded, but encrypted rows (a database from before this check): the keyring must decrypt a row of
  every encrypted column and reproduce a stored blind index before its fingerprints are recorded;
- nothing recorded, nothing encrypted (a fresh database): missing key files are created and recorded.

A key file is only created when the database can't need the key it would replace: never beside encrypted
rows or recorded fingerprints of that file's keys.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection, Engine, inspect, select

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.key_tables import KeyFingerprintRow
from medpay.adapters.db.payment_tables import PaymentMethodRow
from medpay.adapters.db.tables import InstitutionRow, PersonRow
from medpay.adapters.keyring import (
    DATA_FILE,
    PURPOSES,
    KeyFileKind,
    Keyring,
    KeyringError,
    create_key_file,
    ensure_purposes,
    key_files,
    load_keyring,
    remember_checked,
)

# Every encrypted column and the associated data it is encrypted under; add new ones here (a person's phone,
# a face template, a bank credential) so that a database holding only those is recognised too.
ENCRYPTED_COLUMNS = (
    (PersonRow.psn_name_enc, "psn_name"),
    (PersonRow.certno_enc, "certno"),
    (PersonRow.card_no_enc, "card_no"),
    (InstitutionRow.token_enc, "inst_token"),
    (PaymentMethodRow.payer_token_enc, "payer_token"),
)
# (encrypted value, its associated data, its blind index, the index's kind)
BLIND_INDEXES = ((PersonRow.certno_enc, "certno", PersonRow.certno_idx, "certno"),)

TABLE = KeyFingerprintRow.__table__


def open_keyring(engine: Engine, data_file=None, signing_file=None) -> Keyring:
    """The keyring of ``data_file`` and ``signing_file`` (default: the environment's), checked against the
    database of ``engine``; KeyringError, naming the file, the database and what to do, if it isn't the
    database's. Later ``default_keyring()`` (and ``default_cipher()``, ``default_signing_key()``) return it."""
    files = key_files(data_file, signing_file)
    where = engine.url.render_as_string(hide_password=True)
    with engine.begin() as conn:
        if not inspect(conn).has_table(TABLE.name):
            raise KeyringError(f"database {where} has no table {TABLE.name}: run `medpay db upgrade` first")
        if conn.dialect.name == "postgresql":  # SQLite: BEGIN IMMEDIATE already took the write lock
            conn.exec_driver_sql(f"LOCK TABLE {TABLE.name} IN SHARE ROW EXCLUSIVE MODE")
        recorded = {(r.purpose, r.key_id): r.fingerprint for r in conn.execute(select(TABLE))}
        encrypted = not recorded and _holds_encrypted_values(conn)
        missing = {kind: path for kind, path in files.items() if not path.exists()}
        for kind, path in missing.items():
            needed = [key for key in recorded if PURPOSES.get(key[0]) is kind]
            if needed or (kind is DATA_FILE and encrypted):
                raise KeyringError(_missing(kind, path, where, needed))
        ensure_purposes(files, {purpose for purpose, _ in recorded})
        # the files there are must pass before any missing one is created
        present = load_keyring({kind: path for kind, path in files.items() if kind not in missing})
        if recorded:
            index_key_id = _check_recorded(present, {key: fp for key, fp in recorded.items()
                                                     if PURPOSES.get(key[0]) not in missing}, where)
        else:
            index_key_id = _check_legacy(conn, present, where) if encrypted else None
        for kind, path in missing.items():
            create_key_file(kind, path)
        keyring = load_keyring(files)
        keyring = keyring.with_index_key(index_key_id or keyring.index_key().key_id)
        _record(conn, keyring, recorded)
    remember_checked(keyring)
    return keyring


def _what_to_do(kind: KeyFileKind) -> str:
    return (f"Point {kind.env} at the key file this database was written with (or run from the directory whose "
            f"var/ holds it), or MEDPAY_DATABASE_URL at the database these keys belong to. Nothing was changed.")


def _missing(kind: KeyFileKind, path, where: str, needed: list[tuple[str, str]]) -> str:
    what = ", ".join(f"{p} key {k}" for p, k in needed) or "encrypted data"
    why = ("a new key could not read what the old one wrote" if kind is DATA_FILE else
           "codes signed with a new key would not verify where the old one is used")
    return (f"the {kind.name} {path} does not exist, but database {where} already holds {what}: none was "
            f"created, because {why}. " + _what_to_do(kind))


def _check_recorded(keyring: Keyring, recorded: dict[tuple[str, str], str], where: str) -> str | None:
    for (purpose, key_id), fingerprint in sorted(recorded.items()):
        kind = PURPOSES.get(purpose)
        if kind is None:
            raise KeyringError(f"database {where} records a {purpose} key {key_id}, a purpose this version of "
                               "medpay does not know: upgrade medpay")
        key = keyring.get(purpose, key_id)
        if key is None:
            raise KeyringError(f"the {kind.name} {keyring.file_of(purpose)} does not hold {purpose} key {key_id} "
                               f"(fingerprint {fingerprint[:16]}…), which database {where} was written with: it is "
                               f"not this database's keyring. " + _what_to_do(kind))
        if key.fingerprint != fingerprint:
            raise KeyringError(f"{purpose} key {key_id} in the {kind.name} {key.source} is not the key database "
                               f"{where} was written with (fingerprint {key.fingerprint[:16]}… here, "
                               f"{fingerprint[:16]}… recorded). " + _what_to_do(kind))
    index = [key_id for purpose, key_id in recorded if purpose == "index"]
    if len(index) > 1:
        raise KeyringError(f"database {where} records {len(index)} index keys ({', '.join(index)}); its blind "
                           f"indexes were made with one: delete the rows of {TABLE.name} that are not it")
    return index[0] if index else None


def _holds_encrypted_values(conn: Connection) -> bool:
    return any(conn.execute(select(column).where(column.is_not(None)).limit(1)).first() is not None
               for column, _ in ENCRYPTED_COLUMNS)


def _check_legacy(conn: Connection, keyring: Keyring, where: str) -> str:
    """Data written before fingerprints were recorded: the keyring must decrypt a value of every encrypted
    column and reproduce a stored blind index (whose key it returns) before it may be recorded as this
    database's."""
    cipher = FieldCipher(keyring)
    for column, associated in ENCRYPTED_COLUMNS:
        value = conn.execute(select(column).where(column.is_not(None)).limit(1)).scalar()
        if value is None:
            continue
        try:
            cipher.decrypt(value, associated)
        except (InvalidTag, ValueError):  # another key, a key id not in the ring, a malformed value
            raise KeyringError(
                f"the {DATA_FILE.name} {keyring.file_of('data')} can't decrypt {column.table.name}.{column.name} "
                f"of database {where}: it is not the key this database was written with. "
                + _what_to_do(DATA_FILE)) from None
    for encrypted, associated, index, kind in BLIND_INDEXES:
        row = conn.execute(select(encrypted, index).where(index.is_not(None)).limit(1)).first()
        if row is None:
            continue
        plain = cipher.decrypt(row[0], associated)
        for key in keyring.of("index"):
            if FieldCipher(keyring.with_index_key(key.key_id)).blind_index(plain, kind) == row[1]:
                return key.key_id
        raise KeyringError(f"no index key in the {DATA_FILE.name} {keyring.file_of('index')} reproduces the "
                           f"blind indexes of database {where} ({index.table.name}.{index.name}): lookups would "
                           f"miss every stored row. " + _what_to_do(DATA_FILE))
    return keyring.index_key().key_id


def _record(conn: Connection, keyring: Keyring, recorded: dict[tuple[str, str], str]) -> None:
    """The keyring's keys the database does not know yet; of the index keys only the one in use."""
    in_use = keyring.index_key().key_id
    new = [{"purpose": k.purpose, "key_id": k.key_id, "fingerprint": k.fingerprint, "recorded_at": utcnow()}
           for k in keyring.keys
           if (k.purpose, k.key_id) not in recorded and (k.purpose != "index" or k.key_id == in_use)]
    if new:
        conn.execute(TABLE.insert(), new)
