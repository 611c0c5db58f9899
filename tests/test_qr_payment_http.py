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
from medpay.api.terminal import EC_CODES
from medpay.services.qr.ecert import sign_device_request
from tests.helpers_gateway import CallbackReceiver
from tests.helpers_server import STAFF, activate
from medpay.his_client import HisBusinessError
from tests.helpers_qr import EMP, app_code, fen, his_bill, his_client, qr_stack, scan_image, terminal_post, wallet


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from qr_stack(request.param, tmp_path_factory.mktemp("qrpay"))


def settle(stack, msgid: str, ec_token: str, mdtrt_id: str, notify_url: str) -> dict:
    body = json.dumps({"msgid": msgid, "ecToken": ec_token, "mdtrt_id": mdtrt_id, "notify_url": notify_url}).encode()
    r = terminal_post(stack, "/api/v1/terminal/settle", body, "application/json")
    assert r.status_code == 200, r.text
    return r.json()


# the state right after each injected fault (see tests/test_one_scan.py)
FIRST_STATE = {None: "captured", ("authorise", "timeout"): "captured", ("capture", "timeout"): "captured",
               ("capture", "fail"): "in_doubt", ("capture", "timeout_before"): "in_doubt"}


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
            assert httpx.post(f"{stack['base']}/api/v1/admin/payments/recover", headers=STAFF).status_code == 200
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
    with pytest.raises(HisBusinessError, match="mdtrt_cert_no: .*used up"):  # the settlement spent the token
        his_client(stack).person_info("01", identity["ecToken"])
    for day in {statement_day(time.time() - 600), statement_day()}:  # should the test run across midnight in China
        statement = httpx.get(f"{stack['base']}/api/v1/admin/payments/statement/{day.isoformat()}", headers=STAFF).json()
        assert statement["balanced"], statement
    assert httpx.get(f"{stack['base']}/api/v1/admin/ledger/check", headers=STAFF).json()["ok"]


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
    identity = scan_image(stack, app_code(stack))["data"]  # the window identified the patient for the HIS
    mdtrt_id = his_bill(stack, identity["ecToken"])
    r = terminal_post(stack, "/api/v1/terminal/bills", json.dumps({"mdtrt_id": mdtrt_id}).encode(), "application/json")
    assert r.status_code == 200, r.text
    bill = r.json()
    assert bill["payload"].startswith("MPBILL1.") and "<svg" in bill["svg"]
    device = Ed25519PrivateKey.generate()
    ecert_id = activate(stack["base"], EMP, device)["ecert_id"]
    before = wallet(stack)
    path, body = "/api/v1/mobile/bills/pay", json.dumps({"bill": bill["payload"]}).encode()

    def pay(key: Ed25519PrivateKey = device, headers: dict | None = None) -> httpx.Response:
        headers = headers or sign_device_request(key, ecert_id, "POST", path, body)
        return httpx.post(stack["base"] + path, content=body, headers={**headers, "content-type": "application/json"},
                          timeout=30)

    forged = pay(Ed25519PrivateKey.generate())
    assert forged.status_code == 401 and forged.json()["error"]["field"] == "X-Signature"
    signed = sign_device_request(device, ecert_id, "POST", path, body)
    out = pay(headers=signed).json()
    assert out["state"] == "captured", out
    cash = fen(out["settlement"]["setlinfo"])["psn_cash_pay"]
    assert before - wallet(stack) == cash
    replayed = pay(headers=signed)  # the same signed request again: refused by its nonce
    assert replayed.status_code == 401 and replayed.json()["error"]["field"] == "X-Nonce"
    again = pay().json()  # paying twice (a fresh request) charges once
    assert again["setl_id"] == out["setl_id"] and before - wallet(stack) == cash


def test_bill_preview_reads_a_photo_or_the_text_and_pays_nothing(stack) -> None:
    """The app shows what a bill code asks before the patient pays it: from a photo (decoded by the platform) or the
    pasted text. A forged code, a photo without one, or a code that is no bill is refused, naming the input."""
    from medpay.adapters import qr_images
    from medpay.domain.bill_code import make_bill_payload
    from tests.helpers_qr import H1

    preview = f"{stack['base']}/api/v1/mobile/bills/preview"
    identity = scan_image(stack, app_code(stack))["data"]
    mdtrt_id = his_bill(stack, identity["ecToken"], amount="123.45")
    bill = terminal_post(stack, "/api/v1/terminal/bills", json.dumps({"mdtrt_id": mdtrt_id}).encode(),
                         "application/json").json()
    before = wallet(stack)
    photo = httpx.post(preview, files={"image": ("bill.png", qr_images.render_png(bill["payload"]), "image/png")})
    assert photo.status_code == 200, photo.text
    assert photo.headers["cache-control"] == "no-store"
    out = photo.json()
    assert out == {"bill": bill["payload"], "bill_id": bill["bill_id"], "fixmedins_code": H1[0],
                   "fixmedins_name": H1[1], "mdtrt_id": mdtrt_id, "med_type": "11", "medfee_sumamt": 123.45,
                   "state": "due", "expires_at": out["expires_at"]}
    assert httpx.post(preview, json={"bill": bill["payload"]}).json() == out

    forged = make_bill_payload(Ed25519PrivateKey.generate(), "BLFORGED", H1[0], mdtrt_id, 100, time.time())
    blank = qr_images.render_png("x")  # a QR code, but of nothing
    refusals = [
        (httpx.post(preview, files={"image": ("f.png", qr_images.render_png(forged), "image/png")}), "code_forged", "image"),
        (httpx.post(preview, json={"bill": forged}), "code_forged", "bill"),
        (httpx.post(preview, files={"image": ("e.png", app_code(stack), "image/png")}), "code_invalid", "image"),
        (httpx.post(preview, files={"image": ("b.png", blank[:60], "image/png")}), "image_invalid", "image"),
        (httpx.post(preview, json={"bill": "MPBILL1.x.y"}), "code_invalid", "bill"),
        (httpx.post(preview, json={"nothing": 1}), "invalid", "bill"),
        (httpx.post(preview, content=b"hello", headers={"content-type": "text/plain"}), "invalid", "body"),
    ]
    for r, code, field in refusals:
        assert r.status_code == 422, r.text
        assert (r.json()["error"]["code"], r.json()["error"]["field"]) == (code, field), r.text
    assert wallet(stack) == before  # reading pays nothing
