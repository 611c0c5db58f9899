"""``medpay face …``: the face model measured on labelled photos; face enrolment and consent from the counter's
command line (for a staff member's terminal session)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Optional

import typer

face_app = typer.Typer(help="刷脸 / face payment: model evaluation, enrolment, consent", no_args_is_help=True)


def _summary(values: list[float]) -> str:
    if not values:
        return "none"
    q = sorted(values)
    return (f"n={len(q)} min={q[0]:.3f} median={statistics.median(q):.3f} "
            f"p95={q[min(len(q) - 1, int(0.95 * len(q)))]:.3f} max={q[-1]:.3f}")


@face_app.command("eval")
def evaluate(folder: Path = typer.Argument(..., exists=True, file_okay=False, help="one folder per person"),
             threshold: Optional[float] = typer.Option(None, help="match when distance ≤ this (default: the "
                                                                  "model's, 0.6 for dlib)"),
             png: Path = typer.Option(Path("face-det.png"), help="where to write the DET plot")) -> None:
    """Genuine and impostor distance distributions, FMR/FNMR at the threshold (with their counts), a DET plot as
    PNG, and the latency of each photo (decode + detect + landmarks + embedding)."""
    from medpay.adapters.face.dlib_encoder import default_encoder
    from medpay.services.face.evaluation import evaluate as run, plot

    encoder = default_encoder()
    ev = run(folder, encoder, threshold if threshold is not None else encoder.threshold)
    typer.echo(f"model {encoder.name}; {sum(len(v) for v in ev.embeddings.values())} photos of "
               f"{len(ev.embeddings)} people")
    for name, why in ev.skipped:
        typer.echo(f"  skipped {name}: {why}")
    typer.echo(f"genuine distances:  {_summary(ev.genuine)}")
    typer.echo(f"impostor distances: {_summary(ev.impostor)}")
    r = ev.rates
    typer.echo(f"threshold {r.threshold:.3f}: FMR {r.fmr:.4f} ({r.false_matches}/{r.impostor_pairs} impostor pairs "
               f"matched), FNMR {r.fnmr:.4f} ({r.false_non_matches}/{r.genuine_pairs} genuine pairs missed)")
    typer.echo("  (so few pairs measure little: a rate of 0 here says only that none of these pairs erred)")
    lat = [ms for _, ms in ev.latency_ms]
    typer.echo(f"latency per photo (ms): {_summary(lat)}")
    for name, ms in ev.latency_ms:
        typer.echo(f"  {name}: {ms:.0f} ms")
    plot(ev, png)
    typer.echo(f"DET plot: {png}")


def _enrolment():
    """The enrolment service on MEDPAY_DATABASE_URL with the keys it was written with (refused otherwise)."""
    from medpay.adapters.crypto import cipher_of
    from medpay.adapters.db.engine import database_url, make_engine, session_factory
    from medpay.adapters.db.key_check import open_keyring
    from medpay.adapters.face.dlib_encoder import default_encoder
    from medpay.adapters.face.vault import TemplateVault
    from medpay.adapters.keyring import KeyringError, load_keyring

    engine = make_engine(database_url())
    try:
        keyring = open_keyring(engine)
    except KeyringError as e:
        typer.echo(f"错误 / error: {e}", err=True)
        raise typer.Exit(2) from None
    from medpay.services.face.enrolment import FaceEnrolment

    vault = TemplateVault(lambda: load_keyring(keyring.files).of("face"))
    return FaceEnrolment(session_factory(engine), cipher_of(keyring), vault, default_encoder())


def rewrap_templates() -> int:
    return _enrolment().rewrap_all()


@face_app.command("withdraw")
def withdraw(psn_no: str = typer.Argument(..., help="人员编号"),
             operator: str = typer.Option(..., "--operator", help="who records the withdrawal (audited)")) -> None:
    """The person withdraws consent to face payment: the template is deleted at once (audited)."""
    done = _enrolment().withdraw(psn_no, via="cli", by=operator)
    typer.echo(f"{psn_no}: " + ("consent withdrawn, face template deleted" if done else "nothing was enrolled"))
