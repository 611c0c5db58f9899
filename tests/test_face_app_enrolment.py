"""Enrolment from the app must be a live selfie: the challenge token (signed, bound to the e-certificate, short-
lived) and the frames performing it, checked as at a face terminal — on SQLite and PostgreSQL, with the real model
and real photos."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from medpay.adapters.db.audit_tables import AuditEventRow
from medpay.adapters.db.face_tables import FaceFrameHashRow
from medpay.services import demo
from medpay.services.errors import Invalid
from medpay.services.face.enrolment_liveness import ChallengeRefused, EnrolmentLiveness
from medpay.services.face.faces import FaceRejected, FramesReplayed, LivenessFailed
from tests.helpers_face import jpeg, photo_bytes, sequence_jpegs
from tests.helpers_face_service import Fixed, face_services

EMP = demo.PERSONS[0]
ECERT = "EC0000000000000000000001"


@pytest.fixture
def live(seeded_platform, tmp_path):
    _, verification, _, _ = face_services(seeded_platform, tmp_path)
    verification.rng = Fixed("open_mouth", "turn_right")
    return EnrolmentLiveness(verification)


def count(live, model, *where) -> int:
    with live.v.factory() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def test_the_challenge_is_signed_for_one_e_certificate_and_performed_live(live) -> None:
    asked = live.challenge(ECERT, EMP.psn_no)
    assert [step["action"] for step in asked["challenge"]] == ["open_mouth", "turn_right"]
    assert asked["challenge"][0]["zh"] and asked["challenge"][0]["en"]
    frames = sequence_jpegs("obama.jpg", ("open_mouth", "turn_right"), seed=3)
    rest = live.live_frame(ECERT, EMP.psn_no, asked["challenge_token"], frames)
    assert 0 <= rest < len(frames)
    assert count(live, FaceFrameHashRow) == len(frames)  # remembered, never the frames

    with pytest.raises(FramesReplayed):  # the same recording again, even with a fresh challenge
        live.live_frame(ECERT, EMP.psn_no, live.challenge(ECERT, EMP.psn_no)["challenge_token"], frames)
    with pytest.raises(ChallengeRefused, match="another e-certificate"):
        live.live_frame("EC0000000000000000000002", EMP.psn_no, asked["challenge_token"], frames)
    claims, signature = asked["challenge_token"].split(".")
    with pytest.raises(Invalid, match="not a challenge the platform issued") as forged:
        live.live_frame(ECERT, EMP.psn_no, claims + "." + signature[::-1], frames)
    assert forged.value.field == "challenge_token"


def test_a_photo_a_wrong_order_and_an_expired_challenge_are_refused_and_audited(live) -> None:
    token = live.challenge(ECERT, EMP.psn_no)["challenge_token"]
    still = [photo_bytes("obama.jpg")] * 6
    with pytest.raises(FramesReplayed, match="frozen"):  # a still photo: the same picture in every frame
        live.live_frame(ECERT, EMP.psn_no, token, still)
    with pytest.raises(LivenessFailed, match="out of order|not seen"):
        live.live_frame(ECERT, EMP.psn_no, token, sequence_jpegs("obama.jpg", ("turn_right", "open_mouth"), 5))
    blank = jpeg(np.full((480, 640, 3), 128, dtype=np.uint8))
    with pytest.raises(FaceRejected, match="no face") as no_face:
        live.live_frame(ECERT, EMP.psn_no, token, [blank] * 5)
    assert no_face.value.field == "frames[0]"
    with pytest.raises(Invalid, match="frames"):
        live.live_frame(ECERT, EMP.psn_no, token, [])
    later = live.v.clock() + timedelta(minutes=30)
    live.v.clock = lambda: later
    with pytest.raises(ChallengeRefused, match="expired"):
        live.live_frame(ECERT, EMP.psn_no, token, sequence_jpegs("obama.jpg", ("open_mouth", "turn_right"), 6))
    refusals = count(live, AuditEventRow, AuditEventRow.action == "face.enrol_refuse")
    assert refusals == 4  # each refusal after the token was read; none names a biometric value
