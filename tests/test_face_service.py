"""Face enrolment and verification as services, on SQLite and PostgreSQL, with the real model and real photos:
consent, the quality gate, encrypted templates (a raw dump holds no template bytes and no ID number), key
rotation, withdrawal; sessions, liveness, replay, the PIN's person, lockout, the authNo exchanged for an ecToken."""

from __future__ import annotations

import os

import numpy as np
import pytest
from sqlalchemy import func, select, text

from medpay.adapters.db.audit_tables import AuditEventRow
from medpay.adapters.db.face_tables import FaceTemplateRow
from medpay.adapters.face import images
from medpay.adapters.face.dlib_encoder import default_encoder
from medpay.adapters.keyring import add_key
from medpay.services import demo
from medpay.services.errors import Conflict, Invalid, NotFound
from medpay.services.face.enrolment import CONSENT_VERSION
from medpay.services.face.faces import FaceLocked, FaceRejected, FramesReplayed, LivenessFailed, NoMatch
from tests.helpers_face import jpeg, kiosk, photo_bytes, sequence_jpegs
from tests.helpers_face_service import H1, Fixed, face_services

EMP, RET = demo.PERSONS[0], demo.PERSONS[1]
PIN = "135790"


@pytest.fixture
def face(seeded_platform, tmp_path):
    enrolment, verification, terminal, keys = face_services(seeded_platform, tmp_path)
    return {"p": seeded_platform, "enrol": enrolment, "verify": verification, "terminal": terminal, "keys": keys}


def enrol(face, person=EMP, photo="obama.jpg", pin=PIN, **kw):
    args = {"consent": True, "consent_version": CONSENT_VERSION, "channel": "counter", "by": "staff:demo",
            "certno": person.certno, **kw}
    return face["enrol"].enrol(person.psn_no, [photo_bytes(photo)], pin, **args)


def attempt(face, name="obama.jpg", challenge=("blink", "turn_left"), pin=PIN, seed=0, frames=None, **kw):
    face["verify"].rng = Fixed(*challenge)
    session = face["verify"].open_session(face["terminal"], H1, 6000, "01301")
    return face["verify"].verify(face["terminal"], H1, session["session_id"],
                                 frames or sequence_jpegs(name, challenge, seed), pin, **kw)


def audited(face, action):
    with face["p"].factory() as s:
        return s.execute(select(func.count()).select_from(AuditEventRow).where(AuditEventRow.action == action)).scalar()


def test_enrolment_needs_consent_the_id_card_and_good_photos(face):
    with pytest.raises(Invalid, match="consent"):
        enrol(face, consent=False)
    with pytest.raises(Invalid, match="certno"):
        enrol(face, certno=RET.certno)
    with pytest.raises(Invalid, match="pin"):
        enrol(face, pin="111111")
    with pytest.raises(FaceRejected, match="exactly one person"):
        enrol(face, photo="t1.jpg")
    with pytest.raises(FaceRejected, match="not an image"):
        face["enrol"].enrol(EMP.psn_no, [b"\x89PNG but no"], PIN, consent=True, consent_version=CONSENT_VERSION,
                            channel="counter", by="staff:demo", certno=EMP.certno)
    with pytest.raises(Invalid, match=r"images\[1\]: not the same person"):
        face["enrol"].enrol(EMP.psn_no, [photo_bytes("obama.jpg"), photo_bytes("biden.jpg")], PIN, consent=True,
                            consent_version=CONSENT_VERSION, channel="counter", by="staff:demo", certno=EMP.certno)
    assert enrol(face)["status"] == "enrolled"
    assert face["enrol"].status(EMP.psn_no)["enrolled"]


def test_verified_face_gets_an_auth_no_that_buys_one_ec_token(face):
    enrol(face)
    auth = attempt(face)
    identity = face["verify"].auth_check(face["terminal"], H1, auth["authNo"])
    assert identity["idNo"].endswith(EMP.certno[-4:]) and "*" in identity["idNo"]
    info = face["p"].persons.person_info(H1, "01", identity["ecToken"])
    assert info["baseinfo"]["psn_no"] == EMP.psn_no
    with pytest.raises(Conflict, match="already exchanged"):
        face["verify"].auth_check(face["terminal"], H1, auth["authNo"])
    assert audited(face, "face.accept") == 1 and audited(face, "cn.nhsa.auth.check") == 1


def test_another_face_with_the_right_pin_is_rejected_then_locked(face):
    enrol(face)
    for i in range(5):
        with pytest.raises(NoMatch, match="do not match an enrolled person.*QR"):
            attempt(face, "biden.jpg", ("turn_left", "open_mouth"), seed=i)
    with pytest.raises(FaceLocked):  # now even the right face is refused
        attempt(face, seed=99)
    assert audited(face, "face.reject") == 5 and audited(face, "face.lock") == 1


def test_wrong_pin_wrong_id_digits_and_withdrawn_consent(face):
    enrol(face)
    with pytest.raises(NoMatch):
        attempt(face, pin="246813", seed=1)
    with pytest.raises(NoMatch, match="id_last4"):
        attempt(face, seed=2, id_last4="9999")
    assert attempt(face, seed=3, id_last4=EMP.certno[-4:])["authNo"]
    assert face["enrol"].withdraw(EMP.psn_no, via="cli", by="operator")
    with face["p"].factory() as s:
        assert s.get(FaceTemplateRow, EMP.psn_no) is None
    with pytest.raises(NoMatch):
        attempt(face, seed=4)
    assert audited(face, "face.withdraw") == 1


def test_liveness_replay_and_frozen_frames(face):
    enrol(face)
    with pytest.raises(LivenessFailed, match="out of order"):
        attempt(face, challenge=("blink", "turn_left"), frames=sequence_jpegs("obama.jpg", ("turn_left", "blink")))
    with pytest.raises(FramesReplayed, match="frozen"):
        attempt(face, frames=[jpeg(kiosk("obama.jpg"))] * 8)
    frames = sequence_jpegs("obama.jpg", ("blink", "turn_left"), seed=7)
    assert attempt(face, frames=frames)["authNo"]
    with pytest.raises(FramesReplayed, match="replayed"):
        attempt(face, frames=frames)
    with pytest.raises(FaceRejected, match="no face"):
        attempt(face, frames=[jpeg(np.full((480, 640, 3), 90, np.uint8))] * 6)
    assert audited(face, "face.refuse") == 4


def test_session_belongs_to_its_terminal_and_its_tries(face):
    enrol(face)
    session = face["verify"].open_session(face["terminal"], H1, 6000, "01301")
    with pytest.raises(NotFound):
        face["verify"].verify("TMOTHER00", H1, session["session_id"], [], PIN)
    for _ in range(3):
        with pytest.raises(Invalid, match="frames"):
            face["verify"].verify(face["terminal"], H1, session["session_id"], [], PIN)
    with pytest.raises(Conflict, match="refused"):
        face["verify"].verify(face["terminal"], H1, session["session_id"], [], PIN)


def test_templates_encrypted_in_a_raw_dump_and_rotation_rewraps(face, db_url):
    enrol(face)
    image = images.decode(photo_bytes("obama.jpg"))
    emb = default_encoder().embed(image, default_encoder().faces(image)[0])
    dump = raw_dump(face["p"].engine, db_url)
    assert emb.astype("<f4").tobytes()[:16] not in dump and EMP.certno.encode() not in dump
    new = add_key("face", _files(face))
    assert face["enrol"].rewrap_all() == 1
    with face["p"].factory() as s:
        assert s.get(FaceTemplateRow, EMP.psn_no).key_wrapped.startswith(new.key_id + ":")
    assert attempt(face, seed=11)["authNo"]  # the verifier met a key id it didn't hold and re-read the file


def _files(face):
    from medpay.adapters.keyring import DATA_FILE
    return {DATA_FILE: face["keys"]}


def raw_dump(engine, db_url) -> bytes:
    """Every value of every table, as bytes: SQLite's file, PostgreSQL's rows as text."""
    if db_url.startswith("sqlite"):
        engine.dispose()
        path = db_url.removeprefix("sqlite:///")
        return b"".join(open(p, "rb").read() for p in (path, path + "-wal") if os.path.exists(p))
    out = []
    with engine.connect() as conn:
        for (table,) in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")):
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                out.append(repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)).encode())
    return b"\n".join(out)
