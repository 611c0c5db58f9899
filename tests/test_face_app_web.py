"""The app's face self-enrolment page (``/m/face``) in a real browser over HTTP on localhost (a secure context for
the camera and WebCrypto) against a real ``medpay serve`` with the gateway simulator, on SQLite and PostgreSQL.

Chromium's camera is a fake fed from a Y4M video made here from a real test photo performing the challenge the
server will ask (``MEDPAY_FACE_CHALLENGE_SEED`` with ``MEDPAY_ENV=test``). A person activates the e-certificate
in the page, reaches the face page from the app's home, reads and ticks the separate consent, sets the PIN twice
and films the challenge; the platform enrols them; a face terminal then identifies them by face and PIN; the
withdrawal from the same page deletes the template. Refusals: nothing is sent before consent is ticked, PINs that
differ are caught on the page, and a camera that shows no face is refused with the quality gate's reason."""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import func, select

from medpay.adapters.db.engine import make_engine
from medpay.adapters.db.face_tables import FaceConsentRow, FaceTemplateRow
from medpay.services.face.enrolment import CONSENT_VERSION
from tests.helpers_browser import CHROMIUM, CHROMIUM_ARGS, activate
from tests.helpers_face import noisy
from tests.helpers_face_http import face_pay_identity, register_face_terminal
from tests.helpers_face_video import challenge_video, challenges, write_y4m
from tests.helpers_qr import EMP, qr_stack
from tests.helpers_server import audit_events

PIN = "804613"
SEED = "app-enrolment-browser-test"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("face-app")
    for s in qr_stack(request.param, tmp, env={"MEDPAY_ENV": "test", "MEDPAY_FACE_CHALLENGE_SEED": SEED}):
        yield {**s, "challenges": iter(challenges(SEED, EMP.insuplc_admdvs, 4))}


def templates(stack, psn_no: str = EMP.psn_no) -> int:
    engine = make_engine(stack["db_url"])
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(FaceTemplateRow)
                                .where(FaceTemplateRow.psn_no == psn_no)).scalar_one()
    finally:
        engine.dispose()


def phone(playwright, video=None) -> tuple:
    """A phone-sized Chromium whose front camera films ``video``."""
    camera = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
              f"--use-file-for-fake-video-capture={video}"] if video else []
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *camera])
    page = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                               locale="zh-CN", timezone_id="Asia/Shanghai").new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return browser, page, errors


def open_face_page(page: Page, stack) -> None:
    """Activated on this phone, then from the app's home to the face page; the consent text is shown whole."""
    activate(page, stack)
    page.click("nav a[href^='/m/face']")
    expect(page.locator("nav a[aria-current=page]")).to_have_text("刷脸")
    consent = page.locator("fieldset.consent")
    expect(consent.locator("legend")).to_contain_text(CONSENT_VERSION)
    for words in ("收集什么", "为什么", "保存多久", "原始照片和视频从不保存", "如何撤回"):
        expect(consent).to_contain_text(words)


def fill_pins(page: Page, pin: str, again: str) -> None:
    page.fill("#pin", pin)
    page.fill("#pin_again", again)


def test_a_person_enrols_with_a_live_selfie_pays_by_face_then_withdraws_from_the_page(stack) -> None:
    challenge = next(stack["challenges"])
    video = challenge_video(stack["tmp"] / "selfie.y4m", "obama.jpg", challenge, seed=21)
    with sync_playwright() as pw:
        browser, page, errors = phone(pw, video)
        try:
            open_face_page(page, stack)
            page.check("#consent")
            fill_pins(page, PIN, PIN)
            page.click("#enrol button[type=submit]")
            expect(page.locator("[data-instruction]")).to_contain_text("第 1 步", timeout=15_000)
            expect(page.locator("[data-outcome]")).to_have_text(
                "刷脸支付已开通。支付时请在刷脸自助机上刷脸并输入刷脸密码。", timeout=90_000)
            expect(page.locator("[data-reason]")).to_be_hidden()
            assert templates(stack) == 1
            consent = audit_events(stack["db_url"], "face.enrol")[-1]
            assert consent.psn_no == EMP.psn_no and consent.actor_kind == "patient" and consent.ref == CONSENT_VERSION

            identity = face_pay_identity(register_face_terminal(stack), "obama.jpg", PIN, seed=22)
            assert identity.status_code == 200, identity.text  # at a face terminal: the face and the PIN name them
            assert identity.json()["data"]["ecToken"]

            page.click("[data-withdraw]")
            expect(page.locator("[data-confirm]")).to_be_visible()
            page.click("[data-withdraw-yes]")
            expect(page.locator("[data-withdrawn]")).to_have_text("已撤回同意，您的人脸模板已删除，刷脸支付已关闭。")
            assert errors == []
        finally:
            browser.close()
    assert templates(stack) == 0
    assert [e.ref for e in audit_events(stack["db_url"], "face.withdraw") if e.psn_no == EMP.psn_no] == ["app"]
    engine = make_engine(stack["db_url"])
    try:
        with engine.connect() as conn:
            assert conn.execute(select(FaceConsentRow.withdrawn_via).where(
                FaceConsentRow.psn_no == EMP.psn_no, FaceConsentRow.channel == "app")).scalars().all() == ["app"]
    finally:
        engine.dispose()
    refused = face_pay_identity(register_face_terminal(stack), "obama.jpg", PIN, seed=23)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "face_mismatch", refused.text


def test_nothing_is_sent_before_consent_pins_must_agree_and_a_faceless_camera_is_refused_with_the_reason(
        stack) -> None:
    rng = np.random.default_rng(5)
    wall = [noisy(np.full((480, 640, 3), 150, dtype=np.uint8), rng) for _ in range(40)]  # a bare wall, no face
    video = write_y4m(stack["tmp"] / "wall.y4m", wall)
    with sync_playwright() as pw:
        browser, page, errors = phone(pw, video)
        try:
            open_face_page(page, stack)
            sent: list[str] = []
            page.on("request", lambda r: sent.append(r.url) if "/api/v1/mobile/face" in r.url else None)
            fill_pins(page, PIN, PIN)
            page.click("#enrol button[type=submit]")  # consent not ticked
            expect(page.locator("#consent-error")).to_have_text("请先阅读并勾选单独同意：勾选前不会打开摄像头。")
            expect(page.locator("#capture")).to_be_hidden()
            assert sent == []

            page.check("#consent")
            fill_pins(page, PIN, "804614")
            page.click("#enrol button[type=submit]")
            expect(page.locator("#pin_again-error")).to_have_text("两次输入的密码不一致，请重新输入。")
            assert sent == []

            next(stack["challenges"])  # the challenge this attempt is asked (the wall performs none of it)
            fill_pins(page, PIN, PIN)
            page.click("#enrol button[type=submit]")
            expect(page.locator("[data-outcome]")).to_have_text("没有开通成功，没有保存任何人脸信息。", timeout=90_000)
            expect(page.locator("[data-reason]")).to_have_text(
                "原因：没有看清您的脸：请正对镜头，靠近一点，保持光线充足。")
            expect(page.locator("[data-detail]")).to_contain_text("frames[0]: no face found")
            assert errors == []
        finally:
            browser.close()
    assert templates(stack) == 0
    assert audit_events(stack["db_url"], "face.enrol_refuse")[-1].fields.startswith("reason:face_quality")


def test_the_page_in_english(stack) -> None:
    with sync_playwright() as pw:
        browser, page, errors = phone(pw)
        try:
            page.goto(f"{stack['base']}/m/face?lang=en")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            expect(page.locator("[data-not-activated]")).to_be_visible()  # no e-certificate on this phone yet
            expect(page.locator("nav a[aria-current=page]")).to_have_text("Face")
            assert errors == []
        finally:
            browser.close()
