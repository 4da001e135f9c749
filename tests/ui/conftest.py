"""The chat UI tests: headless Chromium. live_daphne, fakes and vendor_settings come from
the tests.live_services plugin (registered in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


@dataclass
class Browser:
    page: object
    blocked: list[str] = field(default_factory=list)  # off-machine URLs the page asked for


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A fresh headless Chromium page (Debian's chromium, never a downloaded browser).

    Requests that would leave the machine are refused and recorded: no test may reach
    the internet, and the page itself must load nothing from elsewhere.
    Request this fixture after every fixture that touches the database: Playwright's sync
    API runs an event loop in this thread, and Django refuses ORM calls while one runs.
    """
    yield from _browser(viewport={"width": 1200, "height": 900})


@pytest.fixture
def phone_browser() -> Iterator[Browser]:
    """As ``browser``, on a 390 px-wide phone screen (touch, device scale 3), in dark mode."""
    yield from _browser(
        viewport={"width": 390, "height": 844},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
        color_scheme="dark",
    )


def _browser(**context_options) -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        context = chromium.new_context(**context_options)
        # The copy buttons write to the clipboard; tests read it back.
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        result = Browser(page=None)

        def only_local(route):
            url = route.request.url
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob") or parts.hostname in LOCAL_HOSTS:
                route.continue_()
            else:
                result.blocked.append(url)
                route.abort()

        context.route("**/*", only_local)
        result.page = context.new_page()
        result.page.set_default_timeout(20_000)
        try:
            yield result
        finally:
            chromium.close()
