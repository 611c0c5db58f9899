"""Institutions' SM2 keys: rotation with a grace period, how soon workers see a change, no database read per
request, and the ``medpay institution sm2-key`` commands (audited)."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from sqlalchemy import event, select
from typer.testing import CliRunner

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.audit_tables import AuditEventRow
from medpay.adapters.db.engine import make_engine
from medpay.adapters.db.tables import InstitutionRow
from medpay.adapters.sm2 import generate_keypair, sign_sm2
from medpay.cli import app
from medpay.domain.gateway_signature import canonical_body, sign_headers
from medpay.services.directory import Directory
from medpay.services.errors import Invalid, NotFound
from medpay.services.gateway_auth import AuthError, GatewayAuth, InstitutionKeys
from tests.test_gateway_auth import CODE_A, PAAS_A, T0, TOKEN_A, Clock


@pytest.fixture
def world(session_factory):
    """An institution, and two workers' GatewayAuth with a shared test clock and monotonic clock."""
    cipher = FieldCipher(os.urandom(32))
    directory = Directory(session_factory, cipher)
    directory.add_region("999901", "演示区")
    directory.add_institution(CODE_A, "演示医院甲", "999901", "3", PAAS_A, TOKEN_A)
    clock, seconds = Clock(), [1000.0]
    workers = [GatewayAuth(session_factory, cipher, clock=clock, token_ttl_s=10, monotonic=lambda: seconds[0])
               for _ in range(2)]
    return workers, InstitutionKeys(session_factory, clock), clock, seconds


def body(private: str | None, opter_no: str = "1001") -> dict:
    env = {"infno": "9001", "msgid": f"{CODE_A}202611230800000001", "fixmedins_code": CODE_A,
           "input": {"signIn": {"opter_no": opter_no, "mac": "m", "ip": "1.2.3.4"}}}
    if private is not None:
        env["signtype"] = "SM2"
        env["cainfo"] = sign_sm2(private, canonical_body(env))
    return env


def refused(auth: GatewayAuth, env: dict, field: str, message: str = "") -> None:
    with pytest.raises(AuthError) as e:
        auth.verify_body(CODE_A, env)
    assert e.value.field == field and message in e.value.message, e.value


def test_a_rotated_key_is_accepted_until_its_grace_ends(world) -> None:
    (auth, _), keys, clock, seconds = world
    old, old_public = generate_keypair()
    new, new_public = generate_keypair()
    keys.set(CODE_A, old_public)
    auth.verify_body(CODE_A, body(old))
    rotated = keys.rotate(CODE_A, new_public, timedelta(seconds=600))
    assert (rotated.current, rotated.previous, rotated.previous_until) == (new_public, old_public,
                                                                            T0 + timedelta(seconds=600))
    assert keys.get(CODE_A) == rotated
    auth.verify_body(CODE_A, body(new))  # a changed key is re-read at once when the cached one refuses
    auth.verify_body(CODE_A, body(old))  # workstations not switched yet
    clock.now = T0 + timedelta(seconds=599)
    auth.verify_body(CODE_A, body(old))
    clock.now = T0 + timedelta(seconds=600)
    refused(auth, body(old), "cainfo", "previous SM2 key, whose grace period has ended")
    auth.verify_body(CODE_A, body(new))
    refused(auth, body(generate_keypair()[0]), "cainfo", "does not verify")
    refused(auth, body(None), "signtype", "must be SM2")

    immediate = generate_keypair()
    keys.rotate(CODE_A, immediate[1], timedelta(0))  # no grace: the old key stops …
    auth.verify_body(CODE_A, body(new))
    seconds[0] += 10.1  # … once the workers' cached copies are token_ttl_s old
    refused(auth, body(new), "cainfo", "grace period has ended")
    with pytest.raises(Invalid) as e:
        keys.rotate(CODE_A, immediate[1], timedelta(seconds=60))
    assert e.value.field == "public_key"
    with pytest.raises(Invalid) as e:
        keys.rotate(CODE_A, new_public, timedelta(days=31))
    assert e.value.field == "grace"


def test_every_worker_sees_a_registered_or_removed_key_within_the_cache_time(world) -> None:
    (first, second), keys, _, seconds = world
    private, public = generate_keypair()
    first.verify_body(CODE_A, body(None))  # both cache "no key"
    second.verify_body(CODE_A, body(None))
    keys.set(CODE_A, public)  # by an operator, in another process
    first.verify_body(CODE_A, body(private))  # a signed body is checked against a fresh read at once
    second.verify_body(CODE_A, body(None))  # still cached as keyless …
    seconds[0] += 10.1  # … until the cached copy is token_ttl_s old
    refused(second, body(None), "signtype", "must be SM2")
    refused(first, body(None), "signtype")
    keys.set(CODE_A, None)  # removed: a plain body refused by the cache is checked against a fresh read
    first.verify_body(CODE_A, body(None))
    second.verify_body(CODE_A, body(None))


def test_checking_signed_requests_reads_nothing_from_the_database(world, engine) -> None:
    """The settlement benchmark's hot path: the key is cached with the gateway token."""
    (auth, _), keys, _, _ = world
    private, public = generate_keypair()
    keys.set(CODE_A, public)
    env = body(private)
    auth.authenticate(sign_headers(PAAS_A, TOKEN_A, now=T0))
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for _ in range(3):
        cred = auth.authenticate(sign_headers(PAAS_A, TOKEN_A, now=T0))
        auth.verify_body(cred.fixmedins_code, env)
    assert statements == []


def test_keys_are_per_institution_and_unknown_ones_are_named(world) -> None:
    _, keys, _, _ = world
    with pytest.raises(NotFound) as e:
        keys.set("H00000000000", generate_keypair()[1])
    assert e.value.field == "fixmedins_code"
    with pytest.raises(NotFound, match="no SM2 key to rotate"):
        keys.rotate(CODE_A, generate_keypair()[1], timedelta(0))
    with pytest.raises(NotFound, match="has no SM2 key registered"):
        keys.set(CODE_A, None)
    with pytest.raises(Invalid) as e:
        keys.set(CODE_A, "04" + "11" * 64)
    assert e.value.field == "public_key"


# -- medpay institution sm2-key … ---------------------------------------------------------------------------


@pytest.fixture
def env(db_url: str, tmp_path) -> dict[str, str]:
    env = {"MEDPAY_DATABASE_URL": db_url, "MEDPAY_DATA_KEY_FILE": str(tmp_path / "data.key"),
           "MEDPAY_SIGNING_KEY_FILE": str(tmp_path / "signing.key")}
    assert CliRunner().invoke(app, ["demo", "seed"], env=env).exit_code == 0
    return env


def test_the_commands_set_rotate_show_and_remove_a_key_each_audited(env, db_url: str) -> None:
    runner = CliRunner()
    code = "H99990100001"
    _, first = generate_keypair()
    _, second = generate_keypair()

    def run(*args: str, exit_code: int = 0):
        r = runner.invoke(app, ["institution", "sm2-key", *args], env=env)
        assert r.exit_code == exit_code, r.output
        return r

    shown = json.loads(run("set", code, "--public-key", "04" + first, "--operator", "张经办").stdout)
    assert shown["sm2_public_key"] == first and shown["previous_sm2_public_key"] is None
    again = run("set", code, "--public-key", second, exit_code=2)
    assert "already has an SM2 key: rotate it" in again.output
    rotated = json.loads(run("rotate", code, "--public-key", second, "--grace", "600", "--operator", "张经办").stdout)
    assert (rotated["sm2_public_key"], rotated["previous_sm2_public_key"]) == (second, first)
    assert rotated["previous_valid_until"] is not None
    assert json.loads(run("show", code).stdout) == rotated
    assert json.loads(run("remove", code, "--operator", "李经办").stdout)["sm2_public_key"] is None
    assert json.loads(run("show", code).stdout)["sm2_public_key"] is None
    assert "fixmedins_code: unknown institution" in run("show", "H00000000000", exit_code=2).output
    assert "public_key: SM2 public key must be 128 hex digits" in run(
        "set", code, "--public-key", "abc", exit_code=2).output
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            events = conn.execute(select(AuditEventRow.__table__).where(AuditEventRow.action.like("institution.%"))
                                  .order_by(AuditEventRow.id)).all()
    finally:
        engine.dispose()
    assert [(e.actor_kind, e.actor, e.action) for e in events] == [
        ("operator", "张经办", "institution.sm2_key.set"), ("operator", "张经办", "institution.sm2_key.rotate"),
        ("operator", "李经办", "institution.sm2_key.remove")]
    assert all(e.ref.startswith(code) for e in events)


@pytest.mark.parametrize("command, column, value, bad, values, before", [
    ("assurance", "id_assurance", "lookup", "trusted", "counter, lookup, card", "counter"),  # what ID numbers may do
    ("kind", "inst_kind", "specialist", "hospital", "general, tcm, specialist, grassroots", "general"),  # for policies
])
def test_an_institution_setting_command_sets_it_audited(env, db_url: str, command, column, value, bad, values,
                                                        before) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["institution", command, "H99990100001", value, "--operator", "张经办"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"fixmedins_code": "H99990100001", column: value}
    refused = runner.invoke(app, ["institution", command, "H99990100001", bad], env=env)
    assert refused.exit_code == 2 and f"{column}: must be one of {values}" in refused.output
    unknown = runner.invoke(app, ["institution", command, "H00000000000", value], env=env)
    assert unknown.exit_code == 2 and "fixmedins_code: unknown institution" in unknown.output
    event, stored = _audited_and_stored(db_url, f"institution.{command}", getattr(InstitutionRow, column))
    assert (event.actor, event.ref, stored["H99990100001"]) == ("张经办", f"H99990100001:{before}->{value}", value)


def _audited_and_stored(db_url: str, action: str, column) -> tuple:
    """The one audit event of ``action``, and ``column`` of every institution by code."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            event = conn.execute(select(AuditEventRow.__table__).where(AuditEventRow.action == action)).one()
            return event, dict(conn.execute(select(InstitutionRow.fixmedins_code, column)).all())
    finally:
        engine.dispose()
