"""Tables of e-certificates (医保电子凭证) and the terminals that scan them.

- ``ecerts``: an activated e-certificate, bound to the Ed25519 key of one device. At most one active
  e-certificate per person and per device key (partial unique indexes); re-activation revokes the old one.
- ``ecert_code_nonces``: the nonce of every QR code that was scanned. The primary key makes a code single use.
- ``terminals``: scanners, windows and face kiosks of an institution (``kind``), each with its Ed25519 public key.
- ``terminal_nonces``: request nonces accepted from a terminal (replay check), purged after 2 × clock skew.
- ``ecert_activations``: an activation under way: the one-time code (by SMS to the phone on record, or handed
  over at a counter by staff) that must come back with the device's key. At most one pending per person.
- ``device_nonces``: request nonces accepted from a device key (the patient's app), like terminal nonces.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class EcertRow(Base):
    __tablename__ = "ecerts"
    __table_args__ = (
        Index("uq_ecerts_active_person", "psn_no", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
        Index("uq_ecerts_active_device", "device_key", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    )
    ecert_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    device_key: Mapped[str] = mapped_column(String(64))  # Ed25519 public key, 64 hex digits
    status: Mapped[str] = mapped_column(String(8), default="active")  # active | revoked
    consent_at: Mapped[datetime] = mapped_column(UtcDateTime)  # separate consent to process personal information
    activated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(40))  # "reactivated", "revoked" …: told to its device


class EcertCodeNonceRow(Base):
    """A scanned QR code. Inserted when ``ec.query`` accepts the code; a second scan conflicts."""

    __tablename__ = "ecert_code_nonces"
    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    ecert_id: Mapped[str] = mapped_column(ForeignKey("ecerts.ecert_id"), index=True)
    terminal_id: Mapped[str | None] = mapped_column(String(20))
    used_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class TerminalRow(Base):
    __tablename__ = "terminals"
    terminal_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"), index=True)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)  # Ed25519, 64 hex digits
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(8), default="active")  # active | disabled
    kind: Mapped[str] = mapped_column(String(8), default="scanner", server_default="scanner")  # scanner | face
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TerminalNonceRow(Base):
    __tablename__ = "terminal_nonces"
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.terminal_id"), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class EcertActivationRow(Base):
    __tablename__ = "ecert_activations"
    __table_args__ = (
        Index("uq_ecert_activations_pending", "psn_no", unique=True,
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
        Index("ix_ecert_activations_psn_created", "psn_no", "created_at"),
    )
    activation_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"))
    channel: Mapped[str] = mapped_column(String(8))  # sms | counter
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)  # keyed hash: the code can't be guessed offline
    status: Mapped[str] = mapped_column(String(10))  # pending | done | expired | cancelled | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # wrong codes so far
    created_by: Mapped[str] = mapped_column(String(40))  # "patient", or the staff key that vouched at a counter
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    consent_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ecert_id: Mapped[str | None] = mapped_column(String(20))  # the e-certificate it made


class DeviceNonceRow(Base):
    __tablename__ = "device_nonces"
    device_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # Ed25519 public key, 64 hex digits
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
