"""The one error shape services raise. Entry points turn it into infcode −2 or a 4xx JSON body."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the platform refuses. ``field`` names the input at fault; nothing was written."""

    status = 400
    code = "invalid"

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Invalid(ServiceError):
    status = 422
    code = "invalid"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Forbidden(ServiceError):
    """Another tenant's data: an institution asking for a visit or settlement that isn't its own."""

    status = 403
    code = "forbidden"


class Conflict(ServiceError):
    """The request contradicts the current state (already cancelled, msgid reused with another body …)."""

    status = 409
    code = "conflict"


class RateLimited(ServiceError):
    """Too many of these, from this caller or for this person, in the time allowed; the message says when to try
    again."""

    status = 429
    code = "rate_limited"


class Unauthorized(ServiceError):
    """The request is not authenticated: a signature, timestamp or nonce header is missing, wrong, stale or
    replayed. ``field`` names the header at fault."""

    status = 401
    code = "unauthorized"


class AuthError(Unauthorized):
    """The institution gateway's request is not authenticated (``field``: the header or envelope field)."""
