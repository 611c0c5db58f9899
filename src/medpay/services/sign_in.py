"""9001 sign-in / 9002 sign-out: an operator of an institution opens a session whose ``sign_no`` goes into
every later envelope.

- ``sign_no``: 30 digits = UTC ``yyyyMMddHHmmss`` (14) + 16 random digits; unique (primary key, drawn again
  on the unlikely collision). With the request's ``msgid``, sign-in and sign-out are exactly once: a retry
  gets the first answer (the same sign_no).
- ``opter`` is required at sign-in; ``mac`` and ``ip`` may be empty (many HIS send nothing useful).
- ``sign_out``: only the institution's own sign_no, and only once; when ``opter`` is given it must be the
  operator who signed in. A sign_no of another institution is reported exactly like an unknown one (no hint
  that it exists).
- ``check``: the sign_no belongs to the institution and is not signed out.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.base import utcnow
from medpay.adapters.db.gateway_tables import SignInRow
from medpay.adapters.db.tables import InstitutionRow
from medpay.adapters.db.statements import insert_ignore
from medpay.services import idempotency
from medpay.services.request_guard import sign_in_open
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound
from medpay.services.unit_of_work import UnitOfWork

SIGN_NO_LENGTH = 30
_RANDOM_DIGITS = SIGN_NO_LENGTH - 14
_LIMITS = {"opter": 30, "mac": 64, "ip": 64}
_ATTEMPTS = 5


def _text(field: str, value: object, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise Invalid(field, "must be a string")
    value = value.strip()
    if not value and required:
        raise Invalid(field, "required")
    if len(value) > _LIMITS[field]:
        raise Invalid(field, f"at most {_LIMITS[field]} characters")
    if not value.isprintable():
        raise Invalid(field, "contains control characters")
    return value


class SignInService:
    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.clock = clock

    def sign_in(self, fixmedins_code: str, opter: str, mac: str, ip: str,
                msgid: str | None = None) -> tuple[str, datetime]:
        """Open a sign-in; returns (sign_no, sign_time). With ``msgid``, exactly once: a retry gets the same
        sign_no back."""
        opter, mac, ip = _text("opter", opter), _text("mac", mac, False), _text("ip", ip, False)

        def work(uow: UnitOfWork) -> dict:
            if uow.session.get(InstitutionRow, fixmedins_code) is None:
                raise NotFound("fixmedins_code", f"unknown institution {fixmedins_code!r}")
            for _attempt in range(_ATTEMPTS):  # a clash of 16 random digits within one second: draw again
                now = self.clock()
                sign_no = now.strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10 ** _RANDOM_DIGITS):0{_RANDOM_DIGITS}d}"
                row = {"sign_no": sign_no, "fixmedins_code": fixmedins_code, "opter": opter, "mac": mac, "ip": ip,
                       "sign_time": now, "sign_out_time": None}
                if insert_ignore(uow.conn, SignInRow, row, SignInRow.sign_no):
                    return {"sign_no": sign_no, "sign_time": now.isoformat()}
            raise Conflict("sign_no", "no free sign_no could be drawn; sign in again")

        out = idempotency.write(self.factory, self.clock, fixmedins_code, msgid, "sign_in", {"opter": opter, "mac": mac, "ip": ip}, work)
        return out["sign_no"], datetime.fromisoformat(out["sign_time"])

    def sign_out(self, fixmedins_code: str, sign_no: str, opter: str | None = None,
                 msgid: str | None = None) -> datetime:
        """Close the institution's sign-in ``sign_no``; returns sign_out_time. ``opter`` (optional) must be
        the operator who signed in. With ``msgid``, a retry gets the first answer."""
        opter = _text("opter", opter, False)
        if not isinstance(sign_no, str) or not sign_no.strip():
            raise Invalid("sign_no", "required")
        sign_no = sign_no.strip()

        def work(uow: UnitOfWork) -> dict:
            now = self.clock()
            # one atomic UPDATE: of two concurrent sign-outs, exactly one matches the open row
            conditions = [SignInRow.sign_no == sign_no, SignInRow.fixmedins_code == fixmedins_code,
                          SignInRow.sign_out_time.is_(None)]
            if opter:
                conditions.append(SignInRow.opter == opter)
            if uow.session.execute(update(SignInRow).where(*conditions).values(sign_out_time=now)).rowcount == 1:
                return {"sign_out_time": now.isoformat()}
            row = uow.session.execute(
                select(SignInRow.fixmedins_code, SignInRow.opter, SignInRow.sign_out_time)
                .where(SignInRow.sign_no == sign_no)
            ).one_or_none()
            if row is None or row.fixmedins_code != fixmedins_code:
                raise NotFound("sign_no", f"no sign-in {sign_no!r} for this institution")
            if opter and row.opter != opter:
                raise Forbidden("opter", "sign_no was opened by another operator")
            raise Conflict("sign_no", f"already signed out at {row.sign_out_time.isoformat()}")

        out = idempotency.write(self.factory, self.clock, fixmedins_code, msgid, "sign_out", {"sign_no": sign_no, "opter": opter}, work)
        return datetime.fromisoformat(out["sign_out_time"])

    def check(self, fixmedins_code: str, sign_no: str) -> bool:
        """True when ``sign_no`` is an open sign-in of the institution."""
        if not isinstance(sign_no, str) or not sign_no:
            return False
        with self.factory() as session:
            return sign_in_open(session.connection(), fixmedins_code, sign_no.strip())
