"""The mobile benchmark's short form: ``python -m benchmarks.mobile`` on a tiny budget (two visits paid by phone,
two at the window, one page load, SQLite) writes a JSON result with every figure the README reports. No timing is
asserted — the machine running the suite is not a measuring machine — only that each part ran and settled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_runs_on_a_tiny_budget_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "mobile.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.mobile", "--rounds", "2", "--loads", "1", "--backends",
                          "sqlite", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    [row] = json.loads(out.read_text(encoding="utf-8"))["backends"]
    assert row["backend"] == "sqlite" and row["ledger_ok"] is True
    assert row["phone"]["n"] == row["window"]["n"] == 2
    for way, keys in (("phone", ("list_ms", "bill_ms", "pay_ms")), ("window", ("presettle_ms", "settle_ms"))):
        for key in ("uploaded_to_paid_ms", *keys):
            assert row[way][f"{key}_p50"] > 0, (way, key)
    page = row["page"]
    assert page["loads"] == 1 and page["bytes"] > 10_000 and page["files"] >= 5 and page["list_shown_ms_p50"] > 0
