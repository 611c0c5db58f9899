"""QR code payment against a real server process with the gateway simulator (its own process) and a registered
window terminal: the signed terminal calls, a scan, a HIS visit with a bill, a demo wallet's balance."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medpay.adapters.platform_keys import load_or_create_key
from medpay.his_client import HisClient
from medpay.interface_format import MONEY_KEYS
from medpay.local_time import LOCAL_TZ
from medpay.money import parse_yuan
from medpay.services import demo
from medpay.services.directory import PersonInput
from medpay.services.qr.ecert import sign_device_request, sign_terminal_request
from tests.helpers_server import activate, backend_db_url, free_port, run_cli, server, texted_code

H1 = demo.INSTITUTIONS[0]
EMP = demo.PERSONS[0]
BLOOD = "002101000010000"  # 血常规, 甲类
BED = "001102000010000"  # 普通病房床位费


def qr_stack(backend: str, tmp: Path, env: dict[str, str] | None = None,
             tls: tuple[Path, Path] | None = None) -> Iterator[dict[str, Any]]:
    """For a module fixture: the platform served on its own ``backend`` database with the gateway simulator, and
    a terminal of H1 registered (``medpay ecert terminal-register``); over HTTPS with ``tls`` (cert, key)."""
    urls = backend_db_url(backend, tmp)
    db_url = next(urls)
    gw_port = free_port()
    try:
        # every test activates the same demo patients again: more codes a day than a person would ask for
        env = {"MEDPAY_SMS_DAILY_LIMIT": "1000", **(env or {})}
        with server(db_url, tmp, "--gateway-port", str(gw_port), env=env, tls=tls) as base:
            key_file = tmp / "terminal.key"
            reg = run_cli(["ecert", "terminal-register", "--fixmedins-code", H1[0], "--name", "门诊1号窗口",
                           "--key-file", str(key_file)], db_url, tmp)
            assert reg.returncode == 0, reg.stderr
            yield {"base": base, "gateway": f"http://127.0.0.1:{gw_port}", "db_url": db_url, "tmp": tmp,
                   "terminal_id": json.loads(reg.stdout)["terminal_id"], "terminal_key": load_or_create_key(key_file)}
    finally:
        for _ in urls:  # drops the PostgreSQL schema
            pass


def terminal_post(stack, path: str, body: bytes, content_type: str) -> httpx.Response:
    headers = sign_terminal_request(stack["terminal_key"], stack["terminal_id"], "POST", path, body)
    return httpx.post(stack["base"] + path, content=body, headers={**headers, "content-type": content_type}, timeout=30)


def app_code(stack, business_type: str = "01301", person: PersonInput = EMP) -> bytes:
    """A patient's app made of Python: activate with a new device key (the code texted to the phone on record) and
    fetch the current code as a PNG, the request signed in headers."""
    device = Ed25519PrivateKey.generate()
    ecert_id = activate(stack["base"], person, device)["ecert_id"]
    path = f"/api/v1/mobile/ecert/code.png?business_type={business_type}"
    png = httpx.get(stack["base"] + path, headers=sign_device_request(device, ecert_id, "GET", path))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png", png.text
    return png.content


def scan_image(stack, png: bytes, business_type: str = "01301") -> dict:
    """The window's terminal posts a photo of the patient's code to ec.query."""
    boundary = "medpayboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"orgId\"\r\n\r\n{H1[0]}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"businessType\"\r\n\r\n{business_type}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"scan.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
    return terminal_post(stack, "/api/v1/terminal/ec/query", body, f"multipart/form-data; boundary={boundary}").json()


def scan_text(stack, scanned: str, business_type: str = "01301") -> dict:
    """The window's terminal posts the scanned string to ec.query."""
    body = json.dumps({"orgId": H1[0], "businessType": business_type, "qrCode": scanned}).encode()
    return terminal_post(stack, "/api/v1/terminal/ec/query", body, "application/json").json()


def his_client(stack) -> HisClient:
    """H1's HIS, signed in."""
    code, name, _, paasid, token = H1
    his = HisClient(stack["base"], code, name, paasid, token, mdtrtarea_admvs="999901")
    his.sign_in("1001")
    return his


def his_bill(stack, ec_token: str, person: PersonInput = EMP, amount: str = "6000.00") -> str:
    """The HIS identifies the patient by the e-certificate token, opens an outpatient visit and uploads a fee."""
    his = his_client(stack)
    info = his.person_info("01", ec_token).output  # the e-certificate token identifies the patient
    assert info["baseinfo"]["psn_no"] == person.psn_no
    visit = his.register(person.psn_no, person.insutype, "01", ec_token, ipt_otp_no="MZ9").output["data"]
    his.upload_fees([{"feedetl_sn": "1", "mdtrt_id": visit["mdtrt_id"], "psn_no": person.psn_no, "chrg_bchno": "B1",
                      "med_list_codg": BLOOD, "cnt": 1, "pric": amount, "det_item_fee_sumamt": amount}])
    return visit["mdtrt_id"]


def local_now() -> str:
    return datetime.now(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S")


def his_admission(stack, person: PersonInput, days: int = 5) -> str:
    """The HIS admits ``person`` (shown by ID number) and uploads ``days`` bed-days at 60.00 (2401, 2301)."""
    his = his_client(stack)
    his.call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": person.certno, "card_sn": "",
                               "begntime": local_now(), "psn_cert_type": "01", "certno": person.certno,
                               "psn_name": ""}})
    mdtrt_id = his.admit({"psn_no": person.psn_no, "insutype": person.insutype, "begntime": local_now(),
                          "mdtrt_cert_type": "02", "mdtrt_cert_no": person.certno, "med_type": "21",
                          "ipt_no": "ZY1", "adm_dept_codg": "03", "adm_dept_name": "外科"}).output["result"]["mdtrt_id"]
    his.upload_inpatient_fees([{"feedetl_sn": "1", "mdtrt_id": mdtrt_id, "psn_no": person.psn_no, "med_type": "21",
                                "fee_ocur_time": local_now(), "med_list_codg": BED, "cnt": days, "pric": "60.00",
                                "det_item_fee_sumamt": f"{60 * days}.00", "drord_no": "Y1"}])
    return mdtrt_id


def wallet(stack, psn_no: str = EMP.psn_no) -> int:
    """The balance (fen) of the demo patient's simulated wallet at the gateway."""
    return httpx.get(f"{stack['gateway']}/sim/payers/demo-wallet-{psn_no}").json()["balance_fen"]


def fen(info: dict) -> dict[str, int]:
    """The settlement's yuan amounts as exact fen, for comparisons free of float arithmetic."""
    return {k: parse_yuan(v, k, allow_negative=True) for k, v in info.items() if k in MONEY_KEYS and v is not None}


class App:
    """The patient's app made of Python: one activated device, every request signed by its key."""

    def __init__(self, stack, person=EMP):
        self.base = stack["base"]
        self.key = Ed25519PrivateKey.generate()
        self.ecert_id = activate(self.base, person, self.key)["ecert_id"]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, headers=sign_device_request(self.key, self.ecert_id, "GET", path, b""),
                         timeout=30)

    def post(self, path: str, body: dict) -> httpx.Response:
        raw = json.dumps(body).encode()
        headers = sign_device_request(self.key, self.ecert_id, "POST", path, raw)
        return httpx.post(self.base + path, content=raw, headers={**headers, "content-type": "application/json"},
                          timeout=30)


class Phone:
    """A parent's phone: an activated device and a signed-in browser session."""

    def __init__(self, stack, person):
        self.base, self.person = stack["base"], person
        self.key = Ed25519PrivateKey.generate()
        self.ecert_id = activate(self.base, person, self.key)["ecert_id"]
        self.http = httpx.Client(base_url=str(self.base), timeout=30)
        start = self.http.post("/api/v1/mobile/sign-in", json={"phone": person.phone}).json()
        done = self.http.post("/api/v1/mobile/sign-in/confirm", json={
            "challenge_id": start["challenge_id"], "phone": person.phone, "code": texted_code(self.base, person.phone)})
        assert done.status_code == 200, done.text
        self.csrf = done.json()["csrf_token"]

    def signed(self, method: str, path: str, body: dict | None = None, *, csrf: bool = True) -> httpx.Response:
        raw = json.dumps(body).encode() if body is not None else b""
        headers = sign_device_request(self.key, self.ecert_id, method, path, raw)
        if body is not None:
            headers["content-type"] = "application/json"
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return self.http.request(method, path, content=raw, headers=headers)
