"""The face benchmark's short form: ``python -m benchmarks.face`` on a tiny budget (two frame repetitions, one
enrolment, one second of HTTP flows on SQLite) writes a JSON result with every figure the README reports. No
timing is asserted — the machine running the suite is not a measuring machine — only that each part ran, counted
what it says, and settled what it says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_runs_on_a_tiny_budget_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "face.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.face", "--reps", "2", "--enrol-reps", "1", "--seconds",
                          "1", "--backends", "sqlite", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["benchmark"] == "medpay.face" and result["config"]["reps"] == 2
    assert result["config"]["pinned_cpu"] is not None and result["config"]["single_thread_env"]["OMP_NUM_THREADS"] == "1"
    frame = result["frame"]
    for key in ("bare_p50_ms", "bare_p99_ms", "verify_p50_ms", "verify_p99_ms", "overhead_p50", "overhead_mean"):
        assert isinstance(frame[key], float) and frame[key] == frame[key], key
    assert frame["overhead_goal"] == 0.2 and isinstance(frame["within_goal"], bool)
    assert frame["embedding_difference"] < 1e-4  # the platform's path and the bare model saw the same face
    for key in ("one_photo_p50_ms", "one_photo_p99_ms", "two_photos_p50_ms", "two_photos_p99_ms"):
        assert result["enrolment"][key] > 0, key
    rates = result["error_rates"]
    assert rates["photos"] == 5 and "not a measurement" in rates["remark"]
    assert [(r["impostor_pairs"], r["genuine_pairs"]) for r in rates["rates"]] == [(7, 3), (7, 3)]
    assert len(rates["genuine_distances"]) == 3 and len(rates["impostor_distances"]) == 7
    [flow] = result["flow"]
    assert flow["backend"] == "sqlite" and flow["flows"] >= 1 and flow["errors"] == {}, flow
    for key in ("whole_p50_ms", "whole_p99_ms", "verify_p50_ms", "auth_check_p50_ms", "settle_p50_ms",
                "enrol_http_p50_ms"):
        assert flow[key] > 0, key
    assert flow["ledger_ok"] is True
    assert "one core" in run.stdout and "not a measurement" in run.stdout
