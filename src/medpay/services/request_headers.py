"""Reading signed-request headers: the same rules for the institution gateway and for terminals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from medpay.services.errors import ServiceError


def printable(value: str) -> bool:
    """An id or nonce fit for a header and a key column: printable ASCII, no spaces."""
    return value.isascii() and value.isprintable() and " " not in value


def collect(headers: Mapping[str, str], names: Iterable[str], error: type[ServiceError]) -> dict[str, str]:
    """The wanted headers by lowercase name, stripped; a header sent twice with different values is refused
    (``error`` names it as the caller spells it)."""
    wanted = {name.lower(): name for name in names}
    multi = getattr(headers, "multi_items", None)  # Starlette headers: every value of a repeated header
    items = multi() if callable(multi) else headers.items()
    found: dict[str, str] = {}
    for name, value in items:
        key = name.lower() if isinstance(name, str) else name
        if key not in wanted:
            continue
        if not isinstance(value, str):
            raise error(wanted[key], "must be a string")
        value = value.strip()
        if key in found and found[key] != value:
            raise error(wanted[key], "header sent more than once")
        found[key] = value
    return found
