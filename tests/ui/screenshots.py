"""Screenshots of the chat UI's main views for the README (docs/screenshots/), at 1280 px
(light) and 390 px (a phone, dark), taken by headless Chromium against a real daphne
with a stored conversation. Not part of the test run (the file name does not start
with ``test_``); take them again with ``make screenshots`` after the page changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.conftest import Browser, _browser
from tests.ui.test_chat_accessibility import SHARE_TOKEN, answered  # noqa: F401 (a fixture)
from tests.ui.test_chat_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WIDE = {"viewport": {"width": 1280, "height": 800}, "color_scheme": "light"}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "color_scheme": "dark",
}


@pytest.fixture(params=[("1280", WIDE), ("390", PHONE)], ids=["1280", "390"])
def sized(request) -> Iterator[tuple[str, Browser]]:
    width, options = request.param
    for browser in _browser(**options):
        yield width, browser


def test_take_screenshots(live_daphne, answered, sized):  # noqa: F811 (the fixture)
    width, browser = sized
    page = browser.page
    OUT.mkdir(parents=True, exist_ok=True)

    page.goto(f"{live_daphne.url}/login/")
    page.screenshot(path=str(OUT / f"login-{width}.png"))

    log_in(page, live_daphne.url)
    page.screenshot(path=str(OUT / f"new-chat-{width}.png"))
    if width == "390":
        page.get_by_role("button", name="Conversations & settings").click()
        page.screenshot(path=str(OUT / f"drawer-{width}.png"))
    page.get_by_role("button", name="How long do refunds take?", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('#transcript .turn').length === 2")
    page.get_by_role("button", name="Previous answer").click()
    page.locator(".also-searched summary").click()
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(OUT / f"conversation-{width}.png"))

    page.goto(f"{live_daphne.url}/share/{SHARE_TOKEN}")
    page.screenshot(path=str(OUT / f"shared-{width}.png"))
