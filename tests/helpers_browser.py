"""Debian's Chromium for Playwright (scripts/ensure-chromium installs it; Playwright's own download is not to be had)."""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
