"""``medpay ecert …``: activate an e-certificate at a counter, show its dynamic code, register a terminal, register
an institution's notify URL.

These act on the database directly (``MEDPAY_DATABASE_URL``; run ``medpay db upgrade`` first), with the data key
(``MEDPAY_DATA_KEY_FILE``), the platform's signing key (``MEDPAY_SIGNING_KEY_FILE``) and the code lifetime
(``MEDPAY_ECERT_CODE_TTL_S``) the server uses. Device and terminal keys
are Ed25519 private keys in files (raw 32 bytes, base64, mode 0600), created when missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from medpay.domain.ecert_code import BUSINESS_TYPES

ecert_app = typer.Typer(help="医保电子凭证 / e-certificates, QR codes and terminals", no_args_is_help=True)


@ecert_app.callback()
def _ecert() -> None:
    """E-certificates: activation, dynamic QR codes, terminal registration."""


def _database():
    """The database, and the cipher of the keys it was written with (refused with the reason otherwise)."""
    from medpay.adapters.crypto import cipher_of
    from medpay.adapters.db.engine import database_url, make_engine, session_factory
    from medpay.adapters.db.key_check import open_keyring
    from medpay.adapters.keyring import KeyringError

    engine = make_engine(database_url())
    try:
        return session_factory(engine), cipher_of(open_keyring(engine))
    except KeyringError as e:
        _fail(str(e))


def _service():
    from medpay.adapters.platform_keys import default_signing_key
    from medpay.api.platform import code_ttl_from_env
    from medpay.services.qr.ecert import EcertService
    from medpay.services.persons import PersonService

    factory, cipher = _database()
    try:
        ttl = code_ttl_from_env()
    except ValueError as e:
        _fail(str(e))
    return EcertService(factory, cipher, default_signing_key(), PersonService(factory, cipher), code_ttl_s=ttl)


def _key(path: Path):
    from medpay.adapters.platform_keys import load_or_create_key

    try:
        return load_or_create_key(path)
    except (OSError, ValueError) as e:
        _fail(f"{path}: {e}")


def _fail(message: str) -> None:
    typer.echo(f"错误 / error: {message}", err=True)
    raise typer.Exit(2)


def _run(fn, *args: Any) -> Any:
    from medpay.services.errors import ServiceError

    try:
        return fn(*args)
    except ServiceError as e:
        _fail(f"{e.field}: {e.message}")


def _print(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def _activations():
    from medpay.services.qr.activation import ActivationService

    factory, cipher = _database()
    return ActivationService(factory, cipher, None)  # the CLI texts nothing: counter codes only


def _operator(name: Optional[str]) -> str:
    import getpass

    return name or getpass.getuser()


@ecert_app.command("counter-code")
def counter_code(psn_no: str = typer.Option(..., "--psn-no", help="人员编号"),
                 certno: str = typer.Option(..., "--certno", help="证件号码 on the ID card you saw"),
                 consent: bool = typer.Option(False, "--consent/--no-consent",
                                              help="the person consents to processing their personal information"),
                 operator: Optional[str] = typer.Option(None, "--operator", help="who you are (audit log); default: "
                                                                                   "your login")) -> None:
    """Activation at a counter: you saw the person and their ID card. Prints a code for them to enter in the app
    (valid 15 min); it cancels an activation pending by SMS."""
    started = _run(_activations().start_at_counter, psn_no, certno, consent, _operator(operator))
    _print({"activation_id": started.activation_id, "counter_code": started.counter_code,
            "expires_at": started.expires_at.isoformat(), **(started.holder or {})})


@ecert_app.command("activate")
def activate(psn_no: str = typer.Option(..., "--psn-no", help="人员编号"),
             certno: str = typer.Option(..., "--certno", help="证件号码 on the ID card you saw"),
             key_file: Path = typer.Option(Path("var/device.key"), "--key-file",
                                           help="device key file (created if missing)"),
             consent: bool = typer.Option(False, "--consent/--no-consent",
                                          help="the person consents to processing their personal information"),
             operator: Optional[str] = typer.Option(None, "--operator", help="who you are (audit log)")) -> None:
    """Activate at a counter in one go, for a device key in KEY_FILE (a kiosk, a test): prints the ecert_id."""
    from medpay.adapters.platform_keys import public_key_hex

    device = _key(key_file)
    svc = _activations()
    started = _run(svc.start_at_counter, psn_no, certno, consent, _operator(operator))
    done = _run(lambda: svc.confirm(public_key_hex(device), counter_code=started.counter_code))
    _print({"ecert_id": done.ecert_id, "key_file": str(key_file), "device_public_key": public_key_hex(device)})


@ecert_app.command("code")
def code(ecert_id: str = typer.Option(..., "--ecert-id"),
         key_file: Path = typer.Option(Path("var/device.key"), "--key-file", exists=True, dir_okay=False,
                                       help="the device key the e-certificate was activated with"),
         business_type: str = typer.Option("01301", "--business-type",
                                           help=", ".join(f"{k} {v}" for k, v in BUSINESS_TYPES.items())),
         png: Optional[Path] = typer.Option(None, "--png", help="write the QR code as PNG here"),
         svg: Optional[Path] = typer.Option(None, "--svg", help="write the QR code as SVG here"),
         scale: int = typer.Option(8, "--scale", min=1, max=40)) -> None:
    """Sign a code request with the device key and print the payload (valid 60 s); optionally write PNG/SVG."""
    from medpay.adapters import qr_images
    from medpay.services.qr.ecert import sign_device_request

    device = _key(key_file)
    svc = _service()
    path, body = "/api/v1/mobile/ecert/code", json.dumps({"business_type": business_type}).encode()
    ecert, _psn_no = _run(svc.verify_device, sign_device_request(device, ecert_id, "POST", path, body), "POST",
                          path, body)
    payload, expires_at = _run(svc.issue_code, ecert, business_type)
    if png:
        png.write_bytes(qr_images.render_png(payload, scale=scale))
    if svg:
        svg.write_text(qr_images.render_svg(payload, scale=max(1, scale // 2)), encoding="utf-8")
    _print({"payload": payload, "expires_at": expires_at.isoformat(), "business_type": business_type,
            "png": str(png) if png else None, "svg": str(svg) if svg else None})


@ecert_app.command("revoke")
def revoke(ecert_id: str = typer.Option(..., "--ecert-id")) -> None:
    """Revoke an e-certificate (lost phone): its codes stop working at once."""
    _run(_service().revoke, ecert_id)
    _print({"ecert_id": ecert_id, "status": "revoked"})


@ecert_app.command("terminal-register")
def terminal_register(fixmedins_code: str = typer.Option(..., "--fixmedins-code", help="定点医药机构编号"),
                      name: str = typer.Option(..., "--name", help="e.g. 门诊收费1号窗口"),
                      key_file: Path = typer.Option(Path("var/terminal.key"), "--key-file",
                                                    help="terminal key file (created if missing)"),
                      kind: str = typer.Option("scanner", "--kind", help="scanner (QR codes) or face (a face kiosk)"),
                      public_key: Optional[str] = typer.Option(
                          None, "--public-key", help="register this Ed25519 public key (64 hex digits) instead of a "
                                                     "key file: a face kiosk's page makes its key and shows this"),
                      ) -> None:
    """Register a terminal of an institution; prints the terminal_id its requests must carry."""
    from medpay.adapters.platform_keys import public_key_hex

    key_hex = public_key if public_key is not None else public_key_hex(_key(key_file))
    terminal_id = _run(_service().register_terminal, fixmedins_code, key_hex, name, kind)
    _print({"terminal_id": terminal_id, "fixmedins_code": fixmedins_code,
            "key_file": None if public_key is not None else str(key_file), "public_key": key_hex, "kind": kind})


@ecert_app.command("notify-url")
def notify_url(fixmedins_code: str = typer.Argument(..., help="定点医药机构编号, e.g. H99990100001"),
               url: Optional[str] = typer.Argument(None, help="the HIS's http(s) URL for settle.notify"),
               clear: bool = typer.Option(False, "--clear", help="remove the registered URL")) -> None:
    """Register where settle.notify goes for an institution's one-scan and bill payments (signed with its
    gateway token), besides any URL a terminal's settle request names."""
    from medpay.services.directory import Directory

    if (url is None) == (not clear):
        _fail("give either a URL or --clear")
    registered = _run(Directory(*_database()).set_notify_url, fixmedins_code, url)
    _print({"fixmedins_code": fixmedins_code, "notify_url": registered})
