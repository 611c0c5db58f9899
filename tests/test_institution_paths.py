"""Every URL style, short nonces and optional sign-in (issue 10, the transport's tolerance): the resolver alone, then
its bad inputs over HTTP against `medpay serve` (SQLite and PostgreSQL) with base paths configured."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx
import pytest

from medpay.domain.gateway_signature import sign_headers
from medpay.his_client import HisBusinessError, HisClient
from medpay.nhsa_paths import CALL_SERVICE, NAMED, PATHS, InstitutionPaths, Route, parse_base_paths
from medpay.services import demo
from tests.helpers_server import audit_events, backend_server, run_cli

H1, H2 = demo.INSTITUTIONS[0], demo.INSTITUTIONS[1]  # H2's sign-in is optional here
EMP, RESIDENT = demo.PERSONS[0], demo.PERSONS[4]
DRUG = "XM01AEB002"
BASES = "/hsa/hgs/,/ebus/rio_fsi"

# ------------------------------------------------------------------------------------------ the resolver

PATHS_WITH_BASES = InstitutionPaths(parse_base_paths(BASES))


@pytest.mark.parametrize("path, infnos", [
    (CALL_SERVICE, ()),
    ("/uif-hsaf-med-api/api/medical/service", ()),  # 内蒙古's single endpoint
    ("/fsi/api/outpatientDocInfoService/outpatientRregistration", ("2201",)),
    ("/fsi/api/hospFeeDtlService/feeDtlUp", ("2301", "2204")),
    (f"{CALL_SERVICE}/1101", ("1101",)),
    ("/fsi/anything/2207A", ("2207A",)),
    ("/hsa/hgs/1101", ("1101",)),
    ("/hsa/hgs/deeper/2207", ("2207",)),
    ("/ebus/rio_fsi/fsi/api/outpatientSettleService/saveSettletmentV2", ("2207",)),
    ("/ebus/rio_fsi/fsi/api/rsfComIfsService/callService", ()),
    ("/ebus/rio_fsi/9001", ("9001",)),
])
def test_the_paths_that_name_transactions(path: str, infnos: tuple[str, ...]) -> None:
    assert PATHS_WITH_BASES.route(path) == Route(infnos)
    assert PATHS_WITH_BASES.is_institution(path)


@pytest.mark.parametrize("path, door", [
    ("/fsi/api/noSuchService/call", True),  # under /fsi/: the interface's door (an envelope), though no transaction
    ("/fsi", True),
    ("/hsa/hgs/foo", False),  # under a base, only transactions belong to the interface
    ("/hsa/hgs", False),
    ("/hsa/hgs/12345", False),
    ("/ebus/rio_fsi/fsi/api/noSuchService/call", False),
    ("/api/v1/terminal/ec/query", False),
    ("/api/v1/admin/2207", False),
    ("/1101", False),
])
def test_paths_that_do_not(path: str, door: bool) -> None:
    assert PATHS_WITH_BASES.route(path) is None
    assert PATHS_WITH_BASES.is_institution(path) is door
    assert InstitutionPaths().route("/hsa/hgs/1101") is None  # no base configured: nothing outside /fsi/


def test_a_path_carrying_several_transactions_chooses_by_the_body() -> None:
    route = NAMED["/fsi/api/hospFeeDtlService/feeDtlUp"]
    assert (route.choose("2204"), route.choose(""), route.choose("2207")) == ("2204", "2301", None)
    assert Route().choose("2207") == "2207"
    assert PATHS["2204"] == "/fsi/api/outpatientDocInfoService/outpatientFeeListUp"  # the client's own path for it


@pytest.mark.parametrize("text, why", [
    ("hsa/hgs", "not a path"), ("/", "not a path"), ("/a b/", "not a path"), ("/a/../b", "not a path"),
    ("/a//b", "not a path"), ("/api/v2/", "another door"), ("/m/x", "another door"),
])
def test_wrong_base_paths_are_named(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as e:
        parse_base_paths(f"/ok/,{text}")
    assert repr(text) in str(e.value)


def test_base_paths_are_kept_with_one_trailing_slash() -> None:
    assert parse_base_paths(" /hsa/hgs , /ebus/rio_fsi/ ,, ") == ("/hsa/hgs/", "/ebus/rio_fsi/")


# ------------------------------------------------------------------------------------------ over HTTP


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("paths")
    for base in backend_server(request.param, tmp, env={"MEDPAY_INSTITUTION_BASE_PATHS": BASES}):
        done = run_cli(["institution", "sign-in", H2[0], "optional", "--operator", "张经办"], base.db_url, tmp)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"fixmedins_code": H2[0], "sign_in": "optional"}
        base.tmp = tmp
        yield base


def client(base: str, inst=H1, sign_in: bool = True, **kw) -> HisClient:
    code, name, _level, paasid, token = inst
    c = HisClient(base, code, name, paasid, token, mdtrtarea_admvs="999901", retries=0, **kw)
    if sign_in:
        c.sign_in("1001")
    return c


def post(base: str, path: str, body: dict | bytes, inst=H1, **sign) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(base + path, content=content, timeout=30,
                      headers={**sign_headers(inst[3], inst[4], **sign), "content-type": "application/json"})


def envelope(c: HisClient, infno: str, input_: dict, **fields) -> dict:
    return {**c.envelope(infno, input_), **fields}


def is_envelope(r: httpx.Response) -> dict:
    doc = r.json()
    assert {"infcode", "inf_refmsgid", "err_msg", "output"} <= set(doc), r.text
    return doc


def test_an_infno_in_the_path_that_differs_from_the_bodys_is_refused_naming_infno(served: str) -> None:
    c = client(served)
    for path in (f"{CALL_SERVICE}/2207", "/hsa/hgs/2207", "/fsi/api/outpatientSettleService/saveSettletmentV2",
                 "/ebus/rio_fsi/fsi/api/outpatientSettleService/saveSettletmentV2"):
        headers = sign_headers(H1[3], H1[4])
        env = envelope(c, "1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno}})
        first = httpx.post(served + path, json=env, headers=headers)
        doc = is_envelope(first)
        assert first.status_code == 200 and doc["infcode"] == -2 and doc["err_msg"].startswith("infno: '1101'"), path
        again = httpx.post(served + path, json=envelope(c, "2207", {}), headers=headers)  # its nonce is used up
        assert again.status_code == 401 and is_envelope(again)["err_msg"].startswith("x-tif-nonce"), path
    # the body's infno must be one of the path's; without one the path's first is meant
    lines = [{"feedetl_sn": "1", "mdtrt_id": "M-NONE", "med_list_codg": DRUG, "cnt": 1, "pric": 1,
              "det_item_fee_sumamt": 1}]
    for infno, expected in (("2204", "mdtrt_id"), ("", "mdtrt_id"), ("2207", "infno")):
        env = envelope(c, infno, {"feedetail": lines})
        doc = is_envelope(post(served, "/fsi/api/hospFeeDtlService/feeDtlUp", env))
        assert doc["infcode"] == -2 and doc["err_msg"].startswith(expected), (infno, doc)


@pytest.mark.parametrize("method, path, door, status", [
    ("GET", "/hsa/hgs/1101", "institution", 405),
    ("GET", f"{CALL_SERVICE}/1101", "institution", 405),
    ("POST", "/fsi/api/noSuchService/call", "institution", 404),
    ("POST", "/hsa/hgs/noSuchTransaction", "rest", 404),
    ("POST", "/ebus/rio_fsi/fsi/api/noSuchService/call", "rest", 404),
])
def test_unknown_paths_and_methods_answer_in_the_doors_shape(served: str, method: str, path: str, door: str,
                                                              status: int) -> None:
    r = httpx.request(method, served + path, timeout=30)
    assert r.status_code == status, r.text
    if door == "institution":
        doc = is_envelope(r)
        assert doc["infcode"] == -2 and doc["err_msg"].split(":")[0] in ("path", "method")
    else:
        assert set(r.json()) == {"error"} and r.json()["error"]["field"] in ("path", "body")


def test_a_path_style_url_is_authenticated_before_its_body_is_read_and_has_the_interfaces_limit(served: str) -> None:
    """The transport guard asks the same resolver: /hsa/hgs/2204 is the interface's door (32 MiB, the signature
    first), where a path with no door behind it is answered 404 without its body being read."""
    unsigned = httpx.post(f"{served}/hsa/hgs/1101", content=b"{}", headers={"content-type": "application/json"})
    assert unsigned.status_code == 401 and is_envelope(unsigned)["err_msg"].startswith("x-tif-")
    c = client(served)
    c.person_info("02", EMP.certno)
    visit = c.register(EMP.psn_no, "310", "02", EMP.certno, ipt_otp_no="MZ-P1").output["data"]
    lines = [{"feedetl_sn": str(i), "mdtrt_id": visit["mdtrt_id"], "psn_no": EMP.psn_no, "med_list_codg": DRUG,
              "cnt": 1, "pric": "0.01", "det_item_fee_sumamt": "0.01", "memo": "x" * 200} for i in range(400)]
    body = json.dumps(envelope(c, "2204", {"feedetail": lines})).encode()
    assert len(body) > 100 * 1024  # over the 64 KiB of the REST doors
    doc = is_envelope(post(served, "/hsa/hgs/2204", body))
    assert doc["infcode"] == 0 and len(doc["output"]["result"]) == 400
    elsewhere = httpx.post(f"{served}/hsa/hgs/other", content=b"{}")  # no door: answered 404, the body unread
    assert elsewhere.status_code == 404 and elsewhere.headers.get("connection") == "close"


@pytest.mark.parametrize("nonce", ["", "n" * 65, "with space", "é".encode()])
def test_a_nonce_of_0_or_more_than_64_characters_is_refused_naming_it(served: str, nonce: str | bytes) -> None:
    c = client(served)
    headers = {**sign_headers(H1[3], H1[4], nonce="x"), "x-tif-nonce": nonce}
    r = httpx.post(f"{served}{CALL_SERVICE}", json=envelope(c, "1101", {}), headers=headers)
    assert r.status_code == 401 and is_envelope(r)["err_msg"].startswith("x-tif-nonce"), r.text


def test_a_one_character_nonce_is_refused_only_with_the_same_timestamp(served: str) -> None:
    c = client(served)
    second = int(time.time())
    body = envelope(c, "1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno}})
    assert is_envelope(post(served, CALL_SERVICE, body, now=second, nonce="Q"))["infcode"] == 0
    replay = post(served, CALL_SERVICE, body, now=second, nonce="Q")
    assert replay.status_code == 401 and is_envelope(replay)["err_msg"].startswith("x-tif-nonce: nonce already used")
    other = envelope(c, "1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno}})
    assert is_envelope(post(served, CALL_SERVICE, other, now=second - 1, nonce="Q"))["infcode"] == 0


def test_optional_sign_in_still_checks_a_sign_no_that_is_given(served: str) -> None:
    h2 = client(served, H2, sign_in=False)
    assert h2.person_info("02", RESIDENT.certno).ok  # sign_no ""
    with pytest.raises(HisBusinessError, match="^infcode -2: sign_no"):
        h2.sign_no = "000000000000000000000000000000"
        h2.person_info("02", RESIDENT.certno)
    h2.sign_in("1002")
    signed_out = h2.sign_no
    h2.sign_out("1002")
    h2.sign_no = signed_out
    with pytest.raises(HisBusinessError, match="^infcode -2: sign_no"):
        h2.person_info("02", RESIDENT.certno)
    h1 = client(served, H1, sign_in=False)  # H1's sign-in is required (the default)
    with pytest.raises(HisBusinessError, match="^infcode -2: sign_no"):
        h1.person_info("02", EMP.certno)


def test_the_sign_in_setting_is_audited_and_a_wrong_value_named(served) -> None:
    wrong = run_cli(["institution", "sign-in", H1[0], "sometimes"], served.db_url, served.tmp)
    assert wrong.returncode == 2 and "sign_in: must be one of required, optional" in wrong.stderr
    unknown = run_cli(["institution", "sign-in", "H00000000000", "optional"], served.db_url, served.tmp)
    assert unknown.returncode == 2 and "fixmedins_code" in unknown.stderr
    events = audit_events(served.db_url, "institution.sign_in")
    assert [(e.actor, e.ref) for e in events] == [("张经办", f"{H2[0]}:required->optional")]


def test_3201_without_refd_setl_flag_compares_every_record(served: str) -> None:
    """MEDPAY_STMT_REFD_SETL_FLAG unset: "1", settlements and cancellations, net."""
    h2 = client(served, H2, sign_in=False)
    h2.person_info("02", RESIDENT.certno)
    visit = h2.register(RESIDENT.psn_no, "390", "02", RESIDENT.certno, ipt_otp_no="MZ-R1").output["data"]
    h2.upload_fees([{"feedetl_sn": "1", "mdtrt_id": visit["mdtrt_id"], "psn_no": RESIDENT.psn_no,
                     "med_list_codg": DRUG, "cnt": 1, "pric": "12.00", "det_item_fee_sumamt": "12.00"}])
    setl = h2.settle_outpatient(RESIDENT.psn_no, visit["mdtrt_id"], "B1", Decimal("12.00"),
                                acct_used_flag="0").output["setlinfo"]
    h2.cancel_outpatient(setl["setl_id"], visit["mdtrt_id"], RESIDENT.psn_no)
    day = setl["setl_time"][:10]
    period = {"insutype": "390", "clr_type": "11", "setl_optins": "999901", "stmt_begndate": day,
              "stmt_enddate": day}
    net = h2.call("3201", {"data": {**period, "medfee_sumamt": 0, "fund_pay_sumamt": 0, "acct_pay": 0,
                                    "fixmedins_setl_cnt": 2}}).output["stmtinfo"]
    assert net["stmt_rslt"] == "0" and "含退费" in net["stmt_rslt_dscr"], net
    settled_only = h2.call("3201", {"data": {**period, "medfee_sumamt": "12.00", "fund_pay_sumamt":
                                             setl["fund_pay_sumamt"], "acct_pay": 0, "fixmedins_setl_cnt": 1,
                                             "refd_setl_flag": "0"}}).output["stmtinfo"]
    assert settled_only["stmt_rslt"] == "0" and "不含退费" in settled_only["stmt_rslt_dscr"], settled_only


@pytest.mark.parametrize("name, value", [("MEDPAY_INSTITUTION_BASE_PATHS", "/api/v1/"),
                                         ("MEDPAY_STMT_REFD_SETL_FLAG", "2")])
def test_a_wrong_setting_stops_serve_naming_it(served, name: str, value: str) -> None:
    import os
    import subprocess
    import sys

    from tests.helpers_server import medpay_env

    done = subprocess.run([sys.executable, "-m", "medpay.cli", "serve", "--port", "1"], cwd=served.tmp, timeout=60,
                          env={**medpay_env(served.db_url, served.tmp), name: value, "PATH": os.environ["PATH"]},
                          capture_output=True, text=True)
    assert done.returncode != 0 and name in done.stderr + done.stdout
