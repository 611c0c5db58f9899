"""The OpenAPI docs page in a real browser with no way out to the internet: /docs (Swagger UI) comes from files
the package serves, and shows the institution interface's transactions with their examples."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect, sync_playwright

from tests.helpers_browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers_server import backend_server


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory):
    yield from backend_server("sqlite", tmp_path_factory.mktemp("docs"))


@pytest.fixture
def offline_page(base: str):
    """A page that may reach the platform and nothing else; every request elsewhere is refused and listed."""
    elsewhere: list[str] = []

    def only_the_platform(route: Route) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(base).netloc:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route("**/*", only_the_platform)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        browser.close()
    assert elsewhere == []  # nothing was fetched from a CDN
    assert errors == []


def test_swagger_ui_shows_every_transaction_with_its_example_offline(base: str, offline_page: Page) -> None:
    page = offline_page
    page.goto(f"{base}/docs")
    settle = page.locator('[id^="operations-institution-infno_2207_"]')
    expect(settle).to_be_visible(timeout=15_000)
    expect(settle).to_contain_text("/fsi/api/outpatientSettleService/saveSettletmentV2")
    expect(page.get_by_text("统一交易入口 / all transactions, chosen by infno")).to_be_visible()
    settle.locator(".opblock-summary").click()
    body = settle.locator(".body-param__example, .microlight, .highlight-code").first
    expect(body).to_contain_text('"infno": "2207"')

