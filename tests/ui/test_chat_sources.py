"""Sources say what an answer relied on (#21), in headless Chromium against a real
daphne: the passages the answer cites ([n]) are listed as its sources, the others it
was shown are folded under "Also searched", and the Markdown export says the same."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from queries.models import Query
from sessions.models import Session
from tests.ui.test_chat_browser import PASSWORD, SCREENSHOTS, log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FILE_ID = "6650f0c2a1b2c3d4e5f60718"


@pytest.fixture
def chat_user(vendor_settings):
    # Before the browser starts: see the browser fixture.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return get_user_model().objects.create_user("dana", password=PASSWORD)


def passage(page: int, snippet: str, *, cited: bool) -> dict:
    return {
        "type": "document",
        "file_id": FILE_ID,
        "title": "handbook.pdf",
        "page": page,
        "snippet": snippet,
        "url": f"/api/v1/files/{FILE_ID}/content",
        "cited": cited,
    }


@pytest.fixture
def answered(chat_user):
    Session.objects.create(owner=chat_user, session_id="c-refund", user_id="dana")
    return Query.objects.create(
        owner=chat_user,
        user_id="dana",
        session_id="c-refund",
        query="How long do refunds take?",
        response="Refunds are paid within 30 days [2].",
        status="completed",
        model_provider="openai",
        model_name="gpt-4o-mini",
        citations=[
            passage(7, "Refunds are paid within 30 days of a return.", cited=True),
            passage(3, "Returns need the receipt.", cited=False),
        ],
    )


def test_cited_passages_are_the_sources_and_the_rest_are_folded(live_daphne, answered, browser):
    page = browser.page
    log_in(page, live_daphne.url)
    page.get_by_role("button", name="How long do refunds take?", exact=True).click()
    turn = page.locator("#transcript .turn").last
    turn.locator(".sources").wait_for()
    relied = turn.locator(".sources > ol.citations > li")
    assert relied.count() == 1 and "page 7" in relied.first.text_content()
    folded = turn.locator(".sources details.also-searched")
    assert folded.locator("summary").text_content() == "Also searched (1 passage)"
    searched = folded.locator("li")
    assert not searched.first.is_visible()  # folded until asked for
    folded.locator("summary").click()
    assert searched.first.is_visible() and "page 3" in searched.first.text_content()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export Markdown").click()
    markdown = download_info.value.path().read_text()
    sources, also = markdown.split("Sources:")[1].split("Also searched:")
    assert "handbook.pdf" in sources and "handbook.pdf" in also
