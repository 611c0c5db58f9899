"""Face verification at a registered face terminal (刷脸认证: ``cn.nhsa.ec.auth`` → ``cn.nhsa.auth.check``).

1. ``open_session``: the terminal (signed request) says what the patient is about to pay; the platform answers
   a random liveness challenge (two different actions in a random order), signed with the platform's key and
   short-lived. The order is the point: a recording made for another challenge answers out of order.
2. ``verify``: the terminal sends the camera frames and the PIN the patient typed (and, optionally, the last
   digits of the ID number). In order, cheapest refusals first: the session; every frame an image with one face;
   frozen frames (consecutive frames the same) and frames seen before (perceptual hashes kept for a day, never
   the images); the challenge performed in order (``domain.face.check_liveness``); the quality of the frame that
   gets compared; then 1:1 against the person the PIN selects, at the region's threshold for the amount. A
   match gives a one-time ``authNo``. Wrong faces or ID digits for a PIN's person count against that person and
   lock face payment after the region's ``max_failures``.
3. ``auth_check``: the terminal exchanges the authNo (once, within ``auth_ttl_s``) for the masked identity and an
   ecToken bound to the person, the terminal's institution and one visit (``PersonService.add_ec_token``): from
   there the settlement is the QR channel's.

The face is never the only factor (the PIN), and every refusal says that QR code or ID card can be used instead.
Every decision — accept, each refusal, a lock — is audited, without biometric data.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher, mask_certno, mask_name
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.face_tables import FaceFrameHashRow, FaceSessionRow, FaceTemplateRow
from medpay.adapters.db.tables import InstitutionRow, PersonRow
from medpay.adapters.face import images
from medpay.adapters.face.port import Face, FaceEncoder
from medpay.adapters.face.vault import TemplateVault
from medpay.adapters.region_settings import FaceSettings, RegionFaceSettings
from medpay.domain.credentials import TOKEN_TTL
from medpay.domain.ecert_code import BUSINESS_TYPES
from medpay.domain.face import ACTIONS, FrameMeasures, LivenessRules, best_distance, check_liveness, draw_challenge
from medpay.services import audit
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from medpay.services.face.faces import (
    FaceLocked,
    FaceRejected,
    FramesReplayed,
    LivenessFailed,
    NoMatch,
    check_pin,
    decode,
    find_faces,
    pin_index,
    usable_face,
)
from medpay.services.persons import PersonService
from medpay.services.unit_of_work import unit_of_work

FALLBACK = "可改用医保码或身份证 / use the QR code or ID card instead"
FRAME_HASH_KEEP = timedelta(days=1)
REPLAY_BITS = 4  # of 256: a face region this close to one seen before is the same frame sent again
FROZEN_BITS = 2  # consecutive frames this close: the camera sent the same picture


class SessionRefused(Conflict):
    code = "session_invalid"


@dataclass(frozen=True)
class FrameRead:
    """What verification keeps of one camera frame while it decides: the decoded image (in memory only), its one
    face (detected once: liveness, the hash, the quality gate and the embedding all reuse it), the liveness
    measures and the perceptual hash."""

    image: np.ndarray
    faces: list[Face]
    measures: FrameMeasures
    hash: str


def read_frame(encoder: FaceEncoder, data: bytes, field: str) -> FrameRead:
    """A frame's one face, its landmarks' measures and its hash; ``FaceRejected`` naming ``field`` otherwise."""
    image = decode(data, field)
    faces = find_faces(encoder, image)
    if len(faces) != 1:
        raise FaceRejected(field, "no face found" if not faces else
                           f"{len(faces)} faces: exactly one person must be in front of the camera")
    return FrameRead(image, faces, FrameMeasures.of(faces[0].landmarks), images.frame_hash(image, faces[0].box))


def probe_of(encoder: FaceEncoder, frame: FrameRead, field: str) -> np.ndarray:
    """The embedding of the frame that gets compared, once its face passed the quality gate."""
    return encoder.embed(frame.image, usable_face(encoder, frame.image, field, faces=frame.faces))


def _bits(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


class FaceVerification:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher, vault: TemplateVault,
                 encoder: FaceEncoder, persons: PersonService, signing_key: Ed25519PrivateKey,
                 settings: RegionFaceSettings, clock: Callable[[], datetime] = utcnow,
                 rng: random.Random | None = None, liveness: LivenessRules = LivenessRules()):
        self.factory = factory
        self.cipher = cipher
        self.vault = vault
        self.encoder = encoder
        self.persons = persons
        self.signing_key = signing_key
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.SystemRandom()  # a seeded one only from test configuration (api/face.py)
        self.liveness = liveness

    def _region(self, s: Session, fixmedins_code: str) -> FaceSettings:
        inst = s.get(InstitutionRow, fixmedins_code)
        return self.settings.of(inst.admdvs if inst is not None else "")

    # -- cn.nhsa.ec.auth, step 1 ------------------------------------------------------------------------------

    def open_session(self, terminal_id: str, fixmedins_code: str, amount_fen: int, business_type: str) -> dict:
        if business_type not in BUSINESS_TYPES:
            raise Invalid("businessType", f"unknown business type {business_type!r}")
        if not isinstance(amount_fen, int) or amount_fen < 0:
            raise Invalid("amount", "must be a non-negative amount in yuan")
        now = self.clock()
        with unit_of_work(self.factory) as uow:
            s = uow.session
            region = self._region(s, fixmedins_code)
            challenge = draw_challenge(self.rng, region.challenge_steps)
            session_id = "FS" + secrets.token_hex(11)
            expires = now + timedelta(seconds=region.session_ttl_s)
            s.add(FaceSessionRow(session_id=session_id, terminal_id=terminal_id, fixmedins_code=fixmedins_code,
                                 challenge=",".join(challenge), amount_fen=amount_fen, business_type=business_type,
                                 created_at=now, expires_at=expires, tries=0, status="open"))
        signed = f"{session_id}|{terminal_id}|{','.join(challenge)}|{int(expires.timestamp())}".encode()
        return {"session_id": session_id, "expires_at": expires,
                "challenge": [{"action": a, "zh": ACTIONS[a][0], "en": ACTIONS[a][1]} for a in challenge],
                "signature": self.signing_key.sign(signed).hex()}

    # -- cn.nhsa.ec.auth, step 2 ------------------------------------------------------------------------------

    def verify(self, terminal_id: str, fixmedins_code: str, session_id: str, frames: list[bytes], pin: str,
               id_last4: str | None = None) -> dict:
        """A one-time authNo for the person the PIN selects, if the frames are live and theirs. Any refusal is
        recorded (tries, frame hashes, failures, audit) before it is raised."""
        session = self._open(terminal_id, session_id)
        outcome: dict = {"hashes": [], "refusal": None, "psn_no": None, "candidates": []}
        try:
            self._check(session, frames, pin, id_last4, outcome)
        except ServiceError as e:
            outcome["refusal"] = e
        return self._decide(session, outcome)

    def _open(self, terminal_id: str, session_id: str) -> FaceSessionRow:
        with self.factory() as s:
            row = s.get(FaceSessionRow, session_id) if isinstance(session_id, str) else None
            if row is None or row.terminal_id != terminal_id:
                raise NotFound("session_id", "unknown verification session")
            if row.status != "open":
                raise SessionRefused("session_id", f"this session is {row.status}: open a new one")
            if row.expires_at <= self.clock():
                raise SessionRefused("session_id", "expired: open a new session (a new challenge)")
            s.expunge(row)
            return row

    def _check(self, session: FaceSessionRow, frames: list[bytes], pin: str, id_last4: str | None,
               outcome: dict) -> None:
        check_pin(pin)
        if id_last4 is not None and not (isinstance(id_last4, str) and len(id_last4) == 4):
            raise Invalid("id_last4", "the last 4 characters of the ID number")
        read, rest = self.live_frames(tuple(session.challenge.split(",")), frames, outcome["hashes"])
        # compare the frame at rest closest to frontal: the quality gate applies to it
        self._match(session, probe_of(self.encoder, read[rest], f"frames[{rest}]"), pin, id_last4, outcome)

    def live_frames(self, challenge: tuple[str, ...], frames: list[bytes],
                    hashes: list[str]) -> tuple[list[FrameRead], int]:
        """The frames read, and the index of the one at rest closest to frontal, if they perform ``challenge``
        live: as many as the rules allow, one face in each, not frozen, not replayed, the actions in order. What
        verification and the app's enrolment both check. Each frame's hash is appended to ``hashes`` as it is
        read, so that a caller can remember the hashes of a refused sequence too."""
        rules = self.liveness
        if not rules.min_frames <= len(frames) <= rules.max_frames:
            raise Invalid("frames", f"send {rules.min_frames} to {rules.max_frames} frames, got {len(frames)}")
        read = []
        for i, data in enumerate(frames):
            read.append(read_frame(self.encoder, data, f"frames[{i}]"))
            hashes.append(read[-1].hash)
        self.not_replayed(hashes)
        measures = [f.measures for f in read]
        live = check_liveness(challenge, measures, rules)
        if not live.ok:
            raise LivenessFailed(live.reason.split(":")[0], live.reason.split(": ", 1)[-1])
        return read, min(range(len(measures)), key=lambda i: abs(measures[i].yaw) + abs(measures[i].mar))

    def not_replayed(self, hashes: list[str]) -> None:
        pairs = list(zip(hashes, hashes[1:]))
        frozen = sum(_bits(a, b) <= FROZEN_BITS for a, b in pairs)
        if frozen * 2 > len(pairs):
            raise FramesReplayed("frames", f"frozen: {frozen} of {len(pairs)} consecutive frames are the same picture")
        with self.factory() as s:
            since = self.clock() - FRAME_HASH_KEEP
            seen = [h for (h,) in s.execute(select(FaceFrameHashRow.frame_hash)
                                            .where(FaceFrameHashRow.seen_at >= since))]
        if not seen:
            return
        known = np.array([[int(h[i:i + 16], 16) for i in range(0, 64, 16)] for h in seen], dtype=np.uint64)
        again = 0
        for h in hashes:
            mine = np.array([int(h[i:i + 16], 16) for i in range(0, 64, 16)], dtype=np.uint64)
            x = np.bitwise_xor(known, mine)
            bits = np.unpackbits(x.view(np.uint8), axis=1).sum(axis=1)
            again += int(bits.min() <= REPLAY_BITS)
        if again * 2 >= len(hashes):
            raise FramesReplayed("frames", f"replayed: {again} of {len(hashes)} frames were sent before")

    def _match(self, session: FaceSessionRow, probe: np.ndarray, pin: str, id_last4: str | None,
               outcome: dict) -> None:
        with self.factory() as s:
            region = self._region(s, session.fixmedins_code)
            candidates = s.execute(select(FaceTemplateRow).where(
                FaceTemplateRow.pin_idx == pin_index(self.cipher, pin))).scalars().all()
            threshold = region.threshold_for(session.amount_fen)
            matched, distances = [], {}
            for row in candidates:
                if row.model != self.encoder.name:
                    continue  # enrolled with another model: that person must enrol again
                templates = self.vault.open(row.psn_no, row.model, row.template_enc, row.key_wrapped)
                distances[row.psn_no] = best_distance(probe, templates)
                if distances[row.psn_no] <= threshold:
                    matched.append(row)
            outcome["candidates"] = [r.psn_no for r in candidates if r not in matched or len(matched) > 1]
            if len(matched) != 1:
                raise NoMatch("pin", "this face and PIN do not match an enrolled person")
            row = matched[0]
            if row.locked_at is not None:
                outcome["candidates"] = []
                raise FaceLocked("pin", "face payment is locked for this person after too many wrong tries: "
                                        "unlock it at a counter with the ID card")
            if id_last4 is not None:
                certno = self.cipher.decrypt(s.get(PersonRow, row.psn_no).certno_enc, "certno")
                if not hmac.compare_digest(certno[-4:].upper(), id_last4.upper()):
                    outcome["candidates"] = [row.psn_no]
                    raise NoMatch("id_last4", "does not match the ID number of the person this face and PIN name")
            outcome["psn_no"] = row.psn_no
            outcome["max_bill_fen"] = region.bill_limit(distances[row.psn_no])

    def _decide(self, session: FaceSessionRow, outcome: dict) -> dict:
        now = self.clock()
        refusal: ServiceError | None = outcome["refusal"]
        auth_no = secrets.token_hex(16)
        with unit_of_work(self.factory) as uow:
            s = uow.session
            row = s.get(FaceSessionRow, session.session_id, with_for_update=True)
            region = self._region(s, session.fixmedins_code)
            for h in outcome["hashes"]:
                s.add(FaceFrameHashRow(frame_hash=h, session_id=session.session_id, seen_at=now))
            if row.status != "open":  # a concurrent verify of the same session decided first
                refusal = refusal or SessionRefused("session_id", f"this session is {row.status}: open a new one")
            elif refusal is None:
                row.status, row.psn_no = "verified", outcome["psn_no"]
                row.auth_hash = hashlib.sha256(auth_no.encode()).hexdigest()
                row.max_bill_fen = outcome["max_bill_fen"]
                row.expires_at = now + timedelta(seconds=region.auth_ttl_s)
                template = s.get(FaceTemplateRow, outcome["psn_no"], with_for_update=True)
                template.failures = 0
                audit.record(s, actor_kind="terminal", actor=session.terminal_id, action="face.accept",
                             psn_no=outcome["psn_no"], fields=("face:match",), at=now, ref=session.session_id)
            else:
                row.tries += 1
                if row.tries >= region.session_tries:
                    row.status = "refused"
                audit.record(s, actor_kind="terminal", actor=session.terminal_id, action="face.refuse",
                             psn_no="", fields=(f"reason:{refusal.code}", f"field:{refusal.field}"), at=now,
                             ref=session.session_id)
                for psn_no in outcome["candidates"]:  # a PIN's person shown another face (or wrong ID digits)
                    template = s.get(FaceTemplateRow, psn_no, with_for_update=True)
                    if template is None:
                        continue
                    template.failures += 1
                    audit.record(s, actor_kind="terminal", actor=session.terminal_id, action="face.reject",
                                 psn_no=psn_no, fields=("face:no_match",), at=now, ref=session.session_id)
                    if template.failures >= region.max_failures and template.locked_at is None:
                        template.locked_at = now
                        audit.record(s, actor_kind="terminal", actor=session.terminal_id, action="face.lock",
                                     psn_no=psn_no, fields=(f"failures:{template.failures}",), at=now,
                                     ref=session.session_id)
        if refusal is not None:  # every refusal offers the way without a face
            raise type(refusal)(refusal.field, f"{refusal.message} — {FALLBACK}")
        return {"authNo": auth_no, "expires_at": now + timedelta(seconds=region.auth_ttl_s)}

    # -- cn.nhsa.auth.check --------------------------------------------------------------------------------------

    def auth_check(self, terminal_id: str, fixmedins_code: str, auth_no: str) -> dict:
        """The masked identity and an ecToken for a fresh authNo of this terminal (once)."""
        if not isinstance(auth_no, str) or not auth_no:
            raise Invalid("authNo", "missing")
        now = self.clock()
        with unit_of_work(self.factory) as uow:
            s = uow.session
            row = s.execute(select(FaceSessionRow).where(
                FaceSessionRow.auth_hash == hashlib.sha256(auth_no.encode()).hexdigest()).with_for_update()
            ).scalar_one_or_none()
            if row is None or row.terminal_id != terminal_id:
                raise NotFound("authNo", "unknown")
            if row.status != "verified":
                raise Conflict("authNo", "already exchanged: verify the face again")
            if row.expires_at <= now:
                raise Forbidden("authNo", "expired: verify the face again")
            person = s.get(PersonRow, row.psn_no)
            row.status = "exchanged"
            token = self.persons.add_ec_token(s, person.psn_no, fixmedins_code, row.business_type, TOKEN_TTL,
                                              max_bill_fen=row.max_bill_fen)
            audit.record(s, actor_kind="terminal", actor=terminal_id, action="cn.nhsa.auth.check",
                         psn_no=person.psn_no, fields=audit.MASKED_IDENTITY, at=now, ref=row.session_id)
            return {"userName": mask_name(self.cipher.decrypt(person.psn_name_enc, "psn_name")),
                    "idNo": mask_certno(self.cipher.decrypt(person.certno_enc, "certno")),
                    "idType": person.psn_cert_type, "insuOrg": person.insuplc_admdvs, "gender": person.gend,
                    "birthday": person.brdy.isoformat(), "ecToken": token, "authNo": auth_no,
                    "businessType": row.business_type}

    def purge(self) -> int:
        return purge_verifications(self.factory, self.clock())


def purge_verifications(factory: sessionmaker[Session], now: datetime) -> int:
    """Forget frame hashes older than a day and sessions over for more than a day (their authNo long useless; the
    decisions stay in the audit log). Run by ``medpay housekeeping``."""
    with unit_of_work(factory) as uow:
        n = uow.session.query(FaceFrameHashRow).filter(FaceFrameHashRow.seen_at < now - FRAME_HASH_KEEP).delete()
        n += uow.session.query(FaceSessionRow).filter(FaceSessionRow.expires_at < now - FRAME_HASH_KEEP).delete()
    return n

