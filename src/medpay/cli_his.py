"""``medpay his …``: act as a hospital's HIS against a medpay (or any NHSA-style) server."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import typer

from medpay.his_transport import HttpTransport, Transport
from medpay.his_client import ENVELOPE_FIELDS, PATH_STYLES, HisClient, HisError, HisHTTPError, HisResponseError

his_app = typer.Typer(help="HIS 客户端 / send institution-interface transactions", no_args_is_help=True)

_SHORT_FORM_KEYS = {"infno", "input", "insuplc_admdvs", "msgid", "recer_sys_code", "cainfo"}


@his_app.callback()
def _his() -> None:
    """Act as a hospital HIS: envelope, gateway signature, retries with the same msgid."""


def make_transport(base_url: str, timeout: float) -> Transport:
    """The transport ``send`` posts through: HTTP to ``base_url``. Tests replace it with a scripted one."""
    return HttpTransport(base_url, timeout)


def _demo_institution(code: Optional[str]) -> dict[str, Any]:
    from medpay.services.demo import INSTITUTIONS, PHARMACIES, REGION

    rows = [{"fixmedins_code": c, "fixmedins_name": n, "paasid": p, "token": t, "admdvs": REGION[0]}
            for c, n, _lv, p, t in INSTITUTIONS + PHARMACIES]
    return next((r for r in rows if r["fixmedins_code"] == code), rows[0])


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2))


@his_app.command("send")
def send(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                help='JSON: a full envelope, or {"infno", "input", "insuplc_admdvs"}'),
    base_url: str = typer.Option("http://127.0.0.1:8000", "--base-url", envvar="MEDPAY_HIS_BASE_URL"),
    fixmedins_code: Optional[str] = typer.Option(None, "--fixmedins-code", envvar="MEDPAY_HIS_FIXMEDINS_CODE"),
    fixmedins_name: Optional[str] = typer.Option(None, "--fixmedins-name", envvar="MEDPAY_HIS_FIXMEDINS_NAME"),
    paasid: Optional[str] = typer.Option(None, "--paasid", envvar="MEDPAY_HIS_PAASID"),
    admdvs: Optional[str] = typer.Option(None, "--admdvs", envvar="MEDPAY_HIS_ADMDVS",
                                         help="mdtrtarea_admvs (就医地医保区划)"),
    sign_no: str = typer.Option("", "--sign-no", envvar="MEDPAY_HIS_SIGN_NO", help="sign_no from 9001"),
    opter: str = typer.Option("hisdemo", "--opter", envvar="MEDPAY_HIS_OPTER"),
    path_style: str = typer.Option("call_service", "--path-style",
                                   help="call_service: the single endpoint; named: the transaction's named path; "
                                        "infno: BASE_URL/<infno>"),
    retries: int = typer.Option(3, "--retries", min=0),
    timeout: float = typer.Option(10.0, "--timeout"),
) -> None:
    """Send one transaction from FILE and print the response envelope.

    The gateway token comes from MEDPAY_HIS_TOKEN only (a secret is never an option: `ps` shows command lines).
    Credentials not given (option or MEDPAY_HIS_* variable) come from the demo institution with the given
    code, else the first one. Exit 0: infcode 0; 1: infcode -1/-2 (or other non-zero); 2: no response
    (transport failure, HTTP refusal) or an unreadable FILE.
    """
    try:
        message = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        typer.echo(f"error: {file}: {exc}", err=True)
        raise typer.Exit(2)
    if not isinstance(message, dict) or not str(message.get("infno", "")).strip():
        typer.echo(f'error: {file}: expected a JSON object with "infno"', err=True)
        raise typer.Exit(2)

    if path_style not in PATH_STYLES:
        typer.echo(f"error: --path-style must be one of {', '.join(PATH_STYLES)}, not {path_style!r}", err=True)
        raise typer.Exit(2)
    token = os.environ.get("MEDPAY_HIS_TOKEN") or None  # a secret: never an option (`ps` shows command lines)
    full = not set(message) <= _SHORT_FORM_KEYS
    if full and not fixmedins_code and message.get("fixmedins_code"):
        fixmedins_code = str(message["fixmedins_code"])
    demo = _demo_institution(fixmedins_code) if None in (fixmedins_code, paasid, token, admdvs) else {}
    code = fixmedins_code or demo["fixmedins_code"]
    name = fixmedins_name or (demo.get("fixmedins_name", "") if demo.get("fixmedins_code") == code else "")

    client = HisClient(base_url, code, name, paasid or demo["paasid"], token or demo["token"],
                       mdtrtarea_admvs=admdvs or demo["admdvs"], opter=opter, timeout=timeout, retries=retries,
                       transport=make_transport(base_url, timeout), path_style=path_style, sign_no=sign_no)
    try:
        if full:
            envelope = client.envelope(str(message["infno"]), message.get("input") or {},
                                       insuplc_admdvs=str(message.get("insuplc_admdvs") or ""))
            # fields present in the file win; missing ones are filled in
            envelope.update({k: v for k, v in message.items()})
            envelope = {**{k: envelope[k] for k in ENVELOPE_FIELDS if k in envelope}, **envelope}
            response = client.send_envelope(envelope)
        else:
            response = client.call(str(message["infno"]), message.get("input") or {},
                                   insuplc_admdvs=str(message.get("insuplc_admdvs") or ""),
                                   msgid=message.get("msgid") or None,
                                   recer_sys_code=message.get("recer_sys_code") or None,
                                   cainfo=message.get("cainfo"))
    except HisResponseError as exc:
        if exc.response is not None:
            _print_json(exc.response.raw)
        typer.echo(f"error: infcode {exc.infcode}: {exc.err_msg}", err=True)
        raise typer.Exit(1)
    except HisHTTPError as exc:
        typer.echo(f"error: HTTP {exc.status}: {exc.body[:500]}", err=True)
        raise typer.Exit(2)
    except HisError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    finally:
        client.close()
    _print_json(response.raw)


@his_app.command("selftest")
def selftest(
    base_url: str = typer.Argument(..., help="the platform's base URL, e.g. http://127.0.0.1:8000"),
    fixmedins_code: Optional[str] = typer.Option(None, "--fixmedins-code", envvar="MEDPAY_HIS_FIXMEDINS_CODE"),
    fixmedins_name: Optional[str] = typer.Option(None, "--fixmedins-name", envvar="MEDPAY_HIS_FIXMEDINS_NAME"),
    paasid: Optional[str] = typer.Option(None, "--paasid", envvar="MEDPAY_HIS_PAASID"),
    admdvs: Optional[str] = typer.Option(None, "--admdvs", envvar="MEDPAY_HIS_ADMDVS",
                                         help="mdtrtarea_admvs (就医地医保区划)"),
    path_style: str = typer.Option("call_service", "--path-style",
                                   help="call_service, named or infno (BASE_URL/<infno>)"),
    sign_in: str = typer.Option("auto", "--sign-in", help="auto: sign in (9001) when the platform asks for a "
                                                          "sign_no; always; never"),
    certno: Optional[str] = typer.Option(None, "--certno", help="the outpatient test person's ID number (02)"),
    inpatient_certno: Optional[str] = typer.Option(None, "--inpatient-certno",
                                                   help="the inpatient test person's ID number (02)"),
    drug: str = typer.Option("XM01AEB002", "--drug", help="a drug's catalog code (医疗目录编码)"),
    service: str = typer.Option("002100000020000", "--service", help="a medical service's catalog code"),
    bed: str = typer.Option("001102000010000", "--bed", help="a bed-fee catalog code (inpatient)"),
    timeout: float = typer.Option(10.0, "--timeout"),
    as_json: bool = typer.Option(False, "--json", help="print the outcomes as JSON"),
) -> None:
    """Run a whole outpatient and inpatient flow against BASE_URL as a HIS would, and print a conformance table
    with the first difference per transaction: the check a hospital runs before it goes live.

    The gateway token comes from MEDPAY_HIS_TOKEN only. Credentials, test persons and catalog codes not given come
    from the demo data (a medpay platform serving the demo). Everything settled is cancelled again. Exit 0: every
    transaction conforms; 1: some differ; 2: wrong options.
    """
    from medpay.his_selftest import Selftest, Subjects, table
    from medpay.services.demo import PERSONS

    if path_style not in PATH_STYLES or sign_in not in ("auto", "always", "never"):
        typer.echo(f"error: --path-style must be one of {', '.join(PATH_STYLES)}; --sign-in auto, always or never",
                   err=True)
        raise typer.Exit(2)
    token = os.environ.get("MEDPAY_HIS_TOKEN") or None
    demo = _demo_institution(fixmedins_code) if None in (fixmedins_code, paasid, token, admdvs) else {}
    code = fixmedins_code or demo["fixmedins_code"]
    name = fixmedins_name or (demo.get("fixmedins_name", "") if demo.get("fixmedins_code") == code else "")
    client = HisClient(base_url, code, name, paasid or demo["paasid"], token or demo["token"],
                       mdtrtarea_admvs=admdvs or demo["admdvs"], opter="selftest", timeout=timeout, retries=1,
                       transport=make_transport(base_url, timeout), path_style=path_style)
    subjects = Subjects(certno or PERSONS[0].certno, inpatient_certno or PERSONS[1].certno, drug, service, bed)
    try:
        outcomes = Selftest(client, subjects, sign_in).run()
    finally:
        client.close()
    if as_json:
        _print_json([{"infno": o.infno, "title": o.title, "ok": o.ok, "note": o.note} for o in outcomes])
    else:
        typer.echo(table(outcomes))
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


__all__ = ["his_app", "make_transport", "selftest", "send"]

if __name__ == "__main__":  # pragma: no cover
    his_app()
