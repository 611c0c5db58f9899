"""medpay command line (Typer + Rich)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from medpay.cli_ecert import ecert_app
from medpay.cli_face import face_app
from medpay.cli_his import his_app
from medpay.cli_institution import institution_app
from medpay.cli_keys import keys_app
from medpay.cli_policy import policy_app, read_json_object
from medpay.cli_resettle import resettle_app

app = typer.Typer(help="medpay 医保便捷支付平台 — unified medical-insurance payment.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="数据库 / database schema", no_args_is_help=True)
demo_app = typer.Typer(help="演示数据 / demo data", no_args_is_help=True)
ledger_app = typer.Typer(help="账务 / ledger", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(ledger_app, name="ledger")
app.add_typer(policy_app, name="policy")

app.add_typer(his_app, name="his", help="HIS 客户端 / send institution-interface transactions")
app.add_typer(ecert_app, name="ecert", help="医保电子凭证 / e-certificates, codes and terminals")
app.add_typer(institution_app, name="institution", help="定点医药机构 / institutions: SM2 body-signature keys")
app.add_typer(keys_app, name="keys", help="密钥 / the platform's keyring: fingerprints, rotation")
app.add_typer(face_app, name="face", help="刷脸 / face payment: model evaluation, enrolment, consent")
app.add_typer(resettle_app, name="resettle")

console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]错误 / error:[/] {message}")
    raise typer.Exit(code)


def _engine():
    from medpay.adapters.db.engine import database_url, make_engine

    return make_engine(database_url())


def _cipher(engine):
    """The cipher of the keys this database was written with; a clear refusal (exit 2) if they aren't."""
    from medpay.adapters.crypto import cipher_of
    from medpay.adapters.db.key_check import open_keyring
    from medpay.adapters.keyring import KeyringError

    try:
        return cipher_of(open_keyring(engine))
    except KeyringError as e:
        _refuse_keys(e)


def _refuse_keys(e: Exception) -> None:
    # unwrapped and without markup: the message names files and a database URL, whole
    typer.echo(f"错误 / error: {e}", err=True)
    raise typer.Exit(2)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision (SQLite under ./var by default)."""
    from medpay.adapters.db import migrate

    engine = _engine()
    migrate.upgrade(engine)
    console.print(f"数据库已是最新 / database at revision [bold]{migrate.current_revision(engine)}[/] "
                  f"({engine.url.render_as_string(hide_password=True)})")


@demo_app.command("seed")
def demo_seed(as_json: bool = typer.Option(False, "--json", help="print the demo data as JSON")) -> None:
    """Load the demo region, institutions (with gateway credentials), persons and catalog. Idempotent."""
    from medpay.adapters.db import migrate
    from medpay.adapters.db.engine import session_factory
    from medpay.services import demo

    engine = _engine()
    migrate.upgrade(engine)
    data = demo.seed(session_factory(engine), _cipher(engine))
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    t = Table(title="定点医药机构 / institutions")
    for col in ("fixmedins_code", "fixmedins_name", "admdvs", "level", "paasid", "token"):
        t.add_column(col)
    for i in data["institutions"]:
        t.add_row(i["fixmedins_code"], i["fixmedins_name"], i["admdvs"], i["level"], i["paasid"], i["token"])
    console.print(t)
    t = Table(title="参保人员 / insured persons (fictional)")
    for col in ("psn_no", "psn_name", "certno", "insutype", "psn_type", "identities", "acct_balc", "family payer"):
        t.add_column(col)
    for p in data["persons"]:
        t.add_row(p["psn_no"], p["psn_name"], p["certno"], p["insutype"], p["psn_type"], ",".join(p["identities"]),
                  p["acct_balc"], ",".join(f"{x['psn_no']}({x['relation']})" for x in p["family_payers"]))
    console.print(t)
    for member in data["staff"]:
        console.print(f"经办人员 / staff {member['name']}: admin key [bold]{member['key']}[/] (demo only)")
    t = Table(title="医保目录 / catalog")
    for col in ("med_list_codg", "name", "chrgitm_lv", "pric_uplmt_amt", "selfpay_prop"):
        t.add_column(col)
    for c in data["catalog"]:
        t.add_row(c["med_list_codg"], c["name"], {"01": "01 甲", "02": "02 乙", "03": "03 丙"}[c["chrgitm_lv"]],
                  c["pric_uplmt_amt"] or "", c["selfpay_prop"] or "")
    console.print(t)


def _log_config() -> dict:
    """uvicorn's logging, and medpay's own loggers (a line per institution transaction, faults, housekeeping) at
    INFO through the same handler: without a handler of their own only warnings would ever show."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["medpay"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


HTTP_PROTOCOL = "medpay.api.http_guard:GuardedHttpToolsProtocol"  # uvicorn's, with a deadline for request heads


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="address to listen on"),
          port: int = typer.Option(8000, help="port to listen on"),
          seed: bool = typer.Option(True, help="load the demo data on start (idempotent)"),
          workers: int = typer.Option(1, help="worker processes"),
          gateway_sim: bool = typer.Option(True, help="start the payment-gateway SIMULATOR as its own process, unless "
                                                      "MEDPAY_GATEWAY_URL names a gateway"),
          gateway_port: int = typer.Option(8100, help="port of the gateway simulator"),
          sms_sim: bool = typer.Option(True, help="start the SMS SIMULATOR as its own process (activation codes, "
                                                  "security notices), unless MEDPAY_SMS_URL names an SMS service"),
          sms_port: int = typer.Option(8101, help="port of the SMS simulator"),
          access_log: bool = typer.Option(False, help="log every HTTP request (uvicorn's access log); the "
                                                      "institution interface logs its own line per transaction "
                                                      "at INFO either way"),
          tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", envvar="MEDPAY_TLS_CERT_FILE",
                                                  help="serve HTTPS with this PEM certificate (chain); with --tls-key"),
          tls_key: Optional[Path] = typer.Option(None, "--tls-key", envvar="MEDPAY_TLS_KEY_FILE",
                                                 help="the certificate's PEM private key")) -> None:
    """Serve the API, OpenAPI docs (/docs) and pages; HTTPS with the operator's certificate and key."""
    import os

    import uvicorn

    from medpay.adapters.db import migrate
    from medpay.api import http_guard
    from medpay.api.platform import stmt_refd_setl_flag_from_env
    from medpay.nhsa_paths import institution_paths

    http_guard.settings()  # a wrong MEDPAY_*_TIMEOUT_S or MEDPAY_BODY_MIN_RATE stops here, before anything starts
    from medpay.tls import TlsSettingError, tls_files

    try:
        tls = tls_files(tls_cert, tls_key)  # likewise a certificate and key that are not a pair
    except TlsSettingError as e:
        raise SystemExit(str(e)) from None
    scheme = "https" if tls else "http"
    institution_paths()  # likewise MEDPAY_INSTITUTION_BASE_PATHS
    try:
        stmt_refd_setl_flag_from_env()
    except ValueError as e:
        raise SystemExit(str(e)) from None

    from medpay.adapters.db.engine import session_factory

    engine = _engine()
    migrate.upgrade(engine)
    cipher = _cipher(engine)  # before any worker starts: a wrong key stops here, with the reason
    factory = session_factory(engine)
    if seed:
        from medpay.services import demo

        demo.seed(factory, cipher)
        console.print("[yellow]演示数据 / demo data seeded: its institution tokens and staff key are public — "
                      "serve with --no-seed anywhere real[/]")
    simulator = None
    if gateway_sim and not os.environ.get("MEDPAY_GATEWAY_URL"):
        from medpay.simulators.launch import bind_demo_wallets, start_gateway_simulator

        simulator = start_gateway_simulator(host, gateway_port,
                                            f"{scheme}://{host}:{port}/api/v1/partner/gateway/callback")
        if seed:
            bind_demo_wallets(factory, cipher, simulator)
        console.print(f"支付网关模拟器 / payment-gateway SIMULATOR on [bold]{simulator.url}[/] (not a real gateway)")
    sms = None
    if sms_sim and not os.environ.get("MEDPAY_SMS_URL"):
        from medpay.simulators.launch import start_sms_simulator

        sms = start_sms_simulator(host, sms_port)
        console.print(f"短信模拟器 / SMS SIMULATOR on [bold]{sms.url}[/] (nothing is really texted: "
                      f"{sms.url}/sim/messages)")
    engine.dispose()
    console.print(f"medpay 服务 / serving on [bold]{scheme}://{host}:{port}[/]  (docs: {scheme}://{host}:{port}/docs)")
    try:
        # (the protocol by name: --workers N hands the configuration to fresh processes)
        uvicorn.run("medpay.api.main:app", host=host, port=port, workers=workers, log_level="info",
                    access_log=access_log, log_config=_log_config(), http=HTTP_PROTOCOL,
                    ssl_certfile=str(tls.cert) if tls else None, ssl_keyfile=str(tls.key) if tls else None)
    finally:
        for child in (simulator, sms):
            if child is not None:
                child.stop()


@app.command("simulator")
def simulator_cmd(port: int = typer.Option(8100), host: str = typer.Option("127.0.0.1"),
                  callback_url: str = typer.Option("http://127.0.0.1:8000/api/v1/partner/gateway/callback")) -> None:
    """Run only the payment-gateway simulator (fault injection at POST /sim/faults). Its API key and callback
    secret are MEDPAY_GATEWAY_API_KEY and MEDPAY_GATEWAY_SECRET (random when unset): give `medpay serve` the same."""
    import os

    from medpay.simulators.gateway_sim import API_KEY_ENV, SECRET_ENV
    from medpay.simulators.launch import start_gateway_simulator

    given = all(os.environ.get(name) for name in (API_KEY_ENV, SECRET_ENV))
    sim = start_gateway_simulator(host, port, callback_url)
    console.print(f"payment-gateway SIMULATOR on {sim.url}; Ctrl-C stops it")
    if not given:
        console.print(f"[yellow]{API_KEY_ENV} and {SECRET_ENV} were not both set: the simulator made up its own, "
                      "so no platform can call it. Set both (the same for medpay serve) to use it.[/]")
    try:
        sim.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


@app.command()
def quote(bill: Path = typer.Argument(..., exists=True, dir_okay=False, help="bill JSON (person, visit, lines …)"),
          policy: Optional[Path] = typer.Option(None, "--policy", exists=True, dir_okay=False,
                                                help="policy TOML file (default: the built-in policy of the person's region)"),
          person: Optional[Path] = typer.Option(None, "--person", exists=True, dir_okay=False,
                                                help="person JSON, if not inside the bill")) -> None:
    """Pre-settle a bill against a policy and print setlinfo/setldetail JSON (yuan). Writes nothing."""
    from medpay.adapters.policy_files import builtin_policies, load_policy_file
    from medpay.domain.policy import PolicyError, select_policy
    from medpay.interface_format import to_yuan
    from medpay.services.errors import ServiceError
    from medpay.services.quote import parse_quote
    from medpay.services.quote import quote as run_quote

    doc = _read_json(bill)
    if person is not None:
        doc["person"] = _read_json(person)
    try:
        p, visit, *_ = parse_quote(doc)
        if policy is not None:
            chosen = load_policy_file(policy)
        else:
            chosen = select_policy(list(builtin_policies()), p.insuplc_admdvs, visit.setl_date)
        result = run_quote(chosen, doc)
    except (ServiceError, PolicyError, LookupError) as e:
        _fail(str(e))
    sys.stdout.write(json.dumps(to_yuan(result), ensure_ascii=False, indent=2) + "\n")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return read_json_object(path)
    except ValueError as e:
        _fail(str(e))


@ledger_app.command("check")
def ledger_check() -> None:
    """Verify the ledger invariants on the live database; exit 1 on any violation."""
    from rich.progress import Progress

    from medpay.adapters.db.engine import session_factory
    from medpay.adapters.db.ledger_store import check_ledger

    engine = _engine()
    session = session_factory(engine)()
    try:
        with Progress(transient=True) as progress:
            progress.add_task("检查账务 / checking ledger", total=None)
            violations = check_ledger(session)
    finally:
        session.close()
    if not violations:
        console.print("[green]账务平衡 / ledger balanced[/]: all debits = all credits, every balance = its transfers, no limit broken")
        return
    t = Table(title=f"[red]{len(violations)} violation(s)[/]")
    t.add_column("code")
    t.add_column("message")
    for v in violations:
        t.add_row(str(getattr(v.code, "value", v.code)), v.message)
    console.print(t)
    raise typer.Exit(1)


@app.command()
def housekeeping() -> None:
    """Delete what may be forgotten: nonces past their replay window, expired ecTokens and interface files
    (``medpay serve`` does this every MEDPAY_HOUSEKEEPING_INTERVAL_S seconds; this runs one pass, for cron)."""
    from medpay.adapters.keyring import KeyringError
    from medpay.api.app import create_app, housekeeping_of
    from medpay.api.platform import build_platform

    try:
        platform = build_platform()
    except KeyringError as e:
        _refuse_keys(e)
    done = housekeeping_of(create_app(platform)).run()
    t = Table(title="清理 / housekeeping")
    t.add_column("what")
    t.add_column("deleted", justify="right")
    for what, n in done.items():
        t.add_row(what, "[red]failed (see the log)[/]" if n is None else str(n))
    console.print(t)
    if None in done.values():
        raise typer.Exit(1)


audit_app = typer.Typer(help="个人信息访问审计 / who was shown whose personal data", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Seal what is old enough, then check the whole chain of seals; exit 1 if anything was tampered with.
    Prints the latest digest: keep it outside the database to notice the newest seals being cut off."""
    from medpay.adapters.db.engine import session_factory
    from medpay.services.audit import AuditLog

    engine = _engine()
    log = AuditLog(session_factory(engine))
    log.seal()
    result = log.verify()
    console.print(f"{result.seals} seal(s) over {result.sealed_events} event(s); {result.unsealed_events} not yet "
                  f"sealed (younger than 5 min); latest digest [bold]{result.latest_digest}[/]")
    if result.ok:
        console.print("[green]审计日志完整 / audit log intact[/]")
        return
    for problem in result.problems:
        console.print(f"[red]✗[/] {problem}")
    raise typer.Exit(1)


@audit_app.command("show")
def audit_show(psn_no: str = typer.Argument(..., help="人员编号 of the person"),
               limit: int = typer.Option(50, min=1, max=10_000)) -> None:
    """The newest accesses to one person's data: when, who, what for, which fields."""
    from medpay.adapters.db.engine import session_factory
    from medpay.local_time import format_local
    from medpay.services.audit import AuditLog

    rows = AuditLog(session_factory(_engine())).of_person(psn_no, limit)
    t = Table(title=f"{psn_no}: {len(rows)} access(es), newest first")
    for col in ("time", "who", "action", "fields", "ref"):
        t.add_column(col)
    for r in rows:
        t.add_row(format_local(r.at), f"{r.actor_kind} {r.actor}", r.action, r.fields, r.ref)
    console.print(t)


staff_app = typer.Typer(help="经办人员密钥 / the staff keys of the admin door", no_args_is_help=True)
app.add_typer(staff_app, name="staff")


@staff_app.command("key-create")
def staff_key_create(name: str = typer.Argument(..., help="the staff member the key belongs to")) -> None:
    """Make a staff key; it is printed once and stored only as a hash."""
    from medpay.adapters.db.engine import session_factory
    from medpay.services.staff import StaffKeys

    key = StaffKeys(session_factory(_engine())).create(name)
    console.print(f"密钥 / key for {name}: [bold]{key}[/] (shown once; send as Authorization: Bearer …)")


@staff_app.command("key-revoke")
def staff_key_revoke(key_id: str = typer.Argument(..., help="the id part of the key: mpk_<id>_…")) -> None:
    """Revoke a staff key at once."""
    from medpay.adapters.db.engine import session_factory
    from medpay.services.errors import ServiceError
    from medpay.services.staff import StaffKeys

    try:
        StaffKeys(session_factory(_engine())).revoke(key_id)
    except ServiceError as e:
        _fail(f"{e.field}: {e.message}")
    console.print(f"revoked {key_id}")


if __name__ == "__main__":
    app()

