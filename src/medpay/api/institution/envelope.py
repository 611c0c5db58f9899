"""Request and response envelopes of the institution interface, tolerant of real-world quirks:
numbers where strings are expected (and back), ``infcode`` as number or string."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from collections.abc import Mapping
from typing import Any

from medpay.local_time import LOCAL_TZ
from medpay.nhsa_paths import Route

STRING_FIELDS = ("infno", "msgid", "mdtrtarea_admvs", "insuplc_admdvs", "recer_sys_code", "dev_no", "dev_safe_info",
                 "cainfo", "signtype", "infver", "opter_type", "opter", "opter_name", "inf_time", "fixmedins_code",
                 "fixmedins_name", "sign_no", "serv_code", "serv_sign")
REQUIRED = ("infno", "msgid", "fixmedins_code")
MAX_LENGTHS = {"infno": 10, "msgid": 30, "fixmedins_code": 30, "mdtrtarea_admvs": 6, "insuplc_admdvs": 6,
               "sign_no": 30, "opter": 30, "opter_name": 50}


class EnvelopeError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class Envelope:
    infno: str
    msgid: str
    fixmedins_code: str
    input: dict[str, Any]
    fields: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # the object as sent: what an SM2 body signature covers

    def get(self, name: str) -> str:
        return self.fields.get(name, "")


def as_text(value: Any, name: str) -> str:
    """A string field that may arrive as a number."""
    if value is None:
        return ""
    if isinstance(value, bool):
        raise EnvelopeError(name, "must be a string, not a boolean")
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        if "\x00" in value:  # PostgreSQL text can't hold NUL
            raise EnvelopeError(name, "must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (\ud800) decoded from a JSON escape
            raise EnvelopeError(name, "is not valid Unicode (unpaired surrogate)") from None
        return value.strip()
    raise EnvelopeError(name, f"must be a string; got {type(value).__name__}")


def parse_envelope(body: bytes, route: Route | None = None) -> Envelope:
    """The request envelope of ``body``; ``route``: the transactions its URL path names (None or empty: the body's
    infno decides)."""
    try:
        doc = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, or an integer literal over 4300 digits
        raise EnvelopeError("body", f"is not valid JSON ({e.__class__.__name__}: {str(e)[:200]})") from None
    except RecursionError:
        raise EnvelopeError("body", "is nested too deeply") from None
    if not isinstance(doc, Mapping):
        raise EnvelopeError("body", "must be a JSON object")
    fields = {name: as_text(doc.get(name), name) for name in STRING_FIELDS}
    if route is not None and route.infnos:
        chosen = route.choose(fields["infno"])
        if chosen is None:
            raise EnvelopeError("infno", f"{fields['infno']!r} does not match the URL's transaction "
                                         f"{' or '.join(route.infnos)}")
        fields["infno"] = chosen
    for name in REQUIRED:
        if not fields[name]:
            raise EnvelopeError(name, "missing")
    for name, limit in MAX_LENGTHS.items():
        if len(fields[name]) > limit:
            raise EnvelopeError(name, f"longer than {limit} characters")
    raw_input = doc.get("input")
    if raw_input is None:
        raise EnvelopeError("input", "missing")
    if isinstance(raw_input, str):  # some HIS send input as a JSON string
        try:
            raw_input = json.loads(raw_input)
        except (ValueError, RecursionError):
            raise EnvelopeError("input", "is a string that is not JSON") from None
    if not isinstance(raw_input, Mapping):
        raise EnvelopeError("input", "must be an object")
    return Envelope(fields["infno"], fields["msgid"], fields["fixmedins_code"], dict(raw_input), fields, dict(doc))


def _stamp(now: datetime) -> str:
    return now.astimezone(LOCAL_TZ).strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}"


def response(infcode: int, output: Any, err_msg: str | None, *, admdvs: str, received: datetime,
             now: datetime, warn_msg: str | None = None) -> dict[str, Any]:
    """The response envelope; inf_refmsgid = receiver region(6) + yyyyMMddHHmmss(14) + serial(10)."""
    return {
        "infcode": infcode,
        "inf_refmsgid": (admdvs or "000000")[:6] + now.astimezone(LOCAL_TZ).strftime("%Y%m%d%H%M%S")
        + f"{secrets.randbelow(10**10):010d}",
        "refmsg_time": _stamp(received),
        "respond_time": _stamp(now),
        "enctype": "",
        "signtype": "",
        "cainfo": "",
        "err_msg": err_msg,
        "warn_msg": warn_msg,
        "output": output if output is not None else {},
    }
