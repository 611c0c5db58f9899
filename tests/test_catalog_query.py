"""1312 医保目录信息查询 over HTTP against `medpay serve` on SQLite and PostgreSQL: the region's catalog as the spec's
rows (strictly read), filtered and paged with numeric counters; bad inputs refused naming the field."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from medpay.his_client import HisBusinessError, HisClient
from medpay.nhsa_models import CatalogEntry, Paged
from medpay.services import demo
from tests.helpers_server import backend_server

H1 = demo.INSTITUTIONS[0]
ENTRIES = TypeAdapter(list[CatalogEntry])
EARLY = "2000-01-01 00:00:00"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from backend_server(request.param, tmp_path_factory.mktemp("catalog_query"))


@pytest.fixture(scope="module")
def his(served) -> HisClient:
    code, name, _level, paasid, token = H1
    c = HisClient(served, code, name, paasid, token, mdtrtarea_admvs="999901", retries=0)
    c.sign_in("1001")
    return c


def query(his: HisClient, **data) -> tuple[Paged, list[CatalogEntry]]:
    page = Paged.model_validate(his.call("1312", {"data": {"updt_time": EARLY, "page_num": 1, "page_size": 100,
                                                           **data}}).output)
    return page, ENTRIES.validate_python(page.data)


def test_the_whole_catalog_is_listed_as_the_spec_types_it(his) -> None:
    page, rows = query(his)
    assert [r.hilist_code for r in rows] == sorted(c[0] for c in demo.CATALOG)
    counters = (page.recordCounts, page.size, page.pages, page.startRow, page.pageNum)
    assert counters == (len(demo.CATALOG), len(demo.CATALOG), 1, 1, 1)
    by_code = {r.hilist_code: r for r in rows}
    for code, name, lv, chrgitm_type, _limit, _prop in demo.CATALOG:
        r = by_code[code]
        assert (r.hilist_name, r.chrgitm_lv, r.med_chrgitm_type, r.insu_admdvs, r.vali_flag) == (
            name, lv, chrgitm_type, "999901", "1")
    assert by_code["XM01AEB002"].list_type == "101" and by_code["001102000010000"].list_type == "201"


def test_filters_narrow_and_never_widen(his) -> None:
    assert [r.hilist_code for r in query(his, hilist_code="XM01AEB002")[1]] == ["XM01AEB002"]
    assert [r.hilist_name for r in query(his, hilist_name="布洛芬")[1]] == ["布洛芬缓释胶囊"]
    assert {r.hilist_code for r in query(his, chrgitm_lv="03")[1]} == {"CZF0000000001", "CZF0000000002"}
    drugs = query(his, list_type="101")[1]
    assert drugs and all(r.list_type == "101" for r in drugs)
    assert query(his, hilist_name="%")[1] == []  # a LIKE wildcard is a character, not a wildcard
    assert query(his, vali_flag="0")[1] == []  # every item here is valid
    assert query(his, insu_admdvs="110000")[1] == []  # another region's catalog is not kept here
    assert query(his, pinyin="BLF")[1] == []  # no 拼音 codes are held: asking for one finds nothing
    assert query(his, updt_time="2999-01-01 00:00:00")[0].recordCounts == 0  # nothing changed since
    assert query(his, query_date="2000-01-01")[1] == []  # the catalog did not exist then


def test_pages_walk_the_catalog_once(his) -> None:
    seen, page_num = [], 1
    while True:
        page, rows = query(his, page_num=page_num, page_size="3")  # digits as text, as some HIS send
        assert page.pages == -(-len(demo.CATALOG) // 3) and page.pageSize == 3
        if not rows:
            assert (page.size, page.startRow) == (0, 0)
            break
        assert page.startRow == (page_num - 1) * 3 + 1
        seen += [r.hilist_code for r in rows]
        page_num += 1
    assert seen == sorted(c[0] for c in demo.CATALOG)


@pytest.mark.parametrize("changes, field", [
    ({"page_num": None}, "data.page_num"),
    ({"page_num": 0}, "data.page_num"),
    ({"page_num": "1.5"}, "data.page_num"),
    ({"page_size": 1001}, "data.page_size"),
    ({"page_size": True}, "data.page_size"),
    ({"updt_time": ""}, "data.updt_time"),
    ({"updt_time": "yesterday"}, "data.updt_time"),
    ({"query_date": "2026/12/01"}, "data.query_date"),
    ({"updt_time": "0001-01-01 00:00:00"}, "data.updt_time"),  # beyond what a database compares in local time
    ({"query_date": "9999-12-31"}, "data.query_date"),
    ({"hilist_name": "名" * 201}, "data.hilist_name"),
    ({"list_type": {"a": 1}}, "data.list_type"),
])
def test_a_bad_query_is_refused_naming_the_field(his, changes: dict, field: str) -> None:
    data = {"updt_time": EARLY, "page_num": 1, "page_size": 10, **changes}
    with pytest.raises(HisBusinessError) as e:
        his.call("1312", {"data": data})
    assert e.value.err_msg.startswith(f"{field}: "), e.value.err_msg
