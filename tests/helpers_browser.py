"""Debian's Chromium for Playwright (scripts/ensure-chromium installs it; Playwright's own download is not to be had),
and the mobile app's activation as a person does it in the page (the app's pages and the face pages share it)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.helpers_qr import EMP
from tests.helpers_server import texted_code

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def activate(page: Page, stack, person=EMP, lang: str = "zh") -> None:
    page.goto(f"{stack['base']}/m/activate?lang={lang}")
    page.fill("#psn_no", person.psn_no)
    page.fill("#certno", person.certno)
    page.check("#consent")
    enter_texted_code(page, stack, person)
    page.wait_for_url(re.compile(r"/m/\?lang="))
    page.wait_for_selector("[data-qr] svg")


def enter_texted_code(page: Page, stack, person) -> None:
    """Ask for the code, read it off the SMS simulator (the person's phone) and enter it."""
    since = texted(stack, person)
    page.click("#activate button[type=submit]")
    expect(page.locator("#confirm")).to_be_visible()
    page.fill("#code", texted_code(stack["base"], person.phone, since))
    page.click("#confirm button[type=submit]")


def texted(stack, person) -> int:
    """How many messages the phone got so far (a later code is one after these)."""
    messages = httpx.get(f"{stack['base'].sms}/sim/messages", params={"to": person.phone}).json()["messages"]
    return messages[-1]["seq"] if messages else 0


AXE = Path(__file__).resolve().parents[1] / "var" / "test-tools" / "node_modules" / "axe-core" / "axe.min.js"


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it stands (scripts/ensure-axe fetches axe from npm;
    it is evaluated in the page, which the pages' CSP does not govern), each as "rule: target …"."""
    assert AXE.exists(), "run scripts/ensure-axe (make test does)"
    found = page.evaluate(AXE.read_text() + """
        ;axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations
            .filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => `${v.id}: ${v.nodes.map(n => n.target.join(" ")).join(", ")}`))""")
    return found
