"""The keyring: key files, key ids in ciphertexts, rotation, and the database refusing a process whose keys
are not the ones it was written with (fingerprints in ``key_fingerprints``)."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import stat
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from medpay.adapters.crypto import FieldCipher, cipher_of
from medpay.adapters.db import migrate
from medpay.adapters.db.engine import make_engine, session_factory
from medpay.adapters.db.key_check import open_keyring
from medpay.adapters.db.key_tables import KeyFingerprintRow
from medpay.adapters.db.tables import PersonRow
from medpay.adapters.keyring import (
    DATA_FILE,
    SIGNING_FILE,
    Keyring,
    KeyringError,
    add_key,
    create_key_file,
    key_files,
    load_keyring,
    parse_key_file,
)
from medpay.cli import app
from medpay.services import demo
from medpay.services.directory import Directory, PersonInput
from medpay.services.persons import PersonService
from tests.helpers_server import run_cli

# Made by the data-key code before the keyring (git 1d00991): a database in the field holds values like these.
LEGACY_MASTER = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
LEGACY_NAME = "v1:iac2CvVVAHxyTSvNxHUuAkahhWVALfI8eISVrxKWwwDe3u3Snw=="  # 王建国, column psn_name
LEGACY_CERTNO_INDEX = "b6b48fd82c5ca946316699eb6c4996311a66cc42694e78c0181b0841b5120446"  # 999901198001010011
WANG = demo.PERSONS[0]
H1 = demo.INSTITUTIONS[0][0]


def files_in(directory: Path) -> dict:
    return key_files(directory / "data.key", directory / "signing.key")


def recorded(db_url: str) -> dict[tuple[str, str], str]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return {(r.purpose, r.key_id): r.fingerprint for r in conn.execute(select(KeyFingerprintRow.__table__))}
    finally:
        engine.dispose()


@pytest.fixture
def migrated(db_url: str):
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def one_line(text_: str) -> str:
    return " ".join(text_.split())


# -- files and ciphertexts ----------------------------------------------------------------------------------


def test_values_written_before_the_keyring_still_decrypt_and_index_the_same(tmp_path: Path) -> None:
    path = tmp_path / "data.key"
    path.write_text(LEGACY_MASTER + "\n")
    cipher = FieldCipher(load_keyring({DATA_FILE: path}))
    assert cipher.decrypt(LEGACY_NAME, "psn_name") == "王建国"
    assert cipher.blind_index(WANG.certno, "certno") == LEGACY_CERTNO_INDEX
    assert cipher.encrypt("x", "c").startswith("v1:")  # a pre-keyring file keeps writing as it did
    assert FieldCipher(base64.b64decode(LEGACY_MASTER)).decrypt(LEGACY_NAME, "psn_name") == "王建国"


def test_a_new_key_file_is_private_and_names_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "var" / "data.key"
    assert create_key_file(DATA_FILE, path) and not create_key_file(DATA_FILE, path)  # the second finds it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = parse_key_file(DATA_FILE, path, path.read_text())
    assert [k.purpose for k in keys] == ["data", "index", "face"]
    cipher = FieldCipher(Keyring(keys, {DATA_FILE: path}))
    token = cipher.encrypt("张三", "psn_name")
    assert token.startswith(keys[0].key_id + ":") and cipher.decrypt(token, "psn_name") == "张三"
    secret = base64.b64encode(keys[0].secret).decode()
    assert secret not in keys[0].fingerprint and len(keys[0].fingerprint) == 64
    assert secret not in repr(keys[0])  # nothing prints a key
    with pytest.raises(ValueError, match="data key 'd-00000000'"):
        cipher.decrypt("d-00000000:" + token.partition(":")[2], "psn_name")
    assert list(tmp_path.joinpath("var").iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize("content, problem", [
    ("", "holds no key"),
    ("bm90IGEga2V5\n", "line 1: a key must be 32 bytes"),
    ("data d-1 " + base64.b64encode(b"k" * 32).decode() + " extra\n", "line 1: expected <purpose> <key id>"),
    ("signing s-1 " + base64.b64encode(b"k" * 32).decode() + "\n", "holds data or index or face keys, not 'signing'"),
    ("data D_1 " + base64.b64encode(b"k" * 32).decode() + "\n", "key id 'D_1'"),
])
def test_a_malformed_key_file_names_file_line_and_problem(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "data.key"
    with pytest.raises(KeyringError) as e:
        parse_key_file(DATA_FILE, path, content)
    assert str(e.value).startswith(str(path)) and problem in str(e.value)


def test_rotation_adds_a_newest_key_and_keeps_the_old_ones(tmp_path: Path) -> None:
    files = files_in(tmp_path)
    for kind, path in files.items():
        create_key_file(kind, path)
    before = FieldCipher(load_keyring(files))
    old = before.encrypt("李四", "psn_name")
    new_key = add_key("data", files)
    after = FieldCipher(load_keyring(files))
    assert after.decrypt(old, "psn_name") == "李四"
    assert after.encrypt("李四", "psn_name").startswith(new_key.key_id + ":")
    assert after.blind_index("X1", "certno") == before.blind_index("X1", "certno")  # the index key stays
    assert stat.S_IMODE(files[DATA_FILE].stat().st_mode) == 0o600
    signing = add_key("signing", files)
    assert load_keyring(files).newest("signing").key_id == signing.key_id
    with pytest.raises(KeyringError, match="lookups by the stored indexes would miss"):
        add_key("index", files)


# -- the database and its keys ------------------------------------------------------------------------------


def test_a_fresh_database_gets_new_keys_and_records_their_fingerprints(migrated, db_url: str, tmp_path: Path) -> None:
    files = files_in(tmp_path)
    keyring = open_keyring(migrated, *files.values())
    assert all(path.exists() for path in files.values())
    assert recorded(db_url) == {(k.purpose, k.key_id): k.fingerprint for k in keyring.keys}
    assert {p for p, _ in recorded(db_url)} == {"data", "index", "face", "signing"}
    again = open_keyring(migrated, *files.values())  # the next start: the same keys, nothing new
    assert [k.fingerprint for k in again.keys] == [k.fingerprint for k in keyring.keys]
    assert len(recorded(db_url)) == 4


def test_another_keyring_is_refused_naming_the_file_and_the_database(migrated, db_url: str, tmp_path: Path) -> None:
    open_keyring(migrated, *files_in(tmp_path / "a").values())
    before = recorded(db_url)
    other = files_in(tmp_path / "b")
    for kind, path in other.items():
        create_key_file(kind, path)
    with pytest.raises(KeyringError) as e:
        open_keyring(migrated, *other.values())
    message = str(e.value)
    assert str(other[DATA_FILE]) in message and migrated.url.render_as_string(hide_password=True) in message
    assert "MEDPAY_DATA_KEY_FILE" in message and "Nothing was changed" in message
    assert recorded(db_url) == before
    # the same key id with other bytes (a file edited by hand) is refused too
    path = tmp_path / "a" / "data.key"
    lines = path.read_text().splitlines()
    forged = [" ".join(line.split()[:2] + [base64.b64encode(os.urandom(32)).decode()]) if line.startswith("data ")
              else line for line in lines]
    path.write_text("\n".join(forged) + "\n")
    with pytest.raises(KeyringError, match="is not the key database .* was written with"):
        open_keyring(migrated, path, tmp_path / "a" / "signing.key")


def test_no_key_file_is_created_beside_a_database_that_holds_encrypted_data(migrated, db_url: str,
                                                                            tmp_path: Path) -> None:
    demo.seed(session_factory(migrated), FieldCipher(os.urandom(32)))  # rows, no fingerprints
    missing = files_in(tmp_path)
    with pytest.raises(KeyringError, match="does not exist, but database .* already holds encrypted data"):
        open_keyring(migrated, *missing.values())
    assert not missing[DATA_FILE].exists()
    assert recorded(db_url) == {}


def test_no_signing_key_is_created_beside_a_database_that_recorded_one(migrated, tmp_path: Path) -> None:
    files = files_in(tmp_path)
    keyring = open_keyring(migrated, *files.values())
    files[SIGNING_FILE].unlink()
    with pytest.raises(KeyringError) as e:
        open_keyring(migrated, *files.values())
    assert f"signing key {keyring.newest('signing').key_id}" in str(e.value)
    assert "MEDPAY_SIGNING_KEY_FILE" in str(e.value) and not files[SIGNING_FILE].exists()


def test_a_database_from_before_the_keyring_is_upgraded_once_its_key_decrypts_it(db_url: str,
                                                                                tmp_path: Path) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0004")
        _legacy_rows(engine, FieldCipher(base64.b64decode(LEGACY_MASTER)))  # v1: values, as 0004's code wrote them
        migrate.upgrade(engine)
        wrong = tmp_path / "wrong"
        wrong.mkdir()
        (wrong / "data.key").write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
        with pytest.raises(KeyringError, match="can't decrypt persons.psn_name_enc"):
            open_keyring(engine, *files_in(wrong).values())
        assert recorded(db_url) == {}
        (tmp_path / "data.key").write_text(LEGACY_MASTER + "\n")
        keyring = open_keyring(engine, *files_in(tmp_path).values())
        # the legacy file keeps its line and gets a first face key (a purpose newer than the file)
        assert {k for k in recorded(db_url)} == {("data", "v1"), ("index", "v1"), ("signing", keyring.newest(
            "signing").key_id), ("face", keyring.newest("face").key_id)}
        persons = PersonService(session_factory(engine), cipher_of(keyring))
        assert persons.person_info(H1, "02", WANG.certno)["baseinfo"]["psn_name"] == WANG.psn_name
        with pytest.raises(KeyringError, match="data key v1 in the data key file .* is not the key"):
            open_keyring(engine, wrong / "data.key", tmp_path / "signing.key")  # now checked by fingerprint
    finally:
        engine.dispose()


def _legacy_rows(engine, cipher: FieldCipher) -> None:
    """A region, an institution with its gateway token and a person, in the columns revision 0004 had (with SQL:
    today's models know columns 0004 didn't)."""
    from sqlalchemy import text

    code, name, level, paasid, token = demo.INSTITUTIONS[0]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO regions (admdvs, name) VALUES ('999901', '演示统筹区')"))
        conn.execute(text("INSERT INTO institutions (fixmedins_code, fixmedins_name, admdvs, level, paasid, token_enc) "
                          "VALUES (:c, :n, '999901', :l, :p, :t)"),
                     {"c": code, "n": name, "l": level, "p": paasid, "t": cipher.encrypt(token, "inst_token")})
        conn.execute(text(
            "INSERT INTO persons (psn_no, psn_name_enc, certno_enc, certno_idx, card_no_enc, card_no_idx, psn_cert_type, "
            "gend, brdy, naty, insutype, psn_type, psn_insu_stas, psn_insu_date, insuplc_admdvs, emp_name, "
            "cvlserv_flag, identities) VALUES (:psn_no, :name, :certno, :certno_idx, :card, :card_idx, '01', :gend, "
            ":brdy, '01', :insutype, :psn_type, '1', :insu_date, '999901', :emp, :cvl, '')"),
            {"psn_no": WANG.psn_no, "name": cipher.encrypt(WANG.psn_name, "psn_name"),
             "certno": cipher.encrypt(WANG.certno, "certno"), "certno_idx": cipher.blind_index(WANG.certno, "certno"),
             "card": cipher.encrypt(WANG.card_no, "card_no"), "card_idx": cipher.blind_index(WANG.card_no, "card_no"),
             "gend": WANG.gend, "brdy": WANG.brdy, "insutype": WANG.insutype, "psn_type": WANG.psn_type,
             "insu_date": WANG.psn_insu_date, "emp": WANG.emp_name, "cvl": WANG.cvlserv_flag})


def test_rotation_keeps_old_rows_readable_and_writes_new_ones_with_the_new_key(migrated, db_url: str,
                                                                               tmp_path: Path) -> None:
    files = files_in(tmp_path)
    first = open_keyring(migrated, *files.values())
    factory = session_factory(migrated)
    demo.seed(factory, cipher_of(first))
    before_rotation = files[DATA_FILE].read_text()
    new_key = add_key("data", files)
    rotated = open_keyring(migrated, *files.values())  # the restart after the rotation records it
    assert recorded(db_url)[("data", new_key.key_id)] == new_key.fingerprint
    cipher = cipher_of(rotated)
    Directory(factory, cipher).add_person(PersonInput("99990199999999", "新来者", "999901199001019999", "1",
                                                      date(1990, 1, 1), "310", "1101", "999901"))
    with factory() as s:
        names = dict(s.execute(select(PersonRow.psn_no, PersonRow.psn_name_enc)).all())
    assert names["99990199999999"].startswith(new_key.key_id + ":")
    assert names[WANG.psn_no].startswith(first.newest("data").key_id + ":")
    persons = PersonService(factory, cipher)
    assert persons.person_info(H1, "02", WANG.certno)["baseinfo"]["psn_name"] == WANG.psn_name
    assert persons.person_info(H1, "02", "999901199001019999")["baseinfo"]["psn_name"] == "新来者"
    # a host still holding the file from before the rotation may not start: it can't read the new rows
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "data.key").write_text(before_rotation)
    with pytest.raises(KeyringError, match=f"does not hold data key {new_key.key_id}"):
        open_keyring(migrated, stale / "data.key", files[SIGNING_FILE])


def _open_at_once(db_url: str, directory: str, barrier, results) -> None:
    barrier.wait()
    engine = make_engine(db_url)
    try:
        keyring = open_keyring(engine, Path(directory) / "data.key", Path(directory) / "signing.key")
        results.put(sorted((k.purpose, k.key_id, k.fingerprint) for k in keyring.keys))
    except Exception as e:  # reported to the test, which fails on it
        results.put(repr(e))
    finally:
        engine.dispose()


def test_processes_starting_at_once_on_a_fresh_database_share_one_new_keyring(migrated, db_url: str,
                                                                               tmp_path: Path) -> None:
    n, keys = 4, tmp_path / "keys"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open_at_once, args=(db_url, str(keys), barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(isinstance(o, list) for o in outcomes), outcomes
    assert all(o == outcomes[0] for o in outcomes)  # one keyring, the one on disk
    on_disk = load_keyring(files_in(keys))
    assert outcomes[0] == sorted((k.purpose, k.key_id, k.fingerprint) for k in on_disk.keys)
    assert recorded(db_url) == {(p, k): f for p, k, f in outcomes[0]}
    assert sorted(q.name for q in keys.iterdir()) == ["data.key", "signing.key"]  # and no temporary files


def test_a_key_file_that_cannot_be_created_is_named(migrated, tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("")
    path = tmp_path / "not-a-directory" / "data.key"
    with pytest.raises(KeyringError, match=f"the data key file {path} can't be created"):
        open_keyring(migrated, path, tmp_path / "signing.key")


def test_an_unmigrated_database_is_named(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(KeyringError, match="run `medpay db upgrade` first"):
            open_keyring(engine, *files_in(tmp_path).values())
    finally:
        engine.dispose()


# -- through the command line -------------------------------------------------------------------------------


def test_demo_seed_from_another_directory_is_refused_and_creates_no_key(db_url: str, tmp_path: Path) -> None:
    """The issue's case: seeding from another directory used to make a new var/data.key there and re-encrypt
    the demo persons under it, after which the server could no longer match them."""
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    first = run_cli(["demo", "seed", "--json"], db_url, here)
    assert first.returncode == 0, first.stderr
    other = run_cli(["demo", "seed", "--json"], db_url, there)
    message = one_line(other.stderr)
    assert other.returncode == 2 and other.stdout == "", other.stderr
    assert f"the data key file {there / 'data.key'} does not exist" in message
    assert make_engine(db_url).url.render_as_string(hide_password=True) in message
    assert "MEDPAY_DATA_KEY_FILE" in message and "Traceback" not in other.stderr
    assert not (there / "data.key").exists() and not (there / "var").exists()
    # with keys of its own there, it is refused all the same, and so is every command reading the data
    create_key_file(DATA_FILE, there / "data.key")
    create_key_file(SIGNING_FILE, there / "var" / "signing.key")
    for args in (["demo", "seed"], ["housekeeping"], ["ecert", "notify-url", H1, "--clear"],
                 ["ecert", "activate", "--psn-no", WANG.psn_no, "--certno", WANG.certno, "--consent"]):
        r = run_cli(args, db_url, there)
        assert r.returncode == 2 and "does not hold data key" in one_line(r.stderr), (args, r.stderr)
    # the right directory still finds the persons it wrote
    again = run_cli(["ecert", "activate", "--psn-no", WANG.psn_no, "--certno", WANG.certno, "--consent",
                     "--key-file", str(here / "device.key")], db_url, here)
    assert again.returncode == 0, again.stderr


def test_keys_show_and_rotate(db_url: str, tmp_path: Path) -> None:
    env = {"MEDPAY_DATABASE_URL": db_url, "MEDPAY_DATA_KEY_FILE": str(tmp_path / "data.key"),
           "MEDPAY_SIGNING_KEY_FILE": str(tmp_path / "signing.key"), "COLUMNS": "200"}
    runner = CliRunner()
    assert runner.invoke(app, ["demo", "seed"], env=env).exit_code == 0
    secrets_ = [line.split()[-1] for line in (tmp_path / "data.key").read_text().splitlines() if line[0] != "#"]
    shown = runner.invoke(app, ["keys", "show"], env=env)
    assert shown.exit_code == 0 and shown.stdout.count("recorded") == 4, shown.stdout
    assert not any(s in shown.stdout for s in secrets_)
    rotated = runner.invoke(app, ["keys", "rotate", "data"], env=env)
    assert rotated.exit_code == 0 and "Copy that file to every host" in one_line(rotated.stdout)
    assert "not recorded" in runner.invoke(app, ["keys", "show"], env=env).stdout
    assert runner.invoke(app, ["demo", "seed"], env=env).exit_code == 0  # the restart records it
    assert runner.invoke(app, ["keys", "show"], env=env).stdout.count("recorded") == 5
    refused = runner.invoke(app, ["keys", "rotate", "index"], env=env)
    assert refused.exit_code == 2 and "would miss" in refused.output
    assert len(json.loads(runner.invoke(app, ["demo", "seed", "--json"], env=env).stdout)["persons"]) > 0
    assert len(recorded(db_url)) == 5
