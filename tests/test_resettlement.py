"""Re-settlement after a policy correction (issue 12), on SQLite and PostgreSQL: plan, show, confirm; the admin
door's endpoints and the CLI.

The correction: the demo policy's employee outpatient pooling (职工门诊统筹) pays level-3 in-service patients 60 %
instead of 50 % (same dates, version 2026.1-fix1). Its yearly cap is 3000.00 of fund payments and its deductible
500.00 a year, so one person's three bills show replay at work:

- S0, 20 Feb (outside the period), 500.00 in scope: the deductible takes all of it, the fund pays 0 under either.
- S1, 10 Mar, 5000.00 in scope, deductible already met: fund 50 % = 2500.00 → 60 % = 3000.00 (+500.00; the cap
  is now full). The patient paid 2500.00 (account 1500.00, cash 1000.00) and is owed 500.00 back.
- S2, 10 Mar, 2000.00: the cap had 500.00 room (fund 500.00); after S1's recomputation it has none → 0 (−500.00).
  Without replaying S1's new deltas it would still show 500.00 room: the difference proves the replay.
- S3, 10 Mar, settled and cancelled: not in the run. A retired person's bill (ratio unchanged): in the run, no change.
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from medpay.adapters.db.audit_tables import AuditEventRow
from medpay.adapters.db.ledger_store import LedgerStore
from medpay.adapters.db.ledger_tables import LedgerTransferRow
from medpay.adapters.db.resettlement_tables import ResettlementLineRow, ResettlementRunRow
from medpay.adapters.policy_files import builtin_policies
from medpay.domain.policy import parse_policy
from medpay.domain.posting import fund_account, institution_cash, institution_fund
from medpay.domain.resettlement import patient_adjustment
from medpay.services import demo
from medpay.services.errors import Conflict, Invalid, NotFound, ServiceError
from medpay.services.resettlement import ResettlementService
from medpay.services.settlement import SettlementService
from tests.builders import DEMO, DEMO_PATH, demo_doc
from tests.test_settlement_service import BLOOD, EMP, H1, RETIRED, cancel, ledger_clean, line, settle, snapshot
from tests.test_settlement_service import balance_of as balance

FUND = fund_account("999901", "310100").id
MARCH = (date(2026, 3, 1), date(2026, 3, 31))


class Clock:
    """A clock that can be set; every reading is one second after the one before."""

    def __init__(self, start: datetime):
        self.at = start
        self._lock = threading.Lock()

    def set(self, moment: datetime) -> None:
        self.at = moment

    def __call__(self) -> datetime:
        with self._lock:
            self.at += timedelta(seconds=1)
            return self.at


def corrected_policy(version: str = "2026.1-fix1", ratio: str = "0.60", **head):
    doc = demo_doc()
    doc["policy"].update(version=version, **head)
    tier = next(t for t in doc["tiers"] if t["code"] == "emp_outpatient")
    tier["ratios"] = [r if r != {"levels": ["3"], "ratio": "0.50"} else {"levels": ["3"], "ratio": ratio}
                      for r in tier["ratios"]]
    return parse_policy(doc, f"corrected-{version}.toml")


CORRECTED = corrected_policy()


@pytest.fixture
def world(session_factory, cipher):
    demo.seed(session_factory, cipher)
    clock = Clock(datetime(2026, 2, 20, 1, 0, tzinfo=timezone.utc))
    svc = SettlementService(session_factory, builtin_policies(), cipher=cipher, clock=clock)
    resettle = ResettlementService(session_factory, cipher, clock=clock)
    ids = {}

    def bill(name: str, psn_no: str, count: int) -> None:
        v = svc.register_visit(H1, psn_no, "11")
        svc.upload_fees(H1, v.mdtrt_id, [line("1", BLOOD, count, "250.00", f"{count * 250}.00")])
        ids[name] = settle(svc, H1, f"MSG-{name}", v.mdtrt_id)["setlinfo"]

    bill("S0", EMP, 2)
    clock.set(datetime(2026, 3, 10, 1, 0, tzinfo=timezone.utc))
    bill("S1", EMP, 20)
    bill("S2", EMP, 8)
    bill("S3", EMP, 1)
    cancel(svc, H1, "MSG-S3-C", ids["S3"]["setl_id"])
    bill("S4", RETIRED, 4)
    return svc, resettle, ids, clock


def accumulators(svc: SettlementService, psn_no: str = EMP) -> dict[str, int]:
    return svc.accumulators(psn_no, 2026)


def transfer_count(svc: SettlementService) -> int:
    with svc.factory() as s:
        return s.scalar(select(func.count()).select_from(LedgerTransferRow))


def run_rows(svc: SettlementService) -> tuple[int, int]:
    with svc.factory() as s:
        return (s.scalar(select(func.count()).select_from(ResettlementRunRow)),
                s.scalar(select(func.count()).select_from(ResettlementLineRow)))


def refused(svc, error, field, call):
    before, runs = snapshot(svc), run_rows(svc)
    with pytest.raises(ServiceError) as info:
        call()
    assert type(info.value) is error and info.value.field == field, info.value
    assert snapshot(svc) == before and run_rows(svc) == runs
    return info.value


def test_the_stored_bills_are_what_the_docstring_says(world):
    svc, _r, ids, _c = world
    assert [ids[k]["hifp_pay"] for k in ("S0", "S1", "S2", "S4")] == [0, 250000, 50000, 30000]
    assert (ids["S1"]["acct_pay"], ids["S1"]["psn_cash_pay"]) == (150000, 100000)
    assert accumulators(svc)["emp_otp.fund"] == 300000


def test_plan_lists_the_periods_standing_settlements_with_their_differences_and_writes_only_the_run(world):
    svc, resettle, ids, _clock = world
    before = snapshot(svc)
    run = resettle.plan("999901", *MARCH, CORRECTED, "王经办")
    assert snapshot(svc) == before  # nothing but the run: no money, no accumulators, no settlement touched
    assert run_rows(svc) == (1, 3)
    assert run["status"] == "planned" and run["policy_old"] == ["999901@2026.1"]
    assert run["policy_new"] == "999901@2026.1-fix1" and run["planned_by"] == "王经办"
    by_id = {ln["setl_id"]: ln for ln in run["lines"]}
    assert set(by_id) == {ids[k]["setl_id"] for k in ("S1", "S2", "S4")}  # not S0 (February), not S3 (cancelled)

    s1, s2, s4 = (by_id[ids[k]["setl_id"]] for k in ("S1", "S2", "S4"))
    assert s1["changes"] == {"hifp_pay": {"old": 250000, "new": 300000, "diff": 50000},
                             "fund_pay_sumamt": {"old": 250000, "new": 300000, "diff": 50000},
                             "psn_part_amt": {"old": 250000, "new": 200000, "diff": -50000}}
    assert s1["funds"] == {"310100": {"old": 250000, "new": 300000, "diff": 50000}}
    assert (s1["fund_diff"], s1["patient_diff"]) == (50000, -50000)
    assert s1["year_deltas_diff"] == {"emp_otp.fund": 50000}
    # S2 under the cap S1 now fills: the fund pays nothing; 5000 fen room at 50 % covered 100000, none now
    assert s2["changes"] == {"hifp_pay": {"old": 50000, "new": 0, "diff": -50000},
                             "fund_pay_sumamt": {"old": 50000, "new": 0, "diff": -50000},
                             "psn_part_amt": {"old": 150000, "new": 200000, "diff": 50000}}
    assert (s2["fund_diff"], s2["patient_diff"]) == (-50000, 50000)
    assert s2["year_deltas_diff"] == {"emp_otp.fund": -50000, "emp_otp.counted": -100000, "emp_otp.elig": -100000}
    assert s4["changes"] == {} and s4["fund_diff"] == 0 and s4["year_deltas_diff"] == {}
    s = run["summary"]
    assert (s["settlements"], s["changed"], s["persons"]) == (3, 2, 2)
    assert (s["fund_diff"], s["patient_diff"], s["by_fund"], s["skipped"]) == (0, 0, {"310100": 0}, [])  # +500 −500
    assert s["by_field"] == {"hifp_pay": 0, "fund_pay_sumamt": 0, "psn_part_amt": 0}
    assert resettle.show(run["run_id"]) == run
    assert [r["run_id"] for r in resettle.list_runs("999901")] == [run["run_id"]]


def test_the_same_rules_under_a_new_version_change_nothing(world):
    _svc, resettle, _ids, _c = world
    same = corrected_policy("2026.1-same", "0.50")
    run = resettle.plan("999901", *MARCH, same, "王经办")
    assert all(ln["changes"] == {} and ln["year_deltas_diff"] == {} and ln["visit_deltas_diff"] == {}
               for ln in run["lines"])
    assert run["summary"]["changed"] == 0


def test_confirm_posts_balanced_adjustments_moves_accumulators_audits_and_only_once(world):
    svc, resettle, ids, _clock = world
    run = resettle.plan("999901", *MARCH, CORRECTED, "王经办")
    acc_before = accumulators(svc)
    fund_before, inst_before = balance(svc, FUND), balance(svc, institution_fund(H1).id)
    cash_before, transfers_before = balance(svc, institution_cash(H1).id), transfer_count(svc)
    seen: list[tuple[int, int]] = []
    posted = resettle.confirm(run["run_id"], "张经办", progress=lambda done, total: seen.append((done, total)))
    assert posted["status"] == "posted" and posted["posted_by"] == "张经办"
    assert seen[-1] == (3, 3)
    assert ledger_clean(svc)
    # S1: fund → institution 500.00, institution → patient 500.00; S2 the other way: four transfers, nets zero
    assert transfer_count(svc) == transfers_before + 4
    with svc.factory() as s:
        by_ref = {t.code: t.amount for t in LedgerStore(s).transfers_by_ref(ids["S1"]["setl_id"])
                  if t.code.startswith("resettle")}
        assert by_ref == {"resettle_fund": 50000, "resettle_refund": 50000}
        by_ref = {t.code: t.amount for t in LedgerStore(s).transfers_by_ref(ids["S2"]["setl_id"])
                  if t.code.startswith("resettle")}
        assert by_ref == {"resettle_fund_back": 50000, "resettle_collect": 50000}
    assert (balance(svc, FUND), balance(svc, institution_fund(H1).id), balance(svc, institution_cash(H1).id)) == (
        fund_before, inst_before, cash_before)
    assert balance(svc, patient_adjustment(H1, EMP).id) == 0  # owed 500.00 back on S1, owes 500.00 on S2
    acc = accumulators(svc)
    assert acc["emp_otp.fund"] == 300000
    moved = ("emp_otp.counted", "emp_otp.elig")  # S2's: 100000 fewer counted under the full cap
    assert {k: acc[k] - acc_before[k] for k in moved} == {k: -100000 for k in moved}
    assert {k: v for k, v in acc.items() if k not in moved} == {k: v for k, v in acc_before.items() if k not in moved}
    with svc.factory() as s:
        events = list(s.scalars(select(AuditEventRow).where(AuditEventRow.action.like("resettle.%"))
                                .order_by(AuditEventRow.id)))
    assert [(e.actor_kind, e.actor, e.action, e.psn_no) for e in events] == [
        ("staff", "张经办", "resettle.adjust", EMP), ("staff", "张经办", "resettle.adjust", EMP),
        ("staff", "张经办", "resettle.confirm", "")]
    assert all(e.ref.startswith(run["run_id"]) for e in events)
    # the institution's answers stay as they were
    assert svc.settlement(H1, ids["S1"]["setl_id"])["setlinfo"]["hifp_pay"] == 250000

    # a second confirmation answers the first and posts nothing
    after = snapshot(svc)
    again = resettle.confirm(run["run_id"], "李经办")
    assert again == posted and snapshot(svc) == after

    # cancelling the adjusted settlements takes back the adjustments with them; accumulators as after S0 alone
    cancel(svc, H1, "MSG-S2-C", ids["S2"]["setl_id"])
    cancel(svc, H1, "MSG-S1-C", ids["S1"]["setl_id"])
    assert ledger_clean(svc)
    assert {k: v for k, v in accumulators(svc).items() if v} == {"emp_otp.dedc": 50000}
    assert balance(svc, patient_adjustment(H1, EMP).id) == 0
    assert abs(balance(svc, FUND) - fund_before) == 250000 + 50000  # what S1 and S2 stood at before the run


def test_a_run_planned_before_a_newer_settlement_or_run_is_stale(world):
    svc, resettle, _ids, _clock = world
    first = resettle.plan("999901", *MARCH, CORRECTED, "王经办")
    second = resettle.plan("999901", *MARCH, CORRECTED, "王经办")
    resettle.confirm(second["run_id"], "张经办")
    err = refused(svc, Conflict, "run_id", lambda: resettle.confirm(first["run_id"], "张经办"))
    assert "stale" in str(err)
    # planned again after the adjustment: compared with what the first run left, nothing more to do
    third = resettle.plan("999901", *MARCH, CORRECTED, "王经办")
    assert third["summary"]["changed"] == 0
    # a new settlement of one of its persons after planning makes it stale too
    v = svc.register_visit(H1, RETIRED, "11")
    svc.upload_fees(H1, v.mdtrt_id, [line("1", BLOOD, 1, "250.00", "250.00")])
    settle(svc, H1, "MSG-S5", v.mdtrt_id)
    refused(svc, Conflict, "run_id", lambda: resettle.confirm(third["run_id"], "张经办"))
    assert resettle.show(third["run_id"])["status"] == "planned"


def test_bad_input_is_refused_naming_the_field_and_changes_nothing(world):
    svc, resettle, _ids, _clock = world
    shanghai = next(p for p in builtin_policies() if p.admdvs == "310000")
    refused(svc, Invalid, "policy.admdvs", lambda: resettle.plan("999901", *MARCH, shanghai, "王"))
    refused(svc, Invalid, "to", lambda: resettle.plan("999901", date(2026, 3, 31), date(2026, 3, 1), CORRECTED, "王"))
    refused(svc, Invalid, "from", lambda: resettle.plan("999901", date(2025, 12, 1), date(2026, 3, 31), CORRECTED, "王"))
    limited = corrected_policy("2026.1-fix2", effective_to=date(2026, 3, 15))
    refused(svc, Invalid, "to", lambda: resettle.plan("999901", *MARCH, limited, "王"))
    refused(svc, Invalid, "from", lambda: resettle.plan("999901", date(2026, 4, 1), date(2026, 4, 30), CORRECTED, "王"))
    refused(svc, Invalid, "policy.version", lambda: resettle.plan("999901", *MARCH, DEMO, "王"))
    refused(svc, Invalid, "region", lambda: resettle.plan("99990", *MARCH, CORRECTED, "王"))
    refused(svc, Invalid, "planned_by", lambda: resettle.plan("999901", *MARCH, CORRECTED, " "))
    refused(svc, NotFound, "run_id", lambda: resettle.confirm("123", "张经办"))
    run = resettle.plan("999901", *MARCH, CORRECTED, "王经办")
    refused(svc, Invalid, "staff", lambda: resettle.confirm(run["run_id"], ""))
    with pytest.raises(NotFound) as info:
        resettle.show("nope")
    assert info.value.field == "run_id"


# ---------------------------------------------------------------------------------------------- the admin door


def test_the_admin_endpoints_plan_show_and_confirm_with_a_staff_key(world, db_url, cipher):
    from medpay.api.app import create_app
    from medpay.api.platform import build_platform
    from medpay.services.staff import StaffKeys

    svc, _resettle, ids, _clock = world
    platform = build_platform(db_url, policies=[*builtin_policies(), CORRECTED], cipher=cipher)
    key = StaffKeys(platform.factory).create("张经办")
    auth = {"Authorization": f"Bearer {key}"}
    body = {"region": "999901", "from": "2026-03-01", "to": "2026-03-31", "policy_id": CORRECTED.policy_id}
    try:
        with TestClient(create_app(platform)) as c:
            assert c.post("/api/v1/admin/resettlements", json=body).status_code == 401
            r = c.post("/api/v1/admin/resettlements", json={**body, "policy_id": "999901@nope"}, headers=auth)
            assert r.status_code == 422 and r.json()["error"]["field"] == "policy_id", r.text
            r = c.post("/api/v1/admin/resettlements", json={**body, "to": "2026-02-30"}, headers=auth)
            assert r.status_code == 422 and r.json()["error"]["field"] == "to", r.text
            r = c.post("/api/v1/admin/resettlements", json={**body, "from": "2025-12-01"}, headers=auth)
            assert r.status_code == 422 and r.json()["error"]["field"] == "from", r.text
            r = c.post("/api/v1/admin/resettlements", json=body, headers=auth)
            assert r.status_code == 201, r.text
            run = r.json()
            assert run["planned_by"] == "张经办" and run["summary"]["fund_diff"] == 0
            s1 = next(ln for ln in run["lines"] if ln["setl_id"] == ids["S1"]["setl_id"])
            assert s1["changes"]["hifp_pay"] == {"old": 2500, "new": 3000, "diff": 500}  # yuan
            assert c.get(f"/api/v1/admin/resettlements/{run['run_id']}").status_code == 401
            shown = c.get(f"/api/v1/admin/resettlements/{run['run_id']}", headers=auth)
            assert shown.status_code == 200 and shown.json() == run
            assert c.get("/api/v1/admin/resettlements/999", headers=auth).status_code == 404
            listed = c.get("/api/v1/admin/resettlements", params={"region": "999901"}, headers=auth)
            assert [x["run_id"] for x in listed.json()] == [run["run_id"]]
            assert c.post(f"/api/v1/admin/resettlements/{run['run_id']}/confirm").status_code == 401
            done = c.post(f"/api/v1/admin/resettlements/{run['run_id']}/confirm", headers=auth)
            assert done.status_code == 200 and done.json()["status"] == "posted", done.text
            again = c.post(f"/api/v1/admin/resettlements/{run['run_id']}/confirm", headers=auth)
            assert again.json() == done.json()
            paths = c.get("/openapi.json").json()["paths"]
            assert paths["/api/v1/admin/resettlements"]["post"]["summary"].startswith("重新结算")
    finally:
        platform.engine.dispose()
    assert ledger_clean(svc)


# ---------------------------------------------------------------------------------------------- the CLI


def test_the_cli_plans_shows_and_confirms(world, db_url, tmp_path, monkeypatch, cipher):
    from medpay.cli import app

    svc, _resettle, ids, _clock = world
    # the CLI opens the database's keyring: hand it the test's cipher instead
    monkeypatch.setattr("medpay.adapters.db.key_check.open_keyring", lambda engine: None)
    monkeypatch.setattr("medpay.adapters.crypto.cipher_of", lambda keyring: cipher)
    text = DEMO_PATH.read_text(encoding="utf-8")
    for old, new in (('version = "2026.1"', 'version = "2026.1-fix1"'),
                     ('  { levels = ["3"], ratio = "0.50" },', '  { levels = ["3"], ratio = "0.60" },')):
        assert text.count(old) == 1
        text = text.replace(old, new)
    path = tmp_path / "corrected.toml"
    path.write_text(text, encoding="utf-8")
    runner = CliRunner()
    env = {"MEDPAY_DATABASE_URL": db_url, "COLUMNS": "200"}
    r = runner.invoke(app, ["resettle", "plan", "--region", "999901", "--from", "2026-03-01", "--to", "2026-03-31",
                            "--policy", str(path), "--staff", "王经办"], env=env)
    assert r.exit_code == 0, r.output
    assert ids["S1"]["setl_id"] in r.stdout and "hifp_pay" in r.stdout and "2500.00" in r.stdout
    run_id = r.stdout.split("run id: ")[1].split()[0]
    shown = runner.invoke(app, ["resettle", "show", run_id], env=env)
    assert shown.exit_code == 0 and "planned" in shown.stdout
    listed = runner.invoke(app, ["resettle", "list"], env=env)
    assert listed.exit_code == 0 and run_id in listed.stdout
    bad = runner.invoke(app, ["resettle", "plan", "--region", "999901", "--from", "2026-03-32", "--to", "2026-03-31",
                              "--policy", str(path)], env=env)
    assert bad.exit_code == 2 and "from" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["resettle", "plan", "--region", "999901", "--from", "2026-04-01", "--to", "2026-04-30",
                              "--policy", str(path)], env=env)
    assert bad.exit_code == 2 and "from:" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["resettle", "confirm", "42", "--staff", "张经办"], env=env)
    assert bad.exit_code == 2 and "run_id:" in bad.output
    done = runner.invoke(app, ["resettle", "confirm", run_id, "--staff", "张经办"], env=env)
    assert done.exit_code == 0, done.output
    assert "posted by 张经办" in done.stdout
    assert ledger_clean(svc)


# ---------------------------------------------------------------------------------------------- migration 0018


def test_0018_adds_the_run_tables_and_goes_back(db_url):
    from sqlalchemy import inspect

    from medpay.adapters.db import migrate
    from medpay.adapters.db.engine import make_engine

    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0017")
        assert "resettlement_runs" not in inspect(engine).get_table_names()
        migrate.upgrade(engine, "0018")
        assert {"resettlement_runs", "resettlement_lines"} <= set(inspect(engine).get_table_names())
        cfg = migrate.alembic_config(engine)
        with engine.begin() as conn:
            from alembic import command

            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0017")
        assert not {"resettlement_runs", "resettlement_lines"} & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_interim_settlements_are_re_settled_with_their_visit_accumulators(world):
    """An admission settled twice (interim, then final): both are in the run, and the final one is recomputed on
    what the interim one left of the visit's deductible — unchanged rules give no difference at all."""
    svc, resettle, ids, _clock = world
    v = svc.register_visit(H1, EMP, "21")
    svc.upload_fees(H1, v.mdtrt_id, [line("1", BLOOD, 2, "250.00", "500.00")])
    interim = settle(svc, H1, "MSG-IP-1", v.mdtrt_id, mid_setl_flag=True)["setlinfo"]
    svc.upload_fees(H1, v.mdtrt_id, [line("2", BLOOD, 8, "250.00", "2000.00")])
    svc.discharge(H1, v.mdtrt_id)
    final = settle(svc, H1, "MSG-IP-2", v.mdtrt_id)["setlinfo"]
    assert (interim["act_pay_dedc"], final["act_pay_dedc"]) == (50000, 40000)  # 900.00 a visit, level 3
    run = resettle.plan("999901", *MARCH, corrected_policy("2026.1-same", "0.50"), "王经办")
    by_id = {ln["setl_id"]: ln for ln in run["lines"]}
    assert {interim["setl_id"], final["setl_id"]} <= set(by_id)
    assert all(ln["changes"] == {} and ln["visit_deltas_diff"] == {} and ln["year_deltas_diff"] == {}
               for ln in run["lines"])
    # the correction (outpatient only) leaves the admission as it was, and S1/S2 as before
    fixed = resettle.plan("999901", *MARCH, CORRECTED, "王经办")
    assert {ln["setl_id"] for ln in fixed["lines"] if ln["changes"]} == {ids["S1"]["setl_id"], ids["S2"]["setl_id"]}
