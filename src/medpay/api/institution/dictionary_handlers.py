"""1901 字典表查询: ``data{type, parent_value, admdvs, date, vali_flag}`` → ``{"list": [{type, label, value,
parent_value, sort, vali_flag, create_user, create_date, version}]}``, fields as the spec's 1901 table gives them
(newtouch-cloud/openhis Output_1901.cs; 深圳's model spells the input parentValue and valiFlag, so both spellings are
read). The dictionaries are data: ``medpay/nhsa_dictionaries.toml``. One region's dictionaries: ``admdvs`` and
``date`` are read and not used; the entries are all valid (``vali_flag`` 1), so asking for invalid ones (0) lists
none; no entry has a parent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medpay.api.institution.transactions import Call, handler, node, text
from medpay.nhsa_dictionaries import CREATED, DICTIONARIES, VERSION
from medpay.services.errors import Invalid


def _either(d: Mapping[str, Any], snake: str, camel: str) -> str:
    return text(d, snake, "data", required=False) or text(d, camel, "data", required=False)


@handler("1901")
def dictionary(call: Call) -> dict:
    d = node(call, "data")
    kind = text(d, "type", "data").upper()
    found = DICTIONARIES.get(kind)
    if found is None:
        raise Invalid("data.type", f"unknown dictionary {kind!r}; known: {', '.join(sorted(DICTIONARIES))}")
    valid = _either(d, "vali_flag", "valiFlag") or "1"
    if valid not in ("0", "1"):
        raise Invalid("data.vali_flag", f"must be 0 or 1; got {valid!r}")
    if _either(d, "parent_value", "parentValue") or valid == "0":
        return {"list": []}
    return {"list": [{"type": found.type, "label": label, "value": value, "parent_value": "", "sort": i,
                      "vali_flag": "1", "create_user": "medpay", "create_date": CREATED, "version": VERSION}
                     for i, (value, label) in enumerate(found.entries, start=1)]}
