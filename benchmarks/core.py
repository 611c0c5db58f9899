"""Core performance figures of medpay: the policy engine, the settlement service, and PostgreSQL itself.

Run from the repository root::

    python -m benchmarks.core [--quick] [--out benchmarks/results/core.json]

Three phases (see benchmarks/README.md for what each figure means):

1. policy engine — pure ``adjudicate`` calls on a 10-line outpatient and a 300-line inpatient bill, for an
   employee and a resident, each for a fixed time; peak memory per bill with tracemalloc;
2. settlement service — register_visit + upload_fees (10 lines) + settle through ``SettlementService`` on
   SQLite (temp file) and PostgreSQL (a fresh schema, dropped afterwards), at 1 and N worker threads;
3. pgbench — TPC-B-like tps of the same PostgreSQL (scratch database, created and dropped), and the ratio
   of settlements/s to pgbench tps at the same client count.

Importing this module does nothing; everything happens in ``main()``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import math
import os
import pstats
import random
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable

from benchmarks.common import (ADMDVS, EMPLOYEE_TOP_UP_FEN, RESULTS_DIR, Tally, add_out_argument,
                               add_pg_url_argument, console_and_log, finish, merge_errors, percentile, postgres_cpu_s,
                               resolve_pg_url, result_header, run_threads, to_ms, write_result)

PGBENCH_DB = "medpay_bench_pgbench"
DEFAULT_OUT = RESULTS_DIR / "core.json"

PERSONS_PER_THREAD = 4  # alternating employee / resident
SQLITE_THREADS = (1, 4)  # SQLite serialises writers (BEGIN IMMEDIATE): 4 shows the queueing, more adds nothing
PG_THREADS = (1, 8)
PGBENCH_CLIENTS = (1, 8)


@dataclass(frozen=True)
class Config:
    quick: bool
    policy_seconds: float
    service_seconds: float
    pgbench_seconds: int
    pg_url: str | None  # None: PostgreSQL phases skipped
    sqlite_threads: tuple[int, ...] = SQLITE_THREADS
    pg_threads: tuple[int, ...] = PG_THREADS
    pgbench_clients: tuple[int, ...] = PGBENCH_CLIENTS
    profile: bool = False


# ------------------------------------------------------------------------------ 1. policy engine


def _catalog() -> list[Any]:
    """The demo catalog plus a few items, as domain CatalogItems: 甲/乙/丙, some with unit price limits."""
    from medpay.domain.model import CatalogItem, ChrgitmLv
    from medpay.services import demo

    rows = list(demo.CATALOG) + [
        ("XJ01DCA004", "头孢呋辛酯片", "02", "09", None, None),
        ("T00000000005", "中药饮片", "02", "10", None, "0.15"),
        ("C00000000006", "一次性输液器", "02", "08", 500, None),
        ("003100000070000", "静脉输液", "01", "05", 800, None),
    ]
    return [CatalogItem(code, name, ChrgitmLv(lv), typ, limit, Decimal(prop) if prop is not None else None)
            for code, name, lv, typ, limit, prop in rows]


def make_bill(n_lines: int, seed: int) -> list[Any]:
    """A deterministic bill of ``n_lines`` fee lines; price-limited items are priced around their limit."""
    from medpay.domain.model import FeeLine

    from medpay.domain.model import ChrgitmLv

    rng = random.Random(seed)
    by_level: dict[Any, list[Any]] = {}
    for it in _catalog():
        by_level.setdefault(it.chrgitm_lv, []).append(it)
    levels = [ChrgitmLv.JIA, ChrgitmLv.YI, ChrgitmLv.BING]
    lines = []
    for i in range(n_lines):
        # roughly 45 % 甲, 40 % 乙, 15 % 丙; the first three lines are one of each so every bill has all three
        level = levels[i] if i < 3 else rng.choices(levels, weights=(45, 40, 15))[0]
        item = rng.choice(by_level[level])
        cnt = Decimal(rng.choice(["1", "1", "1", "2", "3", "0.5", "10"]))
        if item.pric_uplmt_amt is not None:
            pric = (Decimal(item.pric_uplmt_amt) / 100 * Decimal(rng.choice(["0.8", "1.0", "1.0", "1.25"]))).quantize(
                Decimal("0.01"))
        else:
            pric = Decimal(rng.randint(150, 60000)) / 100
        amount = int((cnt * pric * 100).to_integral_value(rounding=ROUND_HALF_UP))
        lines.append(FeeLine(f"{i + 1:04d}", item, cnt, pric, amount))
    return lines


def _bill_mix(lines: list[Any]) -> dict[str, int]:
    from medpay.domain.model import ChrgitmLv

    names = {ChrgitmLv.JIA: "甲", ChrgitmLv.YI: "乙", ChrgitmLv.BING: "丙"}
    mix = Counter(names[ln.item.chrgitm_lv] for ln in lines)
    mix["price_limited"] = sum(1 for ln in lines if ln.item.pric_uplmt_amt is not None)
    return dict(mix)


def variants_doc() -> dict[str, Any]:
    """The demo policy rewritten to use the settings issue 12 added — a 1 July policy year, a deductible per month
    and a cap per quarter, caps per disease, an age-dependent ratio, admission steps with a fixed amount, one
    assistance cap shared by two tiers whose base counts the 乙类 first self-pay, 大病 uncapped for people in
    poverty, a 中药 ratio bonus, a per-item fund rule, a 中医院 deductible one level lower, a cap by months of
    enrolment, a civil-servant deductible as a share of salary and a ratio by resident payment grade.
    tests/test_policy_variants_service.py settles under it."""
    import tomllib

    from medpay.adapters.policy_files import BUILTIN_DIR

    doc = tomllib.loads((BUILTIN_DIR / "999901-demo-2026.toml").read_text(encoding="utf-8"))
    doc["policy"]["version"] = "2026.variants"
    doc["policy"]["year_start"] = "07-01"
    doc.pop("examples", None)
    tiers = {t["code"]: t for t in doc["tiers"]}
    tiers["emp_outpatient"]["deductible"] = {"basis": "per_month", "amount": "20.00"}
    tiers["emp_outpatient"]["cap"] = {"basis": "fund", "amount": "600.00", "period": "quarter"}
    tiers["emp_chronic"]["cap"] = {"basis": "fund", "amount": "300000.00",
                                   "per_disease": {"M03900": "1000.00", "M01600": "2000.00"}}
    tiers["emp_inpatient"]["ratios"].insert(0, {"psn_classes": ["retired"], "age_ratio": {
        "base": "0.90", "from_age": 60, "per_year": "0.002", "ceiling": "0.96"}})
    tiers["emp_inpatient"]["deductible"].pop("admission_factors")
    tiers["emp_inpatient"]["deductible"]["admissions"] = [{"from": 2, "amount": "100.00"}]
    tiers["emp_inpatient"]["deductible"]["adjustments"] = [{"inst_kinds": ["tcm"], "level_offset": -1}]
    tiers["emp_inpatient"]["cap"]["rules"] = [{"min_months_enrolled": 24, "amount": "400000.00"}]
    tiers["emp_civil_servant"]["deductible"] = {"basis": "per_year", "salary_share": "0.01"}
    tiers["res_inpatient"]["ratios"].insert(0, {"grades": ["1"], "levels": ["2"], "ratio": "0.72"})
    for code in ("maf_tekun", "maf_dibao"):
        tiers[code]["cap"] = {"basis": "fund", "amount": "800.00", "key": "maf_all"}
        tiers[code]["base_includes_preselfpay"] = True
    tiers["res_serious"]["cap"]["rules"] = [{"identities": ["2201", "2202"], "unlimited": True}]
    tiers["res_inpatient"]["bonuses"] = [{"med_chrgitm_types": ["11"], "add": "0.05"}]
    doc["item_rules"] = [{"name": "阑尾切除术(单列)", "codes": ["003100000040000"], "selfpay_prop": "0.10",
                          "fund_ratio": "1"}]
    return doc


def _policy_cases() -> list[dict[str, Any]]:
    from medpay.adapters.policy_files import builtin_policies
    from medpay.domain.model import AccountSource, Accumulators, Institution, Person, VisitContext
    from medpay.domain.policy import parse_policy, select_policy

    on = date(2026, 6, 1)
    policies = {"demo": select_policy(list(builtin_policies()), ADMDVS, on),
                "variants": parse_policy(variants_doc(), "variants")}
    inst = Institution("H99990100001", "演示市第一人民医院", ADMDVS, "3")
    people = {
        # a civil servant (adds the 公务员 tier), own account; part-way through the year
        "employee": (Person("99990100009001", "职工", "310", "1101", ADMDVS, cvlserv_flag=True,
                            brdy=date(1980, 1, 1), insu_date=date(2005, 7, 1), salary=12_000_000),
                     (AccountSource("99990100009001", "self", 500_000),),
                     Accumulators({"emp_otp.dedc": 30_000, "emp_pool.fund": 25_000_000, "admissions": 1})),
        # a 低保 resident (adds serious-illness and assistance tiers); a parent's account pays (共济)
        "resident": (Person("99990100009002", "居民", "390", "1501", ADMDVS, identities=frozenset({"2202"}),
                            brdy=date(1962, 9, 9), pay_grade="1"),
                     (AccountSource("99990100009003", "parent", 300_000),),
                     Accumulators({"res_otp.dedc": 5_000, "res_pool.fund": 1_000_000})),
    }
    bills = {
        "outpatient": ("11", make_bill(10, seed=1), 1),
        "inpatient": ("21", make_bill(300, seed=2), 2),
    }
    cases = []
    for policy_name, policy in policies.items():
        for bill_name, (med_type, lines, seq) in bills.items():
            for who, (person, accounts, year) in people.items():
                visit = VisitContext(mdtrt_id=f"BENCH-{bill_name}", med_type=med_type, setl_date=on, institution=inst,
                                     admission_seq=seq, insured_admdvs=ADMDVS)
                cases.append({"policy_name": policy_name, "bill": bill_name, "person": who, "policy": policy,
                              "person_obj": person, "visit": visit, "lines": lines, "year": year, "accounts": accounts})
    return cases


def bench_policy(seconds: float, log: Callable[[str], None] = lambda s: None) -> list[dict[str, Any]]:
    from medpay.domain.adjudication import adjudicate, identity_violations

    out = []
    for case in _policy_cases():
        policy, person, visit, lines = case["policy"], case["person_obj"], case["visit"], case["lines"]
        year, accounts = case["year"], case["accounts"]

        def call() -> Any:
            return adjudicate(policy, person, visit, lines, year, None, accounts)

        first = call()
        problems = identity_violations(first.amounts, first.setldetail)
        if problems:
            raise AssertionError(f"policy bench {case['bill']}/{case['person']}: {problems}")
        for _ in range(20 if len(lines) < 100 else 3):  # warm-up
            call()
        n = 0
        t0 = time.perf_counter()
        end = t0 + seconds
        while True:
            call()
            n += 1
            if time.perf_counter() >= end:
                break
        elapsed = time.perf_counter() - t0

        # peak memory of one call (includes the Adjudication it returns); tracemalloc slows calls, so apart
        reps = 20 if len(lines) < 100 else 5
        peaks = []
        tracemalloc.start()
        try:
            call()
            for _ in range(reps):
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
                result = call()
                peaks.append(tracemalloc.get_traced_memory()[1] - base)
                del result
        finally:
            tracemalloc.stop()
        row = {
            "policy": case["policy_name"],
            "bill": case["bill"], "person": case["person"], "lines": len(lines), "mix": _bill_mix(lines),
            "tiers_paid": [t.code for t in first.tiers if t.fund_payamt],
            "medfee_sumamt": first.amounts["medfee_sumamt"], "fund_pay_sumamt": first.amounts["fund_pay_sumamt"],
            "seconds": round(elapsed, 3), "bills": n, "bills_per_s": round(n / elapsed, 1),
            "us_per_bill": round(elapsed / n * 1e6, 1), "lines_per_s": round(n * len(lines) / elapsed),
            "peak_kib_per_bill": round(max(peaks) / 1024, 1), "peak_kib_per_bill_median": round(sorted(peaks)[len(peaks) // 2] / 1024, 1),
        }
        log(f"policy {row['policy']:<9}{row['bill']:<10} {row['person']:<8} {row['bills_per_s']:>10,.0f} bills/s")
        out.append(row)
    demo = {(r["bill"], r["person"]): r["bills_per_s"] for r in out if r["policy"] == "demo"}
    for r in out:  # the new settings against the demo policy, same bill and person, same run (goal ≥ 0.8)
        r["of_demo"] = round(r["bills_per_s"] / demo[(r["bill"], r["person"])], 3)
    return out


# ------------------------------------------------------------------------- 2. settlement service


def flow_lines() -> list[Any]:
    """The 10-line outpatient bill each settlement uploads (demo catalog: 甲/乙/丙, two lines over a price limit)."""
    from medpay.services.settlement import FeeLineInput

    spec = [
        ("001201000010000", "1", "15.00"),   # 诊查费, limit 10.00 → over-limit
        ("XJ01CAA001", "2", "12.50"),        # 甲
        ("XM01AEB002", "2", "30.50"),        # 乙 西药 5 %
        ("ZA04BAA003", "3", "18.20"),        # 乙 中成药 10 %
        ("002101000010000", "1", "25.00"),   # 甲
        ("002100000020000", "1", "350.00"),  # CT, limit 300.00 → over-limit
        ("CZF0000000002", "1", "88.00"),     # 丙
        ("XJ01CAA001", "1", "12.50"),
        ("XM01AEB002", "1", "30.50"),
        ("CZF0000000001", "1", "100.00"),    # 丙
    ]
    return [FeeLineInput(f"{i + 1}", code, cnt, pric, str(Decimal(cnt) * Decimal(pric)))
            for i, (code, cnt, pric) in enumerate(spec)]


def _bench_persons(threads: int) -> list[list[Any]]:
    from medpay.services.directory import PersonInput

    out = []
    for t in range(threads):
        mine = []
        for i in range(PERSONS_PER_THREAD):
            employee = i % 2 == 0
            mine.append(PersonInput(
                psn_no=f"99990198{t:02d}{i:04d}", psn_name=f"压测{t}号{i}", certno=f"99990119900101{t:02d}{i:02d}",
                gend="1", brdy=date(1990, 1, 1), insutype="310" if employee else "390",
                psn_type="1101" if employee else "1501", insuplc_admdvs=ADMDVS))
        out.append(mine)
    return out


@dataclass
class _WorkerStats(Tally):
    flow: list[float] = field(default_factory=list)
    register: list[float] = field(default_factory=list)
    upload: list[float] = field(default_factory=list)
    settle: list[float] = field(default_factory=list)
    stmts_flow: list[int] = field(default_factory=list)
    stmts_settle: list[int] = field(default_factory=list)


class _StatementCounter:
    """Counts SQL statements per thread (a before_cursor_execute listener)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self, *_args: Any, **_kwargs: Any) -> None:
        self._local.n = getattr(self._local, "n", 0) + 1

    @property
    def value(self) -> int:
        return getattr(self._local, "n", 0)


def _run_worker(svc: Any, inst: str, persons: list[str], tag: str, state: dict[str, float], stats: _WorkerStats,
                counter: _StatementCounter, barrier: threading.Barrier | None, max_flows: int | None = None,
                profiler: cProfile.Profile | None = None) -> None:
    from medpay.services.settlement import SettleRequest

    lines = flow_lines()
    declared = {"medfee_sumamt": str(sum(Decimal(ln.det_item_fee_sumamt) for ln in lines))}
    if barrier is not None:
        barrier.wait()
    deadline = state["deadline"]
    clock = time.perf_counter
    for i in itertools.count():
        if clock() >= deadline or (max_flows is not None and i >= max_flows):
            break
        psn = persons[i % len(persons)]
        c0 = counter.value
        t0 = clock()
        try:
            visit = svc.register_visit(inst, psn, "11")
            t1 = clock()
            svc.upload_fees(inst, visit.mdtrt_id, lines)
            t2 = clock()
            c2 = counter.value
            req = SettleRequest(inst, f"{tag}-{i}", visit.mdtrt_id, declared=declared)
            if profiler is not None:
                profiler.enable()
            try:
                svc.settle(req)
            finally:
                if profiler is not None:
                    profiler.disable()
            t3 = clock()
        except Exception as e:  # noqa: BLE001 - a benchmark counts failures instead of stopping
            stats.error(e)
            continue
        stats.register.append(t1 - t0)
        stats.upload.append(t2 - t1)
        stats.settle.append(t3 - t2)
        stats.flow.append(t3 - t0)
        stats.stmts_flow.append(counter.value - c0)
        stats.stmts_settle.append(counter.value - c2)
    stats.finished_at = clock()


class _Backend:
    """One database for the service phase: SQLite in a temp dir, or a fresh schema in PostgreSQL."""

    def __init__(self, kind: str, pg_url: str | None = None):
        self.kind = kind
        self.pg_url = pg_url
        self.tmpdir: str | None = None
        self.schema: str | None = None
        self.engine: Any = None
        self.server_version: str | None = None

    def __enter__(self) -> "_Backend":
        from sqlalchemy import text

        from medpay.adapters.db import schema
        from medpay.adapters.db.engine import make_engine

        try:
            if self.kind == "sqlite":
                self.tmpdir = tempfile.mkdtemp(prefix="medpay-bench-")
                self.engine = make_engine(f"sqlite:///{self.tmpdir}/bench.db")
                self.server_version = sqlite3.sqlite_version
            else:
                self.schema = f"medpay_bench_{os.getpid()}_{secrets.token_hex(3)}"
                with self._admin() as admin, admin.connect() as conn:
                    conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
                    self.server_version = conn.execute(text("SHOW server_version")).scalar()
                self.engine = make_engine(self.pg_url, connect_args={"options": f"-csearch_path={self.schema}"})
            schema.metadata.create_all(self.engine)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _admin(self) -> Any:
        from contextlib import contextmanager

        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        from medpay.adapters.db.engine import normalize_url

        @contextmanager
        def cm() -> Any:
            eng = create_engine(normalize_url(self.pg_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
            try:
                yield eng
            finally:
                eng.dispose()

        return cm()

    def __exit__(self, *_exc: Any) -> None:
        from sqlalchemy import text

        if self.engine is not None:
            self.engine.dispose()
            self.engine = None
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
        if self.schema:
            with self._admin() as admin, admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            self.schema = None


def _summarise_run(backend: str, threads: int, stats: list[_WorkerStats], wall: float) -> dict[str, Any]:
    flow = [x for s in stats for x in s.flow]
    settle = [x for s in stats for x in s.settle]
    register = [x for s in stats for x in s.register]
    upload = [x for s in stats for x in s.upload]
    errors, first_error = merge_errors(stats)
    n = len(flow)
    mean_settle = sum(settle) / n if n else math.nan
    stmts_flow = [x for s in stats for x in s.stmts_flow]
    stmts_settle = [x for s in stats for x in s.stmts_settle]
    return {
        "backend": backend, "threads": threads, "seconds": round(wall, 3), "settlements": n,
        "settlements_per_s": round(n / wall, 2) if wall else None,
        "per_thread": [len(s.flow) for s in stats],
        "flow_p50_ms": to_ms(percentile(flow, 50)), "flow_p99_ms": to_ms(percentile(flow, 99)),
        "register_p50_ms": to_ms(percentile(register, 50)), "upload_p50_ms": to_ms(percentile(upload, 50)),
        "settle_p50_ms": to_ms(percentile(settle, 50)), "settle_p99_ms": to_ms(percentile(settle, 99)),
        "settle_mean_ms": to_ms(mean_settle),
        # Little's law: what `threads` callers doing only settles at this latency would sustain
        "settle_only_per_s_est": round(threads / mean_settle, 2) if n else None,
        "settle_share_of_flow": round(sum(settle) / sum(flow), 3) if n else None,
        "sql_statements_per_flow": round(sum(stmts_flow) / n, 1) if n else None,
        "sql_statements_per_settle": round(sum(stmts_settle) / n, 1) if n else None,
        "errors": dict(errors), "first_error": first_error,
    }


def bench_service(kind: str, thread_counts: tuple[int, ...], seconds: float, pg_url: str | None = None,
                  log: Callable[[str], None] = lambda s: None,
                  profile: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Returns (one row per thread count, backend facts)."""
    from sqlalchemy import event

    from medpay.adapters.crypto import FieldCipher
    from medpay.adapters.db.engine import session_factory
    from medpay.adapters.db.ledger_store import check_ledger
    from medpay.adapters.policy_files import builtin_policies
    from medpay.services import demo
    from medpay.services.directory import Directory
    from medpay.services.settlement import SettlementService

    rows: list[dict[str, Any]] = []
    facts: dict[str, Any] = {"backend": kind}
    with _Backend(kind, pg_url) as be:
        facts["server_version"] = be.server_version
        counter = _StatementCounter()
        event.listen(be.engine, "before_cursor_execute", counter)
        factory = session_factory(be.engine)
        cipher = FieldCipher(secrets.token_bytes(32))
        t0 = time.perf_counter()
        demo.seed(factory, cipher)
        directory = Directory(factory, cipher)
        people = _bench_persons(max(thread_counts))
        for mine in people:
            for p in mine:
                directory.add_person(p)
                if p.insutype == "310":
                    directory.top_up(p.psn_no, EMPLOYEE_TOP_UP_FEN, ref=f"bench-{p.psn_no}")
        facts["seed_s"] = round(time.perf_counter() - t0, 3)
        svc = SettlementService(factory, builtin_policies(), cipher=cipher)
        institutions = [code for code, *_ in demo.INSTITUTIONS]
        run_id = secrets.token_hex(4)

        # warm-up (imports, caches, connection pool), not measured
        _run_worker(svc, institutions[0], [p.psn_no for p in people[0]], f"W{run_id}", {"deadline": math.inf},
                    _WorkerStats(), counter, None, max_flows=5)

        for threads in thread_counts:
            stats = [_WorkerStats() for _ in range(threads)]
            state: dict[str, float] = {}

            def work(t: int, barrier: threading.Barrier) -> None:
                _run_worker(svc, institutions[t % len(institutions)], [p.psn_no for p in people[t]],
                            f"B{run_id}-{threads}-{t}", state, stats[t], counter, barrier)

            cpu0 = time.process_time()
            run_threads(threads, work, state, seconds, f"bench-{kind}", daemon=False)
            cpu = time.process_time() - cpu0
            wall = max(s.finished_at for s in stats) - state["start"]
            row = _summarise_run(kind, threads, stats, wall)
            # CPU this process (client side: Python, SQLAlchemy, driver) spent per settlement flow
            row["client_cpu_ms_per_flow"] = round(cpu / row["settlements"] * 1000, 2) if row["settlements"] else None
            rows.append(row)
            log(f"service {kind:<10} {threads} thread(s) {row['settlements_per_s']:>8,.1f} settlements/s"
                + (f"  errors {row['errors']}" if row["errors"] else ""))

        if profile:
            prof = cProfile.Profile()
            _run_worker(svc, institutions[0], [p.psn_no for p in people[0]], f"P{run_id}",
                        {"deadline": time.perf_counter() + seconds}, _WorkerStats(), counter, None, profiler=prof)
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
            facts["profile_settle_cumulative"] = buf.getvalue()

        session = factory()
        try:
            t0 = time.perf_counter()
            facts["ledger_violations"] = len(check_ledger(session))
            facts["ledger_check_s"] = round(time.perf_counter() - t0, 3)
        finally:
            session.close()
        event.remove(be.engine, "before_cursor_execute", counter)
    return rows, facts


# ------------------------------------------------------------------------------------ 3. pgbench

_TPS_RE = re.compile(r"^tps = ([0-9.]+) \((?:without initial connection time|excluding connections establishing)\)",
                     re.M)
_LAT_RE = re.compile(r"^latency average = ([0-9.]+) ms", re.M)
_TX_RE = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
_FAILED_RE = re.compile(r"^number of failed transactions: (\d+)", re.M)


def parse_pgbench(output: str) -> dict[str, Any]:
    tps = _TPS_RE.search(output)
    if tps is None:
        raise ValueError(f"no tps line in pgbench output:\n{output[-2000:]}")
    lat, tx, failed = _LAT_RE.search(output), _TX_RE.search(output), _FAILED_RE.search(output)
    return {"tps": float(tps.group(1)), "latency_avg_ms": float(lat.group(1)) if lat else None,
            "transactions": int(tx.group(1)) if tx else None, "failed": int(failed.group(1)) if failed else None}


def bench_pgbench(pg_url: str, clients: tuple[int, ...], seconds: int, database: str = PGBENCH_DB,
                  log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from medpay.adapters.db.engine import normalize_url

    exe = shutil.which("pgbench")
    if exe is None:
        return {"skipped": "pgbench not on PATH"}
    url = normalize_url(pg_url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    base = [exe, "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    out: dict[str, Any] = {"database": database, "scale": 1, "seconds": seconds, "runs": []}

    def run(args: list[str]) -> str:
        proc = subprocess.run(base + args + [database], capture_output=True, text=True, env=env,
                              timeout=seconds * 3 + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return proc.stdout + proc.stderr

    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}"'))
            conn.execute(text(f'CREATE DATABASE "{database}"'))
        t0 = time.perf_counter()
        run(["-i", "-s", "1", "-q"])
        out["init_s"] = round(time.perf_counter() - t0, 3)
        for c in clients:
            args = ["-c", str(c), "-j", str(min(2, c)), "-T", str(seconds)]
            pg0, child0 = postgres_cpu_s(), os.times()
            res = parse_pgbench(run(args))
            pg, child = postgres_cpu_s() - pg0, os.times()
            pgbench_cpu = child.children_user + child.children_system - child0.children_user - child0.children_system
            if res["transactions"]:  # what one TPC-B-like transaction costs PostgreSQL here, and pgbench itself
                res["postgres_cpu_ms_per_tx"] = round(pg / res["transactions"] * 1000, 3)
                res["pgbench_client_cpu_ms_per_tx"] = round(pgbench_cpu / res["transactions"] * 1000, 3)
            res.update(clients=c, threads=min(2, c), command="pgbench " + " ".join(args))
            out["runs"].append(res)
            log(f"pgbench  -c {c:<2} {res['tps']:>10,.1f} tps")
    finally:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        finally:
            admin.dispose()
    return out


def compute_ratios(service: list[dict[str, Any]], pgbench: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for run in pgbench.get("runs", []):
        match = next((r for r in service if r["backend"] == "postgresql" and r["threads"] == run["clients"]), None)
        if match is None or not match["settlements_per_s"] or not run["tps"]:
            continue
        out.append({
            "clients": run["clients"], "settlements_per_s": match["settlements_per_s"], "pgbench_tps": run["tps"],
            "settlements_per_pgbench_tx": round(match["settlements_per_s"] / run["tps"], 4),
            "pgbench_tx_per_settlement": round(run["tps"] / match["settlements_per_s"], 2),
        })
    return out


# ------------------------------------------------------------------------------------ reporting


def render_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"medpay core benchmark ({result['mode']}, {result['date'][:19]}Z, "
                        f"{result['machine']['usable_cpus']} CPU)", title_justify="left")
    table.add_column("phase")
    table.add_column("case")
    table.add_column("rate", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p99", justify="right")
    table.add_column("notes")
    for r in result["policy_engine"]:
        table.add_row(f"policy {r['policy']}", f"{r['bill']} {r['lines']} lines, {r['person']}",
                      f"{r['bills_per_s']:,.0f} bills/s ({r['of_demo']:.2f}× demo)",
                      f"{r['us_per_bill']:,.0f} µs", "",
                      f"{r['lines_per_s']:,} lines/s; peak {r['peak_kib_per_bill']:,.0f} KiB/bill")
    table.add_section()
    for r in result["service"]:
        errs = f"; errors {r['errors']}" if r["errors"] else ""
        table.add_row(
            "service", f"{r['backend']} ×{r['threads']} thr", f"{r['settlements_per_s']:,.1f} settl/s",
            f"{r['flow_p50_ms']:,.1f} ms", f"{r['flow_p99_ms']:,.1f} ms",
            f"settle p50 {r['settle_p50_ms']:,.1f} p99 {r['settle_p99_ms']:,.1f} ms, ≈{r['settle_only_per_s_est']:,.0f}/s "
            f"alone, {r['settle_share_of_flow']:.0%} of flow; {r['sql_statements_per_flow']:.0f} SQL, "
            f"{r['client_cpu_ms_per_flow']:,.1f} ms CPU/flow{errs}")
    pg = result.get("pgbench") or {}
    if pg.get("runs"):
        table.add_section()
        for r in pg["runs"]:
            table.add_row("pgbench", f"TPC-B s=1 -c {r['clients']} -j {r['threads']}", f"{r['tps']:,.1f} tps",
                          f"{r['latency_avg_ms']:,.2f} ms avg" if r["latency_avg_ms"] is not None else "", "",
                          f"{r['transactions']:,} tx in {pg['seconds']} s")
    elif pg.get("skipped"):
        table.add_section()
        table.add_row("pgbench", "skipped", "", "", "", pg["skipped"])
    if result.get("ratios"):
        table.add_section()
        for r in result["ratios"]:
            table.add_row("ratio", f"PG settl/s ÷ pgbench tps @ {r['clients']}", f"{r['settlements_per_pgbench_tx']:.3f}",
                          "", "", f"one settlement costs ≈ {r['pgbench_tx_per_settlement']:.1f} pgbench transactions")
    return table


# ------------------------------------------------------------------------------------ main


def build_config(args: argparse.Namespace) -> Config:
    if args.quick:
        policy_s = service_s = 2.0
        pgbench_s = 2
    else:
        policy_s, service_s, pgbench_s = 5.0, 10.0, 10
    if args.seconds is not None:
        policy_s = service_s = args.seconds
        pgbench_s = max(1, round(args.seconds))
    pg_url = None if args.no_pg else resolve_pg_url(args.pg_url)
    return Config(quick=args.quick, policy_seconds=policy_s, service_seconds=service_s, pgbench_seconds=pgbench_s,
                  pg_url=pg_url, profile=args.profile)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.core", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="~2 s per measurement (smoke run)")
    add_out_argument(p, DEFAULT_OUT)
    p.add_argument("--seconds", type=float, default=None, help="override the length of every measurement")
    add_pg_url_argument(p)
    p.add_argument("--no-pg", action="store_true", help="skip the PostgreSQL and pgbench phases")
    p.add_argument("--profile", action="store_true",
                   help="also cProfile the settle step (1 thread, each backend); top entries printed and stored")
    return p.parse_args(argv)


def run(cfg: Config, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    started = time.perf_counter()
    result = result_header("medpay.core", cfg.quick, {
        "policy_seconds": cfg.policy_seconds, "service_seconds": cfg.service_seconds,
        "pgbench_seconds": cfg.pgbench_seconds, "sqlite_threads": list(cfg.sqlite_threads),
        "pg_threads": list(cfg.pg_threads) if cfg.pg_url else [],
        "pgbench_clients": list(cfg.pgbench_clients) if cfg.pg_url else [],
        "persons_per_thread": PERSONS_PER_THREAD, "flow_lines": len(flow_lines())})
    result["policy_engine"] = bench_policy(cfg.policy_seconds, log)
    service: list[dict[str, Any]] = []
    backends: list[dict[str, Any]] = []
    rows, facts = bench_service("sqlite", cfg.sqlite_threads, cfg.service_seconds, log=log, profile=cfg.profile)
    service += rows
    backends.append(facts)
    if cfg.pg_url:
        rows, facts = bench_service("postgresql", cfg.pg_threads, cfg.service_seconds, cfg.pg_url, log=log,
                                    profile=cfg.profile)
        service += rows
        backends.append(facts)
        result["machine"]["postgresql"] = facts["server_version"]
        result["pgbench"] = bench_pgbench(cfg.pg_url, cfg.pgbench_clients, cfg.pgbench_seconds, log=log)
    else:
        result["pgbench"] = {"skipped": "--no-pg"}
    result["service"] = service
    result["backends"] = backends
    result["ratios"] = compute_ratios(service, result["pgbench"])
    return finish(result, started)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = build_config(args)
    console, log = console_and_log(150)
    result = run(cfg, log=log)
    console.print(render_table(result))
    for b in result["backends"]:
        if b.get("profile_settle_cumulative"):
            console.print(b["profile_settle_cumulative"], markup=False, highlight=False)
    write_result(console, args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
