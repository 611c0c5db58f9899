"""The region's stricter threshold above an amount, held at settlement (both backends): the authNo of a face match
only close enough for the normal threshold earns an ecToken that settles bills up to the region's amount and no
more — whatever amount the terminal declared when it opened the session. A match that also meets the strict
threshold has no limit; a session declared above the amount is matched at the strict threshold from the start.

Distances on the test photos (dlib): a kiosk frame of obama2.jpg is ~0.38 from obama.jpg, of obama.jpg ~0.03 from
itself; the settings here put the strict threshold (0.30) between them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from medpay.adapters.db.face_tables import FaceSessionRow
from medpay.adapters.db.tables import EcTokenRow, SettlementRow
from medpay.adapters.region_settings import parse_face_settings
from medpay.services.credentials import Credential
from medpay.services.errors import Forbidden
from medpay.services.face.faces import NoMatch
from medpay.services.settlement import FeeLineInput, SettleRequest
from tests.test_face_service import EMP, PIN, enrol, face  # noqa: F401  (the fixture)
from tests.helpers_face import sequence_jpegs
from tests.helpers_face_service import H1, Fixed

BLOOD = "002101000010000"  # 甲类
SETTINGS = parse_face_settings({"default": {"threshold": 0.5, "strict_threshold": 0.3,
                                            "strict_above_yuan": "100.00"}})
CHALLENGE = ("blink", "turn_left")
_n = iter(range(10**6))


def ec_token(face, photo: str, declared_fen: int, seed: int) -> str:
    """Session (declaring ``declared_fen``) → frames of ``photo`` → verify → auth-check: the ecToken. (Seeds whose
    synthetic frames all show one face to dlib.)"""
    v = face["verify"]
    v.settings, v.rng = SETTINGS, Fixed(*CHALLENGE)
    session = v.open_session(face["terminal"], H1, declared_fen, "01301")
    auth = v.verify(face["terminal"], H1, session["session_id"], sequence_jpegs(photo, CHALLENGE, seed), PIN)
    return v.auth_check(face["terminal"], H1, auth["authNo"])["ecToken"]


def visit(p, token: str, amount: str) -> str:
    cred = Credential("01", token)
    mdtrt_id = p.settlement.register_visit(H1, EMP.psn_no, "11", mdtrt_cert_type="01", msgid=f"{H1}V{next(_n)}",
                                           credential=cred).mdtrt_id
    p.settlement.upload_fees(H1, mdtrt_id, [FeeLineInput("1", BLOOD, "1", amount, amount)], msgid=f"{H1}F{next(_n)}")
    return mdtrt_id


def settle(p, mdtrt_id: str, token: str | None) -> dict:
    return p.settlement.settle(SettleRequest(H1, f"{H1}S{next(_n)}", mdtrt_id,
                                             credential=Credential("01", token) if token else None))


def settlements(p) -> int:
    with p.factory() as s:
        return s.scalar(select(func.count()).select_from(SettlementRow))


def test_a_normal_match_declared_small_does_not_settle_a_large_bill(face):  # noqa: F811
    p = face["p"]
    enrol(face)
    token = ec_token(face, "obama2.jpg", 6000, 2)  # declares 60.00; matched at ~0.38: good for the normal threshold only
    with p.factory() as s:
        assert s.scalars(select(FaceSessionRow.max_bill_fen)).one() == 10000
        assert s.scalars(select(EcTokenRow.max_bill_fen)).one() == 10000
    large = visit(p, token, "150.00")
    for named in (token, None):  # naming the token, or relying on the one the visit was opened with
        with pytest.raises(Forbidden) as e:
            settle(p, large, named)
        assert e.value.field == "mdtrt_cert_no" and "100.00" in e.value.message and "150.00" in e.value.message
    assert settlements(p) == 0  # nothing settled, the token not spent: a fresh face check or a QR code may follow
    with p.factory() as s:
        assert s.scalars(select(EcTokenRow.spent_at)).one() is None
    small = visit(p, ec_token(face, "obama2.jpg", 6000, 4), "80.00")
    assert settle(p, small, None)["setlinfo"]["medfee_sumamt"] == 8000


def test_a_strict_match_settles_any_bill_and_a_large_declaration_asks_for_one(face):  # noqa: F811
    p = face["p"]
    enrol(face)
    with pytest.raises(NoMatch):  # declared above the amount: matched at the strict threshold, which ~0.38 misses
        ec_token(face, "obama2.jpg", 15000, 5)
    token = ec_token(face, "obama.jpg", 6000, 0)  # ~0.03: close enough for the strict threshold too
    with p.factory() as s:
        assert s.scalars(select(EcTokenRow.max_bill_fen)).one() is None
    assert settle(p, visit(p, token, "150.00"), token)["setlinfo"]["medfee_sumamt"] == 15000
