"""``medpay resettle …``: re-settlement after a policy correction (``medpay.services.resettlement``).

``plan`` recomputes a region's settlements of a period under a corrected policy file and stores the differences
as a run (nothing is posted); ``show`` prints a run; ``confirm`` posts it for a named staff member, once.
Runs on the database of MEDPAY_DATABASE_URL with its keys (the persons' facts are stored encrypted). Every
refusal names the field and exits 2; no traceback.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from medpay.money import format_yuan

resettle_app = typer.Typer(help="重新结算 / re-settle a region's period under a corrected policy (staff confirm)",
                           no_args_is_help=True)
console = Console()

RUN = typer.Argument(..., help="the run's id (plan prints it)")


def _fail(message: str) -> None:
    typer.echo(f"错误 / error: {message}", err=True)
    raise typer.Exit(2)


def _day(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"{field}: not a date YYYY-MM-DD: {value!r}")
        raise  # unreachable


def _with_service(work: Callable[[Any], Any]) -> Any:
    """``work(ResettlementService)`` on the configured database; refusals named, exit 2."""
    from medpay.adapters.crypto import cipher_of
    from medpay.adapters.db.engine import database_url, make_engine, session_factory
    from medpay.adapters.db.key_check import open_keyring
    from medpay.adapters.keyring import KeyringError
    from medpay.services.errors import ServiceError
    from medpay.services.resettlement import ResettlementService

    engine = make_engine(database_url())
    try:
        try:
            cipher = cipher_of(open_keyring(engine))
        except KeyringError as e:
            _fail(str(e))
        return work(ResettlementService(session_factory(engine), cipher))
    except ServiceError as e:
        _fail(f"{e.field}: {e.message}")
    finally:
        engine.dispose()


def _print_run(run: dict[str, Any], only_changed: bool = True) -> None:
    s = run["summary"]
    console.print(f"重新结算批次 / run [bold]{run['run_id']}[/]  region {run['region']}  {run['from']} – {run['to']}  "
                  f"{escape(', '.join(run['policy_old']))} → [bold]{escape(run['policy_new'])}[/]  "
                  f"status [bold]{run['status']}[/]")
    console.print(f"planned by {escape(run['planned_by'])} at {run['planned_at']}"
                  + (f"; posted by {escape(run['posted_by'])} at {run['posted_at']}" if run["posted_by"] else ""))
    t = Table(title="差额 / differences (yuan; new − old)")
    for col in ("setl_id", "psn_no", "fixmedins_code", "setl_time", "field", "old", "new", "diff"):
        t.add_column(col, justify="right" if col in ("old", "new", "diff") else "left")
    for line in run["lines"]:
        if only_changed and not line["changes"] and not line["year_deltas_diff"] and not line["visit_deltas_diff"]:
            continue
        first = True
        for name, c in line["changes"].items():
            head = (line["setl_id"], line["psn_no"], line["fixmedins_code"], line["setl_time"]) if first else ("",) * 4
            t.add_row(*head, name, format_yuan(c["old"]), format_yuan(c["new"]), format_yuan(c["diff"]))
            first = False
        for key, v in {**line["year_deltas_diff"]}.items():
            head = (line["setl_id"], line["psn_no"], line["fixmedins_code"], line["setl_time"]) if first else ("",) * 4
            t.add_row(*head, f"accumulator {key}", "", "", str(v) if key == "admissions" else format_yuan(v))
            first = False
    console.print(t)
    console.print(f"settlements {s['settlements']}, changed {s['changed']}, persons {s['persons']}; "
                  f"funds pay [bold]{format_yuan(s['fund_diff'])}[/] more, patients "
                  f"[bold]{format_yuan(s['patient_diff'])}[/] more (negative: less; refunded or collected by the "
                  "institution)")
    if s["by_fund"]:
        console.print("by fund: " + ", ".join(f"{k} {format_yuan(v)}" for k, v in sorted(s["by_fund"].items())))
    for skip in s["skipped"]:
        console.print(f"left as it was: {skip['setl_id']} — {escape(skip['reason'])}")


@resettle_app.command("plan")
def plan(region: str = typer.Option(..., "--region", help="医保区划 admdvs, e.g. 999901"),
         period_from: str = typer.Option(..., "--from", help="first local day, YYYY-MM-DD"),
         period_to: str = typer.Option(..., "--to", help="last local day (included), YYYY-MM-DD"),
         policy: Path = typer.Option(..., "--policy", help="the corrected policy version (TOML)"),
         staff: Optional[str] = typer.Option(None, "--staff", help="who plans it (default: the system user)"),
         show_all: bool = typer.Option(False, "--all", help="list unchanged settlements too")) -> None:
    """Recompute the region's settlements of the period under the corrected policy; store the differences as a
    run and print them with their totals and the run id. Posts nothing."""
    import getpass

    from medpay.adapters.policy_files import load_policy_file
    from medpay.domain.policy import PolicyError

    start, end = _day(period_from, "from"), _day(period_to, "to")
    try:
        corrected = load_policy_file(policy)
    except PolicyError as e:
        _fail(f"policy: {e}")
        return
    run = _with_service(lambda svc: svc.plan(region, start, end, corrected, staff or getpass.getuser()))
    _print_run(run, only_changed=not show_all)
    console.print(f"run id: [bold]{run['run_id']}[/] — confirm with: medpay resettle confirm {run['run_id']} "
                  "--staff NAME")


@resettle_app.command("show")
def show(run_id: str = RUN, show_all: bool = typer.Option(False, "--all", help="list unchanged settlements too")) -> None:
    """A run: its differences, totals and status."""
    _print_run(_with_service(lambda svc: svc.show(run_id)), only_changed=not show_all)


@resettle_app.command("list")
def list_runs(region: Optional[str] = typer.Option(None, "--region", help="only this region's runs")) -> None:
    """The newest runs."""
    t = Table(title="重新结算批次 / re-settlement runs")
    for col in ("run_id", "region", "from", "to", "policy", "status", "settlements", "changed", "fund_diff"):
        t.add_column(col)
    for r in _with_service(lambda svc: svc.list_runs(region)):
        s = r["summary"]
        t.add_row(r["run_id"], r["region"], r["from"], r["to"], escape(r["policy_new"]), r["status"],
                  str(s["settlements"]), str(s["changed"]), format_yuan(s["fund_diff"]))
    console.print(t)


@resettle_app.command("confirm")
def confirm(run_id: str = RUN, staff: str = typer.Option(..., "--staff", help="the staff member confirming")) -> None:
    """Post the run's differences: ledger adjustments, accumulators, audit — all or nothing, once."""
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("posting", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        run = _with_service(lambda svc: svc.confirm(run_id, staff, progress))
    _print_run(run)
    when: Any = run["posted_at"] or datetime.now().isoformat(timespec="seconds")
    console.print(f"run {run['run_id']} posted by {escape(run['posted_by'] or '')} at {when}")
