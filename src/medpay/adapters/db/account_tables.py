"""Tables of the patient's app accounts (移动端账号): signed in with a phone number and a texted code.

- ``mobile_accounts``: an account, keyed by the blind index of its phone number (at most one open account per
  number, a partial unique index). ``last_code_at`` is the last time a code texted to the number was entered: a
  number silent long enough may have been given to someone else by the carrier, and its next sign-in closes the
  old account instead of inheriting it.
- ``mobile_sign_in_codes``: a texted one-time code (keyed hash), its tries and what became of it. Its rows are
  also the rate limits' counters (per phone and per IP, by blind index): no extra service needed.
- ``mobile_sessions``: a signed-in browser. Only the SHA-256 of the cookie's token is kept; the CSRF token is
  derived from the token, so a database reader can use neither.
- ``mobile_failed_checks``: a wrong answer an account gave where a guess could pay (a family member's ID number):
  counted per account and day, so an account can't try ID numbers until one fits.
- ``account_persons``: which insured persons an account speaks for: ``self``, proved by a device key that holds the
  person's active e-certificate (at most one account speaks for a person as ``self``), and family members
  (``spouse``, ``parent``, ``child``), ``pending`` until the member consents with their own account, or ``active`` at
  once when a parent acts for a minor child (``consent`` says which). One live link per account and person.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime


class MobileAccountRow(Base):
    __tablename__ = "mobile_accounts"
    __table_args__ = (
        Index("uq_mobile_accounts_open_phone", "phone_idx", unique=True,
              sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),
    )
    account_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    phone_idx: Mapped[str] = mapped_column(String(64))
    phone_enc: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8))  # open | closed
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_code_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_reason: Mapped[str | None] = mapped_column(String(20))  # number_silent | …


class SignInCodeRow(Base):
    __tablename__ = "mobile_sign_in_codes"
    __table_args__ = (
        Index("ix_mobile_sign_in_codes_phone", "phone_idx", "created_at"),
        Index("ix_mobile_sign_in_codes_ip", "ip_idx", "created_at"),
    )
    challenge_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    phone_idx: Mapped[str] = mapped_column(String(64))
    ip_idx: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(8))  # pending | used | failed | expired | unsent
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class MobileSessionRow(Base):
    __tablename__ = "mobile_sessions"
    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie's token
    account_id: Mapped[str] = mapped_column(ForeignKey("mobile_accounts.account_id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    user_agent: Mapped[str] = mapped_column(String(120))  # shown in the list of signed-in browsers


class AccountPersonRow(Base):
    __tablename__ = "account_persons"
    __table_args__ = (
        Index("uq_account_persons_self", "psn_no", unique=True,
              sqlite_where=text("relation = 'self' AND revoked_at IS NULL"),
              postgresql_where=text("relation = 'self' AND revoked_at IS NULL")),
        Index("uq_account_persons_live", "account_id", "psn_no", unique=True,
              sqlite_where=text("revoked_at IS NULL"), postgresql_where=text("revoked_at IS NULL")),
    )
    link_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("mobile_accounts.account_id"), index=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    relation: Mapped[str] = mapped_column(String(12))  # self | spouse | parent | child
    status: Mapped[str] = mapped_column(String(8))  # pending | active | revoked
    consent: Mapped[str | None] = mapped_column(String(16))  # device (self) | member | guardian_minor
    linked_at: Mapped[datetime] = mapped_column(UtcDateTime)  # asked for
    consent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # in force from
    proof: Mapped[str] = mapped_column(String(40))  # self: the e-certificate whose device signed; family: the inviter
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(20))  # unlinked | declined | number_silent …


class FailedCheckRow(Base):
    __tablename__ = "mobile_failed_checks"
    __table_args__ = (Index("ix_mobile_failed_checks_account", "account_id", "kind", "at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(16))  # family_certno
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class DeletionRequestRow(Base):
    """A person's request to have their personal data deleted (PIPL 第四十七条), from the app: what was erased at once
    and what the law makes us keep, as told to them."""

    __tablename__ = "deletion_requests"
    request_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    account_id: Mapped[str] = mapped_column(String(20))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    erased: Mapped[str] = mapped_column(String(300))  # what was erased, comma-separated
    kept: Mapped[str] = mapped_column(String(300))  # what is kept and why, as keys of the told text
