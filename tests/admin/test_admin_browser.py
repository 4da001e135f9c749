"""The operator console in headless Chromium: create and start an experiment, see charts."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from queries.models import Query

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page()
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture
def console_data(live_server, make_owner):
    # Set up before Playwright starts: its sync API runs an event loop in this thread,
    # and Django refuses ORM calls while one is running.
    get_user_model().objects.create_superuser("operator", "op@example.com", "s3cret-pass-123")
    owner, _ = make_owner("acme")
    Query.objects.create(
        owner=owner,
        user_id="u",
        session_id="s",
        query="q",
        model_provider="openai",
        model_name="gpt-4o-mini",
        status="completed",
        timestamp=timezone.now(),
        usage={"total_tokens": 30, "cost_usd": 0.01},
        latency={"total_ms": 250},
    )


def test_operator_creates_experiment_and_sees_charts(live_server, console_data, browser_page):
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "s3cret-pass-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#operator-dashboard-link")

    page.goto(f"{live_server.url}/admin/chat_sessions/experiment/add/")
    page.fill("#id_key", "model-test")
    page.fill("#id_name", "Model test")
    page.fill(
        "#id_variants",
        json.dumps(
            [
                {"name": "control", "weight": 50},
                {"name": "claude", "weight": 50, "overrides": {"model_provider": "anthropic"}},
            ]
        ),
    )
    page.click("input[name=_save]")
    page.wait_for_selector("text=was added successfully")

    page.check("input[name=_selected_action]")
    page.select_option("select[name=action]", "start_experiments")
    page.click("button[name=index]")
    page.wait_for_selector("text=model-test is running.")

    page.click('a[href$="/results/"]')
    page.wait_for_selector("#results-table")
    assert page.inner_text("#experiment-status") == "running"
    assert page.locator("tr[data-variant=claude]").count() == 1
    assert page.locator("section[data-chart=sessions] svg.chart rect.bar").count() == 2

    page.goto(f"{live_server.url}/admin/")
    page.click("#operator-dashboard-link a")
    page.wait_for_selector("svg.chart")
    assert page.locator("svg.chart").count() == 4
    # Today's bar holds the one query; the latency chart plotted its 250 ms.
    assert page.locator('section[data-chart=queries-per-day] rect.bar[data-value="1"]').count() == 1
    assert page.locator('circle.point[data-series=p50][data-value="250.0"]').count() == 1
    box = page.locator(
        'section[data-chart=queries-per-day] rect.bar[data-value="1"]'
    ).bounding_box()
    assert box is not None and box["height"] > 10
