"""Reading a request body that was needed raw first (a signature covers its bytes): JSON into a model, refusals
naming the field in the REST error shape."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from medpay.api.errors import field_path
from medpay.services.errors import Invalid

M = TypeVar("M", bound=BaseModel)


def json_body(model: type[M], body: bytes) -> M:
    """The body as ``model``; a refusal names the field (``body`` when it is not a JSON object at all)."""
    try:
        doc: Any = json.loads(body or b"{}")
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested beyond reason
        raise Invalid("body", "is not valid JSON") from None
    if not isinstance(doc, dict):
        raise Invalid("body", "must be a JSON object")
    try:
        return model.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        raise Invalid(field_path(first["loc"]) or "body", first["msg"]) from None


async def raw_body(request: Request) -> bytes:
    """The body as sent (a dependency, for an operation that describes its body itself and checks it with
    ``json_body``)."""
    return await request.body()
