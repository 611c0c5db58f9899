"""What the benchmarks share: the result header and file, options, statistics, CPU accounting, HIS clients.

Used by ``benchmarks.core``, ``benchmarks.interface`` and ``benchmarks.qr``; importing it has no side effects.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL_ENV = "MEDPAY_BENCH_PG_URL"
ADMDVS = "999901"
EMPLOYEE_TOP_UP_FEN = 100_000_000  # big enough that accounts never run dry during a run
CHRG_BCHNO = "B1"


# ------------------------------------------------------------------------------------------ figures


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for an empty list."""
    if not values:
        return math.nan
    xs = sorted(values)
    k = max(0, min(len(xs) - 1, math.ceil(p / 100 * len(xs)) - 1))
    return xs[k]


def to_ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def latency(values: list[float], prefix: str) -> dict[str, float | None]:
    """``{prefix}_p50_ms``, ``_p90_ms``, ``_p99_ms`` and ``_max_ms`` of durations in seconds."""
    if not values:  # None rather than NaN, which is not JSON
        return {f"{prefix}_{k}_ms": None for k in ("p50", "p90", "p99", "max")}
    return {f"{prefix}_p50_ms": to_ms(percentile(values, 50)), f"{prefix}_p90_ms": to_ms(percentile(values, 90)),
            f"{prefix}_p99_ms": to_ms(percentile(values, 99)), f"{prefix}_max_ms": to_ms(max(values))}


def fmt(value: Any, spec: str, unit: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{unit}"


# ------------------------------------------------------------------------------------------ the machine


def _git_revision() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=5).stdout.strip())
        return {"commit": rev or None, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _load_avg() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_info() -> dict[str, Any]:
    import sqlalchemy

    try:
        import psycopg

        psycopg_version = psycopg.__version__
    except ImportError:  # pragma: no cover
        psycopg_version = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    pgbench = shutil.which("pgbench")
    pgbench_version = None
    if pgbench:
        try:
            pgbench_version = subprocess.run([pgbench, "--version"], capture_output=True, text=True,
                                             timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "mem_total_mib": _mem_total_mib(),
        "load_avg_at_start": _load_avg(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg_version,
        "pgbench": pgbench_version,
        "git": _git_revision(),
    }


# ------------------------------------------------------------------------------------------ the result


def result_header(benchmark: str, quick: bool, config: dict[str, Any]) -> dict[str, Any]:
    """The first keys of every result: what ran, when, on what machine, with which settings."""
    return {
        "benchmark": benchmark, "format": 1, "mode": "quick" if quick else "full",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", ""),
        "machine": machine_info(),
        "config": config,
    }


def finish(result: dict[str, Any], started: float) -> dict[str, Any]:
    """Stamps the load average at the end and the duration since ``started`` (a perf_counter())."""
    result["machine"]["load_avg_at_end"] = _load_avg()
    result["duration_s"] = round(time.perf_counter() - started, 1)
    return result


def console_and_log(width: int) -> tuple[Any, Callable[[str], None]]:
    """A Rich console (``width`` columns when not on a terminal) and a log function printing dim lines to it."""
    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=width)
    return console, lambda s: console.print(f"[dim]{s}[/dim]")


def write_result(console: Any, path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {path} ({result['duration_s']} s)")


def tables_main(argv: list[str] | None, parse_args: Callable[[list[str] | None], Any], build_config: Callable[[Any], Any],
                run: Callable[..., dict[str, Any]], render_tables: Callable[[dict[str, Any]], list[Any]],
                width: int) -> int:
    """A benchmark's ``main``: options → config, SIGTERM unwinds (servers stopped, schemas dropped), the run with
    its progress lines, the tables, the JSON file (``config.out``)."""
    cfg = build_config(parse_args(argv))
    exit_on_sigterm()
    console, log = console_and_log(width)
    result = run(cfg, log=log)
    for table in render_tables(result):
        console.print(table)
    write_result(console, cfg.out, result)
    return 0


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit(128 + signum), so ``with`` blocks unwind and clean up as on Ctrl-C."""

    def terminated(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)


# ------------------------------------------------------------------------------------------ options


def add_out_argument(p: argparse.ArgumentParser, default: Path) -> None:
    p.add_argument("--out", type=Path, default=default, help=f"JSON results file (default {default})")


def add_pg_url_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pg-url", default=None, help=f"PostgreSQL URL (default ${PG_URL_ENV} or {DEFAULT_PG_URL})")


def resolve_pg_url(given: str | None) -> str:
    return given or os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL


def parse_counts(text: str, option: str, workers: int) -> tuple[int, ...]:
    """A comma-separated list of counts ("8,32,64"), sorted, without repeats; all and ``workers`` must be ≥ 1."""
    counts = tuple(sorted({int(c) for c in str(text).split(",") if c.strip()}))
    if not counts or min(counts) < 1 or workers < 1:
        raise SystemExit(f"{option} and --workers must be positive")
    return counts


# ------------------------------------------------------------------------------------------ runs


@dataclass
class Tally:
    """What every worker thread counts besides its timings: failures by kind, the first one, when it stopped."""

    errors: Counter = field(default_factory=Counter)
    first_error: str | None = None
    finished_at: float = 0.0

    def error(self, e: BaseException, kind: str | None = None) -> None:
        self.errors[kind if kind is not None else type(e).__name__] += 1
        if self.first_error is None:
            self.first_error = f"{type(e).__name__}: {e}"[:300]


def merge_errors(stats: list[Tally]) -> tuple[Counter, str | None]:
    """All workers' failures by kind, and the first recorded message (in worker order)."""
    errors: Counter = Counter()
    for s in stats:
        errors.update(s.errors)
    return errors, next((s.first_error for s in stats if s.first_error), None)


def run_threads(n: int, work: Callable[[int, threading.Barrier], None], state: dict[str, Any], seconds: float,
                name: str, on_start: Callable[[], None] | None = None, during: Callable[[], Any] | None = None,
                daemon: bool = True) -> Any:
    """Runs ``work(i, barrier)`` on ``n`` threads (named ``{name}-{i}``) and waits for all of them.

    The workers wait on the barrier; the last to arrive calls ``on_start`` and sets ``state["start"]`` and
    ``state["deadline"]`` (start + ``seconds``) before any goes on. ``during()`` is called once all threads are
    started; what it returns is returned (for the caller to join after its own measurements)."""

    def start() -> None:
        if on_start is not None:
            on_start()
        state["start"] = time.perf_counter()
        state["deadline"] = state["start"] + seconds

    barrier = threading.Barrier(n, action=start)
    threads = [threading.Thread(target=work, args=(i, barrier), name=f"{name}-{i}", daemon=daemon)
               for i in range(n)]
    for t in threads:
        t.start()
    side = during() if during is not None else None
    for t in threads:
        t.join()
    return side


# ------------------------------------------------------------------------------------------ CPU accounting

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_stat(pid: int) -> tuple[int, int, str] | None:
    """(ppid, utime+stime ticks, comm) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2:].split()
    return int(rest[1]), int(rest[11]) + int(rest[12]), comm


def all_procs() -> dict[int, tuple[int, int, str]]:
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = proc_stat(int(entry.name))
            if st is not None:
                out[int(entry.name)] = st
    return out


def descendants(root: int, procs: dict[int, tuple[int, int, str]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def postgres_cpu_s() -> float:
    """CPU seconds of this machine's PostgreSQL so far: its live processes, and the backends that have exited
    (reaped by the postmaster, so in its children's time). The difference of two readings is what PostgreSQL
    spent between them, backends that came and went included."""
    procs = all_procs()
    pg = {pid for pid, (_, _, comm) in procs.items() if comm.startswith("postgres")}
    ticks = sum(procs[pid][1] for pid in pg)
    for pid in pg:
        if procs[pid][0] not in pg:  # the postmaster
            try:
                rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(rest[14]) + int(rest[15])  # cutime, cstime
            except (OSError, IndexError, ValueError):
                pass
    return ticks / CLK_TCK


def _system_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


class CpuMeter:
    """CPU time of the server's processes, of PostgreSQL's (the server's backends and PostgreSQL's own
    background processes, not other sessions' backends), of this (client) process, and of the machine."""

    def __init__(self, server_pid: int, pg_pids: Callable[[], set[int]]):
        self.server_pid = server_pid
        self.pg_pids = pg_pids
        self._start: dict[str, Any] = {}
        self._pg: set[int] = set()

    def _snap(self) -> dict[str, Any]:
        procs = all_procs()
        server = {pid: procs[pid][1] for pid in descendants(self.server_pid, procs) if pid in procs}
        self._pg |= self.pg_pids()
        pg = {pid: st[1] for pid, st in procs.items() if pid in self._pg}
        t = os.times()
        return {"server": server, "pg": pg, "client": t.user + t.system, "system": _system_ticks(),
                "wall": time.perf_counter()}

    def start(self) -> None:
        self._start = self._snap()

    def stop(self) -> dict[str, Any]:
        a, b = self._start, self._snap()

        def delta(kind: str) -> dict[int, float]:
            return {pid: (t - a[kind].get(pid, 0)) / CLK_TCK for pid, t in b[kind].items()}

        server, pg = delta("server"), delta("pg")
        busy = b["system"][0] - a["system"][0]
        total = b["system"][1] - a["system"][1]
        workers = sorted((s for pid, s in server.items() if pid != self.server_pid), reverse=True)
        wall = b["wall"] - a["wall"]
        ours = sum(server.values()) + sum(pg.values()) + b["client"] - a["client"]
        cpus = os.cpu_count() or 1
        return {"wall_s": wall, "server_cpu_s": sum(server.values()),
                "other_cpu_cores": round(max(0.0, busy / total * cpus - ours / wall), 2) if total and wall else None,
                "server_worker_cpu_s": [round(s, 2) for s in workers if s > 0.005],
                "postgres_cpu_s": sum(pg.values()), "client_cpu_s": b["client"] - a["client"],
                "machine_busy": busy / total if total else None}


def cpu_fields(cpu: dict[str, Any], n: int, unit: str, gateway_cpu_s: float | None = None,
               postgres: bool = True) -> dict[str, Any]:
    """A ``CpuMeter.stop()`` as result fields: CPU ms per ``unit`` (n of them) of the server (without the gateway
    simulator, when ``gateway_cpu_s`` is given), the simulator, PostgreSQL (None if not ``postgres``) and this
    process; the server's workers' CPU seconds, how busy the machine was and how many cores went elsewhere."""

    def per(x: float) -> float | None:
        return round(x / n * 1000, 2) if n else None

    out = {f"server_cpu_ms_per_{unit}": per(cpu["server_cpu_s"] - (gateway_cpu_s or 0.0))}
    if gateway_cpu_s is not None:
        out[f"gateway_cpu_ms_per_{unit}"] = per(gateway_cpu_s)
    out[f"postgres_cpu_ms_per_{unit}"] = per(cpu["postgres_cpu_s"]) if postgres else None
    out[f"client_cpu_ms_per_{unit}"] = per(cpu["client_cpu_s"])
    return {**out, "server_worker_cpu_s": cpu["server_worker_cpu_s"],
            "machine_busy": round(cpu["machine_busy"], 3) if cpu["machine_busy"] is not None else None,
            # CPU (in cores) the machine spent on anything but this server, its PostgreSQL backends and clients
            "other_cpu_cores": cpu["other_cpu_cores"]}


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a server started with ``start_new_session=True``: SIGTERM to it (uvicorn's supervisor stops its
    workers), then SIGKILL to anything of its process group still there."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ HIS clients


def feedetail(lines: list[Any]) -> tuple[list[dict[str, Any]], Decimal]:
    """``benchmarks.core.flow_lines()`` (or some of them) as 2204 feedetail, and their total."""
    rows = [{"feedetl_sn": ln.feedetl_sn, "chrg_bchno": CHRG_BCHNO, "med_list_codg": ln.med_list_codg,
             "cnt": ln.cnt, "pric": ln.pric, "det_item_fee_sumamt": ln.det_item_fee_sumamt} for ln in lines]
    return rows, sum(Decimal(ln["det_item_fee_sumamt"]) for ln in rows)


def his_client(base_url: str, inst: tuple[str, str, str, str], operator: str,
               wrap: Callable[[Any], Any] | None = None) -> Any:
    """A ``HisClient`` of demo hospital ``inst`` = (code, name, paasid, token), signed in as ``operator`` (all
    clients of one hospital draw their msgids from one sequence: ``HisClient.next_msgid``); ``wrap`` wraps its
    HTTP transport (to watch the answers)."""
    from medpay.his_client import HisClient
    from medpay.his_transport import HttpTransport

    code, name, paasid, token = inst
    transport = HttpTransport(base_url, timeout=60.0)
    # no retries: a failure is counted, not hidden behind a second attempt
    client = HisClient(base_url, code, name, paasid, token, mdtrtarea_admvs=ADMDVS, retries=0,
                       transport=wrap(transport) if wrap else transport)
    client.sign_in(operator)
    return client
