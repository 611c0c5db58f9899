"""The patient's mobile web app in a real browser (Debian's Chromium driven by Playwright) against a real server
process with the gateway simulator, on SQLite and on PostgreSQL: activation with the separate consent and a
WebCrypto device key, the dynamic code read off the screen and accepted by a terminal, its refresh, the English
page, and a bill code paid from a photo — with the totals shown matching the settlement and the wallet charged once.

Codes live 15 s on this server (``MEDPAY_ECERT_CODE_TTL_S``) so that an old code's expiry can be waited for; the
page's own clock is moved with ``page.clock``.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import Browser, Error as PlaywrightError, Page, expect, sync_playwright
from pypdf import PdfReader

from medpay.adapters import qr_images
from medpay.adapters.db.ecert_tables import EcertRow
from medpay.adapters.db.tables import SettlementRow
from medpay.adapters.gateway.port import sign_callback
from medpay.api.terminal import EC_CODES
from medpay.domain.bill_code import make_bill_payload
from medpay.money import format_yuan
from medpay.services import demo
from tests.helpers_browser import CHROMIUM, CHROMIUM_ARGS, activate, enter_texted_code, serious_violations, texted
from tests.helpers_gateway import CallbackReceiver
from tests.helpers_qr import (EMP, H1, app_code, fen, his_admission, his_bill, his_client, local_now, qr_stack,
                              scan_image, scan_text, terminal_post, wallet)
from tests.helpers_server import STAFF, row_count, run_cli, texted_code

CODE_TTL_S = 15
CHILD = demo.PERSONS[3]  # 王小明, resident; his father's account pays for him (家庭共济)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("mobile")
    with CallbackReceiver() as his:
        for s in qr_stack(request.param, tmp, env={"MEDPAY_ECERT_CODE_TTL_S": str(CODE_TTL_S)}):
            reg = run_cli(["ecert", "notify-url", H1[0], his.url], s["db_url"], tmp)  # the HIS registers its URL
            assert reg.returncode == 0, reg.stderr
            yield {**s, "his": his}


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser):
    """A phone-sized page in a fresh context: its own IndexedDB, so no device key carries over between tests."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert errors == []  # no script error on any page


def count(stack, model, *where) -> int:
    return row_count(stack["db_url"], model, *where)


def stored_device(page: Page) -> dict | None:
    """What the page keeps in IndexedDB, read with the page's own module."""
    return page.evaluate("""async () => {
        const d = await (await import("/m/static/device.js")).loadDevice();
        return d ? {ecert_id: d.ecert_id, publicKeyHex: d.publicKeyHex, extractable: d.privateKey.extractable,
                    type: d.privateKey.algorithm.name, usages: d.privateKey.usages} : null;
    }""")


def shown_code(page: Page) -> str:
    """The code on the screen, read as a scanner reads it: a screenshot of the QR element decoded with zxing-cpp."""
    return qr_images.decode(page.locator("[data-qr] svg").screenshot())


def claims(payload: str) -> dict:
    body = payload.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def window_bill(stack, ec_token: str, person, amount: str) -> dict:
    """At the window: the HIS bills the visit of the patient the e-certificate token names, and the terminal shows
    a bill code for it."""
    mdtrt_id = his_bill(stack, ec_token, person, amount)
    r = terminal_post(stack, "/api/v1/terminal/bills", json.dumps({"mdtrt_id": mdtrt_id}).encode(), "application/json")
    assert r.status_code == 200, r.text
    return {**r.json(), "mdtrt_id": mdtrt_id}


def upload(page: Page, png: bytes) -> None:
    page.set_input_files("#image", files=[{"name": "bill.png", "mimeType": "image/png", "buffer": png}])


def test_activation_needs_the_separate_consent_and_the_code_on_the_page_works(stack, page: Page) -> None:
    before = count(stack, EcertRow, EcertRow.psn_no == EMP.psn_no)
    page.goto(f"{stack['base']}/m/activate")
    expect(page.locator("#consent")).not_to_be_checked()  # the separate consent is never ticked for the patient
    page.fill("#psn_no", EMP.psn_no)
    page.fill("#certno", EMP.certno)
    page.click("#activate button[type=submit]")
    expect(page.locator("#consent-error")).to_have_text("请勾选上面的单独同意后再激活。")
    expect(page.locator("#consent")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#certno-error")).to_be_hidden()
    assert count(stack, EcertRow, EcertRow.psn_no == EMP.psn_no) == before  # refused: nothing stored there …
    assert stored_device(page) is None  # … nor here

    page.check("#consent")
    since = texted(stack, EMP)
    page.click("#activate button[type=submit]")
    expect(page.locator("[data-sent]")).to_have_text("验证码已发送至 138****0001（医保登记的手机号），5 分钟内有效。")
    code = texted_code(stack["base"], EMP.phone, since)  # to the phone on record, never one the caller names
    page.fill("#code", f"{(int(code) + 1) % 10**6:06d}")  # a wrong code: refused, counted, nothing bound
    page.click("#confirm button[type=submit]")
    expect(page.locator("#code-error")).to_have_text("验证码不正确或已过期；错误太多次后需要重新发送。")
    assert stored_device(page) is None
    page.fill("#code", code)
    page.click("#confirm button[type=submit]")
    page.wait_for_url(re.compile(r"/m/\?lang=zh$"))
    expect(page.locator("[data-holder]")).to_have_text("王**（999901********0011）")  # their own ID, masked
    device = stored_device(page)
    assert device["type"] == "Ed25519" and device["extractable"] is False and device["usages"] == ["sign"]
    assert re.fullmatch(r"[0-9a-f]{64}", device["publicKeyHex"])
    assert count(stack, EcertRow, EcertRow.ecert_id == device["ecert_id"], EcertRow.status == "active",
                 EcertRow.device_key == device["publicKeyHex"]) == 1

    page.wait_for_selector("[data-qr] svg")
    expect(page.locator("[data-qr]")).to_have_attribute("aria-label", "医保电子凭证二维码：门诊结算 · 01301")
    shown = scan_text(stack, shown_code(page))  # the window's terminal scans the phone's screen
    assert shown["code"] == 0, shown
    assert (shown["data"]["userName"], shown["data"]["idNo"]) == ("王**", "999901********0011")
    assert (shown["data"]["ecIndexNo"], shown["data"]["businessType"]) == (device["ecert_id"], "01301")

    assert page.get_attribute("[data-png]", "href") == "#"  # no signature in a link: the PNG is a signed fetch
    with page.expect_response("**/api/v1/mobile/ecert/code.png?*") as fetched, page.expect_download() as saved:
        page.click("[data-png]")
    assert fetched.value.headers["cache-control"] == "no-store" and "signature" not in fetched.value.url
    assert fetched.value.request.headers["x-ecert-id"] == device["ecert_id"]
    downloaded = scan_image(stack, open(saved.value.path(), "rb").read())
    assert downloaded["code"] == 0 and downloaded["data"]["ecIndexNo"] == device["ecert_id"]


def test_the_code_refreshes_by_itself_and_at_once_for_another_business_type(stack, page: Page) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.post_data or "") if r.url.endswith("/mobile/ecert/code") else None)
    page.clock.install(time=datetime.now())
    page.clock.pause_at(datetime.now() + timedelta(seconds=1))  # the page's time moves only when the test says
    activate(page, stack)
    first = shown_code(page)
    refresh_in = CODE_TTL_S - 10  # what the API says for codes of this lifetime
    assert len(requests) == 1
    expect(page.locator("[data-countdown]")).to_have_text(f"{refresh_in} 秒后自动刷新")

    page.clock.fast_forward((refresh_in - 1) * 1000)
    expect(page.locator("[data-countdown]")).to_have_text("1 秒后自动刷新")
    assert len(requests) == 1 and shown_code(page) == first  # not before it is due

    old_svg = page.inner_html("[data-qr]")
    page.clock.fast_forward(2000)
    page.wait_for_function("old => document.querySelector('[data-qr]').innerHTML !== old", arg=old_svg)
    second = shown_code(page)
    assert len(requests) == 2 and second != first
    assert claims(second)["iat"] >= claims(first)["iat"] and claims(second)["bt"] == "01301"
    assert scan_text(stack, second)["code"] == 0  # the new code works

    old_svg = page.inner_html("[data-qr]")
    page.select_option("#business_type", "01101")  # registration: a new code at once, no clock needed
    page.wait_for_function("old => document.querySelector('[data-qr]').innerHTML !== old", arg=old_svg)
    third = shown_code(page)
    assert len(requests) == 3 and claims(third)["bt"] == "01101"
    wrong = scan_text(stack, third, "01301")
    assert wrong["code"] == EC_CODES["business_type_mismatch"]
    assert scan_text(stack, third, "01101")["code"] == 0

    time.sleep(max(0.0, claims(first)["exp"] + 1 - time.time()))  # the platform's clock, not the page's
    old = scan_text(stack, first)
    assert old["code"] == EC_CODES["code_expired"] and old["message"].startswith("qrCode: exp: expired")


def test_english_page_through_the_switch_and_errors_next_to_their_field(stack, page: Page) -> None:
    page.goto(f"{stack['base']}/m/activate")
    expect(page.locator("label[for=certno]")).to_have_text("身份证号码")
    page.fill("#psn_no", EMP.psn_no)
    page.fill("#certno", "999901198001010099")  # not this person's
    page.check("#consent")
    page.click("#activate button[type=submit]")
    expect(page.locator("#certno-error")).to_have_text("身份证号码与人员编号不符，请核对。")
    expect(page.locator("#certno")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#certno")).to_be_focused()
    expect(page.locator("#psn_no-error")).to_be_hidden()
    expect(page.locator("#consent-error")).to_be_hidden()

    page.click("header a.lang")  # the visible switch
    page.wait_for_url(re.compile(r"/m/activate\?lang=en$"))
    assert page.get_attribute("html", "lang") == "en"
    expect(page.locator("label[for=certno]")).to_have_text("ID card number")
    expect(page.locator("header a.lang")).to_have_text("中文")
    page.fill("#psn_no", EMP.psn_no)
    page.fill("#certno", "999901198001010099")
    page.check("#consent")
    page.click("#activate button[type=submit]")
    expect(page.locator("#certno-error")).to_have_text(
        "This ID card number doesn't match the insurance number. Please check both.")
    page.fill("#psn_no", "")
    page.click("#activate button[type=submit]")
    expect(page.locator("#psn_no-error")).to_have_text("Enter your personal insurance number.")
    expect(page.locator("#certno-error")).to_be_hidden()

    page.fill("#psn_no", EMP.psn_no)
    page.fill("#certno", EMP.certno)
    enter_texted_code(page, stack, EMP)
    expect(page.locator("[data-sent]")).to_have_text(
        "A code was texted to 138****0001, the number on your insurance record; it is valid for 5 minutes.")
    page.wait_for_url(re.compile(r"/m/\?lang=en$"))
    page.wait_for_selector("[data-qr] svg")
    expect(page.locator("h1")).to_have_text("Medical insurance e-certificate")
    expect(page.locator("[data-countdown]")).to_have_text(re.compile(r"^Refreshes in \d+ s$"))
    expect(page.locator("#business_type option:checked")).to_have_text("Outpatient payment · 01301")
    expect(page.locator("nav a[aria-current=page]")).to_have_text("My code")
    page.click("nav a[href^='/m/pay']")
    expect(page.locator("label[for=image]")).to_have_text("Take or choose a photo of the bill code")


def test_bill_code_paid_from_a_photo_shows_the_parts_and_charges_the_cash_once(stack, page: Page) -> None:
    activate(page, stack, CHILD)
    identity = scan_text(stack, shown_code(page))["data"]  # the window identifies him by the code on his phone
    bill = window_bill(stack, identity["ecToken"], CHILD, "3000.00")
    his = stack["his"]
    his.clear()
    before = wallet(stack, CHILD.psn_no)
    page.click("nav a[href^='/m/pay']")
    expect(page.locator("[data-holder]")).to_have_text("王**（999901********0044）")
    upload(page, qr_images.render_png(bill["payload"]))
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("[data-institution]")).to_have_text("演示市第一人民医院")
    expect(page.locator("[data-what]")).to_have_text("普通门诊")
    expect(page.locator("[data-amount]")).to_have_text("¥3000.00")
    expect(page.locator("[data-pay]")).to_have_text("确认支付 ¥3000.00")
    assert wallet(stack, CHILD.psn_no) == before  # shown, not paid

    with page.expect_response("**/api/v1/mobile/bills/pay") as paid:
        page.click("[data-pay]")
    out = paid.value.json()
    assert out["state"] == "captured", out
    expect(page.locator("[data-result-title]")).to_have_text("支付成功")
    setl = fen(out["settlement"]["setlinfo"])
    parts = {"fund": setl["fund_pay_sumamt"], "account": setl["acct_pay"] - setl["acct_mulaid_pay"],
             "family": setl["acct_mulaid_pay"], "cash": setl["psn_cash_pay"]}
    assert parts["family"] > 0 and parts["cash"] > 0 and parts["fund"] > 0  # the father's account helped
    assert sum(parts.values()) == setl["medfee_sumamt"] == 300000
    for name, amount in [*parts.items(), ("total", 300000)]:
        expect(page.locator(f"[data-parts] [data-part={name}] dd")).to_have_text(f"¥{format_yuan(amount)}")
    bars = page.eval_on_selector_all("[data-chart] rect", "rs => rs.map(r => [r.dataset.part, +r.dataset.fen, "
                                                          "+r.getAttribute('width')])")
    assert [(p, f) for p, f, _ in bars] == [(p, f) for p, f in parts.items() if f]  # one bar per part paid
    for _part, amount, width in bars:
        assert width == pytest.approx(1000 * amount / 300000)
    expect(page.locator("[data-setl-id]")).to_have_text(out["setl_id"])

    assert before - wallet(stack, CHILD.psn_no) == parts["cash"]  # the gateway took the cash part, nothing more
    [note] = his.wait_for(1)  # settle.notify reached the HIS's registered URL, signed with its token
    assert note.headers["X-Medpay-Signature"] == sign_callback(note.body, H1[4], note.headers["X-Medpay-Timestamp"])
    pushed = json.loads(note.body)
    assert (pushed["medicalSettleNo"], pushed["mdtrtId"]) == (out["setl_id"], bill["mdtrt_id"])
    assert [pushed[k] for k in ("totalFee", "hifAmt", "acctAmt", "ownAmt")] == [
        format_yuan(v) for v in (300000, parts["fund"], parts["account"] + parts["family"], parts["cash"])]

    page.click("[data-again]")  # the same photo again: the page says it is paid, and offers no second payment
    upload(page, qr_images.render_png(bill["payload"]))
    expect(page.locator("[data-paid]")).to_have_text("这张账单已经支付过了。")
    expect(page.locator("[data-pay]")).to_be_hidden()
    time.sleep(0.5)
    assert before - wallet(stack, CHILD.psn_no) == parts["cash"] and len(his.received) == 1  # charged and told once


def test_forged_or_another_patients_bill_is_refused_with_a_clear_message(stack, page: Page) -> None:
    activate(page, stack, EMP)
    child = scan_image(stack, app_code(stack, person=CHILD))["data"]  # the child, on a phone of his own
    theirs = window_bill(stack, child["ecToken"], CHILD, "80.00")  # this phone holds the father's e-certificate
    wallets = wallet(stack, EMP.psn_no), wallet(stack, CHILD.psn_no)
    page.goto(f"{stack['base']}/m/pay")

    forged = make_bill_payload(Ed25519PrivateKey.generate(), "BLFORGED0001", H1[0], theirs["mdtrt_id"], 100, time.time())
    upload(page, qr_images.render_png(forged))
    expect(page.locator("#image-error")).to_have_text("这不是医保平台签发的账单码，请不要支付，并告知工作人员。")
    expect(page.locator("#confirm")).to_be_hidden()

    upload(page, qr_images.render_png("x")[:60])  # a photo that is no image of a code
    expect(page.locator("#image-error")).to_have_text("照片里没有找到唯一的一个二维码，请对准账单码重拍。")

    page.click("details.paste summary")  # the fallback: the code's text
    page.fill("#bill", "MPBILL1.not-a-code")
    page.click("#paste button[type=submit]")
    expect(page.locator("#bill-error")).to_have_text("这不是医保账单码，请扫描收费窗口屏幕上的账单码。")
    expect(page.locator("#bill")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#image-error")).to_be_hidden()

    page.fill("#bill", theirs["payload"])
    page.click("#paste button[type=submit]")
    expect(page.locator("[data-amount]")).to_have_text("¥80.00")  # a genuine bill: shown …
    page.click("[data-pay]")
    expect(page.locator("#confirm [data-error-for='*']")).to_have_text(  # … but not this patient's to pay
        "这张账单不是您的，不能用本机的医保电子凭证支付。")
    expect(page.locator("#result")).to_be_hidden()
    assert (wallet(stack, EMP.psn_no), wallet(stack, CHILD.psn_no)) == wallets  # nothing charged …
    visit = theirs["mdtrt_id"]
    assert count(stack, SettlementRow, SettlementRow.mdtrt_id == visit) == 0  # … nothing settled


def test_without_a_phone_on_record_a_counter_code_activates(stack, page: Page) -> None:
    """刘福 has no phone on record: the page says so, a staff member who saw his ID card gives him a counter code,
    and his old e-certificate's device is told it was replaced."""
    elder = demo.PERSONS[5]
    page.goto(f"{stack['base']}/m/activate")
    page.fill("#psn_no", elder.psn_no)
    page.fill("#certno", elder.certno)
    page.check("#consent")
    page.click("#activate button[type=submit]")
    expect(page.locator("#activate [data-error-for='*']")).to_have_text(
        "医保没有登记您的手机号：请带身份证到柜台激活，或在柜台登记手机号。")
    expect(page.locator("#confirm")).to_be_hidden()

    r = httpx.post(f"{stack['base']}/api/v1/admin/ecert/counter-activations", headers=STAFF, json={
        "psn_no": elder.psn_no, "certno": elder.certno, "consent": True, "id_checked": True})
    assert r.status_code == 201, r.text
    given = r.json()
    assert (given["userName"], given["idNo"]) == ("刘*", "999901********0066")  # the staff check who stands there
    page.click("details.counter summary")
    page.fill("#counter_code", "ABCDE-FGH00")  # mistyped: refused next to the field
    page.click("#counter button[type=submit]")
    expect(page.locator("#counter_code-error")).to_have_text("柜台激活码不正确或已过期，请向工作人员重新获取。")
    page.fill("#counter_code", given["counter_code"].lower())  # as a person types it
    page.click("#counter button[type=submit]")
    page.wait_for_url(re.compile(r"/m/\?lang=zh$"))
    expect(page.locator("[data-holder]")).to_have_text("刘*（999901********0066）")
    page.wait_for_selector("[data-qr] svg")
    assert scan_text(stack, shown_code(page))["code"] == 0


def test_bills_page_pays_what_the_doctor_ordered_once_even_when_the_answer_is_lost(stack, page: Page) -> None:
    """诊间支付 at 375 px: the visit the HIS billed is listed, its lines and pre-settlement split are shown, and the
    payment goes through although the phone never hears the answer — the page asks where it stands and shows the
    settlement; the wallet is charged once and the visit is no longer due."""
    page.set_viewport_size({"width": 375, "height": 812})
    activate(page, stack, CHILD)
    identity = scan_text(stack, shown_code(page))["data"]
    mdtrt_id = his_bill(stack, identity["ecToken"], CHILD, "3000.00")
    before = wallet(stack, CHILD.psn_no)
    page.click("nav a[href^='/m/bills']")
    card = page.locator("li.visit", has=page.locator(f"[data-open='{mdtrt_id}']"))
    expect(card.locator(".amount")).to_have_text("¥3000.00")
    card.locator("button").click()
    expect(page.locator("[data-lines] tr")).to_have_count(1)
    expect(page.locator("[data-lines] .level")).to_have_text("甲类")
    expect(page.locator("#bill [data-parts] [data-part=total] dd")).to_have_text("¥3000.00")
    shown_cash = page.locator("#bill [data-parts] [data-part=cash] dd").inner_text()
    expect(page.locator("[data-pay]")).to_contain_text(shown_cash)
    page.screenshot(path=str(stack["tmp"] / "bills-375.png"), full_page=True)
    assert wallet(stack, CHILD.psn_no) == before  # shown, not paid

    reached = []

    def lose_the_answer(route) -> None:  # the request reaches the server, which pays; its answer never arrives
        request = route.request
        reached.append(httpx.post(request.url, content=request.post_data_buffer, timeout=30, headers={
            k: v for k, v in request.headers.items() if k.lower().startswith(("x-", "content-type"))}).status_code)
        route.abort("internetdisconnected")

    page.route("**/pay", lose_the_answer)
    page.click("[data-pay]")
    expect(page.locator("#result [data-result-title]")).to_be_visible()  # (its words are in the page from the start)
    expect(page.locator("[data-result-title]")).to_have_text("缴费成功")
    page.unroute("**/pay")
    assert reached == [200]
    deadline = time.monotonic() + 10
    while wallet(stack, CHILD.psn_no) == before and time.monotonic() < deadline:
        time.sleep(0.1)  # the aborted request's own answer may still be on its way when the page already knows
    cash = before - wallet(stack, CHILD.psn_no)
    assert f"¥{format_yuan(cash)}" == shown_cash
    expect(page.locator("#result [data-parts] [data-part=cash] dd")).to_have_text(shown_cash)
    page.reload()  # nothing remembered is paid again; the visit is no longer due
    expect(page.locator("[data-status]")).not_to_have_text("正在查询…")
    expect(page.locator(f"[data-open='{mdtrt_id}']")).to_have_count(0)
    assert before - wallet(stack, CHILD.psn_no) == cash
    assert count(stack, SettlementRow, SettlementRow.mdtrt_id == mdtrt_id) == 1


def test_account_page_signs_in_links_this_device_and_signs_out(stack, page: Page) -> None:
    """我的 at 375 px: a wrong number is named next to its field; the texted code signs in; the session cookie is
    httpOnly and SameSite=Strict; this device's e-certificate links its person; signing out shows the sign-in form
    again and the old cookie opens nothing."""
    page.set_viewport_size({"width": 375, "height": 812})
    activate(page, stack, EMP)
    phone = "13800000021"
    page.click("nav a[href^='/m/account']")
    expect(page.locator("#sign-in")).to_be_visible()
    page.fill("#phone", "1380000")
    page.click("#phone-form button[type=submit]")
    expect(page.locator("#phone-error")).to_have_text("请输入 11 位手机号。")
    expect(page.locator("#phone")).to_have_attribute("aria-invalid", "true")
    page.fill("#phone", phone)
    page.click("#phone-form button[type=submit]")
    expect(page.locator("#code-form [data-sent]")).to_contain_text("138****0021")
    code = texted_code(stack["base"], phone)
    page.fill("#code", f"{(int(code) + 1) % 10**6:06d}")
    page.click("#code-form button[type=submit]")
    expect(page.locator("#code-error")).to_be_visible()
    page.fill("#code", code)
    page.click("#code-form button[type=submit]")
    expect(page.locator("[data-phone]")).to_have_text("已登录：138****0021")
    cookie = next(c for c in page.context.cookies() if c["name"] == "medpay_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # no script on the page can read it
    expect(page.locator("[data-sessions] li")).to_have_count(1)
    expect(page.locator("[data-sessions] .tag")).to_have_text("本设备")
    page.click("[data-link]")
    expect(page.locator("[data-persons] li")).to_have_count(1)
    expect(page.locator("[data-persons] .tag")).to_have_text("本人")
    expect(page.locator("[data-link]")).to_be_hidden()
    page.screenshot(path=str(stack["tmp"] / "account-375.png"), full_page=True)
    page.click("[data-sign-out]")
    expect(page.locator("#sign-in")).to_be_visible()
    r = httpx.get(f"{stack['base']}/api/v1/mobile/account", timeout=10,
                  headers={"cookie": f"medpay_session={cookie['value']}"})
    assert r.status_code == 401


def sign_in(page: Page, stack, phone: str) -> None:
    """我的: sign in with the code the SMS simulator "texted" to ``phone``; then link this device's person."""
    page.goto(f"{stack['base']}/m/account")
    since = httpx.get(f"{stack['base'].sms}/sim/messages", params={"to": phone}).json()["messages"]
    page.fill("#phone", phone)
    page.click("#phone-form button[type=submit]")
    expect(page.locator("#code-form")).to_be_visible()
    page.fill("#code", texted_code(stack["base"], phone, since[-1]["seq"] if since else 0))
    page.click("#code-form button[type=submit]")
    expect(page.locator("[data-phone]")).to_be_visible()
    if page.locator("[data-link]").is_visible():
        page.click("[data-link]")
        expect(page.locator("[data-persons] .tag").first).to_have_text("本人")


def test_a_son_adds_his_mother_she_consents_on_her_phone_and_he_pays_her_bill(stack, browser: Browser) -> None:
    """家庭共济 at 375 px with two phones: the son asks to act for his mother, she consents on her own phone (signed
    in with her own number); he chooses her on his bills page and pays her bill — his personal account pays the
    family-aid part and his wallet the cash, hers is untouched. Her withdrawal takes effect at once."""
    son_person, mother_person = demo.PERSONS[2], demo.PERSONS[4]  # 张伟 (employee), 陈桂兰 (resident)
    phones = [browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, locale="zh-CN", timezone_id="Asia/Shanghai") for _ in range(2)]
    son, mother = (c.new_page() for c in phones)
    try:
        activate(mother, stack, mother_person)
        token = scan_text(stack, shown_code(mother))["data"]["ecToken"]  # her code at the window: the HIS bills her
        mdtrt_id = his_bill(stack, token, mother_person, "12000.00")
        sign_in(mother, stack, mother_person.phone)

        activate(son, stack, son_person)
        sign_in(son, stack, son_person.phone)
        son.fill("#member_psn_no", mother_person.psn_no)
        son.fill("#member_certno", mother_person.certno)
        son.select_option("#relation", "parent")
        son.check("#as_guardian")  # a guardian acts for minors only: refused, named next to the box
        son.click("#family-form button[type=submit]")
        expect(son.locator("#as_guardian-error")).to_contain_text("18")
        son.uncheck("#as_guardian")
        son.click("#family-form button[type=submit]")
        expect(son.locator("[data-persons] li")).to_have_count(2)
        expect(son.locator("[data-persons] li").nth(1)).to_contain_text("待对方同意")

        mother.reload()
        request = mother.locator("[data-requests] li")
        expect(request).to_contain_text("您的子女")
        request.locator("button", has_text="同意").first.click()
        expect(request.locator("button", has_text="撤回同意")).to_be_visible()
        expect(request.locator("button")).to_have_count(1)
        mother.screenshot(path=str(stack["tmp"] / "family-consent-375.png"), full_page=True)

        son.goto(f"{stack['base']}/m/bills")
        son.select_option("#whom", mother_person.psn_no)
        card = son.locator("li.visit", has=son.locator(f"[data-open='{mdtrt_id}']"))
        card.locator("button").click()
        expect(son.locator("#bill [data-parts] [data-part=total] dd")).to_have_text("¥12000.00")
        son.screenshot(path=str(stack["tmp"] / "family-bill-375.png"), full_page=True)
        shown_cash = son.locator("#bill [data-parts] [data-part=cash] dd").inner_text()
        son_before, mother_before = wallet(stack, son_person.psn_no), wallet(stack, mother_person.psn_no)
        son.click("[data-pay]")
        expect(son.locator("#result [data-result-title]")).to_be_visible()
        expect(son.locator("[data-result-title]")).to_have_text("缴费成功")
        expect(son.locator("#result [data-parts] [data-part=family]")).to_have_count(1)  # his account paid for her
        deadline = time.monotonic() + 10
        while wallet(stack, son_person.psn_no) == son_before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f"¥{format_yuan(son_before - wallet(stack, son_person.psn_no))}" == shown_cash
        assert wallet(stack, mother_person.psn_no) == mother_before

        # he shows her code at the window for her (家庭代办): the terminal reads her, not him
        son.goto(f"{stack['base']}/m/")
        own = shown_code(son)
        son.select_option("#whom", mother_person.psn_no)
        shown, deadline = own, time.monotonic() + 10
        while shown == own and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                shown = shown_code(son)
            except PlaywrightError:  # replaced by the new code while being read
                continue
        assert scan_text(stack, shown)["data"]["userName"].startswith(mother_person.psn_name[0])

        mother.reload()
        mother.locator("[data-requests] li button", has_text="撤回同意").click()
        expect(mother.locator("[data-requests-card]")).to_be_hidden()
        son.goto(f"{stack['base']}/m/bills")  # at once: her bills are no longer his to choose
        expect(son.locator("[data-status]")).not_to_have_text("正在查询…")
        expect(son.locator("[data-whom]")).to_be_hidden()
        son.goto(f"{stack['base']}/m/")  # nor her code
        expect(son.locator("[data-whom]")).to_be_hidden()
    finally:
        for c in phones:
            c.close()


def test_every_page_passes_axe_and_large_text_mode_carries_over(stack, page: Page) -> None:
    """Accessibility: axe-core finds no serious or critical violation on any page of the app — before activation,
    activated, signed in, and in large-text mode (适老化), which the header switches and the next page keeps."""
    page.set_viewport_size({"width": 375, "height": 812})
    pages = ["/m/", "/m/book", "/m/bills", "/m/stay", "/m/pay", "/m/face", "/m/account", "/m/records", "/m/verify", "/m/activate",
             "/m/activate?lang=en"]
    for path in pages:  # a fresh phone: nothing activated yet
        page.goto(f"{stack['base']}{path}")
        page.wait_for_load_state("networkidle")
        assert serious_violations(page) == [], path
    activate(page, stack, EMP)
    sign_in(page, stack, EMP.phone)
    for path in pages:
        page.goto(f"{stack['base']}{path}")
        page.wait_for_load_state("networkidle")
        assert serious_violations(page) == [], path
    page.goto(f"{stack['base']}/m/account")
    page.click("[data-large-text]")
    expect(page.locator("[data-large-text]")).to_have_attribute("aria-pressed", "true")
    page.click("nav a[href^='/m/bills']")  # the next page keeps it
    expect(page.locator("[data-large-text]")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "22px"
    page.wait_for_load_state("networkidle")
    assert serious_violations(page) == []
    page.screenshot(path=str(stack["tmp"] / "bills-large-text-375.png"), full_page=True)
    page.goto(f"{stack['base']}/m/account?lang=en")  # the longest header: English, large text, 375 px
    page.wait_for_load_state("networkidle")
    assert serious_violations(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing spills sideways
    page.click("[data-large-text]")
    expect(page.locator("[data-large-text]")).to_have_attribute("aria-pressed", "false")
    assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "17px"


def test_records_page_lists_the_payment_and_its_slip_checks_out(stack, page: Page) -> None:
    """报销记录 at 375 px: a bill paid in the app is listed with its split; the slip downloads as a PDF whose QR code,
    read from the PDF, opens the check page, which says the slip is genuine."""
    page.set_viewport_size({"width": 375, "height": 812})
    activate(page, stack, EMP)
    mdtrt_id = his_bill(stack, scan_text(stack, shown_code(page))["data"]["ecToken"], EMP, "180.00")
    page.click("nav a[href^='/m/bills']")
    page.locator(f"[data-open='{mdtrt_id}']").click()
    expect(page.locator("#bill [data-parts] [data-part=total] dd")).to_have_text("¥180.00")  # the bill is shown
    page.click("[data-pay]")
    # wait for the answer itself: the title's words are in the page from the start, and leaving the page before the
    # answer came would race the records against the payment
    expect(page.locator("#result [data-result-title]")).to_be_visible()
    expect(page.locator("[data-result-title]")).to_have_text("缴费成功")
    page.goto(f"{stack['base']}/m/records")
    record = page.locator("li.record").first
    expect(record.locator(".amount")).to_have_text("¥180.00")
    expect(record.locator(".tag")).to_have_text("已结算")
    expect(page.locator("[data-notice-list] li[data-notice=settled]").first).to_contain_text("演示市第一人民医院结算 ¥180.00")
    page.screenshot(path=str(stack["tmp"] / "records-375.png"), full_page=True)
    with page.expect_download() as info:
        record.locator("[data-slip]").click()
    body = Path(info.value.path()).read_bytes()
    assert body[:5] == b"%PDF-" and info.value.suggested_filename.startswith("slip-")
    [image] = PdfReader(io.BytesIO(body)).pages[0].images
    page.goto(qr_images.decode(image.data))
    expect(page.locator("[data-verdict]")).to_have_text("真实有效：本结算单由平台签发，金额与平台记录一致。")
    assert serious_violations(page) == []
    page.screenshot(path=str(stack["tmp"] / "verify-375.png"), full_page=True)


def test_booking_page_books_a_slot_shows_the_number_and_cancels_with_a_refund(stack, page: Page) -> None:
    """预约挂号 at 375 px: the demo hospitals' week of slots, filtered by hospital and department; booking settles
    the fee at once (a double tap books once) and shows the queue number; the HIS is told; cancelling refunds."""
    page.set_viewport_size({"width": 375, "height": 812})
    resident = demo.PERSONS[4]  # no personal account: the fee's cash part goes through the wallet
    activate(page, stack, resident)
    before = wallet(stack, resident.psn_no)
    stack["his"].clear()
    page.click("nav a[href^='/m/book']")
    expect(page.locator("[data-slots] li").first).to_be_visible()
    page.select_option("#inst", H1[0])
    page.select_option("#dept", "EK")
    tomorrow = page.locator("#day option").nth(2).get_attribute("value")  # after 全部 and the first day listed
    page.select_option("#day", tomorrow)
    cards = page.locator("[data-slots] li")
    expect(cards).to_have_count(2)  # the morning and the afternoon
    assert all("儿科" in c for c in cards.all_inner_texts())
    first = cards.nth(0)
    slot_id = first.get_attribute("data-slot")
    left = first.inner_text()
    page.screenshot(path=str(stack["tmp"] / "book-375.png"), full_page=True)
    first.locator("button").dblclick()  # a double tap books once
    expect(page.locator("[data-done]")).to_contain_text("预约成功：就诊序号")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    mine = page.locator("[data-mine] li")
    expect(mine).to_have_count(1)
    expect(mine.first).to_contain_text("已预约")
    assert page.locator(f"[data-slot='{slot_id}']").inner_text() != left  # one seat fewer
    charged = before - wallet(stack, resident.psn_no)
    assert charged > 0
    events = [json.loads(c.body) for c in stack["his"].wait_for(2, timeout=10)]
    assert [e["event"] for e in events if "event" in e] == ["booking.created"]
    page.screenshot(path=str(stack["tmp"] / "book-done-375.png"), full_page=True)
    mine.first.locator("button").click()
    expect(page.locator("[data-done]")).to_have_text("已取消预约，挂号费已原路退回。")
    expect(page.locator("[data-mine] li")).to_have_count(0)
    assert wallet(stack, resident.psn_no) == before


def test_stay_page_tops_up_the_deposit_asks_for_discharge_and_shows_the_refund(stack, page: Page) -> None:
    """住院 at 375 px: the balance against the fees so far; a top-up whose answer is lost is paid once (the page sends
    the same request id again); the discharge request reaches the HIS; after its 2402 and 2304 the page shows the
    settlement and the unused deposit back in the wallet."""
    page.set_viewport_size({"width": 375, "height": 812})
    resident = demo.PERSONS[4]
    activate(page, stack, resident)
    mdtrt_id = his_admission(stack, resident, days=5)
    before = wallet(stack, resident.psn_no)
    page.goto(f"{stack['base']}/m/stay")
    card = page.locator(f"[data-stay='{mdtrt_id}']")
    expect(card.locator("[data-fees]")).to_have_text("¥300.00")
    expect(card.locator("[data-low]")).to_be_visible()  # no deposit yet: the share isn't covered
    card.locator("[data-amount]").fill("1.234")
    card.locator("[data-pay]").click()
    expect(card.locator("[data-error-for=amount]")).to_be_visible()  # next to the field it names
    assert wallet(stack, resident.psn_no) == before

    lost = []

    def lose_the_answer(route) -> None:  # the server takes the payment; the phone never hears back
        request = route.request
        lost.append(httpx.post(request.url, content=request.post_data_buffer, timeout=30, headers={
            k: v for k, v in request.headers.items() if k.lower().startswith(("x-", "content-type"))}).status_code)
        route.abort("internetdisconnected")

    page.route("**/deposits", lose_the_answer)
    card.locator("[data-amount]").fill("1000.00")
    card.locator("[data-pay]").click()
    expect(card.locator("[data-error-for='*']")).to_be_visible()
    page.unroute("**/deposits")
    assert lost == [200] and before - wallet(stack, resident.psn_no) == 100000
    card.locator("[data-pay]").click()  # tried again: the same request id, so the same payment
    expect(page.locator("[data-done]")).to_have_text("已补缴押金 ¥1000.00。")
    assert before - wallet(stack, resident.psn_no) == 100000
    expect(card.locator("[data-deposit]")).to_have_text("¥1000.00")
    expect(card.locator("[data-low]")).to_be_hidden()
    page.screenshot(path=str(stack["tmp"] / "stay-375.png"), full_page=True)

    stack["his"].clear()
    card.locator("[data-discharge]").click()
    expect(card.locator("[data-requested]")).to_be_visible()
    notes = [json.loads(c.body) for c in stack["his"].wait_for(1, timeout=10)]
    assert notes[0]["event"] == "discharge.requested" and notes[0]["mdtrtId"] == mdtrt_id
    his = his_client(stack)
    his.discharge({"mdtrt_id": mdtrt_id, "psn_no": resident.psn_no, "insutype": resident.insutype,
                   "endtime": local_now(), "dscg_way": "1"})
    setl = fen(his.settle_inpatient(resident.psn_no, mdtrt_id, "300.00", insutype=resident.insutype,
                                    mdtrt_cert_type="02", mdtrt_cert_no=resident.certno,
                                    acct_used_flag="0").output["setlinfo"])
    page.reload()
    expect(card.locator("[data-state]")).to_have_text("已结算")
    expect(card.locator("[data-f-refund]")).to_have_text(f"¥{format_yuan(setl['deposit_refund'])}")
    assert before - wallet(stack, resident.psn_no) == setl["psn_cash_pay"]
    expect(card.locator("[data-top-up]")).to_be_hidden()
    page.screenshot(path=str(stack["tmp"] / "stay-settled-375.png"), full_page=True)


def test_account_page_exports_my_data_and_deletes_what_the_app_made(stack, page: Page) -> None:
    """我的数据 at 375 px: the export downloads the person's own data as JSON; the deletion request says what is
    erased and what is kept, needs the tick, and leaves this device without its e-certificate."""
    page.set_viewport_size({"width": 375, "height": 812})
    retiree = demo.PERSONS[1]
    activate(page, stack, retiree)
    sign_in(page, stack, retiree.phone)
    card = page.locator("[data-my-data]")
    expect(card).to_be_visible()
    with page.expect_download() as download:
        card.locator("#export-form button").click()
    doc = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert doc["psn_no"] == retiree.psn_no and doc["person"]["psn_name"] == retiree.psn_name
    expect(card.locator("#deletion-form")).to_contain_text("15 年")  # what is kept, said plainly
    page.screenshot(path=str(stack["tmp"] / "my-data-375.png"), full_page=True)
    card.locator("#deletion-form button").click()
    expect(card.locator("[data-error-for=confirm]")).to_have_text("请先勾选确认。")
    card.locator("#deletion-confirm").check()
    page.once("dialog", lambda d: d.accept())
    card.locator("#deletion-form button").click()
    page.wait_for_url("**/m/activate**")
    assert count(stack, EcertRow, EcertRow.psn_no == retiree.psn_no, EcertRow.status == "active") == 0
