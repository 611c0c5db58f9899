"""Tables of face payment (刷脸). No image is ever stored; templates only encrypted.

- ``face_consents``: each separate consent to face payment — given when, under which text version, through which
  channel (counter | app), by whom — and when and how it was withdrawn. Kept after withdrawal (no biometric data).
- ``face_templates``: the enrolled template of a person with live consent: the embeddings encrypted under a data
  key of their own (AES-256-GCM), that key wrapped by a ``face`` key of the keyring (``kek_id``); the PIN as a keyed
  index; wrong tries and the lock. Withdrawal deletes the row.
- ``face_sessions``: a face terminal's verification session: its signed liveness challenge, tries, outcome, and the
  one-time ``authNo`` (its hash) the terminal exchanges for the identity and an ecToken.
- ``face_frame_hashes``: perceptual hashes of the frames verification saw (never the frames), for replay checks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class FaceConsentRow(Base):
    __tablename__ = "face_consents"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    given_at: Mapped[datetime] = mapped_column(UtcDateTime)
    text_version: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(8))  # counter | app
    given_by: Mapped[str] = mapped_column(String(40))  # the staff key, or the e-certificate
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    withdrawn_via: Mapped[str | None] = mapped_column(String(40))  # app | counter:<staff> | cli


class FaceTemplateRow(Base):
    __tablename__ = "face_templates"
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), primary_key=True)
    consent_id: Mapped[int] = mapped_column(ForeignKey("face_consents.id"))
    model: Mapped[str] = mapped_column(String(40))  # the encoder that made it: probes must come from the same
    template_enc: Mapped[bytes] = mapped_column(LargeBinary)  # nonce || AES-GCM(embeddings) under the template key
    key_wrapped: Mapped[str] = mapped_column(String(120))  # "<face key id>:<base64url(nonce || wrapped key)>"
    pin_idx: Mapped[str] = mapped_column(String(64), index=True)  # keyed HMAC of the PIN: it selects the person
    failures: Mapped[int] = mapped_column(Integer, default=0)  # wrong tries in a row
    locked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime)


class FaceSessionRow(Base):
    __tablename__ = "face_sessions"
    session_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"), index=True)
    fixmedins_code: Mapped[str] = mapped_column(String(12))
    challenge: Mapped[str] = mapped_column(String(80))  # actions, comma-separated, in order
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # the bill the patient is about to pay: picks the threshold
    business_type: Mapped[str] = mapped_column(String(5))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(10))  # open | verified | refused | exchanged
    psn_no: Mapped[str | None] = mapped_column(String(30))
    auth_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # sha256 of the one-time authNo
    max_bill_fen: Mapped[int | None] = mapped_column(BigInteger)  # the match's limit, passed on to its ecToken


class FaceFrameHashRow(Base):
    __tablename__ = "face_frame_hashes"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    frame_hash: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[str] = mapped_column(String(24))
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
