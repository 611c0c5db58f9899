"""Face enrolment (刷脸开通) with separate, explicit, revocable consent.

Two ways in: at a counter, a staff member who saw the ID card enrols the person (``channel="counter"``; psn_no and
the ID number must agree), or the patient in the app, whose e-certificate's device signed the request
(``channel="app"``). Either way: a consent record (when, which text version, which channel, who) made for face
payment alone; 1–3 photos, each through the quality gate; the photos must show one person; a PIN of six digits
(the second factor that selects the person at a terminal). The photos are decoded in memory, turned into
embeddings and dropped: no image is written anywhere. The embeddings are stored encrypted
(``adapters.face.vault``).

Withdrawal (app, counter or CLI) deletes the template at once and records when and how; every step is audited
without biometric data.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.face_tables import FaceConsentRow, FaceTemplateRow
from medpay.adapters.db.tables import PersonRow
from medpay.adapters.face.port import FaceEncoder
from medpay.adapters.face.vault import TemplateVault
from medpay.domain.face import distance
from medpay.services import audit
from medpay.services.errors import Invalid, NotFound
from medpay.services.face.faces import check_pin, decode, pin_index, usable_face
from medpay.services.unit_of_work import unit_of_work

CONSENT_VERSION = "face-2026-12"  # the consent text's version; the page shows that text (api/mobile/text.py)
CHANNELS = ("counter", "app")
MAX_PHOTOS = 3


def check_terms(consent: object, consent_version: str, channel: str, pin: str) -> None:
    """The cheap checks of an enrolment, before any photo is looked at: consent given to the current text, a
    known channel, a PIN of six digits."""
    if consent is not True:
        raise Invalid("consent", "separate consent to face payment (人脸信息处理单独同意) must be given: true")
    if consent_version != CONSENT_VERSION:
        raise Invalid("consent_version", f"the consent text shown must be the current one, {CONSENT_VERSION}")
    if channel not in CHANNELS:
        raise Invalid("channel", f"one of {', '.join(CHANNELS)}")
    check_pin(pin)


def erase_face(s: Session, psn_no: str, now: datetime, via: str) -> bool:
    """Delete the person's face template and withdraw their consents, in the caller's transaction; False when there
    was neither."""
    row = s.get(FaceTemplateRow, psn_no, with_for_update=True)
    if row is not None:
        s.delete(row)
        s.flush()
    return FaceEnrolment._withdraw_consents(s, psn_no, now, via) > 0 or row is not None


class FaceEnrolment:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher, vault: TemplateVault,
                 encoder: FaceEncoder, clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.cipher = cipher
        self.vault = vault
        self.encoder = encoder
        self.clock = clock

    def embeddings(self, photos: list[bytes]) -> np.ndarray:
        """One embedding per photo, each through the quality gate, all of one person."""
        if not 1 <= len(photos) <= MAX_PHOTOS:
            raise Invalid("images", f"send 1 to {MAX_PHOTOS} photos, got {len(photos)}")
        out = []
        for i, data in enumerate(photos):
            field = f"images[{i}]"
            image = decode(data, field)
            out.append(self.encoder.embed(image, usable_face(self.encoder, image, field)))
        for i in range(1, len(out)):
            if distance(out[0], out[i]) > self.encoder.threshold:
                raise Invalid(f"images[{i}]", "not the same person as images[0]")
        return np.stack(out)

    def enrol(self, psn_no: str, photos: list[bytes], pin: str, *, consent: object, consent_version: str,
              channel: str, by: str, certno: str | None = None) -> dict:
        """Enrol (or enrol again: the new template and consent replace the old, and a lock is lifted)."""
        check_terms(consent, consent_version, channel, pin)
        now = self.clock()
        with self.factory() as s:
            person = s.get(PersonRow, psn_no)
            if person is None:
                raise NotFound("psn_no", "no insured person with this psn_no")
            if channel == "counter" and not (certno and hmac.compare_digest(
                    person.certno_idx or "", self.cipher.blind_index(certno, "certno"))):
                raise Invalid("certno", "does not match the person's ID number (check the ID card)")
        emb = self.embeddings(photos)  # the slow part, outside any transaction
        sealed, wrapped = self.vault.seal(psn_no, self.encoder.name, emb)
        with unit_of_work(self.factory) as uow:
            s = uow.session
            self._withdraw_consents(s, psn_no, now, f"re-enrolled:{channel}")
            consent_row = FaceConsentRow(psn_no=psn_no, given_at=now, text_version=consent_version,
                                         channel=channel, given_by=by[:40])
            s.add(consent_row)
            s.flush()
            old = s.get(FaceTemplateRow, psn_no, with_for_update=True)
            if old is not None:
                s.delete(old)
                s.flush()
            s.add(FaceTemplateRow(psn_no=psn_no, consent_id=consent_row.id, model=self.encoder.name,
                                  template_enc=sealed, key_wrapped=wrapped, pin_idx=pin_index(self.cipher, pin),
                                  failures=0, locked_at=None, enrolled_at=now))
            audit.record(s, actor_kind="operator" if channel == "counter" else "patient", actor=by,
                         action="face.enrol", psn_no=psn_no, fields=("consent", f"photos:{len(photos)}"), at=now,
                         ref=consent_version)
        return {"psn_no": psn_no, "status": "enrolled", "consent_version": consent_version, "channel": channel,
                "photos": len(photos), "enrolled_at": now}

    @staticmethod
    def _withdraw_consents(s: Session, psn_no: str, now: datetime, via: str) -> int:
        rows = s.execute(select(FaceConsentRow).where(FaceConsentRow.psn_no == psn_no,
                                                      FaceConsentRow.withdrawn_at.is_(None))).scalars().all()
        for row in rows:
            row.withdrawn_at, row.withdrawn_via = now, via[:40]
        return len(rows)

    def withdraw(self, psn_no: str, *, via: str, by: str) -> bool:
        """Consent withdrawn: the template is deleted in the same transaction. False when nothing was enrolled."""
        now = self.clock()
        with unit_of_work(self.factory) as uow:
            s = uow.session
            if not erase_face(s, psn_no, now, via):
                return False
            audit.record(s, actor_kind={"app": "patient", "cli": "operator"}.get(via.split(":")[0], "operator"),
                         actor=by, action="face.withdraw", psn_no=psn_no, fields=("consent",), at=now, ref=via)
        return True

    def status(self, psn_no: str) -> dict:
        with self.factory() as s:
            row = s.get(FaceTemplateRow, psn_no)
            return {"psn_no": psn_no, "enrolled": row is not None, "locked": bool(row and row.locked_at)}

    def rewrap_all(self, batch: int = 200) -> int:
        """Every template's key wrapped by the newest face key, a batch per transaction (each row locked while it is
        re-wrapped): verification goes on meanwhile, reading each row with the key it names."""
        self.vault.reload()  # the rotation's new key
        done, last = 0, ""
        while True:
            with unit_of_work(self.factory) as uow:
                rows = uow.session.execute(select(FaceTemplateRow).where(FaceTemplateRow.psn_no > last)
                                           .order_by(FaceTemplateRow.psn_no).limit(batch)
                                           .with_for_update()).scalars().all()
                for row in rows:
                    new = self.vault.rewrap(row.psn_no, row.key_wrapped)
                    if new is not None:
                        row.key_wrapped = new
                        done += 1
            if len(rows) < batch:
                return done
            last = rows[-1].psn_no
