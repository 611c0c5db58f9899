"""Request-scoped access to the process-wide Platform."""

from __future__ import annotations

from fastapi import Request

from medpay.api.platform import Platform


def platform(request: Request) -> Platform:
    return request.app.state.platform
