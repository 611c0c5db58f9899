"""End to end over real HTTP: `medpay serve` in its own process, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from medpay.his_client import HisClient
from medpay.services import demo
from tests.helpers_server import STAFF, backend_server

EXAMPLE = json.loads((Path(__file__).parents[1] / "examples" / "inpatient-bill.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One server per backend for the module (its URL and its directory, with server.log)."""
    tmp = tmp_path_factory.mktemp("server")
    for url in backend_server(request.param, tmp):
        yield url, tmp


@pytest.fixture(scope="module")
def base(served) -> str:
    return served[0]


def test_health_home_and_openapi(base: str) -> None:
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
    home = httpx.get(f"{base}/")
    assert home.status_code == 200 and "医保便捷支付" in home.text
    assert "演示统筹区" in home.text  # the demo policy is listed
    assert "unified medical-insurance" in httpx.get(f"{base}/?lang=en").text
    assert 'href="/m/?lang=zh"' in home.text  # the patient's app is one tap away


def test_mobile_pages_are_served_zh_first_never_cached_and_run_only_their_own_scripts(base: str) -> None:
    for path in ("/m/", "/m/activate", "/m/pay"):
        zh, en = httpx.get(f"{base}{path}"), httpx.get(f"{base}{path}?lang=en")
        assert zh.status_code == en.status_code == 200
        assert '<html lang="zh-CN">' in zh.text and '<html lang="en">' in en.text
        assert zh.headers["cache-control"] == "no-store"
        assert "default-src 'self'" in zh.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in zh.headers["content-security-policy"]
    assert '<html lang="zh-CN">' in httpx.get(f"{base}/m/?lang=fr").text  # any other language: Chinese
    for name in ("mobile.js", "device.js", "activate.js", "code.js", "pay.js", "mobile.css"):
        assert httpx.get(f"{base}/m/static/{name}").status_code == 200
    spec = httpx.get(f"{base}/openapi.json").json()
    assert "/api/v1/admin/quote" in spec["paths"] and "/api/v1/admin/ledger/check" in spec["paths"]
    assert httpx.get(f"{base}/docs").status_code == 200


def test_quote_over_http_matches_hand_computation(base: str) -> None:
    out = httpx.post(f"{base}/api/v1/admin/quote", json=EXAMPLE, headers=STAFF).json()
    info = out["setlinfo"]
    # retiree, level-3 hospital, demo policy: deductible 900.00, then 90% → (3486.93 − 900) × 0.9 = 2328.237 → 2328.24
    assert info["inscp_scp_amt"] == 3486.93 and info["act_pay_dedc"] == 900
    assert info["hifp_pay"] == 2328.24 and info["acct_pay"] == 500 and info["psn_cash_pay"] == 1801.16


@pytest.mark.parametrize("doc, field", [
    ({"person": {"insutype": "310"}}, "person.psn_type"),
    ({**EXAMPLE, "lines": [{"chrgitm_lv": "01", "det_item_fee_sumamt": "1.234"}]}, "lines[0].det_item_fee_sumamt"),
    ({**EXAMPLE, "lines": [{"chrgitm_lv": "09", "det_item_fee_sumamt": "1"}]}, "lines[0].chrgitm_lv"),
    ({**EXAMPLE, "lines": [{"chrgitm_lv": "01", "det_item_fee_sumamt": "-5"}]}, "lines[0].det_item_fee_sumamt"),
    ({**EXAMPLE, "visit": {"med_type": "77"}}, "med_type"),
])
def test_bad_quote_gets_one_error_shape_naming_the_field(base: str, doc: dict, field: str) -> None:
    r = httpx.post(f"{base}/api/v1/admin/quote", json=doc, headers=STAFF)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == field
    assert "Traceback" not in r.text


def test_malformed_json_is_refused_without_traceback(base: str) -> None:
    r = httpx.post(f"{base}/api/v1/admin/quote", content=b"{not json", headers={"content-type": "application/json", **STAFF})
    assert r.status_code == 422 and "error" in r.json() and "Traceback" not in r.text


def test_ledger_check_over_http_is_clean_after_seed(base: str) -> None:
    assert httpx.get(f"{base}/api/v1/admin/ledger/check", headers=STAFF).json() == {"ok": True, "violations": []}


def test_the_server_logs_a_line_per_institution_transaction(served) -> None:
    base, tmp = served
    code, name, _level, paasid, token = demo.INSTITUTIONS[0]
    with HisClient(base, code, name, paasid, token, mdtrtarea_admvs="999901") as his:
        msgid = his.next_msgid()
        his.call("9001", {"signIn": {"opter_no": "1001", "mac": "", "ip": ""}}, msgid=msgid)
        refused = his.call("2207", {"data": {"mdtrt_id": "x"}}, check=False)
    log = (tmp / "server.log").read_text()
    assert f"infno=9001 msgid={msgid} infcode=0 " in log
    assert refused.infcode == -2
    assert [ln for ln in log.splitlines() if "infno=2207" in ln and "infcode=-2" in ln]  # refusals are logged too
