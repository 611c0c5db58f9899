"""What the OpenAPI description says of each door: how callers authenticate (security schemes, not loose header
parameters), which status codes an operation answers and in which door's error shape, and the transport's own
refusals. Routes declare their door with ``signed(...)`` and ``answers(...)``; ``finalize`` adds what every
operation of a door shares. ``tests/test_openapi_contract.py`` holds the description to the server's answers.
"""

from __future__ import annotations

import copy
from typing import Any

from medpay.adapters.gateway.port import CALLBACK_SIGNATURE_HEADER, CALLBACK_TIMESTAMP_HEADER
from pydantic import BaseModel

from medpay.api.errors import EC_QUERY_PATH, ErrorResponse, door_of

# -- how each door's callers authenticate ---------------------------------------------------------------------------

_TIF = "institution gateway (政务网关) signature, from the institution's paasid and token"
_ED25519 = "Ed25519 signature of METHOD\\npath\\ntimestamp\\nnonce\\nsha256hex(body)"
SCHEMES: dict[str, str] = {
    "x-tif-paasid": f"{_TIF}: the institution's gateway id",
    "x-tif-timestamp": f"{_TIF}: unix seconds, ±300 s of server time",
    "x-tif-nonce": f"{_TIF}: 1–64 printable characters; a (timestamp, nonce) pair is accepted once",
    "x-tif-signature": f"{_TIF}: hex SHA256(timestamp + token + nonce + timestamp)",
    "X-Terminal-Id": "the registered terminal's id (`medpay ecert terminal-register`)",
    "X-Ecert-Id": "the e-certificate whose device key signs the request",
    "X-Timestamp": "unix seconds: ±300 s for terminals, ±120 s for devices",
    "X-Nonce": "8–64 printable characters, used once per key",
    "X-Signature": f"{_ED25519}, by the terminal's or the device's key: 128 hex digits or canonical base64",
    "X-CSRF-Token": "the app's CSRF token (from GET /api/v1/mobile/account), with every state-changing request of "
                    "a signed-in browser",
    CALLBACK_TIMESTAMP_HEADER: "the payment gateway's callback: unix seconds",
    CALLBACK_SIGNATURE_HEADER: "the payment gateway's callback: hex HMAC-SHA256 of timestamp + body under the "
                               "callback secret",
}
COOKIE_SCHEMES: dict[str, str] = {
    "medpay_session": "the app's session cookie (httpOnly, SameSite=Strict), set by POST "
                      "/api/v1/mobile/sign-in/confirm",
}
SIGNED_BY: dict[str, tuple[str, ...]] = {
    "institution": ("x-tif-paasid", "x-tif-timestamp", "x-tif-nonce", "x-tif-signature"),
    "terminal": ("X-Terminal-Id", "X-Timestamp", "X-Nonce", "X-Signature"),
    "device": ("X-Ecert-Id", "X-Timestamp", "X-Nonce", "X-Signature"),
    "new device": ("X-Timestamp", "X-Nonce", "X-Signature"),  # an activation: the key comes in the body
    "gateway": (CALLBACK_TIMESTAMP_HEADER, CALLBACK_SIGNATURE_HEADER),
    "session": ("medpay_session",),  # a signed-in browser reading
    "session+csrf": ("medpay_session", "X-CSRF-Token"),  # … and changing something
    "session+csrf+device": ("medpay_session", "X-CSRF-Token", "X-Ecert-Id", "X-Timestamp", "X-Nonce",
                            "X-Signature"),
}


def signed(by: str) -> dict[str, Any]:
    """``openapi_extra`` of an operation whose requests ``by`` signs (a key of ``SIGNED_BY``)."""
    return {"security": [{name: [] for name in SIGNED_BY[by]}]}


_MODELS: dict[str, type[BaseModel]] = {}  # models an operation names by hand: finalize puts them in components


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of an operation that reads its JSON body raw (a signature covers its bytes) and checks it
    with ``model``: the same model describes it."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref(model)}}}}


def ref(model: type[BaseModel]) -> dict[str, Any]:
    _MODELS[model.__name__] = model
    return {"$ref": f"#/components/schemas/{model.__name__}"}


# -- the error shapes -------------------------------------------------------------------------------------------

_TEXT = {"type": "string"}
ERROR_SCHEMA: dict[str, Any] = ref(ErrorResponse)
EC_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["orgId", "code", "message", "data"],
    "properties": {"orgId": {"type": ["string", "null"], "description": "定点医药机构编号"},
                   "code": {"type": "integer", "description": "0 success; medpay's own codes otherwise"},
                   "message": {**_TEXT, "description": "成功, or \"<field>: <why>\""},
                   "data": {"type": ["object", "null"]}}}
ENVELOPE_RESPONSE: dict[str, Any] = {
    "type": "object", "required": ["infcode", "inf_refmsgid", "refmsg_time", "respond_time", "err_msg", "output"],
    "properties": {
        "infcode": {"type": "integer", "enum": [0, -1, -2],
                    "description": "0 success; −2 refused (nothing written but the request's nonce); −1 a fault of "
                                   "ours (reverse a write with 2601)"},
        "inf_refmsgid": {**_TEXT, "description": "接收方报文ID"}, "refmsg_time": _TEXT, "respond_time": _TEXT,
        "err_msg": {"type": ["string", "null"], "description": "\"<field>: <why>\" when infcode is not 0"},
        "output": {"type": ["object", "array", "null"], "description": "交易输出, by infno"},
        "enctype": _TEXT, "signtype": _TEXT, "warn_msg": {"type": ["string", "null"]}}}


def _schema(door: str) -> dict[str, Any]:
    return {"institution": ENVELOPE_RESPONSE, "ec_query": EC_SCHEMA}.get(door, ERROR_SCHEMA)


def answers(path: str, codes: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses`` of an operation at ``path``: each refusal code with its meaning, in the door's shape."""
    schema = _schema(door_of(path))
    return {code: {"description": why, "content": {"application/json": {"schema": schema}}}
            for code, why in codes.items()}


# what the transport answers before an operation runs (api/http_guard.py)
TRANSPORT: dict[int, str] = {
    408: "the body did not arrive in time (MEDPAY_BODY_TIMEOUT_S); the connection is closed",
    413: "the body is larger than this door takes; refused before it is read (the connection is closed)",
}
HEAD_TOO_LARGE = {431: "the request's headers exceed 64 KiB"}


def finalize(spec: dict[str, Any]) -> dict[str, Any]:
    """The description as served: security schemes; every operation's transport refusals; FastAPI's own
    ``HTTPValidationError`` replaced by the door's shape; header parameters a security scheme already says
    dropped."""
    spec = copy.deepcopy(spec)
    components = spec.setdefault("components", {})
    schemes = components.setdefault("securitySchemes", {})
    for name, description in SCHEMES.items():
        schemes[name] = {"type": "apiKey", "in": "header", "name": name, "description": description}
    for name, description in COOKIE_SCHEMES.items():
        schemes[name] = {"type": "apiKey", "in": "cookie", "name": name, "description": description}
    for path, operations in spec.get("paths", {}).items():
        door = door_of(path)
        for method, op in operations.items():
            secured = {name.lower() for requirement in op.get("security", []) for name in requirement}
            op["parameters"] = [p for p in op.get("parameters", [])
                                if not (p.get("in") == "header" and p["name"].lower() in secured)]
            if not op["parameters"]:
                del op["parameters"]
            responses = op.setdefault("responses", {})
            if "pages" in op.get("tags", ()):
                responses.pop("422", None)  # FastAPI's guess: a page takes any ?lang= and answers its Chinese page
            for code, answer in list(responses.items()):
                schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
                if schema.get("$ref", "").endswith("/HTTPValidationError"):
                    responses[code] = {"description": "a field is missing or malformed (named in the answer)",
                                       "content": {"application/json": {"schema": _schema(door)}}}
            extra = {**(TRANSPORT if "requestBody" in op else {}), **HEAD_TOO_LARGE}
            for code, answer in answers(path, extra).items():
                responses.setdefault(str(code), answer)
            if path == EC_QUERY_PATH:
                for answer in responses.values():  # every answer of ec.query is its envelope
                    if "application/json" in answer.get("content", {}):
                        answer["content"]["application/json"].setdefault("schema", EC_SCHEMA)
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for name, model in _MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas.setdefault(name, schema)
    return spec
