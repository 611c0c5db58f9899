"""Tables of the institution gateway: replay protection, 9001/9002 sign-ins, SM2 body-signature keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class GatewayNonceRow(Base):
    """A (timestamp, nonce) accepted from a paasid. The primary key is the replay check: a second INSERT of the
    same (paasid, ts, nonce) conflicts — the signature covers the timestamp and the nonce, so a replay repeats
    both. Rows older than twice the clock-skew window can no longer be replayed (their timestamp is stale by
    then) and are purged."""

    __tablename__ = "gateway_nonces"
    paasid: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # x-tif-timestamp
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class SignInRow(Base):
    """9001 sign-in of an operator; 9002 sets ``sign_out_time`` once."""

    __tablename__ = "sign_ins"
    __table_args__ = (Index("ix_sign_ins_inst_time", "fixmedins_code", "sign_time"),)
    sign_no: Mapped[str] = mapped_column(String(30), primary_key=True)
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"))
    opter: Mapped[str] = mapped_column(String(30))
    mac: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    sign_time: Mapped[datetime] = mapped_column(UtcDateTime)
    sign_out_time: Mapped[datetime | None] = mapped_column(UtcDateTime)


class InstitutionKeyRow(Base):
    """An institution's SM2 public key (x||y, 128 hex digits): with one registered, every body it sends must be
    SM2-signed (``signtype`` "SM2"). After a rotation the previous key is still accepted until
    ``previous_valid_until``, so the hospital's workstations can switch over one by one."""

    __tablename__ = "institution_keys"
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"), primary_key=True)
    sm2_public_key: Mapped[str] = mapped_column(String(130))
    previous_sm2_public_key: Mapped[str | None] = mapped_column(String(130))
    previous_valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
