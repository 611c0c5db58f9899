"""Mobile payment (诊间支付): from "the HIS uploaded the fee lines" to "paid", from the phone against the window, and
the weight and time to interactive of the app's bill page.

Run from the repository root::

    python -m benchmarks.mobile [--quick] [--rounds N] [--backends sqlite,postgresql] [--out benchmarks/results/mobile.json]

Per backend, ``medpay serve`` with its gateway simulator (``benchmarks.qr.QrStack``), and ``rounds`` visits of each
kind, alternated, one at a time (the time a patient waits, not throughput):

- **phone**: the HIS bills the visit (code scanned, 1101, 2201, 2204 with 5 lines); then the patient's app lists the
  visits due, reads the bill with its pre-settlement and pays it (three device-signed requests): fund, account and
  the cash part captured at the gateway;
- **window**: the same billing, then the HIS sends 2206 and 2207 with the e-certificate token (the window's cash
  collection itself — the queue, the card terminal — is outside the platform and not in this figure).

The page: ``/m/bills`` loaded in Debian's Chromium at 375×812 with an activated device key and one visit due — bytes
of the document and every resource it loads, and the time from navigation until the visit list is shown (median of
``--loads``); skipped, and said so, when Chromium is missing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from benchmarks.common import (RESULTS_DIR, add_out_argument, add_pg_url_argument, finish, fmt, percentile,
                               resolve_pg_url, result_header, tables_main)
from benchmarks.qr import NotifyReceiver, QrStack, Terminal

DEFAULT_OUT = RESULTS_DIR / "mobile.json"
CHROMIUM = "/usr/bin/chromium"


@dataclass(frozen=True)
class Config:
    quick: bool
    rounds: int
    loads: int
    backends: tuple[str, ...]
    pg_url: str
    out: Any


class Phone:
    """The patient's app of a ``Terminal``'s person: device-signed GETs and POSTs."""

    def __init__(self, t: Terminal):
        self.t = t

    def _headers(self, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        from medpay.services.qr.ecert import sign_device_request

        p = self.t.person
        return sign_device_request(p["device_key"], p["ecert_id"], method, path, body)

    def get(self, path: str) -> Any:
        r = self.t.app.get(path, headers=self._headers("GET", path))
        r.raise_for_status()
        return r.json()

    def pay(self, code: str, mdtrt_id: str, version: str) -> dict[str, Any]:
        import json

        path = f"/api/v1/mobile/visits/{code}/{mdtrt_id}/pay"
        body = json.dumps({"version": version}).encode()
        r = self.t.app.post(path, content=body, headers={**self._headers("POST", path, body),
                                                         "content-type": "application/json"})
        r.raise_for_status()
        return r.json()


def by_phone(t: Terminal) -> dict[str, float]:
    marks: dict[str, float] = {}
    _token, mdtrt_id = t.bill(marks)
    phone, code = Phone(t), t.terminal["fixmedins_code"]
    due = [v for v in phone.get("/api/v1/mobile/visits") if v["mdtrt_id"] == mdtrt_id]
    marks["listed"] = time.perf_counter()
    bill = phone.get(f"/api/v1/mobile/visits/{code}/{mdtrt_id}")
    marks["shown"] = time.perf_counter()
    out = phone.pay(code, mdtrt_id, bill["version"])
    marks["paid"] = time.perf_counter()
    if len(due) != 1 or out["state"] != "captured":
        raise RuntimeError(f"phone payment of {mdtrt_id}: listed {len(due)}, state {out['state']}")
    return {"uploaded_to_paid_ms": (marks["paid"] - marks["2204"]) * 1000,
            "list_ms": (marks["listed"] - marks["2204"]) * 1000, "bill_ms": (marks["shown"] - marks["listed"]) * 1000,
            "pay_ms": (marks["paid"] - marks["shown"]) * 1000}


def at_window(t: Terminal) -> dict[str, float]:
    marks: dict[str, float] = {}
    token, mdtrt_id = t.bill(marks)
    p = t.person
    t.his.presettle_outpatient(p["psn_no"], mdtrt_id, "", t.total, mdtrt_cert_type="01", mdtrt_cert_no=token,
                               insutype=p["insutype"])
    marks["2206"] = time.perf_counter()
    t.his.settle_outpatient(p["psn_no"], mdtrt_id, "", t.total, mdtrt_cert_type="01", mdtrt_cert_no=token,
                            insutype=p["insutype"])
    marks["2207"] = time.perf_counter()
    return {"uploaded_to_paid_ms": (marks["2207"] - marks["2204"]) * 1000,
            "presettle_ms": (marks["2206"] - marks["2204"]) * 1000, "settle_ms": (marks["2207"] - marks["2206"]) * 1000}


def _summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(samples)}
    for key in samples[0]:
        values = sorted(s[key] for s in samples)
        out[f"{key}_p50"] = round(percentile(values, 50), 1)
        out[f"{key}_p90"] = round(percentile(values, 90), 1)
    return out


def page_load(stack: QrStack, t: Terminal, loads: int) -> dict[str, Any]:
    """``/m/bills`` in Chromium with a device key activated for the terminal's person and one visit due."""
    if not os.path.exists(CHROMIUM):
        return {"skipped": f"{CHROMIUM} missing"}
    from playwright.sync_api import sync_playwright

    from medpay.adapters.db.engine import make_engine, session_factory
    from medpay.services.qr.activation import ActivationService

    t.bill({})  # a visit due, billed while the person's Python device still holds the e-certificate
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True, locale="zh-CN")
            page = context.new_page()
            page.goto(f"{stack.base_url}/m/activate")
            public_hex = page.evaluate("""async () => {
                const { newDeviceKey } = await import("/m/static/device.js");
                window.benchKey = await newDeviceKey();
                return window.benchKey.publicKeyHex; }""")
            engine = make_engine(stack.db_url)
            try:  # activated at a counter for this browser's key (one device per person: the Python one retires)
                activations = ActivationService(session_factory(engine), stack.data_cipher(), None)
                p = t.person
                counter = activations.start_at_counter(p["psn_no"], p["certno"], True, "benchmark")
                ecert_id = activations.confirm(public_hex, counter_code=counter.counter_code).ecert_id
            finally:
                engine.dispose()
            page.evaluate("""async (ecertId) => {
                const { saveDevice } = await import("/m/static/device.js");
                await saveDevice({ ecert_id: ecertId, privateKey: window.benchKey.privateKey,
                                   publicKeyHex: window.benchKey.publicKeyHex, userName: "压测", idNo: "—" }); }""",
                          ecert_id)
            shown, interactive, weights = [], [], []
            for _ in range(loads):
                page.goto(f"{stack.base_url}/m/bills")
                page.wait_for_selector("li.visit button")
                shown.append(page.evaluate("performance.now()"))
                timing = page.evaluate("""() => {
                    const nav = performance.getEntriesByType("navigation")[0];
                    const res = performance.getEntriesByType("resource");
                    return { interactive: nav.domInteractive,
                             bytes: nav.encodedBodySize + res.reduce((s, r) => s + r.encodedBodySize, 0),
                             files: 1 + res.length }; }""")
                interactive.append(timing["interactive"])
                weights.append((timing["bytes"], timing["files"]))
        finally:
            browser.close()
    return {"loads": loads, "bytes": weights[-1][0], "files": weights[-1][1],
            "dom_interactive_ms_p50": round(statistics.median(interactive), 1),
            "list_shown_ms_p50": round(statistics.median(shown), 1), "list_shown_ms_max": round(max(shown), 1)}


def bench_backend(backend: str, cfg: Config, log: Callable[[str], None]) -> dict[str, Any]:
    with QrStack(backend, cfg.pg_url, 1, 2, log) as stack, NotifyReceiver() as receiver:
        phone_t, window_t = Terminal(stack, 0, receiver, "m"), Terminal(stack, 1, receiver, "w")
        try:
            by_phone(phone_t), at_window(window_t)  # warm-up: imports, pools, first statements
            phone, window = [], []
            for _ in range(cfg.rounds):
                phone.append(by_phone(phone_t))
                window.append(at_window(window_t))
            row = {"backend": backend, "phone": _summary(phone), "window": _summary(window),
                   "page": page_load(stack, phone_t, cfg.loads)}
        finally:
            phone_t.close()
            window_t.close()
        row["ledger_ok"] = stack.admin_get("/api/v1/admin/ledger/check").get("ok")
    log(f"{backend:<10} uploaded→paid p50: phone {row['phone']['uploaded_to_paid_ms_p50']} ms, window (2206+2207) "
        f"{row['window']['uploaded_to_paid_ms_p50']} ms; page {row['page']}")
    return row


def render_tables(result: dict[str, Any]) -> list[Any]:
    from rich.table import Table

    flows = Table(title="诊间支付: HIS uploaded the fee lines → paid (ms, one visit at a time)")
    for col in ("backend", "way", "n", "p50", "p90", "steps p50"):
        flows.add_column(col, justify="left" if col in ("backend", "way", "steps p50") else "right")
    for b in result["backends"]:
        ph, wi = b["phone"], b["window"]
        flows.add_row(b["backend"], "phone: list, bill, pay", str(ph["n"]), fmt(ph["uploaded_to_paid_ms_p50"], ",.1f"),
                      fmt(ph["uploaded_to_paid_ms_p90"], ",.1f"),
                      f"list {ph['list_ms_p50']} · bill {ph['bill_ms_p50']} · pay {ph['pay_ms_p50']}")
        flows.add_row("", "window: 2206 + 2207", str(wi["n"]), fmt(wi["uploaded_to_paid_ms_p50"], ",.1f"),
                      fmt(wi["uploaded_to_paid_ms_p90"], ",.1f"),
                      f"2206 {wi['presettle_ms_p50']} · 2207 {wi['settle_ms_p50']}")
        flows.add_row("", "phone / window", "", fmt(ph["uploaded_to_paid_ms_p50"] / wi["uploaded_to_paid_ms_p50"],
                                                    ".2f"), "", "")
    page = Table(title="/m/bills in Chromium at 375×812 (an activated device, one visit due)")
    for col in ("backend", "bytes", "files", "DOM interactive ms", "list shown ms p50", "max"):
        page.add_column(col, justify="right")
    for b in result["backends"]:
        pg = b["page"]
        if "skipped" in pg:
            page.add_row(b["backend"], pg["skipped"], "", "", "", "")
        else:
            page.add_row(b["backend"], f"{pg['bytes']:,}", str(pg["files"]), str(pg["dom_interactive_ms_p50"]),
                         str(pg["list_shown_ms_p50"]), str(pg["list_shown_ms_max"]))
    return [flows, page]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mobile", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="5 rounds, 2 page loads (smoke run)")
    p.add_argument("--rounds", type=int, default=None, help="visits of each kind (default 40, quick 5)")
    p.add_argument("--loads", type=int, default=None, help="page loads (default 10, quick 2)")
    p.add_argument("--backends", default="sqlite,postgresql", help="default sqlite,postgresql")
    add_pg_url_argument(p)
    add_out_argument(p, DEFAULT_OUT)
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    backends = tuple(b.strip() for b in str(args.backends).split(",") if b.strip())
    if set(backends) - {"sqlite", "postgresql"}:
        raise SystemExit("--backends: sqlite and/or postgresql")
    rounds = args.rounds if args.rounds is not None else (5 if args.quick else 40)
    loads = args.loads if args.loads is not None else (2 if args.quick else 10)
    return Config(quick=args.quick, rounds=max(1, rounds), loads=max(1, loads), backends=backends,
                  pg_url=resolve_pg_url(args.pg_url), out=args.out)


def run(cfg: Config, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    started = time.perf_counter()
    result = result_header("medpay.mobile", cfg.quick, {"rounds": cfg.rounds, "loads": cfg.loads,
                                                        "backends": list(cfg.backends), "fee_lines": 5})
    result["backends"] = [bench_backend(b, cfg, log) for b in cfg.backends]
    return finish(result, started)


def main(argv: list[str] | None = None) -> int:
    return tables_main(argv, parse_args, build_config, run, render_tables, 150)


if __name__ == "__main__":
    sys.exit(main())
