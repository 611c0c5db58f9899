"""Liveness for enrolment from the app (App 自助开通刷脸): the selfie must be a live person performing a random
challenge, as at a face terminal.

1. ``challenge``: the device-signed app asks; the platform draws a challenge (the region's number of steps, from
   the verification service's generator) and answers it with a ``challenge_token`` it signs with its own key:
   ``AE<nonce>|<ecert_id>|<actions>|<expiry>.<signature>``. Nothing is stored: the token is bound to the
   e-certificate that asked and lives as long as a terminal's session.
2. ``live_frame``: the frames the app filmed come back with the token. The checks are the verification
   service's: one face in every frame, frozen or replayed frames (their perceptual hashes are kept a day, as
   for verification, so an enrolment video replayed at a kiosk is refused too), the challenge performed in order
   (``domain.face.check_liveness``). The answer is the frame at rest closest to frontal: enrolment puts it
   through the quality gate and makes the template from it. The frames are dropped.

Every refusal names the field (``challenge_token``, ``frames[i]``, ``frames``, ``challenge``) and is audited
without biometric data.
"""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta

from cryptography.exceptions import InvalidSignature
from sqlalchemy.orm import Session

from medpay.adapters.db.face_tables import FaceFrameHashRow
from medpay.adapters.db.tables import PersonRow
from medpay.domain.face import ACTIONS, draw_challenge
from medpay.services import audit
from medpay.services.errors import Forbidden, Invalid, ServiceError
from medpay.services.face.verification import FaceVerification
from medpay.services.unit_of_work import unit_of_work

TOKEN_PREFIX = "AE"  # app enrolment: also the frame hashes' session id prefix


class ChallengeRefused(Forbidden):
    code = "challenge_invalid"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class EnrolmentLiveness:
    """The app's enrolment challenge, checked with the verification service's encoder, rules, generator, key and
    replay memory."""

    def __init__(self, verification: FaceVerification):
        self.v = verification

    def challenge(self, ecert_id: str, psn_no: str) -> dict:
        now = self.v.clock()
        with self.v.factory() as s:
            person = s.get(PersonRow, psn_no)
            region = self.v.settings.of(person.insuplc_admdvs if person is not None else "")
        actions = draw_challenge(self.v.rng, region.challenge_steps)
        expires = now + timedelta(seconds=region.session_ttl_s)
        claims = f"{TOKEN_PREFIX}{secrets.token_hex(8)}|{ecert_id}|{','.join(actions)}|{int(expires.timestamp())}"
        token = f"{_b64(claims.encode())}.{_b64(self.v.signing_key.sign(claims.encode()))}"
        return {"challenge": [{"action": a, "zh": ACTIONS[a][0], "en": ACTIONS[a][1]} for a in actions],
                "challenge_token": token, "expires_at": expires}

    def _open(self, ecert_id: str, token: object) -> tuple[str, tuple[str, ...]]:
        """(the token's id, its challenge) if the platform signed it for this e-certificate and it is live."""
        try:
            claims_b64, sig_b64 = str(token).split(".")
            claims = _unb64(claims_b64)
            self.v.signing_key.public_key().verify(_unb64(sig_b64), claims)
            token_id, holder, actions, expiry = claims.decode().split("|")
        except (ValueError, InvalidSignature, UnicodeDecodeError):
            raise Invalid("challenge_token", "not a challenge the platform issued: ask for a new one") from None
        if holder != ecert_id:
            raise ChallengeRefused("challenge_token", "issued to another e-certificate: ask for a new one")
        if int(expiry) <= self.v.clock().timestamp():
            raise ChallengeRefused("challenge_token", "expired: ask for a new challenge and film it again")
        return token_id, tuple(actions.split(","))

    def live_frame(self, ecert_id: str, psn_no: str, token: object, frames: list[bytes]) -> int:
        """The index of the frame to enrol from, if ``frames`` perform the token's challenge live; the refusal
        otherwise. Either way the frames' hashes are remembered (a replay is refused later) and a refusal is
        audited."""
        token_id, challenge = self._open(ecert_id, token)
        hashes: list[str] = []
        refusal: ServiceError | None = None
        try:
            return self._check(challenge, frames, hashes)
        except ServiceError as e:
            refusal = e
            raise
        finally:
            self._remember(token_id, hashes, refusal, ecert_id, psn_no)

    def _check(self, challenge: tuple[str, ...], frames: list[bytes], hashes: list[str]) -> int:
        _, rest = self.v.live_frames(challenge, frames, hashes)  # the verification service's checks and memory
        return rest

    def _remember(self, token_id: str, hashes: list[str], refusal: ServiceError | None, ecert_id: str,
                  psn_no: str) -> None:
        if not hashes and refusal is None:
            return
        now = self.v.clock()
        with unit_of_work(self.v.factory) as uow:
            s: Session = uow.session
            for h in hashes:
                s.add(FaceFrameHashRow(frame_hash=h, session_id=token_id, seen_at=now))
            if refusal is not None:
                audit.record(s, actor_kind="patient", actor=f"ecert:{ecert_id}", action="face.enrol_refuse",
                             psn_no=psn_no, fields=(f"reason:{refusal.code}", f"field:{refusal.field}"), at=now,
                             ref=token_id)
