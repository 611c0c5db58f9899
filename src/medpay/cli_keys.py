"""``medpay keys …``: the platform's keyring (``medpay.adapters.keyring``) next to what the database recorded, and
rotation. Nothing here prints a key: only ids and fingerprints."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

keys_app = typer.Typer(help="密钥 / the platform's keyring: fingerprints, rotation", no_args_is_help=True)
console = Console()


def _fail(message: str) -> None:
    typer.echo(f"错误 / error: {message}", err=True)
    raise typer.Exit(2)


@keys_app.command("show")
def show() -> None:
    """The keys of MEDPAY_DATA_KEY_FILE and MEDPAY_SIGNING_KEY_FILE and the fingerprints the database in
    MEDPAY_DATABASE_URL recorded, side by side (what to compare when a process refuses its keys). Creates
    nothing, checks nothing."""
    from sqlalchemy import inspect, select

    from medpay.adapters.db.engine import database_url, make_engine
    from medpay.adapters.db.key_tables import KeyFingerprintRow
    from medpay.adapters.keyring import KeyringError, key_files, read_key_file

    keys, problems = [], []
    for kind, path in key_files().items():
        try:
            keys += read_key_file(kind, path)
        except KeyringError as e:
            problems.append(str(e))
    engine = make_engine(database_url())
    try:
        with engine.connect() as conn:
            recorded = ({(r.purpose, r.key_id): r.fingerprint for r in conn.execute(select(KeyFingerprintRow.__table__))}
                        if inspect(conn).has_table(KeyFingerprintRow.__tablename__) else {})
    finally:
        engine.dispose()
    t = Table(title=f"密钥 / keys (database {engine.url.render_as_string(hide_password=True)})")
    for col in ("purpose", "key id", "fingerprint", "file", "database"):
        t.add_column(col)
    for k in keys:
        fp = recorded.get((k.purpose, k.key_id))
        state = ("[dim]not recorded[/]" if fp is None else "[green]recorded[/]" if fp == k.fingerprint
                 else "[red]recorded with another fingerprint[/]")
        t.add_row(k.purpose, k.key_id, k.fingerprint[:16], str(k.source), state)
    for (purpose, key_id), fp in sorted(recorded.items()):
        if not any(k.purpose == purpose and k.key_id == key_id for k in keys):
            t.add_row(purpose, key_id, fp[:16], "[red]not in the keyring[/]", "recorded")
    console.print(t)
    for problem in problems:
        console.print(f"[red]✗[/] {problem}")


@keys_app.command("rotate")
def rotate(purpose: str = typer.Argument(..., help="data (encrypts personal data), signing (signs codes) or face "
                                                  "(wraps face templates' keys)")) -> None:
    """Add a new, newest key of PURPOSE to its file: new values are written with it, older ones stay readable
    with the keys before it (keep them). Copy the file to every host, then restart every process: the first to
    start records the new key in the database, and a process without it refuses to start from then on.
    ``face``: every face template's key is re-wrapped with the new key at once, a batch per transaction; running
    servers on this host read the file again when they meet the new key id, so verification never stops."""
    from medpay.adapters.keyring import KeyringError, add_key

    try:
        key = add_key(purpose)
    except (KeyringError, OSError) as e:
        _fail(str(e))
    if purpose == "face":
        from medpay.cli_face import rewrap_templates

        console.print(f"re-wrapped {rewrap_templates()} face template keys with {key.key_id}")
    console.print(f"new {key.purpose} key [bold]{key.key_id}[/] (fingerprint {key.fingerprint[:16]}) added to "
                  f"{key.source}. Copy that file to every host, then restart every medpay process.")
