"""The face kiosk's page (``/t/face``) in a real browser over HTTPS, against a real ``medpay serve`` (certificate
made at test time) with the gateway simulator, on SQLite and PostgreSQL.

Chromium's camera is a fake fed from a Y4M video made here from a real test photo performing the challenge; the
server draws its challenges from a seed only the test configuration may set (``MEDPAY_FACE_CHALLENGE_SEED`` with
``MEDPAY_ENV=test``), so each video answers the challenge its session asks. The kiosk's key is made in the page
(WebCrypto) and registered by "staff" with the CLI. The patient registered at a window earlier with the QR code;
at the kiosk, face and PIN name them, the page shows the masked identity and the bill's breakdown, and the
confirmed payment settles, the wallet charged once. Then another face with the right PIN: the refusal says why and
offers the QR code or ID card."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Page, expect, sync_playwright

from medpay.money import format_yuan
from tests.helpers_browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers_face_http import counter_enrol
from tests.helpers_face_video import challenge_video, challenges
from tests.helpers_qr import EMP, H1, app_code, his_bill, qr_stack, scan_image, terminal_post, wallet
from tests.helpers_server import audit_events, run_cli
from tests.helpers_tls import self_signed

PIN = "802413"
SEED = "kiosk-browser-test"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("kiosk")
    cert, key = self_signed(tmp)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSL_CERT_FILE", str(cert))  # this process's HIS client and httpx trust the test certificate
        env = {"MEDPAY_ENV": "test", "MEDPAY_FACE_CHALLENGE_SEED": SEED, "SSL_CERT_FILE": str(cert)}
        for s in qr_stack(request.param, tmp, env=env, tls=(cert, key)):
            assert s["base"].startswith("https://")
            assert counter_enrol(s["base"], EMP, "obama.jpg", PIN).status_code == 200
            yield {**s, "cert": cert, "challenges": iter(challenges(SEED, "999901", 2))}


def spki_hash(cert_file) -> str:
    """What Chromium's --ignore-certificate-errors-spki-list takes: base64 SHA-256 of the public key's DER."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def kiosk_page(stack, playwright, face: str, seed: int):
    """A kiosk browser whose camera films ``face`` performing the next challenge the server will ask."""
    video = challenge_video(stack["tmp"] / f"camera-{seed}.y4m", face, next(stack["challenges"]), seed)
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
        *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}", f"--ignore-certificate-errors-spki-list={spki_hash(stack['cert'])}"])
    page = browser.new_context(viewport={"width": 1080, "height": 1920}, locale="zh-CN").new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return browser, page, errors


def provision(page: Page, stack) -> str:
    """Staff set the kiosk up: the page shows its new public key, the CLI registers it, staff type the id."""
    page.goto(f"{stack['base']}/t/face")
    assert page.evaluate("isSecureContext")
    key = page.locator("#public-key")
    expect(key).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    reg = run_cli(["ecert", "terminal-register", "--fixmedins-code", H1[0], "--name", "刷脸自助机", "--kind", "face",
                   "--public-key", key.inner_text()], stack["db_url"], stack["tmp"])
    assert reg.returncode == 0, reg.stderr
    terminal_id = json.loads(reg.stdout)["terminal_id"]
    page.fill("#org", H1[0])
    page.fill("#terminal", terminal_id)
    page.click("#setup-form button[type=submit]")
    expect(page.locator("#start")).to_be_visible()
    return terminal_id


def face_and_pin(page: Page, pin: str) -> None:
    expect(page.locator("#fallback")).to_be_visible()  # the way without a face, from the first screen
    page.click("#start")
    expect(page.locator("[data-instruction]")).to_contain_text("第 1 步", timeout=15_000)
    expect(page.locator("#pin")).to_be_visible(timeout=30_000)
    for digit in pin:
        page.click(f"[data-key='{digit}']")
    page.click("#pin-ok")


def test_the_kiosk_identifies_by_face_and_pin_shows_the_bill_and_settles(stack) -> None:
    token = scan_image(stack, app_code(stack, "01101"), "01101")["data"]["ecToken"]  # registered at the window
    mdtrt_id = his_bill(stack, token, amount="60.00")
    before = wallet(stack)
    with sync_playwright() as pw:
        browser, page, errors = kiosk_page(stack, pw, "obama.jpg", seed=11)
        try:
            terminal_id = provision(page, stack)
            face_and_pin(page, PIN)
            bill = page.locator("#bill")
            expect(bill).to_be_visible(timeout=90_000)
            expect(page.locator("[data-who]")).to_contain_text("*")  # the masked name, never the whole
            assert re.fullmatch(r"证件号码 \d{6}\*+\d{4}", page.locator("[data-idno]").inner_text())
            expect(page.locator('[data-part="total"]')).to_have_text("¥60.00")
            cash = page.locator('[data-part="cash"]').inner_text()
            page.click("#pay")
            expect(page.locator("#result")).to_be_visible(timeout=60_000)
            expect(page.locator("[data-result-title]")).to_have_text("支付成功")
            assert errors == []
        finally:
            browser.close()
    charged = before - wallet(stack)
    assert cash == f"¥{format_yuan(charged)}"  # what the page showed is what the wallet paid, once
    assert [e.ref for e in audit_events(stack["db_url"], "terminal.due_visits") if e.actor == terminal_id] == [mdtrt_id]


def test_another_face_with_the_right_pin_is_refused_with_the_reason_and_the_other_ways(stack) -> None:
    with sync_playwright() as pw:
        browser, page, errors = kiosk_page(stack, pw, "biden.jpg", seed=12)
        try:
            provision(page, stack)
            face_and_pin(page, PIN)
            refused = page.locator("#refused")
            expect(refused).to_be_visible(timeout=90_000)
            expect(page.locator("[data-reason]")).to_have_text("人脸与密码不匹配。")
            expect(page.locator("[data-detail]")).to_contain_text("QR code or ID card")  # the platform's own words
            page.click("#fallback")
            expect(page.locator("#fallback-note")).to_contain_text("医保电子凭证二维码")
            assert errors == []
        finally:
            browser.close()


def test_due_visits_refuses_a_token_it_does_not_know_and_another_institution(stack) -> None:
    unknown = terminal_post(stack, "/api/v1/terminal/due-visits",
                            json.dumps({"orgId": H1[0], "ecToken": "0" * 40}).encode(), "application/json")
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "ecToken", unknown.text
    other = terminal_post(stack, "/api/v1/terminal/due-visits",
                          json.dumps({"orgId": "H99990100002", "ecToken": "0" * 40}).encode(), "application/json")
    assert other.status_code == 403 and other.json()["error"]["field"] == "orgId", other.text
    missing = terminal_post(stack, "/api/v1/terminal/due-visits", json.dumps({"orgId": H1[0]}).encode(),
                            "application/json")
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "ecToken", missing.text
