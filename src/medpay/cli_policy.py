"""``medpay policy …``: check policy files and run their worked examples; what changed between two versions of a
policy (``diff``); one bill's arithmetic tier by tier (``explain``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

policy_app = typer.Typer(help="政策 / region policies", no_args_is_help=True)

console = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    """A bad file or field, named; exit 1 without a traceback."""
    err.print(f"[bold red]错误 / error:[/] {escape(message)}")
    raise typer.Exit(1)


@policy_app.command("check")
def policy_check(files: list[Path] = typer.Argument(None, help="policy TOML files (default: the built-in ones)")) -> None:
    """Validate policy files and run the worked examples they carry; errors name the file, key and problem,
    a failed example names the example and each amount that differs."""
    from medpay.adapters.policy_files import BUILTIN_DIR, load_policy_file
    from medpay.domain.policy import PolicyError
    from medpay.services.policy_examples import run_examples

    paths = files or sorted(BUILTIN_DIR.glob("*.toml"))
    failed = 0
    t = Table(title="政策文件 / policy files")
    for col in ("file", "policy", "effective", "tiers", "examples", "result"):
        t.add_column(col)
    problems: list[str] = []
    for path in paths:
        try:
            p = load_policy_file(path)
        except PolicyError as e:
            failed += 1
            t.add_row(path.name, "", "", "", "", f"[red]{e.key}: {e.problem}[/]")
            continue
        results = run_examples(p)
        bad = [r for r in results if not r.passed]
        for r in bad:
            why = r.error or "；".join(str(d) for d in r.differences)
            problems.append(f"{path.name}: 算例 example {r.example.name!r}: {why}")
        failed += bool(bad)
        t.add_row(path.name, f"{p.name} {p.policy_id}", f"{p.effective_from}…{p.effective_to or ''}",
                  str(len(p.tiers)), f"{len(results) - len(bad)}/{len(results)}",
                  "[red]examples differ[/]" if bad else "[green]ok[/]")
    console.print(t)
    for line in problems:
        console.print(f"[red]{escape(line)}[/]")
    if failed:
        raise typer.Exit(1)


def _load(path: Path):
    from medpay.adapters.policy_files import load_policy_file
    from medpay.domain.policy import PolicyError

    try:
        return load_policy_file(path)
    except PolicyError as e:
        _fail(str(e))


def _lang(lang: str) -> str:
    if lang not in ("zh", "en"):
        _fail(f"--lang: must be zh or en; got {lang!r}")
    return lang


@policy_app.command("diff")
def policy_diff(old: Path = typer.Argument(..., help="the policy file as it was (TOML)"),
                new: Path = typer.Argument(..., help="the policy file as it is now (TOML)"),
                lang: str = typer.Option("zh", "--lang", help="zh (default) or en")) -> None:
    """What changed between two versions of a policy, in words: each setting with its old and new value."""
    from medpay.domain.policy_diff import diff_policies

    lang = _lang(lang)
    changes = diff_policies(_load(old), _load(new))
    if not changes:
        console.print("无差异 / no differences" if lang == "zh" else "no differences")
        return
    t = Table(title=f"{old.name} → {new.name}: {len(changes)} " + ("处变化" if lang == "zh" else "change(s)"))
    t.add_column("path", style="dim", overflow="fold")
    t.add_column("变化" if lang == "zh" else "change", overflow="fold")
    for c in changes:
        t.add_row(escape(c.path), escape(c.text(lang)))
    console.print(t)


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding an object (a bill, a person); ValueError naming the file and the problem."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: must hold a JSON object")
    return doc


@policy_app.command("explain")
def policy_explain(bill: Path = typer.Argument(..., help="bill JSON: the quote document (person, visit, lines …)"),
                   policy: Optional[Path] = typer.Option(None, "--policy", help="policy TOML file (default: the "
                                                         "built-in policy of the person's region on the visit's day)"),
                   lang: str = typer.Option("zh", "--lang", help="zh (default) or en")) -> None:
    """Each tier's arithmetic for one bill: base, deductible, ratio bands, cap and payment; then the personal
    account and the cash. The amounts are the settlement engine's own."""
    from medpay.adapters.policy_files import builtin_policies
    from medpay.domain.policy import select_policy
    from medpay.services.errors import ServiceError
    from medpay.services.policy_explain import explain
    from medpay.services.quote import parse_quote

    lang = _lang(lang)
    try:
        doc = read_json_object(bill)
    except ValueError as e:
        _fail(str(e))
    try:
        if policy is not None:
            chosen = _load(policy)
        else:
            person, visit, *_ = parse_quote(doc)
            try:
                chosen = select_policy(list(builtin_policies()), person.insuplc_admdvs, visit.setl_date)
            except LookupError as e:
                _fail(f"person.insuplc_admdvs: {e}")
        result = explain(chosen, doc, lang)
    except ServiceError as e:
        _fail(f"{bill.name}: {e.field}: {e.message}")
    console.print(f"[bold]{escape(chosen.name)}[/] {escape(result.policy_id)}")
    for line in result.bill:
        console.print(escape(line))
    for tier in result.tiers:
        console.print(f"\n[bold green]{escape(tier.title)}[/]")
        for line in tier.lines:
            console.print(f"  {escape(line)}", highlight=False)
    console.print()
    for line in result.payment:
        console.print(f"[bold]{escape(line)}[/]")
