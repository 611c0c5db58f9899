"""The command line, run in-process with Typer's runner against each backend."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import column, insert, select, table, text
from typer.testing import CliRunner

from medpay.adapters.db import migrate
from medpay.adapters.db.base import UtcDateTime
from medpay.adapters.db.engine import make_engine
from medpay.adapters.db.schema import metadata
from medpay.cli import app

EXAMPLE = Path(__file__).parents[1] / "examples" / "inpatient-bill.json"
# the newest migration on disk: databases in the field are upgraded to it
LATEST_REVISION = max(p.name.split("_", 1)[0] for p in
                      (Path(migrate.__file__).parents[2] / "migrations" / "versions").glob("0*.py"))
runner = CliRunner()
SEEN = datetime(2026, 12, 1, 8, 0, 0, tzinfo=timezone.utc)
nonces = table("gateway_nonces", column("paasid"), column("nonce"), column("seen_at", UtcDateTime()))


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {"MEDPAY_DATABASE_URL": db_url, "MEDPAY_DATA_KEY_FILE": str(tmp_path / "data.key")}


def test_demo_seed_json_lists_what_a_his_integrator_needs(env) -> None:
    r = runner.invoke(app, ["demo", "seed", "--json"], env=env)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert len(data["institutions"]) >= 2
    for inst in data["institutions"]:
        assert {"fixmedins_code", "fixmedins_name", "admdvs", "paasid", "token"} <= set(inst)
    insutypes = {p["insutype"] for p in data["persons"]}
    assert {"310", "390"} <= insutypes
    assert any(p["family_payers"] for p in data["persons"])
    assert all({"psn_no", "certno", "insutype", "insuplc_admdvs"} <= set(p) for p in data["persons"])
    # the facts regions' rules need (issue 12)
    assert all({"brdy", "psn_insu_date", "retr_date", "pay_grade", "salary"} <= set(p) for p in data["persons"])
    assert {"general", "tcm", "grassroots"} <= {i["inst_kind"] for i in data["institutions"]}
    assert {"01", "02", "03"} <= {c["chrgitm_lv"] for c in data["catalog"]}
    # seeding twice changes nothing and still prints the same
    again = runner.invoke(app, ["demo", "seed", "--json"], env=env)
    assert json.loads(again.stdout) == data


def test_demo_seed_table_output(env) -> None:
    r = runner.invoke(app, ["demo", "seed"], env=env)
    assert r.exit_code == 0 and "H99990100001" in r.stdout and "demo_paas_h1" in r.stdout


def test_migrations_create_exactly_the_model_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision(engine)
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diffs == []
    finally:
        engine.dispose()


def test_ledger_check_passes_then_fails_after_tampering(env, db_url: str) -> None:
    assert runner.invoke(app, ["demo", "seed"], env=env).exit_code == 0
    ok = runner.invoke(app, ["ledger", "check"], env=env)
    assert ok.exit_code == 0 and "balanced" in ok.stdout
    engine = make_engine(db_url)
    with engine.begin() as conn:  # someone edits a balance behind the ledger's back
        conn.execute(text("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 "
                          "WHERE id = 'psnacct:99990100000001'"))
    engine.dispose()
    bad = runner.invoke(app, ["ledger", "check"], env=env)
    assert bad.exit_code == 1 and "violation" in bad.stdout


def test_quote_prints_setlinfo_and_setldetail_in_yuan(tmp_path: Path) -> None:
    r = runner.invoke(app, ["quote", str(EXAMPLE)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["setlinfo"]["hifp_pay"] == 2328.24 and out["setlinfo"]["policy_ver"] == "999901@2026.1"
    assert out["setldetail"][0]["fund_pay_type"] == "310100"


def test_quote_against_a_changed_policy_file(tmp_path: Path) -> None:
    from medpay.adapters.policy_files import BUILTIN_DIR

    changed = (BUILTIN_DIR / "999901-demo-2026.toml").read_text(encoding="utf-8").replace(
        '{ psn_classes = ["retired"], levels = ["3"], bands = [{ upto = "30000.00", ratio = "0.90" }',
        '{ psn_classes = ["retired"], levels = ["3"], bands = [{ upto = "30000.00", ratio = "0.80" }')
    policy = tmp_path / "rule-change.toml"
    policy.write_text(changed, encoding="utf-8")
    r = runner.invoke(app, ["quote", str(EXAMPLE), "--policy", str(policy)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["setlinfo"]["hifp_pay"] == 2069.54  # (3486.93 − 900) × 0.80


def test_quote_bad_bill_names_the_field(tmp_path: Path) -> None:
    bill = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    bill["lines"][1]["det_item_fee_sumamt"] = "3200.001"
    path = tmp_path / "bill.json"
    path.write_text(json.dumps(bill), encoding="utf-8")
    r = runner.invoke(app, ["quote", str(path)])
    assert r.exit_code == 2
    assert "lines[1].det_item_fee_sumamt" in r.output and "Traceback" not in r.output


def test_policy_check_names_file_key_and_problem(tmp_path: Path) -> None:
    assert runner.invoke(app, ["policy", "check"]).exit_code == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[policy]\nadmdvs = "12"\n', encoding="utf-8")
    r = runner.invoke(app, ["policy", "check", str(bad)])
    assert r.exit_code == 1 and "policy.admdvs" in r.stdout


def test_a_database_at_0001_upgrades_to_the_head_keeping_its_institutions(db_url: str) -> None:
    """Landed databases are at 0001: 0002 adds the notify URL column, 0003 the audit log, 0004 staff keys, 0005
    key fingerprints and SM2 key rotation, 0006 credentials (an institution keeps what its 02/03 numbers could do:
    assurance "counter"), 0007 activation, 0008 the nonce key with the timestamp and sign-in "required" (what every
    institution had), 0009 5204's shape ("rows") and fee lines' details, 0010 disease filings; every row is kept."""
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO regions (admdvs, name) VALUES ('999901', '演示统筹区')"))
            conn.execute(text("INSERT INTO institutions (fixmedins_code, fixmedins_name, admdvs, level, paasid) "
                              "VALUES ('H99990100001', '演示市第一人民医院', '999901', '3', 'demo_paas_h1')"))
            conn.execute(insert(nonces), [{"paasid": "demo_paas_h1", "nonce": "n-1", "seen_at": SEEN}])
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision(engine) == LATEST_REVISION
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT fixmedins_code, fixmedins_name, paasid, notify_url, id_assurance, sign_in "
                                     "FROM institutions")).all()
            assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == 0
            assert conn.execute(text("SELECT paasid, ts, nonce FROM gateway_nonces")).all() == [
                ("demo_paas_h1", int(SEEN.timestamp()), "n-1")]
        assert [tuple(r) for r in rows] == [("H99990100001", "演示市第一人民医院", "demo_paas_h1", None, "counter",
                                             "required")]
        with engine.begin() as conn:  # two seconds, one nonce: both kept at 0008, the newest when going back
            conn.execute(text("INSERT INTO gateway_nonces (paasid, ts, nonce, seen_at) VALUES "
                              "('demo_paas_h1', 1, 'n-1', :at)"), {"at": SEEN - timedelta(seconds=5)})
        cfg = migrate.alembic_config(engine)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0007")
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(select(nonces.c.paasid, nonces.c.nonce, nonces.c.seen_at))] == [
                ("demo_paas_h1", "n-1", SEEN)]
    finally:
        engine.dispose()


def test_0009_types_what_was_stored_before_it(db_url: str) -> None:
    """A settlement answered before 0009 kept crt_payb_lmt_amt null where no cap applied; a retry or 5203 must still
    answer a number (the amount paid). Catalog items get the list type their charge type implies."""
    engine = make_engine(db_url)
    old = {"setlinfo": {"setl_id": "S1"}, "setldetail": [
        {"fund_pay_type": "310100", "fund_payamt": 1200, "crt_payb_lmt_amt": 50000},
        {"fund_pay_type": "310200", "fund_payamt": 300, "crt_payb_lmt_amt": None}]}
    try:
        migrate.upgrade(engine, "0008")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO idempotency_keys (scope, key, request_hash, operation, response, created_at) "
                              "VALUES ('H1', 'M1', 'h', 'settle', :r, :at)"), {"r": json.dumps(old), "at": SEEN})
            conn.execute(text("INSERT INTO catalog_items (med_list_codg, name, chrgitm_lv, med_chrgitm_type) VALUES "
                              "('D', '药', '01', '09'), ('T', '饮片', '01', '10'), ('C', '床位', '01', '01')"))
        migrate.upgrade(engine)
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT response FROM idempotency_keys")).scalar_one()
            types = dict(conn.execute(text("SELECT med_list_codg, list_type FROM catalog_items")).all())
    finally:
        engine.dispose()
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert [d["crt_payb_lmt_amt"] for d in stored["setldetail"]] == [50000, 300]
    assert types == {"D": "101", "T": "102", "C": "201"}


def test_notify_url_is_registered_replaced_and_cleared(env, db_url: str) -> None:
    assert runner.invoke(app, ["demo", "seed"], env=env).exit_code == 0

    def registered() -> str | None:
        engine = make_engine(db_url)
        try:
            with engine.connect() as conn:
                return conn.execute(text("SELECT notify_url FROM institutions WHERE fixmedins_code = 'H99990100001'")).scalar_one()
        finally:
            engine.dispose()

    r = runner.invoke(app, ["ecert", "notify-url", "H99990100001", "http://127.0.0.1:9000/his/notify"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"fixmedins_code": "H99990100001", "notify_url": "http://127.0.0.1:9000/his/notify"}
    assert registered() == "http://127.0.0.1:9000/his/notify"
    bad = runner.invoke(app, ["ecert", "notify-url", "H99990100001", "his.example/notify"], env=env)
    assert bad.exit_code == 2 and "notify_url" in bad.output
    unknown = runner.invoke(app, ["ecert", "notify-url", "H00000000000", "http://his.example/n"], env=env)
    assert unknown.exit_code == 2 and "fixmedins_code" in unknown.output
    neither = runner.invoke(app, ["ecert", "notify-url", "H99990100001"], env=env)
    assert neither.exit_code == 2 and "--clear" in neither.output
    assert registered() == "http://127.0.0.1:9000/his/notify"  # refusals changed nothing
    assert runner.invoke(app, ["demo", "seed"], env=env).exit_code == 0  # seeding keeps it
    assert registered() == "http://127.0.0.1:9000/his/notify"
    cleared = runner.invoke(app, ["ecert", "notify-url", "H99990100001", "--clear"], env=env)
    assert cleared.exit_code == 0 and json.loads(cleared.stdout)["notify_url"] is None
    assert registered() is None
