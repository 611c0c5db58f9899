"""QR code payment end to end over HTTP: the patient's app shows a code, a terminal scans its image,
the HIS settles with the e-certificate token, the terminal settles the whole bill in one step through
the payment-gateway simulator (its own process), and the HIS is notified — under injected gateway faults."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medpay.adapters.gateway.port import statement_day
from medpay.adapters.platform_keys import public_key_hex
from medpay.api.terminal import EC_CODES
from medpay.his_client import HisClient
from medpay.interface_format import MONEY_KEYS
from medpay.money import parse_yuan
from medpay.services import demo
from medpay.services.ecert import sign_code_request, sign_terminal_request
from tests.helpers_gateway import CallbackReceiver
from tests.helpers_server import backend_db_url, free_port, run_cli, server

H1 = demo.INSTITUTIONS[0]
EMP = demo.PERSONS[0]
WALLET = f"demo-wallet-{EMP.psn_no}"
BLOOD = "002101000010000"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("qrpay")
    urls = backend_db_url(request.param, tmp)
    db_url = next(urls)
    gw_port = free_port()
    try:
        with server(db_url, tmp, "--gateway-port", str(gw_port)) as base:
            key_file = tmp / "terminal.key"
            reg = run_cli(["ecert", "terminal-register", "--fixmedins-code", H1[0], "--name", "门诊1号窗口",
                           "--key-file", str(key_file)], db_url, tmp)
            assert reg.returncode == 0, reg.stderr
            terminal_id = json.loads(reg.stdout)["terminal_id"]
            from medpay.adapters.platform_keys import load_or_create_key

            yield {"base": base, "gateway": f"http://127.0.0.1:{gw_port}", "terminal_id": terminal_id,
                   "terminal_key": load_or_create_key(key_file)}
    finally:
        for _ in urls:
            pass


def terminal_post(stack, path: str, body: bytes, content_type: str) -> httpx.Response:
    headers = sign_terminal_request(stack["terminal_key"], stack["terminal_id"], "POST", path, body)
    return httpx.post(stack["base"] + path, content=body, headers={**headers, "content-type": content_type}, timeout=30)


def app_code(stack, business_type: str = "01301") -> bytes:
    """The patient's app: activate (once per device key) and fetch the current code as a PNG."""
    device = Ed25519PrivateKey.generate()
    act = httpx.post(f"{stack['base']}/api/v1/mobile/ecert/activate", json={
        "psn_no": EMP.psn_no, "certno": EMP.certno, "device_public_key": public_key_hex(device), "consent": True})
    assert act.status_code == 200, act.text
    ecert_id = act.json()["ecert_id"]
    ts = int(time.time())
    png = httpx.get(f"{stack['base']}/api/v1/mobile/ecert/code.png", params={
        "ecert_id": ecert_id, "business_type": business_type, "timestamp": ts,
        "device_signature": sign_code_request(device, ecert_id, business_type, ts)})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    return png.content


def scan_image(stack, png: bytes, business_type: str = "01301") -> dict:
    boundary = "medpayboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"orgId\"\r\n\r\n{H1[0]}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"businessType\"\r\n\r\n{business_type}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"scan.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
    r = terminal_post(stack, "/api/v1/terminal/ec/query", body, f"multipart/form-data; boundary={boundary}")
    return r.json()


def his_bill(stack, ec_token: str) -> str:
    code, name, _, paasid, token = H1
    his = HisClient(stack["base"], code, name, paasid, token, mdtrtarea_admvs="999901")
    his.sign_in("1001")
    info = his.person_info("01", ec_token).output  # the e-certificate token identifies the patient
    assert info["baseinfo"]["psn_no"] == EMP.psn_no
    visit = his.register(EMP.psn_no, "310", "01", ec_token, ipt_otp_no="MZ9").output["data"]
    his.upload_fees([{"feedetl_sn": "1", "mdtrt_id": visit["mdtrt_id"], "psn_no": EMP.psn_no, "chrg_bchno": "B1",
                      "med_list_codg": BLOOD, "cnt": 1, "pric": "6000.00", "det_item_fee_sumamt": "6000.00"}])
    return visit["mdtrt_id"]


def wallet(stack) -> int:
    return httpx.get(f"{stack['gateway']}/sim/payers/{WALLET}").json()["balance_fen"]


def settle(stack, msgid: str, ec_token: str, mdtrt_id: str, notify_url: str) -> dict:
    body = json.dumps({"msgid": msgid, "ecToken": ec_token, "mdtrt_id": mdtrt_id, "notify_url": notify_url}).encode()
    r = terminal_post(stack, "/api/v1/terminal/settle", body, "application/json")
    assert r.status_code == 200, r.text
    return r.json()


# the state right after each injected fault (see tests/test_one_scan.py)
FIRST_STATE = {None: "captured", ("authorise", "timeout"): "captured", ("capture", "timeout"): "captured",
               ("capture", "fail"): "in_doubt", ("capture", "timeout_before"): "in_doubt"}


def fen(info: dict) -> dict[str, int]:
    """The settlement's yuan amounts as exact fen, for comparisons free of float arithmetic."""
    return {k: parse_yuan(v, k, allow_negative=True) for k, v in info.items() if k in MONEY_KEYS and v is not None}


@pytest.mark.parametrize("fault", list(FIRST_STATE))
def test_scan_identify_settle_notify(stack, fault) -> None:
    data = scan_image(stack, app_code(stack))
    assert data["code"] == 0, data
    identity = data["data"]
    assert identity["insuOrg"] == "999901" and "*" in identity["idNo"]  # masked for the terminal's screen
    mdtrt_id = his_bill(stack, identity["ecToken"])
    before = wallet(stack)
    if fault:
        r = httpx.post(f"{stack['gateway']}/sim/faults", json={"operation": fault[0], "mode": fault[1], "count": 1})
        assert r.status_code < 300, r.text
    msgid = f"TM{time.time_ns()}"
    with CallbackReceiver() as his_inbox:
        out = settle(stack, msgid, identity["ecToken"], mdtrt_id, his_inbox.url)
        assert out["state"] == FIRST_STATE[fault], out
        if fault:
            log = httpx.get(f"{stack['gateway']}/sim/log", params={"kind": "request"}).json()["entries"]
            assert any(e["operation"] == fault[0] and e["fault"] == fault[1] for e in log)  # the fault did fire
        if out["state"] == "in_doubt":
            assert httpx.post(f"{stack['base']}/api/v1/admin/payments/recover").status_code == 200
            out = settle(stack, msgid, identity["ecToken"], mdtrt_id, his_inbox.url)  # the terminal asks again
        assert out["state"] == "captured", out
        setl = fen(out["settlement"]["setlinfo"])
        assert setl["fund_pay_sumamt"] + setl["acct_pay"] + setl["psn_cash_pay"] == setl["medfee_sumamt"]
        assert before - wallet(stack) == setl["psn_cash_pay"]  # charged once, the cash part only
        notes = his_inbox.wait_for(1, timeout=10)
        assert len({n.body for n in notes}) == 1  # delivered at least once, always the same notice
        pushed = json.loads(notes[0].body)
        assert pushed["medicalSettleState"] == "SUCCESS"
        assert pushed["medicalSettleNo"] == out["settlement"]["setlinfo"]["setl_id"]
    for day in {statement_day(time.time() - 600), statement_day()}:  # should the test run across midnight in China
        statement = httpx.get(f"{stack['base']}/api/v1/admin/payments/statement/{day.isoformat()}").json()
        assert statement["balanced"], statement
    assert httpx.get(f"{stack['base']}/api/v1/admin/ledger/check").json()["ok"]


def test_code_used_twice_or_for_another_use_is_refused(stack) -> None:
    png = app_code(stack, "01101")  # a registration code
    wrong = scan_image(stack, png, "01301")
    assert wrong["code"] != 0 and "businessType" in wrong["message"]
    assert scan_image(stack, png, "01101")["code"] == 0
    again = scan_image(stack, png, "01101")  # replayed
    assert again["code"] == EC_CODES["code_used"]


def test_an_image_without_a_code_is_refused(stack) -> None:
    from io import BytesIO

    from PIL import Image

    blank = BytesIO()
    Image.new("L", (400, 300), 255).save(blank, format="PNG")
    res = scan_image(stack, blank.getvalue())
    assert res["code"] != 0 and res["message"].startswith("image")


def test_patient_scans_the_bill_code_at_the_window_and_pays(stack) -> None:
    """Reverse direction: the HIS/terminal shows a bill code; the patient's app scans and pays it."""
    from medpay.services.bill_pay import sign_bill_payment

    identity = scan_image(stack, app_code(stack))["data"]  # the window identified the patient for the HIS
    mdtrt_id = his_bill(stack, identity["ecToken"])
    r = terminal_post(stack, "/api/v1/terminal/bills", json.dumps({"mdtrt_id": mdtrt_id}).encode(), "application/json")
    assert r.status_code == 200, r.text
    bill = r.json()
    assert bill["payload"].startswith("MPBILL1.") and "<svg" in bill["svg"]
    device = Ed25519PrivateKey.generate()
    ecert_id = httpx.post(f"{stack['base']}/api/v1/mobile/ecert/activate", json={
        "psn_no": EMP.psn_no, "certno": EMP.certno, "device_public_key": public_key_hex(device),
        "consent": True}).json()["ecert_id"]
    before = wallet(stack)
    ts = int(time.time())
    pay = {"ecert_id": ecert_id, "bill": bill["payload"], "timestamp": ts,
           "device_signature": sign_bill_payment(device, ecert_id, bill["payload"], ts)}
    forged = {**pay, "device_signature": sign_bill_payment(Ed25519PrivateKey.generate(), ecert_id, bill["payload"], ts)}
    assert httpx.post(f"{stack['base']}/api/v1/mobile/bills/pay", json=forged).status_code == 403
    out = httpx.post(f"{stack['base']}/api/v1/mobile/bills/pay", json=pay).json()
    assert out["state"] == "captured", out
    cash = fen(out["settlement"]["setlinfo"])["psn_cash_pay"]
    assert before - wallet(stack) == cash
    again = httpx.post(f"{stack['base']}/api/v1/mobile/bills/pay", json=pay).json()  # paying twice charges once
    assert again["setl_id"] == out["setl_id"] and before - wallet(stack) == cash
