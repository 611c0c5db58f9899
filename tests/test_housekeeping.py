"""Housekeeping: what may be forgotten is deleted — by `medpay housekeeping`, and by `medpay serve` on its own
every MEDPAY_HOUSEKEEPING_INTERVAL_S seconds — and nothing that is still needed."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select, update

from medpay.adapters.db import migrate
from medpay.adapters.db.audit_tables import AuditEventRow
from medpay.adapters.db.ecert_tables import EcertActivationRow, TerminalRow
from medpay.adapters.db.face_tables import FaceFrameHashRow, FaceSessionRow
from medpay.adapters.db.engine import make_engine, session_factory
from medpay.adapters.db.file_tables import InterfaceFileRow
from medpay.adapters.db.gateway_tables import GatewayNonceRow
from medpay.adapters.db.tables import EcTokenRow
from medpay.services import demo
from medpay.services.reconciliation import FILE_TTL
from tests.helpers_server import medpay_env, run_cli, server

H1 = demo.INSTITUTIONS[0][0]
EMP = demo.PERSONS[0].psn_no
KEPT = {"nonces": {"fresh-nonce"}, "tokens": {"b"}, "files": {"NEW"}, "activations": {"ACN"},  # what is still needed
        "face_frames": {"b" * 64}, "face_sessions": {"FSRECENT", "FSOPEN"}}


def _seed(db_url: str, tmp_path, now: datetime) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    engine.dispose()
    assert run_cli(["demo", "seed"], db_url, tmp_path).returncode == 0  # the CLI's data key: tmp_path/data.key
    engine = make_engine(db_url)
    with engine.begin() as conn:
        old, fresh = now - timedelta(hours=1), now
        conn.execute(insert(GatewayNonceRow), [
            {"paasid": "p", "ts": int(old.timestamp()), "nonce": "old-nonce-1", "seen_at": old},
            {"paasid": "p", "ts": int(fresh.timestamp()), "nonce": "fresh-nonce", "seen_at": fresh}])
        conn.execute(insert(EcTokenRow), [
            {"token_hash": "a" * 64, "psn_no": EMP, "fixmedins_code": H1, "business_type": "01301",
             "issued_at": now - timedelta(days=3), "expires_at": now - timedelta(days=2)},
            {"token_hash": "b" * 64, "psn_no": EMP, "fixmedins_code": H1, "business_type": "01301",
             "issued_at": now, "expires_at": now + timedelta(minutes=30)}])
        conn.execute(insert(EcertActivationRow), [
            {"activation_id": f"AC{tag}", "psn_no": EMP, "channel": "sms", "code_hash": tag * 64, "status": status,
             "attempts": 0, "created_by": "patient", "created_at": at, "expires_at": at + timedelta(minutes=5),
             "consent_at": at}
            for tag, status, at in (("O", "done", now - timedelta(days=8)), ("N", "pending", now))])
        conn.execute(insert(InterfaceFileRow), [
            {"file_qury_no": "OLD", "fixmedins_code": H1, "filename": "a.zip", "content": b"x",
             "created_at": now - FILE_TTL - timedelta(hours=1), "kind": "upload"},
            {"file_qury_no": "NEW", "fixmedins_code": H1, "filename": "b.zip", "content": b"y",
             "created_at": now, "kind": "upload"}])
        # face verification: frame hashes are kept a day for replay checks, sessions a day after they ended
        conn.execute(insert(TerminalRow).values(terminal_id="TFACE1", fixmedins_code=H1, public_key="f" * 64,
                                                name="刷脸自助机", status="active", kind="face", registered_at=now))
        conn.execute(insert(FaceFrameHashRow), [
            {"frame_hash": tag * 64, "session_id": "FSOLD", "seen_at": at}
            for tag, at in (("a", now - timedelta(days=1, minutes=5)), ("b", now - timedelta(hours=23)))])
        conn.execute(insert(FaceSessionRow), [
            {"session_id": sid, "terminal_id": "TFACE1", "fixmedins_code": H1, "challenge": "blink,turn_left",
             "amount_fen": 6000, "business_type": "01301", "created_at": ends - timedelta(minutes=2),
             "expires_at": ends, "tries": 0, "status": status}
            for sid, status, ends in (("FSOLD", "exchanged", now - timedelta(days=1, minutes=1)),
                                      ("FSRECENT", "refused", now - timedelta(hours=20)),
                                      ("FSOPEN", "open", now + timedelta(minutes=2)))])
    engine.dispose()


def _left(db_url: str) -> dict[str, set[str]]:
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as s:
            return {"nonces": set(s.execute(select(GatewayNonceRow.nonce)).scalars()),
                    "tokens": {h[:1] for h in s.execute(select(EcTokenRow.token_hash)).scalars()},
                    "files": set(s.execute(select(InterfaceFileRow.file_qury_no)).scalars()),
                    "activations": set(s.execute(select(EcertActivationRow.activation_id)).scalars()),
                    "face_frames": set(s.execute(select(FaceFrameHashRow.frame_hash)).scalars()),
                    "face_sessions": set(s.execute(select(FaceSessionRow.session_id)).scalars())}
    finally:
        engine.dispose()


def _age_audit_events(db_url: str, by: timedelta) -> None:
    engine = make_engine(db_url)
    events = AuditEventRow.__table__
    with engine.begin() as conn:
        for event_id, at in conn.execute(select(events.c.id, events.c.at)).all():
            conn.execute(update(events).where(events.c.id == event_id).values(at=at - by))
    engine.dispose()


def test_the_cli_pass_deletes_only_what_has_expired(db_url, tmp_path):
    _seed(db_url, tmp_path, datetime.now(timezone.utc))
    _age_audit_events(db_url, timedelta(hours=1))  # the seed's audit events, old enough to seal
    result = run_cli(["housekeeping"], db_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "gateway_nonces" in result.stdout and "interface_files" in result.stdout
    assert re.search(r"face_frames_and_sessions\s*│\s*2\b", result.stdout), result.stdout  # a hash, a session
    assert re.search(r"audit_events_sealed\s*│\s*6\b", result.stdout), result.stdout  # the 6 demo persons entered
    assert _left(db_url) == KEPT
    verified = run_cli(["audit", "verify"], db_url, tmp_path)
    assert verified.returncode == 0 and "1 seal(s) over 6 event(s)" in verified.stdout, verified.stdout
    again = run_cli(["housekeeping"], db_url, tmp_path)  # idempotent
    assert again.returncode == 0 and _left(db_url) == KEPT


def test_the_server_purges_on_its_own(db_url, tmp_path, monkeypatch):
    _seed(db_url, tmp_path, datetime.now(timezone.utc))
    monkeypatch.setenv("MEDPAY_HOUSEKEEPING_INTERVAL_S", "0.5")
    assert medpay_env(db_url, tmp_path)["MEDPAY_HOUSEKEEPING_INTERVAL_S"] == "0.5"
    expected = KEPT
    with server(db_url, tmp_path, "--no-seed"):
        deadline = time.monotonic() + 20
        left = _left(db_url)
        # each rule commits on its own: wait for the pass to finish, not just for its first rule
        while time.monotonic() < deadline and left != expected:
            time.sleep(0.2)
            left = _left(db_url)
    assert left == expected
