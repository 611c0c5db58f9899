"""A person's records at the institution (``medpay.services.person_queries``, ``medpay.services.designations``):

- 5201 就诊信息查询 ``data{psn_no, begntime, endtime, med_type, mdtrt_id}`` (all but psn_no optional) →
  ``{"mdtrtinfo": [rows]}``, the institution's own visits of the person;
- 5202 诊断信息查询 ``data{mdtrt_id, psn_no}`` → ``{"diseinfo": [rows]}``;
- 5205 人员慢特病用药记录查询 ``data{psn_no, begntime, endtime}`` (endtime optional: until now) →
  ``{"feedetail": [rows]}``, drug lines of the person's chronic and special disease visits here;
- 5302 人员定点信息查询 ``data{psn_no, biz_appy_type}`` → ``{"psnfixmedin": [rows]}``.

Fields and types as the specification's tables give them (the 深圳 HIS models JZ5201.cs, ZD5202.cs, MBYY5205.cs,
RY5302.cs; readers in ``medpay.nhsa_models``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from medpay.api.institution.query_handlers import fee_row
from medpay.api.institution.transactions import Call, handler, node, text, timestamp
from medpay.interface_format import to_yuan
from medpay.services.designations import Designations
from medpay.services.errors import Invalid
from medpay.services.person_queries import Period, PersonQueries
from medpay.services.persons import PRESENTATION_VALID

MEDICATION_FIELDS = ("fixmedins_code", "fixmedins_name", "psn_no")


def _queries(call: Call) -> PersonQueries:
    return PersonQueries(call.platform.factory, call.platform.cipher, call.platform.settlement.clock)


BIZ_APPY_TYPE_LENGTH = 3


def _period(d: Mapping[str, Any], *, begin_required: bool) -> Period:
    begin = timestamp(d, "begntime", "data")
    if begin is None and begin_required:
        raise Invalid("data.begntime", "missing")
    end = timestamp(d, "endtime", "data")
    if end is not None and len(text(d, "endtime", "data")) == 10:  # a date: the whole day
        end += timedelta(days=1) - timedelta(seconds=1)
    return Period(begin, end)


@handler("5201")
def query_visits(call: Call) -> dict:
    d = node(call, "data")
    rows = _queries(call).visits(call.fixmedins_code, text(d, "psn_no", "data"), _period(d, begin_required=False),
                                 med_type=text(d, "med_type", "data", required=False),
                                 mdtrt_id=text(d, "mdtrt_id", "data", required=False), ref=call.env.msgid)
    return {"mdtrtinfo": rows}


@handler("5202")
def query_diagnoses(call: Call) -> dict:
    d = node(call, "data")
    rows = _queries(call).diagnoses(call.fixmedins_code, text(d, "mdtrt_id", "data"), text(d, "psn_no", "data"),
                                    ref=call.env.msgid)
    return {"diseinfo": rows}


@handler("5205")
def query_chronic_medication(call: Call) -> dict:
    d = node(call, "data")
    lines = _queries(call).chronic_medication(call.fixmedins_code, text(d, "psn_no", "data"),
                                              _period(d, begin_required=True),
                                              ref=call.env.msgid)
    return {"feedetail": [to_yuan({**fee_row(line), **{k: line[k] for k in MEDICATION_FIELDS}}) for line in lines]}


@handler("5302")
def query_designations(call: Call) -> dict:
    d = node(call, "data")
    biz_appy_type = text(d, "biz_appy_type", "data")
    if len(biz_appy_type) > BIZ_APPY_TYPE_LENGTH:
        raise Invalid("data.biz_appy_type", f"longer than {BIZ_APPY_TYPE_LENGTH} characters")
    service = Designations(call.platform.factory, call.platform.settlement.clock, PRESENTATION_VALID)
    return {"psnfixmedin": service.of_person(call.fixmedins_code, text(d, "psn_no", "data"), biz_appy_type,
                                             ref=call.env.msgid)}


