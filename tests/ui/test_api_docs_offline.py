"""ReDoc (/redoc) and Swagger UI (/docs) work offline: every request stays on the server's
origin and the browser console stays clean (no Google Fonts, no Redocly logo from its
CDN, no Swagger validator badge)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _load(browser, url: str) -> tuple[list[str], list[str]]:
    """Open ``url``; returns (console errors, URLs requested off the page's origin)."""
    page = browser.page
    errors: list[str] = []
    elsewhere: list[str] = []
    origin = urlsplit(url).netloc
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))

    def record(request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme not in ("data", "blob") and parts.netloc != origin:
            elsewhere.append(request.url)

    page.on("request", record)
    page.goto(url, wait_until="networkidle")
    return errors, elsewhere


def test_redoc_loads_nothing_from_the_internet(live_daphne_in_process, browser):
    errors, elsewhere = _load(browser, f"{live_daphne_in_process.url}/redoc")
    page = browser.page
    # ReDoc rendered the schema: its menu lists the API's operations.
    page.get_by_role("menuitem").first.wait_for()
    # Its sidebar footer is there, without Redocly's logo (fetched from its CDN otherwise).
    page.get_by_text("API docs by Redocly").wait_for()
    page.wait_for_load_state("networkidle")
    assert elsewhere == [] and browser.blocked == [], elsewhere or browser.blocked
    assert errors == []


def test_swagger_ui_loads_nothing_from_the_internet(live_daphne_in_process, browser):
    errors, elsewhere = _load(browser, f"{live_daphne_in_process.url}/docs")
    page = browser.page
    page.locator(".opblock").first.wait_for()  # the operations are listed
    # Swagger UI asks validator.swagger.io about the schema whenever it is served from a
    # host other than localhost: that must be off, not just unseen in this local test.
    assert page.evaluate("ui.getConfigs().validatorUrl") is None
    page.wait_for_load_state("networkidle")
    assert elsewhere == [] and browser.blocked == [], elsewhere or browser.blocked
    assert errors == []
