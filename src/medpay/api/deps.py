"""Request-scoped access to the process-wide Platform, and who the admin door's caller is."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from medpay.api.platform import Platform
from medpay.services.staff import Staff, StaffKeys

_bearer = HTTPBearer(auto_error=False, scheme_name="staff key",
                     description="医保经办人员密钥 / a staff key: `Authorization: Bearer mpk_…` "
                                 "(`medpay staff key-create`; the demo's is in `medpay demo seed`)")


def platform(request: Request) -> Platform:
    return request.app.state.platform


def staff(request: Request, _credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Staff:
    """The staff member asking; every admin endpoint depends on it (401 otherwise)."""
    return StaffKeys(request.app.state.platform.factory).authenticate(request.headers.get("authorization"))
