"""The audit log of personal-data access: what discloses personal data leaves an event in the same
transaction, events are sealed in a hash chain, and any tampering with a sealed event or seal shows."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, insert, select, update
from typer.testing import CliRunner

from medpay.adapters.db.audit_tables import AuditEventRow, AuditSealRow
from medpay.api.institution.routes import dispatch
from medpay.cli import app as cli_app
from medpay.domain.gateway_signature import sign_headers
from medpay.his_client import HisClient
from medpay.services import audit, demo
from medpay.services.audit import AuditLog

H1 = demo.INSTITUTIONS[0]
EMP = demo.PERSONS[0]


@pytest.fixture
def platform(seeded_platform):
    return seeded_platform


def caller(platform):
    code, name, _level, paasid, token = H1
    his = HisClient("http://unused.test", code, name, paasid, token, mdtrtarea_admvs="999901")

    def call(infno: str, input: dict, msgid: str | None = None) -> dict:
        body = json.dumps(his.envelope(infno, input, msgid=msgid), ensure_ascii=False).encode()
        return json.loads(dispatch(platform, sign_headers(paasid, token, nonce=uuid.uuid4().hex), body, None).body)

    his.sign_no = call("9001", {"signIn": {"opter_no": "1"}})["output"]["signinoutb"]["sign_no"]
    return his, call


def events(platform, psn_no: str = EMP.psn_no) -> list:
    return list(reversed(AuditLog(platform.factory).of_person(psn_no)))


def test_each_disclosure_is_recorded_once_with_who_what_and_the_msgid(platform):
    his, call = caller(platform)
    seeded = len(events(platform))  # the directory recorded entering the demo persons
    assert [e.action for e in events(platform)] == ["person.add"]
    card = call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno}}, msgid="M-1101")
    assert card["infcode"] == 0
    visit = call("2201", {"data": {"psn_no": EMP.psn_no, "insutype": EMP.insutype, "med_type": "11",
                                   "mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno}})["output"]["data"]
    lines = [{"feedetl_sn": "1", "mdtrt_id": visit["mdtrt_id"], "med_list_codg": "XM01AEB002", "cnt": 1,
              "pric": "30.50", "det_item_fee_sumamt": "30.50"}]
    assert call("2204", {"feedetail": lines})["infcode"] == 0
    settle = {"data": {"psn_no": EMP.psn_no, "mdtrt_id": visit["mdtrt_id"], "medfee_sumamt": "30.50"}}
    assert call("2207", settle, msgid="M-2207")["output"]["setlinfo"]["certno"] == EMP.certno
    assert call("2207", settle, msgid="M-2207")["infcode"] == 0  # a retry shows the data again: recorded again
    refused = call("2207", {"data": {"psn_no": EMP.psn_no, "mdtrt_id": "NO-SUCH", "medfee_sumamt": "1"}})
    assert refused["infcode"] == -2
    setl_id = call("5203", {"data": {"setl_id": call("2207", settle, msgid="M-2207")["output"]["setlinfo"]["setl_id"]}},
                   msgid="M-5203")["output"]["setlinfo"]["setl_id"]
    assert call("5203", {"data": {"setl_id": setl_id, "psn_no": "99990100000005"}})["infcode"] == -2  # not his
    cancel = call("2208", {"data": {"setl_id": setl_id, "psn_no": EMP.psn_no, "mdtrt_id": visit["mdtrt_id"]}},
                  msgid="M-2208")
    assert cancel["infcode"] == 0, cancel
    assert call("2206", settle, msgid="M-2206")["infcode"] == -2  # nothing left to pre-settle: nothing shown
    got = [(e.actor_kind, e.actor, e.action, e.fields, e.ref) for e in events(platform)[seeded:]]
    assert got == [("institution", H1[0], "person_info", "psn_name,certno", "M-1101"),
                   ("institution", H1[0], "settle", "psn_name,certno", "M-2207"),
                   ("institution", H1[0], "settle", "psn_name,certno", "M-2207"),
                   ("institution", H1[0], "settle", "psn_name,certno", "M-2207"),
                   ("institution", H1[0], "settlement_query", "psn_name,certno", "M-5203"),
                   ("institution", H1[0], "cancel", "psn_name,certno", "M-2208")]


def test_a_presettlement_shows_the_identity_and_is_recorded(platform):
    his, call = caller(platform)
    call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno}})
    visit = call("2201", {"data": {"psn_no": EMP.psn_no, "insutype": EMP.insutype, "med_type": "11",
                                   "mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno}})["output"]["data"]
    lines = [{"feedetl_sn": "1", "mdtrt_id": visit["mdtrt_id"], "med_list_codg": "XM01AEB002", "cnt": 1,
              "pric": "30.50", "det_item_fee_sumamt": "30.50"}]
    call("2204", {"feedetail": lines})
    pre = call("2206", {"data": {"psn_no": EMP.psn_no, "mdtrt_id": visit["mdtrt_id"], "medfee_sumamt": "30.50"}},
               msgid="M-2206")
    assert pre["output"]["setlinfo"]["psn_name"] == EMP.psn_name
    last = events(platform)[-1]
    assert (last.action, last.fields, last.ref) == ("presettle", "psn_name,certno", "M-2206")


def _filled(platform, n: int, at: datetime) -> AuditLog:
    with platform.factory.begin() as s:
        for i in range(n):
            audit.record(s, actor_kind="institution", actor=H1[0], action="person_info", psn_no=EMP.psn_no,
                         fields=audit.IDENTITY, at=at + timedelta(seconds=i), ref=f"M{i}")
    return AuditLog(platform.factory, clock=lambda: datetime.now(timezone.utc) + timedelta(hours=1))


def test_sealed_events_verify_and_young_ones_wait(platform):
    now = datetime.now(timezone.utc)
    log = _filled(platform, 5, now - timedelta(hours=2))
    before = log.verify()
    sealed = log.seal()
    assert sealed == before.unsealed_events and log.seal() == 0  # sealing again seals nothing
    young = AuditLog(platform.factory)  # the real clock: nothing new is old enough
    with platform.factory.begin() as s:
        audit.record(s, actor_kind="terminal", actor="TM1", action="ec.query", psn_no=EMP.psn_no,
                     fields=audit.MASKED_IDENTITY, at=datetime.now(timezone.utc))
    assert young.seal() == 0
    result = young.verify()
    assert result.ok and result.unsealed_events == 1 and result.sealed_events == sealed and result.seals == 1


@pytest.mark.parametrize("tamper, words", [
    ("change", "was changed"),
    ("remove", "are there now"),
    ("forge", "was changed"),
    ("drop_seal", "does not follow"),
])
def test_tampering_with_the_sealed_log_shows(platform, tamper, words):
    now = datetime.now(timezone.utc)
    log = _filled(platform, 6, now - timedelta(hours=3))
    log.seal()
    ids = [e.id for e in reversed(log.of_person(EMP.psn_no))]
    _filled(platform, 3, now - timedelta(hours=2)).seal()  # a second seal after the first
    assert log.verify().ok
    events, seals = AuditEventRow.__table__, AuditSealRow.__table__
    with platform.factory.begin() as s:
        if tamper == "change":
            s.execute(update(events).where(events.c.id == ids[2]).values(actor="H00000000000"))
        elif tamper == "remove":
            s.execute(delete(events).where(events.c.id == ids[3]))
        elif tamper == "forge":  # an event swapped for a made-up one under the same id
            s.execute(delete(events).where(events.c.id == ids[3]))
            s.execute(insert(events).values(id=ids[3], at=now, actor_kind="institution", actor="H1", action="person_info",
                                            psn_no="someone", fields="certno", ref=""))
        else:
            first = s.execute(select(seals.c.id).order_by(seals.c.id)).scalars().first()
            s.execute(delete(seals).where(seals.c.id == first))
    result = log.verify()
    assert not result.ok and any(words in p for p in result.problems), result.problems


def test_two_sealers_at_once_seal_each_event_once(platform, db_url, monkeypatch):
    """Both compute the same block at the same moment; the unique first id lets one of them record it."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer: the second sealer can't begin before the first has committed")
    now = datetime.now(timezone.utc)
    log = _filled(platform, 4, now - timedelta(hours=2))
    barrier = threading.Barrier(2, timeout=20)
    digest = audit._digest

    def in_step(prev, rows):
        rows = list(rows)
        barrier.wait()  # both have read the same unsealed events
        return digest(prev, rows)

    monkeypatch.setattr(audit, "_digest", in_step)
    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda _: AuditLog(platform.factory, clock=log.clock).seal(), range(2)))
    monkeypatch.setattr(audit, "_digest", digest)
    result = log.verify()
    assert sorted(counts) == [0, result.sealed_events] and result.ok and result.seals == 1


def test_cli_verify_and_show(platform, db_url, monkeypatch):
    monkeypatch.setenv("MEDPAY_DATABASE_URL", db_url)
    now = datetime.now(timezone.utc)
    _filled(platform, 3, now - timedelta(hours=2))
    events = AuditEventRow.__table__
    with platform.factory.begin() as s:  # hours pass: every event is old enough to seal
        for event_id, at in s.execute(select(events.c.id, events.c.at)).all():
            s.execute(update(events).where(events.c.id == event_id).values(at=at - timedelta(hours=3)))
    runner = CliRunner()
    ok = runner.invoke(cli_app, ["audit", "verify"])
    assert ok.exit_code == 0 and "intact" in ok.stdout and "latest digest" in ok.stdout
    shown = runner.invoke(cli_app, ["audit", "show", EMP.psn_no])
    assert shown.exit_code == 0 and "person_info" in shown.stdout and H1[0] in shown.stdout
    with platform.factory.begin() as s:
        s.execute(update(AuditEventRow.__table__).where(AuditEventRow.ref == "M1").values(fields="nothing"))
    bad = runner.invoke(cli_app, ["audit", "verify"])
    assert bad.exit_code == 1 and "was changed" in bad.stdout
