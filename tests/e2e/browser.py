"""The Dagster UI in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright;
no browser is downloaded)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


MISSING = "Chromium is not installed (apt-get install -y chromium)"


def find_chromium() -> str | None:
    """The Chromium executable; absent, the UI check is skipped loudly (and CI=true fails)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if IN_CI:
        pytest.fail(f"{MISSING}; CI=true requires the UI check", pytrace=False)
    return None


@dataclass
class Page:
    text: str
    html: str
    screenshot: Path


def render(
    executable: str,
    url: str,
    screenshot: Path,
    *,
    wait_for_text: list[str],
    timeout: float = 90,
) -> Page:
    """Open `url`, wait until every string of `wait_for_text` is on the page, screenshot it."""
    from playwright.sync_api import expect, sync_playwright

    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
            for text in wait_for_text:
                # The asset graph draws its nodes once the GraphQL answers arrive.
                page.get_by_text(text, exact=True).first.wait_for(timeout=timeout * 1000)
            # Then each node fills in its status ("Loading…" until then).
            expect(page.get_by_text("Loading...", exact=True)).to_have_count(
                0, timeout=timeout * 1000
            )
            page.screenshot(path=str(screenshot))
            return Page(page.inner_text("body"), page.content(), screenshot)
        finally:
            browser.close()
