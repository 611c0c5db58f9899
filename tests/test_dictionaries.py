"""1901 字典表查询 over HTTP against `medpay serve` (SQLite and PostgreSQL), read with the strict reader of the spec's
1901 table; the dictionaries are the data file's."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from medpay.domain.model import LIST_TYPES, list_type_of
from medpay.his_client import HisBusinessError, HisClient
from medpay.nhsa_dictionaries import DICTIONARIES
from medpay.nhsa_models import DictEntry
from medpay.services import demo
from tests.helpers_server import backend_server

H1 = demo.INSTITUTIONS[0]
ENTRIES = TypeAdapter(list[DictEntry])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def his(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    for base in backend_server(request.param, tmp_path_factory.mktemp("dict")):
        code, name, _level, paasid, token = H1
        c = HisClient(base, code, name, paasid, token, mdtrtarea_admvs="999901", retries=0)
        c.sign_in("1001")
        yield c
        c.close()


def test_a_dictionary_in_the_specs_rows(his: HisClient) -> None:
    rows = ENTRIES.validate_python(his.call("1901", {"data": {"type": "MED_TYPE", "parent_value": "",
                                                             "admdvs": "999901", "date": "2026-12-01",
                                                             "vali_flag": "1"}}).output["list"])
    assert [(r.value, r.label) for r in rows][:3] == [("11", "普通门诊"), ("12", "门诊挂号"), ("13", "急诊")]
    assert [r.sort for r in rows] == list(range(1, len(rows) + 1)) and {r.type for r in rows} == {"MED_TYPE"}
    lower = his.call("1901", {"data": {"type": "chrgitm_lv"}}).output["list"]  # 深圳 sends camelCase keys, some lower
    assert [r["value"] for r in lower] == ["01", "02", "03"]
    assert his.call("1901", {"data": {"type": "INSUTYPE", "parentValue": "310"}}).output == {"list": []}
    assert his.call("1901", {"data": {"type": "INSUTYPE", "valiFlag": "0"}}).output == {"list": []}


@pytest.mark.parametrize("data, field", [({"type": "NO_SUCH_DICT"}, "data.type"), ({}, "data.type"),
                                         ({"type": "MED_TYPE", "vali_flag": "2"}, "data.vali_flag")])
def test_a_wrong_query_names_the_field(his: HisClient, data: dict, field: str) -> None:
    with pytest.raises(HisBusinessError) as e:
        his.call("1901", {"data": data})
    assert e.value.err_msg.startswith(f"{field}: ")


def test_the_platform_takes_its_code_lists_from_the_dictionaries() -> None:
    assert LIST_TYPES == DICTIONARIES["LIST_TYPE"].labels()
    charge_types = DICTIONARIES["MED_CHRGITM_TYPE"].labels()
    assert {list_type_of(c) for c in charge_types} <= set(LIST_TYPES)
    assert list_type_of("09") == "101" and list_type_of("08") == "301" and list_type_of("01") == "201"
