"""The chat page's memory options say what the server does (#21), in headless Chromium
against a real daphne, Celery worker and fake vendors: *This conversation* sends the
vendor nothing of another conversation, *All my conversations* recalls it, *Off* sends
no earlier turn at all."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests.ui.test_chat_browser import PASSWORD, SCREENSHOTS, log_in, record_sent_frames
from tests.ui.test_chat_documents import ask_and_wait, vendor_prompts_since

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ELSEWHERE = "How do I reset the admin password of my wifi router?"
HERE = "Which admin password did the technician set on my router?"
FOLLOW_UP = "I forgot my router's admin password, what now?"


@pytest.fixture
def chat_user(vendor_settings):
    # Before the browser starts: see the browser fixture.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return get_user_model().objects.create_user("dana", password=PASSWORD)


def memory(page, label: str) -> None:
    page.get_by_role("radio", name=label, exact=True).check()


def test_memory_of_this_conversation_all_conversations_and_off(
    live_daphne, fakes, chat_user, browser
):
    page = browser.page
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    page.get_by_label("Provider").select_option("openai")
    # The default says what it does: this conversation only.
    assert page.get_by_role("radio", name="This conversation", exact=True).is_checked()

    ask_and_wait(page, ELSEWHERE)
    page.get_by_role("button", name="New conversation").click()
    ask_and_wait(page, HERE)
    assert sent[-1]["use_memory"] is True and sent[-1]["memory_scope"] == "session"

    before = len(fakes["openai"].chat_requests)
    ask_and_wait(page, FOLLOW_UP)
    prompt = vendor_prompts_since(fakes["openai"], before)
    assert "technician" in prompt
    assert "reset the admin password of my wifi router" not in prompt

    memory(page, "All my conversations")
    before = len(fakes["openai"].chat_requests)
    ask_and_wait(page, FOLLOW_UP)
    assert sent[-1]["use_memory"] is True and sent[-1]["memory_scope"] == "user"
    assert "reset the admin password of my wifi router" in vendor_prompts_since(
        fakes["openai"], before
    )

    memory(page, "Off")
    before = len(fakes["openai"].chat_requests)
    ask_and_wait(page, FOLLOW_UP)
    assert sent[-1]["use_memory"] is False
    prompt = vendor_prompts_since(fakes["openai"], before)
    assert "technician" not in prompt and "reset the admin password" not in prompt
