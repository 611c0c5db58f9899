"""Outpatient settlements per second over the institution interface (HTTP), next to pgbench.

Run from the repository root::

    python -m benchmarks.interface [--quick] [--seconds S] [--workers W] [--out benchmarks/results/interface.json]

What happens (see benchmarks/README.md, "Institution interface over HTTP"):

1. a fresh PostgreSQL schema; ``medpay serve --workers W`` on a free port against it (demo data seeded), with
   its own key file; one insured person per client (card credential, employees with a large account balance),
   added through ``Directory`` with the same key;
2. closed loop, for 8, 32 and 64 concurrent HIS clients (a thread and a ``HisClient`` each, signed in, the
   person's card read once by 1101): 2201 register → 2204 upload 10 lines → 2207 settle, for S seconds.
   A *settlement* is the 2204 + 2207 pair; its latency and the rate of completed pairs are measured, the 2201
   in front of each pair is load but reported apart;
3. open loop at half the best closed-loop rate (constant pacing; latency counted from the scheduled start);
4. the server is stopped; the stack floor (``benchmarks.stack_floor``: a no-op server on the same HTTP stack,
   answering what the platform answered) takes its place and the same closed loops run against it;
5. pgbench TPC-B-like (scale 1) at -c 8/32/64 in a scratch database, with PostgreSQL's CPU per transaction;
6. a Rich table with settlements/s ÷ pgbench tps, the floor, and the CPU bound (what the CPUs could carry at
   most on this stack with these clients); JSON results.

``--profile`` attaches py-spy to the server's workers during the 32-client phase and prints the 15 functions
with the most own (CPU) time. The server is stopped and the schema and scratch database dropped even on error.
Importing this module does nothing; everything happens in ``main()``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from benchmarks.common import (ADMDVS, CHRG_BCHNO, EMPLOYEE_TOP_UP_FEN, RESULTS_DIR, CpuMeter, Tally,
                               add_out_argument, add_pg_url_argument, all_procs, cmdline, console_and_log,
                               cpu_fields, descendants, exit_on_sigterm, feedetail, finish, fmt, free_port,
                               his_client, latency, merge_errors, parse_counts, resolve_pg_url, result_header,
                               run_threads, stop_group, write_result)
from benchmarks.core import bench_pgbench, compute_ratios, flow_lines
from benchmarks.stack_floor import RecordingTransport

DEFAULT_OUT = RESULTS_DIR / "interface.json"
PGBENCH_DB = "medpay_iface_pgbench"  # not core's, so the two benchmarks can't drop each other's database
CLIENT_COUNTS = (8, 32, 64)
PROFILE_CLIENTS = 32
HALF_PEAK_WORKERS = 32  # open-loop senders; far more than rate × latency needs at half the peak
P99_GOAL_MS = 50.0


@dataclass(frozen=True)
class Config:
    quick: bool
    seconds: float
    warmup_seconds: float
    pgbench_seconds: int
    workers: int
    clients: tuple[int, ...]
    pg_url: str
    profile: bool
    out: Path


# ------------------------------------------------------------------------------------------ the platform


class Platform:
    """A fresh schema, ``medpay serve`` on it, the benchmark's persons; all undone by ``close()``."""

    def __init__(self, pg_url: str, workers: int, persons: int, log: Callable[[str], None]):
        from sqlalchemy.engine import make_url

        from medpay.adapters.db.engine import normalize_url

        self.pg_url = pg_url
        self.workers = workers
        self.n_persons = persons
        self.log = log
        self.schema = f"medpay_iface_{os.getpid()}_{secrets.token_hex(3)}"
        base = normalize_url(pg_url)
        self.admin_url = base
        # search_path selects the schema; application_name tags the connections so close() can end them
        self.db_url = make_url(base).update_query_dict(
            {"options": f"-csearch_path={self.schema}", "application_name": self.schema})
        self.tmp = Path(tempfile.mkdtemp(prefix="medpay-iface-"))
        self.key_file = self.tmp / "data.key"
        self.proc: subprocess.Popen | None = None
        self.base_url = ""
        self.persons: list[dict[str, Any]] = []
        self.facts: dict[str, Any] = {"schema": self.schema, "workers": workers}
        self._schema_created = False
        self._admin_engine: Any = None

    # -- lifecycle
    def __enter__(self) -> "Platform":
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def _admin(self) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        return create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)

    def _open(self) -> None:
        self._create_schema()
        self.key_file.write_bytes(base64.b64encode(secrets.token_bytes(32)))
        self.key_file.chmod(0o600)
        self._start_server()
        self._add_persons()

    def _create_schema(self) -> None:
        from sqlalchemy import text

        admin = self._admin()
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
                self._schema_created = True
                self.facts["server_version"] = conn.execute(text("SHOW server_version")).scalar()
                self.facts["max_connections"] = int(conn.execute(text("SHOW max_connections")).scalar())
                self.facts["synchronous_commit"] = conn.execute(text("SHOW synchronous_commit")).scalar()
        finally:
            admin.dispose()

    def _start_server(self) -> None:
        self._launch([], dict(os.environ), timeout=90)
        self.log(f"server {self.base_url} ({self.workers} worker(s), schema {self.schema}) up in "
                 f"{self.facts['startup_s']} s")

    def _launch(self, extra_args: list[str], env: dict[str, str], timeout: float) -> None:
        """``medpay serve`` on a free port with ``extra_args``, the database and data key in ``env``; returns once it
        answers /healthz and all its workers are up (within ``timeout`` seconds), else raises with its log."""
        from medpay.processes import wait_until_healthy

        port = free_port()
        env.update(MEDPAY_DATABASE_URL=self.db_url.render_as_string(hide_password=False),
                   MEDPAY_DATA_KEY_FILE=str(self.key_file), PYTHONUNBUFFERED="1")
        self.server_log = self.tmp / "server.log"
        t0 = time.perf_counter()
        with open(self.server_log, "wb") as out:
            # its own session: if it will not stop, its process group (and only it) is killed
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "medpay.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--workers", str(self.workers), *extra_args],
                env=env, cwd=self.tmp, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        try:
            wait_until_healthy(f"{self.base_url}/healthz", self.proc, timeout, "medpay server")
        except RuntimeError as e:
            raise RuntimeError(f"server did not start ({e}):\n"
                               + self.server_log.read_text(errors="replace")[-3000:]) from None
        # every worker must be up, not just the first to answer
        while len(self.worker_pids()) < self.workers and time.monotonic() < deadline:
            time.sleep(0.2)
        self.facts["startup_s"] = round(time.perf_counter() - t0, 2)

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        procs = all_procs()
        # uvicorn's workers are Python processes under the supervisor (skip multiprocessing's helpers)
        return [pid for pid in descendants(self.proc.pid, procs)
                if pid != self.proc.pid and "resource_tracker" not in cmdline(pid)]

    def data_cipher(self) -> Any:
        """The server's data keys, so the blind indexes (card lookups) and ciphertexts match. Read as a keyring: the
        server adds keys to the file it was given (its first ``face`` key) when it first opens the database."""
        from medpay.adapters.crypto import FieldCipher
        from medpay.adapters.keyring import DATA_FILE, load_keyring

        return FieldCipher(load_keyring({DATA_FILE: self.key_file}))

    def _add_persons(self) -> None:
        from medpay.adapters.db.engine import make_engine, session_factory
        from medpay.services import demo
        from medpay.services.directory import Directory, PersonInput

        t0 = time.perf_counter()
        cipher = self.data_cipher()
        engine = make_engine(self.db_url)
        try:
            directory = Directory(session_factory(engine), cipher)
            institutions = demo.INSTITUTIONS
            for i in range(self.n_persons):
                # employees and residents alternate in pairs, so both hospitals (i % 2) get both kinds
                employee = (i // 2) % 2 == 0
                p = PersonInput(
                    psn_no=f"999901970{i:05d}", psn_name=f"压测{i}号", certno=f"9999011990010{i:05d}", gend="1",
                    brdy=date(1990, 1, 1), insutype="310" if employee else "390",
                    psn_type="1101" if employee else "1501", insuplc_admdvs=ADMDVS, card_no=f"E{i:08d}",
                    emp_name="压测有限公司" if employee else "")
                directory.add_person(p)
                if employee:
                    directory.top_up(p.psn_no, EMPLOYEE_TOP_UP_FEN, ref=f"bench-{p.psn_no}")
                code, name, _level, paasid, token = institutions[i % len(institutions)]
                self.persons.append({"psn_no": p.psn_no, "insutype": p.insutype, "card_no": p.card_no,
                                     "inst": (code, name, paasid, token)})
        finally:
            engine.dispose()
        self.facts["persons"] = self.n_persons
        self.facts["add_persons_s"] = round(time.perf_counter() - t0, 2)

    def pg_pids(self) -> set[int]:
        """The server's backends (tagged with the schema as application_name) and PostgreSQL's own processes."""
        from sqlalchemy import text

        if self._admin_engine is None:
            self._admin_engine = self._admin()
        with self._admin_engine.connect() as conn:
            return {int(pid) for pid, in conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE (application_name = :n OR backend_type <> 'client backend') "
                "AND pid <> pg_backend_pid()"), {"n": self.schema})}

    def ledger_violations(self) -> int:
        from medpay.adapters.db.engine import make_engine, session_factory
        from medpay.adapters.db.ledger_store import check_ledger

        engine = make_engine(self.db_url)
        try:
            session = session_factory(engine)()
            try:
                return len(check_ledger(session))
            finally:
                session.close()
        finally:
            engine.dispose()

    def stop_server(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc)

    def close(self) -> None:
        from sqlalchemy import text

        try:
            self.stop_server()
            if self._admin_engine is not None:
                self._admin_engine.dispose()
                self._admin_engine = None
        finally:
            try:
                if self._schema_created:
                    admin = self._admin()
                    try:
                        with admin.connect() as conn:
                            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                              "WHERE application_name = :n AND pid <> pg_backend_pid()"),
                                         {"n": self.schema})
                            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
                        self._schema_created = False
                    finally:
                        admin.dispose()
            finally:
                shutil.rmtree(self.tmp, ignore_errors=True)


class StackFloor:
    """``benchmarks.stack_floor`` under uvicorn with the platform's worker count, answering what the platform
    answered (``answers``, by infno); stands in for a ``Platform`` in :func:`run_closed`."""

    def __init__(self, workers: int, persons: list[dict[str, Any]], answers: dict[str, Any], tmp: Path):
        self.workers, self.persons, self.answers, self.tmp = workers, persons, answers, tmp
        self.proc: subprocess.Popen | None = None
        self.base_url = ""

    def __enter__(self) -> "StackFloor":
        from medpay.processes import wait_until_healthy

        from benchmarks.stack_floor import ANSWERS_ENV

        answers_file = self.tmp / "floor-answers.json"
        answers_file.write_text(json.dumps(self.answers, ensure_ascii=False))
        port = free_port()
        env = {**os.environ, ANSWERS_ENV: str(answers_file), "PYTHONUNBUFFERED": "1"}
        log_file = self.tmp / "floor.log"
        with open(log_file, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "benchmarks.stack_floor:app", "--host", "127.0.0.1", "--port",
                 str(port), "--workers", str(self.workers), "--log-level", "warning", "--no-access-log"],
                env=env, cwd=Path(__file__).resolve().parent.parent, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.base_url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(f"{self.base_url}/healthz", self.proc, 60, "stack floor server")
        except RuntimeError as e:
            self.__exit__()
            raise RuntimeError(f"{e}:\n{log_file.read_text(errors='replace')[-3000:]}") from None
        time.sleep(1.0)  # every worker up
        return self

    def __exit__(self, *_exc: Any) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc)

    @staticmethod
    def pg_pids() -> set[int]:
        return set()


# ------------------------------------------------------------------------------------------ HIS clients


class HisSession:
    """One HIS terminal: a signed-in ``HisClient`` for one person who has shown their card (1101)."""

    def __init__(self, base_url: str, person: dict[str, Any], tag: str, wrap: Callable[[Any], Any] | None = None):
        self.client = his_client(base_url, person["inst"], f"bench{tag}", wrap)
        self.person = person
        self.tag = tag
        self.n = 0
        # the 10-line bill of benchmarks.core (甲/乙/丙, two lines over a price limit)
        self.lines, self.total = feedetail(flow_lines())
        self.client.person_info("03", person["card_no"])

    def register(self) -> str:
        self.n += 1
        p = self.person
        out = self.client.register(p["psn_no"], p["insutype"], "03", p["card_no"], ipt_otp_no=f"MZ{self.tag}-{self.n}")
        return out.output["data"]["mdtrt_id"]

    def upload(self, mdtrt_id: str) -> None:
        psn_no = self.person["psn_no"]
        self.client.upload_fees([{**ln, "mdtrt_id": mdtrt_id, "psn_no": psn_no} for ln in self.lines])

    def settle(self, mdtrt_id: str) -> dict[str, Any]:
        out = self.client.settle_outpatient(self.person["psn_no"], mdtrt_id, CHRG_BCHNO, self.total,
                                            reverse_on_unknown=False)
        return out.output["setlinfo"]

    def close(self) -> None:
        self.client.close()


@dataclass
class _Stats(Tally):
    register: list[float] = field(default_factory=list)
    upload: list[float] = field(default_factory=list)
    settle: list[float] = field(default_factory=list)
    pair: list[float] = field(default_factory=list)  # 2204 + 2207
    from_schedule: list[float] = field(default_factory=list)  # open loop: scheduled start → 2207 answered
    late_starts: int = 0


def _open_sessions(base_url: str, persons: list[dict[str, Any]], n: int, tag: str,
                   wrap: Callable[[Any], Any] | None = None) -> list[HisSession]:
    """n signed-in sessions (person i for client i), opened 8 at a time."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda i: HisSession(base_url, persons[i], f"{tag}-{i}", wrap), range(n)))


def _check_first(setl: dict[str, Any], total: Decimal) -> None:
    from medpay.domain.adjudication import identity_violations
    from medpay.money import parse_yuan

    keys = ("medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt",
            "fund_pay_sumamt", "psn_part_amt", "hosp_part_amt", "acct_pay", "psn_cash_pay")
    fen = {k: parse_yuan(setl[k], k, allow_negative=True) for k in keys}
    problems = identity_violations({**fen, "act_pay_dedc": 0})
    if problems or Decimal(str(setl["medfee_sumamt"])) != total:
        raise AssertionError(f"first settlement is wrong: {problems or setl['medfee_sumamt']}")


def _closed_worker(s: HisSession, st: _Stats, state: dict[str, float], barrier: threading.Barrier) -> None:
    clock = time.perf_counter
    barrier.wait()
    deadline = state["deadline"]
    while clock() < deadline:
        try:
            t0 = clock()
            mdtrt_id = s.register()
            t1 = clock()
            s.upload(mdtrt_id)
            t2 = clock()
            setl = s.settle(mdtrt_id)
            t3 = clock()
        except Exception as e:  # noqa: BLE001 - a benchmark counts failures instead of stopping
            st.error(e)
            continue
        if not st.pair and state.get("checked") is None:
            state["checked"] = 1.0
            _check_first(setl, s.total)
        st.register.append(t1 - t0)
        st.upload.append(t2 - t1)
        st.settle.append(t3 - t2)
        st.pair.append(t3 - t1)
    st.finished_at = clock()


def _merge(stats: list[_Stats]) -> tuple[dict[str, list[float]], Counter, str | None]:
    lists = {k: [x for s in stats for x in getattr(s, k)]
             for k in ("register", "upload", "settle", "pair", "from_schedule")}
    return (lists, *merge_errors(stats))


def run_closed(platform: "Platform | StackFloor", clients: int, seconds: float, tag: str,
               during: Callable[[], Any] | None = None, wrap: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    sessions = _open_sessions(platform.base_url, platform.persons, clients, tag, wrap)
    stats = [_Stats() for _ in range(clients)]
    state: dict[str, float] = {}
    meter = CpuMeter(platform.proc.pid, platform.pg_pids)
    try:
        side = run_threads(clients, lambda i, barrier: _closed_worker(sessions[i], stats[i], state, barrier), state,
                           seconds, f"his-{tag}", on_start=meter.start, during=during)
        cpu = meter.stop()
        if side is not None:
            side.join()
    finally:
        for s in sessions:
            s.close()
    wall = max(s.finished_at for s in stats) - state["start"]
    lists, errors, first_error = _merge(stats)
    n = len(lists["pair"])
    row = {"clients": clients, "seconds": round(wall, 3), "settlements": n,
           "settlements_per_s": round(n / wall, 2) if wall else None,
           "http_requests_per_s": round(3 * n / wall, 1) if wall else None,
           **latency(lists["pair"], "settlement"), **latency(lists["register"], "register"),
           **{k: v for k, v in latency(lists["upload"], "upload").items() if "p50" in k or "p99" in k},
           **{k: v for k, v in latency(lists["settle"], "settle").items() if "p50" in k or "p99" in k},
           "per_client_min_max": [min(len(s.pair) for s in stats), max(len(s.pair) for s in stats)],
           **cpu_fields(cpu, n, "settlement"), "errors": dict(errors), "first_error": first_error}
    return row


def _open_worker(s: HisSession, st: _Stats, sched: dict[str, Any], lock: threading.Lock) -> None:
    clock = time.perf_counter
    start, interval, deadline = sched["start"], sched["interval"], sched["deadline"]
    while clock() < deadline:
        t0 = clock()
        try:
            mdtrt_id = s.register()  # ahead of its slot: registration is load, not part of the latency
        except Exception as e:  # noqa: BLE001
            st.error(e)
            time.sleep(0.01)
            continue
        st.register.append(clock() - t0)
        with lock:
            k = sched["next"]
            sched["next"] = k + 1
        slot = start + k * interval
        if slot >= deadline:
            break
        wait = slot - clock()
        if wait > 0:
            time.sleep(wait)
        t1 = clock()
        if t1 - slot > 0.001:
            st.late_starts += 1  # no sender was free at the slot: the wait counts in from_schedule
        try:
            s.upload(mdtrt_id)
            s.settle(mdtrt_id)
        except Exception as e:  # noqa: BLE001
            st.error(e)
            continue
        t3 = clock()
        st.pair.append(t3 - t1)
        st.from_schedule.append(t3 - slot)
    st.finished_at = clock()


def run_open(platform: Platform, rate: float, seconds: float, senders: int, tag: str) -> dict[str, Any]:
    """Settlements started at a constant ``rate`` (per second) regardless of how fast earlier ones finish."""
    sessions = _open_sessions(platform.base_url, platform.persons, senders, tag)
    stats = [_Stats() for _ in range(senders)]
    lock = threading.Lock()
    meter = CpuMeter(platform.proc.pid, platform.pg_pids)
    start = time.perf_counter() + 0.5  # senders register their first visit before the first slot
    sched: dict[str, Any] = {"start": start, "interval": 1.0 / rate, "deadline": start + seconds, "next": 0}
    threads = [threading.Thread(target=_open_worker, args=(sessions[i], stats[i], sched, lock), name=f"his-{tag}-{i}",
                                daemon=True) for i in range(senders)]
    try:
        meter.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu = meter.stop()
    finally:
        for s in sessions:
            s.close()
    lists, errors, first_error = _merge(stats)
    n = len(lists["pair"])
    wall = max(s.finished_at for s in stats) - start
    p99 = latency(lists["from_schedule"], "x")["x_p99_ms"]
    return {"target_per_s": round(rate, 2), "senders": senders, "seconds": round(seconds, 3), "settlements": n,
            "achieved_per_s": round(n / seconds, 2),
            **latency(lists["from_schedule"], "settlement"),
            **{k.replace("settlement_", "service_"): v for k, v in latency(lists["pair"], "settlement").items()
               if "p50" in k or "p99" in k},
            **latency(lists["register"], "register"),
            "late_starts": sum(s.late_starts for s in stats), "tail_s": round(wall - seconds, 3),
            "goal_p99_ms": P99_GOAL_MS, "goal_met": bool(n) and p99 is not None and p99 < P99_GOAL_MS,
            **cpu_fields(cpu, n, "settlement"), "errors": dict(errors), "first_error": first_error}


# ------------------------------------------------------------------------------------------ profile


class PySpy:
    """``py-spy record --gil`` of the server's workers (``--subprocesses``) for a while, speedscope format.

    ``--gil`` samples only the thread holding the GIL in each worker, i.e. where the Python CPU goes; without
    it, threads blocked in ``Condition.wait`` (idle threadpool) and psycopg's ``Connection.wait`` (waiting for
    PostgreSQL) show up as busy on this machine, burying everything else."""

    def __init__(self, pid: int, seconds: float, out: Path, delay: float = 1.0):
        self.pid, self.seconds, self.out, self.delay = pid, seconds, out, delay
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def executable() -> str | None:
        beside = Path(sys.executable).with_name("py-spy")
        return str(beside) if beside.exists() else shutil.which("py-spy")

    def start(self) -> "PySpy":
        self._thread = threading.Thread(target=self._run, name="py-spy", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        time.sleep(self.delay)  # let the clients get going
        exe = self.executable()
        if exe is None:
            self.error = "py-spy not found (pip install py-spy)"
            return
        cmd = [exe, "record", "--pid", str(self.pid), "--subprocesses", "--gil", "--rate", "100",
               "--duration", str(max(1, int(self.seconds))), "--format", "speedscope", "--output", str(self.out)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.seconds + 60)
        except (OSError, subprocess.SubprocessError) as e:
            self.error = f"py-spy failed: {e}"
            return
        if proc.returncode != 0 or not self.out.exists():
            self.error = f"py-spy failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-1000:]}"

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()


_PACKAGES = (  # (label, substring of the file path), first match wins
    ("medpay", "/medpay/"), ("sqlalchemy", "/sqlalchemy/"), ("psycopg", "/psycopg"),
    ("starlette/fastapi", "/starlette/"), ("starlette/fastapi", "/fastapi/"), ("uvicorn", "/uvicorn/"),
    ("anyio (threadpool)", "/anyio/"), ("pydantic", "/pydantic"), ("cryptography", "/cryptography/"),
    ("logging", "/logging/"), ("json", "/json/"), ("asyncio", "/asyncio/"), ("threading", "threading.py"),
)


def _package(path: str) -> str:
    for label, needle in _PACKAGES:
        if needle in path:
            return label
    return "python stdlib" if "/lib/python3" in path else "other"


def summarise_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Own (leaf) and inclusive time per function, and own time per package, from a py-spy speedscope file."""
    doc = json.loads(path.read_text())
    frames = doc["shared"]["frames"]
    own: Counter = Counter()
    incl: Counter = Counter()
    pkg: Counter = Counter()
    total = 0.0
    key = [(f["name"], f.get("file") or "") for f in frames]
    for prof in doc["profiles"]:
        for stack, w in zip(prof.get("samples", []), prof.get("weights", [])):
            if not stack:
                continue
            total += w
            leaf = key[stack[-1]]
            own[leaf] += w
            pkg[_package(leaf[1])] += w
            for k in {key[i] for i in stack}:
                incl[k] += w

    def short(file: str) -> str:
        for marker in ("/site-packages/", "/src/", "/lib/python3.11/"):
            if marker in file:
                return file.split(marker, 1)[1]
        return file

    rows = [{"function": name, "file": short(file), "own_s": round(w, 2), "own_share": round(w / total, 4),
             "inclusive_share": round(incl[(name, file)] / total, 4)}
            for (name, file), w in own.most_common(top)] if total else []
    medpay_incl = sorted(((k, v) for k, v in incl.items() if "/medpay/" in k[1]), key=lambda kv: -kv[1])[:top]
    return {"samples_s": round(total, 2), "top_own": rows,
            "own_by_package": {k: round(v / total, 4) for k, v in pkg.most_common()} if total else {},
            "top_inclusive_medpay": [{"function": n, "file": short(f), "inclusive_share": round(v / total, 4)}
                                     for (n, f), v in medpay_incl]}


# ------------------------------------------------------------------------------------------ reporting


def render_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    m = result["machine"]
    table = Table(title=f"medpay institution interface over HTTP ({result['mode']}, {result['date'][:19]}Z, "
                        f"{m['usable_cpus']} CPU, medpay serve --workers {result['config']['workers']}, "
                        f"{result['config']['seconds']:g} s per run)", title_justify="left")
    for col, just in (("run", "left"), ("settl/s", "right"), ("p50", "right"), ("p99", "right"),
                      ("pgbench tps", "right"), ("settl/s ÷ tps", "right"), ("notes", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    tps = {r["clients"]: r for r in (result.get("pgbench") or {}).get("runs", [])}
    pgbench_cpu = {c: r.get("postgres_cpu_ms_per_tx") for c, r in tps.items()}
    ratios = {r["clients"]: r for r in result.get("ratios", [])}
    for r in result["closed_loop"]:
        pg, ratio = tps.get(r["clients"]), ratios.get(r["clients"])
        errs = f"; errors {r['errors']}" if r["errors"] else ""
        prof = "; py-spy attached" if r.get("profiled") else ""
        table.add_row(
            f"{r['clients']} clients", fmt(r["settlements_per_s"], ",.1f"),
            fmt(r["settlement_p50_ms"], ",.1f", " ms"), fmt(r["settlement_p99_ms"], ",.1f", " ms"), fmt(pg and pg["tps"], ",.0f"),
            fmt(ratio and ratio["settlements_per_pgbench_tx"], ".3f"),
            f"2201 p50 {fmt(r['register_p50_ms'], ',.1f', ' ms')}; CPU ms/settl: server "
            f"{r['server_cpu_ms_per_settlement']}, PG {r['postgres_cpu_ms_per_settlement']}, client "
            f"{r['client_cpu_ms_per_settlement']}; busy {fmt(r['machine_busy'], '.0%')}, other load "
            f"{r['other_cpu_cores']} cores{errs}{prof}")
    h = result.get("half_peak")
    if h:
        table.add_section()
        mark = "[green]met[/green]" if h["goal_met"] else "[red]missed[/red]"
        table.add_row("half peak, open loop", fmt(h["achieved_per_s"], ",.1f"),
                      fmt(h["settlement_p50_ms"], ",.1f", " ms"), fmt(h["settlement_p99_ms"], ",.1f", " ms"), "", "",
                      f"target {h['target_per_s']:,.1f}/s; goal p99 < {h['goal_p99_ms']:g} ms {mark}; service p99 "
                      f"{fmt(h['service_p99_ms'], ',.1f', ' ms')}; late starts {h['late_starts']}; busy "
                      f"{fmt(h['machine_busy'], '.0%')}, other load {h['other_cpu_cores']} cores"
                      + (f"; errors {h['errors']}" if h["errors"] else ""))
    if result.get("stack_floor"):
        table.add_section()
        for r in result["stack_floor"]:
            pg, ratio = tps.get(r["clients"]), ratios.get(r["clients"])
            share = ratio and ratio.get("settlements_per_floor")
            table.add_row(
                f"stack floor, {r['clients']} clients", fmt(r["settlements_per_s"], ",.1f"),
                fmt(r["settlement_p50_ms"], ",.1f", " ms"), fmt(r["settlement_p99_ms"], ",.1f", " ms"),
                fmt(pg and pg["tps"], ",.0f"), fmt(ratio and ratio.get("floor_per_pgbench_tx"), ".3f"),
                f"a no-op server on the same HTTP stack, same clients: medpay reaches {fmt(share, '.0%')} of it; "
                f"CPU ms/settl: server {r['server_cpu_ms_per_settlement']}, client {r['client_cpu_ms_per_settlement']}"
                + (f"; errors {r['errors']}" if r["errors"] else ""))
    bounds = [r for r in result.get("ratios", []) if r.get("cpu_bound_settlements_per_s")]
    if bounds:
        table.add_section()
        for r in bounds:
            table.add_row(f"CPU bound, {r['clients']} clients", fmt(r["cpu_bound_settlements_per_s"], ",.1f"), "", "",
                          fmt(r["pgbench_tps"], ",.0f"), fmt(r["cpu_bound_per_pgbench_tx"], ".3f"),
                          f"{m['usable_cpus']} CPUs ÷ {r['cpu_bound_ms_per_settlement']} ms: the floor's server and "
                          f"clients + {TRANSACTIONS_PER_FLOW} × PostgreSQL's CPU per pgbench transaction "
                          f"({pgbench_cpu.get(r['clients'])} ms)")
    goal = result.get("goals", {}).get("settlements_at_least_half_pgbench_tps")
    if goal:
        table.add_section()
        table.add_row("goal", "", "", "", "", "≥ 0.500",
                      "; ".join(f"{c} clients {'met' if ok else 'missed'}" for c, ok in goal.items()))
    return table


def render_profile(profile: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"py-spy --gil, server workers during the {PROFILE_CLIENTS}-client run: top functions by "
                        f"own time holding the GIL ({profile['samples_s']:,.1f} s of samples)", title_justify="left")
    table.add_column("own", justify="right")
    table.add_column("incl.", justify="right")
    table.add_column("function")
    table.add_column("file")
    for r in profile["top_own"]:
        table.add_row(f"{r['own_share']:.1%}", f"{r['inclusive_share']:.1%}", r["function"], r["file"])
    table.caption = ("own time by package: " + ", ".join(f"{k} {v:.0%}" for k, v in profile["own_by_package"].items())
                     + "\nmedpay, inclusive: " + ", ".join(f"{r['function']} {r['inclusive_share']:.0%}"
                                                          for r in profile["top_inclusive_medpay"][:8]))
    return table


# ------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.interface", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 s per run (smoke run)")
    p.add_argument("--seconds", type=float, default=None, help="length of every run (default 15, quick 3)")
    p.add_argument("--workers", type=int, default=2, help="medpay serve worker processes (default 2)")
    p.add_argument("--clients", default=",".join(map(str, CLIENT_COUNTS)),
                   help="concurrent HIS clients per closed-loop run (default 8,32,64)")
    add_out_argument(p, DEFAULT_OUT)
    add_pg_url_argument(p)
    p.add_argument("--profile", action="store_true",
                   help=f"py-spy the server workers during the {PROFILE_CLIENTS}-client run (pip install py-spy)")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    seconds = args.seconds if args.seconds is not None else (3.0 if args.quick else 15.0)
    clients = parse_counts(args.clients, "--clients", args.workers)
    return Config(quick=args.quick, seconds=seconds, warmup_seconds=min(3.0, seconds),
                  pgbench_seconds=max(1, round(seconds)), workers=args.workers, clients=clients,
                  pg_url=resolve_pg_url(args.pg_url), profile=args.profile,
                  out=args.out)


def run(cfg: Config, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    started = time.perf_counter()
    n_persons = max(max(cfg.clients), HALF_PEAK_WORKERS)
    result = result_header("medpay.interface", cfg.quick, {
        "seconds": cfg.seconds, "warmup_seconds": cfg.warmup_seconds, "workers": cfg.workers,
        "clients": list(cfg.clients), "pgbench_seconds": cfg.pgbench_seconds, "persons": n_persons,
        "flow_lines": len(flow_lines()), "half_peak_senders": HALF_PEAK_WORKERS,
        "transport": "threads, one medpay.his_client.HisClient (httpx, keep-alive) each, callService"})
    closed: list[dict[str, Any]] = []
    profile_file = cfg.out.with_name(cfg.out.stem + "-profile.speedscope.json")
    with Platform(cfg.pg_url, cfg.workers, n_persons, log) as platform:
        result["server"] = platform.facts
        result["machine"]["postgresql"] = platform.facts["server_version"]
        answers: dict[str, Any] = {}  # the platform's first answer per infno, for the stack floor
        lock = threading.Lock()
        warm = run_closed(platform, min(8, max(cfg.clients)), cfg.warmup_seconds, "warm",
                          wrap=lambda t: RecordingTransport(t, answers, lock))
        log(f"warm-up  {warm['settlements_per_s']:>8,.1f} settlements/s (not reported)"
            + (f"  errors {warm['errors']} {warm['first_error']}" if warm["errors"] else ""))
        for clients in cfg.clients:
            spy = None
            if cfg.profile and clients == PROFILE_CLIENTS:
                profile_file.parent.mkdir(parents=True, exist_ok=True)
                spy = PySpy(platform.proc.pid, max(1.0, cfg.seconds - 2), profile_file)
            row = run_closed(platform, clients, cfg.seconds, f"c{clients}", during=spy.start if spy else None)
            if spy is not None:
                row["profiled"] = True
                if spy.error:
                    result["profile"] = {"error": spy.error}
                else:
                    result["profile"] = {"file": str(profile_file), **summarise_profile(profile_file)}
            closed.append(row)
            log(f"closed   {clients:>3} clients {row['settlements_per_s']:>8,.1f} settlements/s  "
                f"p50 {row['settlement_p50_ms']:,.1f} ms  p99 {row['settlement_p99_ms']:,.1f} ms"
                + (f"  errors {row['errors']} {row['first_error']}" if row["errors"] else ""))
        result["closed_loop"] = closed
        best = max((r["settlements_per_s"] or 0 for r in closed if not r.get("profiled")), default=0) \
            or max((r["settlements_per_s"] or 0 for r in closed), default=0)
        if best > 0:
            half = run_open(platform, best / 2, cfg.seconds, HALF_PEAK_WORKERS, "half")
            half["peak_per_s"] = best
            result["half_peak"] = half
            log(f"open     {half['target_per_s']:,.1f}/s → p50 {half['settlement_p50_ms']:,.1f} ms "
                f"p99 {half['settlement_p99_ms']:,.1f} ms (goal < {P99_GOAL_MS:g} ms)")
        result["ledger_violations"] = platform.ledger_violations()
        # pgbench needs its own connections: the server's pools go first (max_connections)
        platform.stop_server()
        result["stack_floor"] = run_floor(cfg, platform, answers, log)
        result["pgbench"] = bench_pgbench(cfg.pg_url, cfg.clients, cfg.pgbench_seconds, database=PGBENCH_DB, log=log)
    result["ratios"] = compute_ratios(
        [{"backend": "postgresql", "threads": r["clients"], "settlements_per_s": r["settlements_per_s"]}
         for r in closed], result["pgbench"])
    floors = {r["clients"]: r for r in result.get("stack_floor", [])}
    pgbench_runs = {r["clients"]: r for r in result["pgbench"].get("runs", [])}
    for r in result["ratios"]:
        floor, pg = floors.get(r["clients"]), pgbench_runs.get(r["clients"])
        f = floor and floor["settlements_per_s"]
        r["stack_floor_per_s"] = f
        r["settlements_per_floor"] = round(r["settlements_per_s"] / f, 4) if f else None
        r["floor_per_pgbench_tx"] = round(f / pg["tps"], 4) if f and pg else None
        r.update(cpu_bound(floor, pg, result["machine"]["usable_cpus"]))
    result["goals"] = {
        "settlements_at_least_half_pgbench_tps": {r["clients"]: r["settlements_per_pgbench_tx"] >= 0.5
                                                  for r in result["ratios"]},
        "p99_under_50ms_at_half_peak": (result.get("half_peak") or {}).get("goal_met"),
    }
    return finish(result, started)


TRANSACTIONS_PER_FLOW = 3  # 2201, 2204, 2207: each commits


def cpu_bound(floor: dict[str, Any] | None, pg: dict[str, Any] | None, cpus: int) -> dict[str, Any]:
    """The most settlements per second this machine's CPUs could carry on this stack with these clients: what the
    stack floor's server and clients cost per flow, plus PostgreSQL's cost of one pgbench transaction for each of
    the flow's transactions (medpay's do more than TPC-B's, so the true cost is higher) — as a share of pgbench."""
    if not floor or not pg or not pg.get("postgres_cpu_ms_per_tx") or not floor.get("client_cpu_ms_per_settlement"):
        return {}
    per_flow_ms = (floor["server_cpu_ms_per_settlement"] + floor["client_cpu_ms_per_settlement"]
                   + TRANSACTIONS_PER_FLOW * pg["postgres_cpu_ms_per_tx"])
    bound = cpus / per_flow_ms * 1000
    return {"cpu_bound_ms_per_settlement": round(per_flow_ms, 3), "cpu_bound_settlements_per_s": round(bound, 1),
            "cpu_bound_per_pgbench_tx": round(bound / pg["tps"], 4)}


def run_floor(cfg: Config, platform: Platform, answers: dict[str, Any],
              log: Callable[[str], None]) -> list[dict[str, Any]]:
    """The same clients against the stack floor (``benchmarks.stack_floor``), at every client count."""
    rows = []
    with StackFloor(cfg.workers, platform.persons, answers, platform.tmp) as floor:
        run_closed(floor, min(8, max(cfg.clients)), cfg.warmup_seconds, "floor-warm")
        for clients in cfg.clients:
            row = run_closed(floor, clients, cfg.seconds, f"f{clients}")
            row.pop("postgres_cpu_ms_per_settlement", None)
            rows.append(row)
            log(f"floor    {clients:>3} clients {row['settlements_per_s']:>8,.1f} settlements/s  "
                f"p50 {row['settlement_p50_ms']:,.1f} ms  (no-op server on the same stack)"
                + (f"  errors {row['errors']} {row['first_error']}" if row["errors"] else ""))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = build_config(args)
    exit_on_sigterm()  # unwinds through Platform.close(): server stopped, schema dropped
    console, log = console_and_log(160)
    result = run(cfg, log=log)
    console.print(render_table(result))
    prof = result.get("profile")
    if prof and prof.get("top_own"):
        console.print(render_profile(prof))
    elif prof:
        console.print(f"[red]profile: {prof.get('error')}[/red]")
    write_result(console, cfg.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
