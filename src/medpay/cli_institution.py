"""``medpay institution …``: an institution's SM2 body-signature key, what ID numbers may do there, whether its
HIS must sign in, and its kind (中医院, 基层 …, which policies may distinguish).

With a key registered, every request body the institution sends must be SM3withSM2-signed (``signtype``
"SM2", the signature in ``cainfo``); the platform's workers see a change within 10 s. Each change is written to
the audit log (``medpay audit``) as the operator's (``--operator``, default: the system user).
"""

from __future__ import annotations

import getpass
import json
from datetime import timedelta

import typer

institution_app = typer.Typer(help="定点医药机构 / institutions: SM2 body-signature keys, ID-number assurance, sign-in, "
                                   "kind",
                              no_args_is_help=True)
sm2_app = typer.Typer(help="SM2 公钥 / the key an institution's request bodies must be signed with",
                      no_args_is_help=True)
institution_app.add_typer(sm2_app, name="sm2-key")

CODE = typer.Argument(..., help="定点医药机构编号, e.g. H99990100001")
PUBLIC_KEY = typer.Option(..., "--public-key", help="SM2 public key: x||y, 128 hex digits (04 prefix allowed)")
OPERATOR = typer.Option(None, "--operator", help="who makes the change, for the audit log (default: system user)")


def _fail(message: str) -> None:
    typer.echo(f"错误 / error: {message}", err=True)
    raise typer.Exit(2)


def _on_database(work):
    """``work(session_factory)`` on the database of MEDPAY_DATABASE_URL (nothing encrypted: no keyring needed); a
    refusal names the field and exits 2."""
    from medpay.adapters.db.engine import database_url, make_engine, session_factory
    from medpay.services.errors import ServiceError

    engine = make_engine(database_url())
    try:
        return work(session_factory(engine))
    except ServiceError as e:
        _fail(f"{e.field}: {e.message}")
    finally:
        engine.dispose()


def _run(method: str, *args, **kwargs):
    """``InstitutionKeys.<method>`` on the database."""
    from medpay.services.gateway_auth import InstitutionKeys

    return _on_database(lambda factory: getattr(InstitutionKeys(factory), method)(*args, **kwargs))


def _operator(name: str | None) -> str:
    return name or getpass.getuser()


def _print(code: str, keys) -> None:
    typer.echo(json.dumps({
        "fixmedins_code": code, "sm2_public_key": keys.current if keys else None,
        "previous_sm2_public_key": keys.previous if keys else None,
        "previous_valid_until": keys.previous_until.isoformat() if keys and keys.previous_until else None},
        indent=2))


@sm2_app.command("set")
def set_key(fixmedins_code: str = CODE, public_key: str = PUBLIC_KEY, operator: str = OPERATOR) -> None:
    """Register the institution's SM2 key: from then on its bodies must be signed with it. Refused if it has one
    (rotate or remove it)."""
    _run("set", fixmedins_code, public_key, operator=_operator(operator), replace=False)
    _print(fixmedins_code, _run("get", fixmedins_code))


@sm2_app.command("rotate")
def rotate_key(fixmedins_code: str = CODE, public_key: str = PUBLIC_KEY,
               grace: int = typer.Option(600, "--grace", min=0,
                                         help="seconds the replaced key is still accepted (0: not at all)"),
               operator: str = OPERATOR) -> None:
    """Replace the institution's SM2 key; the old one is still accepted for --grace seconds, so its HIS
    workstations can switch one by one."""
    _print(fixmedins_code, _run("rotate", fixmedins_code, public_key, timedelta(seconds=grace),
                                operator=_operator(operator)))


@sm2_app.command("remove")
def remove_key(fixmedins_code: str = CODE, operator: str = OPERATOR) -> None:
    """Remove the institution's SM2 key: its bodies are no longer checked (nor required to be signed)."""
    _run("set", fixmedins_code, None, operator=_operator(operator))
    _print(fixmedins_code, None)


@sm2_app.command("show")
def show_key(fixmedins_code: str = CODE) -> None:
    """The institution's registered SM2 key, and the previous one while its grace lasts."""
    _print(fixmedins_code, _run("get", fixmedins_code))


@institution_app.command("assurance")
def assurance(fixmedins_code: str = CODE,
              level: str = typer.Argument(..., help="counter: ID-card and social-security card numbers identify, open "
                                                    "visits and settle (the window checks the card by sight); lookup: "
                                                    "they only identify (1101); card: nothing without a card read"),
              operator: str = OPERATOR) -> None:
    """What an ID-card (02) or social-security card (03) number may do at the institution without a card read;
    an e-certificate, or a social-security card whose card_sn matches, works whatever the setting. Audited."""
    _set("id_assurance", fixmedins_code, level, operator)


@institution_app.command("sign-in")
def sign_in(fixmedins_code: str = CODE,
            mode: str = typer.Argument(..., help="required: every request but 9001/9002 carries the sign_no of an open "
                                                 "9001 sign-in; optional: a request may send sign_no \"\" (a sign_no "
                                                 "that is given is checked either way)"),
            operator: str = OPERATOR) -> None:
    """Whether the institution's HIS must sign in (9001) before other transactions. Audited; the platform's
    workers see a change within 10 s."""
    _set("sign_in", fixmedins_code, mode, operator)


@institution_app.command("fee-query-shape")
def fee_query_shape(fixmedins_code: str = CODE,
                    shape: str = typer.Argument(..., help="rows: 5204's output is the list of fee rows (what HIS "
                                                          "clients read); object: {\"feedetail\": rows}"),
                    operator: str = OPERATOR) -> None:
    """What 5204 (fee detail query) answers the institution's HIS. Audited."""
    _set("fee_query_shape", fixmedins_code, shape, operator)


@institution_app.command("kind")
def kind(fixmedins_code: str = CODE,
         value: str = typer.Argument(..., metavar="KIND",
                                     help="general 综合医院 (the default), tcm 中医院 (中医/中西医结合), specialist 专科医院, "
                                          "grassroots 基层 (乡镇卫生院, 社区卫生服务中心, 村卫生室)"),
         operator: str = OPERATOR) -> None:
    """The institution's kind, which a region's policy may distinguish beyond its level (e.g. a 中医院's lower
    deductible, 基层 ratios). Audited."""
    from medpay.services.directory import set_institution_kind

    result = _on_database(lambda factory: set_institution_kind(factory, fixmedins_code, value, _operator(operator)))
    typer.echo(json.dumps({"fixmedins_code": fixmedins_code, "inst_kind": result}))


def _set(column: str, fixmedins_code: str, value: str, operator: str | None) -> None:
    """One interface setting (``medpay.services.directory.INTERFACE_SETTINGS``), printed as JSON."""
    from medpay.services.directory import set_institution_setting

    result = _on_database(lambda factory: set_institution_setting(factory, fixmedins_code, column, value,
                                                                  _operator(operator)))
    typer.echo(json.dumps({"fixmedins_code": fixmedins_code, column: result}))
