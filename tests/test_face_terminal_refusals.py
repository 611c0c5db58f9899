"""Refused face-terminal signatures, through the face door in process, on SQLite and PostgreSQL: a refusal naming a
registered terminal (forged, stale, replayed, revoked) leaves one audit record without the request's content; a
burst folds into one record and a count; a refusal naming no registered terminal is logged and counted only."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from medpay.adapters.db.audit_tables import AuditEventRow
from medpay.adapters.db.ecert_tables import TerminalNonceRow
from medpay.adapters.db.face_tables import FaceSessionRow
from medpay.adapters.platform_keys import public_key_hex
from medpay.api.app import create_app
from medpay.api.face import SESSIONS
from medpay.services.face.terminal_refusals import ACTION, TerminalRefusals, refusal_kind
from medpay.services.qr.ecert import EcertService, sign_terminal_request
from tests.helpers_face_service import H1

SECRET_BODY = json.dumps({"orgId": H1, "businessType": "01301", "amount": "60.00",
                          "outBizNo": "body-marker-7f3a"}).encode()


class Clock:
    def __init__(self):
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.now


@pytest.fixture
def door(seeded_platform):
    p = seeded_platform
    app = create_app(p)
    ecert = app.state.ecert = EcertService(p.factory, p.cipher, Ed25519PrivateKey.generate(), p.persons)
    clock = Clock()
    refusals = app.state.face_refusals = TerminalRefusals(p.factory, clock=clock)
    key = Ed25519PrivateKey.generate()
    terminal = ecert.register_terminal(H1, public_key_hex(key), "刷脸自助机", kind="face")
    with TestClient(app) as client:
        yield {"p": p, "client": client, "ecert": ecert, "refusals": refusals, "clock": clock, "key": key,
               "terminal": terminal}


def send(door, *, key=None, terminal=None, body=SECRET_BODY, headers=None, **sign_kw):
    headers = headers or sign_terminal_request(key or door["key"], terminal or door["terminal"], "POST", SESSIONS,
                                               body, **sign_kw)
    r = door["client"].post(SESSIONS, content=body, headers={**headers, "content-type": "application/json"})
    return r, headers


def records(door):
    with door["p"].factory() as s:
        return list(s.scalars(select(AuditEventRow).where(AuditEventRow.action == ACTION).order_by(AuditEventRow.id)))


def count(door, table):
    with door["p"].factory() as s:
        return s.execute(select(func.count()).select_from(table)).scalar_one()


def assert_one_record(door, kind, field):
    rows = records(door)
    assert len(rows) == 1
    row = rows[0]
    assert (row.actor_kind, row.actor, row.psn_no) == ("terminal", door["terminal"], "")
    assert row.fields == f"reason:{kind},field:{field},folded:0"
    assert "body-marker" not in row.fields + row.ref  # nothing of the request itself


def test_a_forged_signature_leaves_one_record(door):
    r, _ = send(door, key=Ed25519PrivateKey.generate())
    assert r.status_code == 401 and "X-Signature" in r.text
    assert_one_record(door, "forged", "X-Signature")
    assert count(door, TerminalNonceRow) == 0 and count(door, FaceSessionRow) == 0


def test_a_stale_signature_leaves_one_record(door):
    r, _ = send(door, timestamp=int(time.time()) - 3600)
    assert r.status_code == 401 and "X-Timestamp" in r.text
    assert_one_record(door, "stale", "X-Timestamp")
    assert count(door, TerminalNonceRow) == 0


def test_a_replayed_request_leaves_one_record(door):
    other_org = SECRET_BODY.replace(H1.encode(), b"H00000000000")
    first, headers = send(door, body=other_org)  # signed right, refused after: its nonce is spent
    assert first.status_code == 403 and not records(door)
    again, _ = send(door, body=other_org, headers=headers)
    assert again.status_code == 401 and "X-Nonce" in again.text
    assert_one_record(door, "replayed", "X-Nonce")
    assert count(door, TerminalNonceRow) == 1 and count(door, FaceSessionRow) == 0


def test_a_revoked_terminal_leaves_one_record(door):
    door["ecert"].disable_terminal(door["terminal"])
    r, _ = send(door)
    assert r.status_code == 401 and "disabled" in r.text
    assert_one_record(door, "revoked", "X-Terminal-Id")
    assert count(door, TerminalNonceRow) == 0


def test_a_burst_folds_into_one_record_and_its_count(door):
    forger = Ed25519PrivateKey.generate()
    for _ in range(50):
        assert send(door, key=forger)[0].status_code == 401
    assert [r.fields for r in records(door)] == ["reason:forged,field:X-Signature,folded:0"]
    send(door, timestamp=int(time.time()) - 3600)  # another kind has its own window
    assert len(records(door)) == 2
    door["clock"].now += timedelta(seconds=61)  # the next minute's first refusal carries the burst's count
    assert send(door, key=forger)[0].status_code == 401
    assert records(door)[-1].fields == "reason:forged,field:X-Signature,folded:49"
    send(door, key=forger)
    send(door, key=forger)
    assert door["refusals"].flush() == 1  # at shutdown: what was folded since
    assert records(door)[-1].fields == "reason:forged,folded:2"
    assert door["refusals"].flush() == 0


def test_an_unknown_or_missing_terminal_is_only_logged_and_counted(door, caplog):
    stranger = Ed25519PrivateKey.generate()
    for _ in range(3):
        assert send(door, key=stranger, terminal="TMNOBODY00")[0].status_code == 401
    headers = sign_terminal_request(stranger, door["terminal"], "POST", SESSIONS, SECRET_BODY)
    del headers["X-Terminal-Id"]
    r, _ = send(door, headers=headers)
    assert r.status_code == 401 and "X-Terminal-Id" in r.text
    assert records(door) == []
    assert door["refusals"].unattributed == 4
    lines = [rec for rec in caplog.records if rec.name == "medpay.face.terminal_refusals"]
    assert len(lines) == 4 and all(rec.exc_info is None and "\n" not in rec.getMessage() for rec in lines)
    assert "TMNOBODY00" not in caplog.text and "body-marker" not in caplog.text


@pytest.mark.parametrize(("field", "message", "kind"), [
    ("X-Signature", "does not verify with this terminal's key", "forged"),
    ("X-Signature", "missing signature", "malformed"),
    ("X-Timestamp", "stale: -3600 s from server time; allowed ±300 s", "stale"),
    ("X-Timestamp", "must be unix time in whole seconds (digits only)", "malformed"),
    ("X-Nonce", "nonce already used: replayed request refused", "replayed"),
    ("X-Nonce", "missing header", "malformed"),
    ("X-Terminal-Id", "this terminal is disabled", "revoked"),
])
def test_refusal_kind_names_what_the_header_says(field, message, kind):
    assert refusal_kind(field, message) == kind
