"""The chat page's details panel shows the signed-in account's limits, what is used and
what is left, and updates after an answer (headless Chromium, real daphne, fake vendor)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from llmplatform.core.models import AccountLimits

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "s3cret-pass-123"


@pytest.fixture
def limited_user(vendor_settings):
    user = get_user_model().objects.create_user("erin", password=PASSWORD)
    AccountLimits.objects.create(user=user, requests_per_minute=5, tokens_per_day=100_000)
    return user


def test_the_details_panel_shows_the_accounts_limits(live_daphne, fakes, limited_user, browser):
    base_url = live_daphne.url
    page = browser.page
    page.goto(f"{base_url}/")
    page.get_by_label("Username").fill("erin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/")
    page.wait_for_selector("#connection[data-state=open]")
    page.locator("#details-panel summary").click()

    per_minute = page.locator("#limits dd[data-limit=requests_per_minute]")
    per_minute.wait_for()
    assert per_minute.text_content() == "0 of 5 used, 5 left"
    assert (
        page.locator("#limits dd[data-limit=usd_per_month]")
        .text_content()
        .endswith("used (no limit)")
    )
    assert page.locator("#limits dd[data-limit=storage_mb]").is_visible()

    page.get_by_label("Your question").fill("Hello")
    page.get_by_label("Your question").press("Enter")
    expect(per_minute).to_have_text("1 of 5 used, 4 left", timeout=30_000)
    tokens = page.locator("#limits dd[data-limit=tokens_per_day]").text_content()
    assert tokens.endswith("of 100000 used, " + str(100_000 - int(tokens.split()[0])) + " left")
    assert int(tokens.split()[0]) > 0
