"""Regenerate and edit-and-resend keep the earlier answers as alternatives of one turn
(#21), in headless Chromium against a real daphne, Celery worker and fake vendors: the
new answer takes the turn's place with a k/n pager, the earlier ones stay one click
away, a reload shows the same, and the next question continues from the newest."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from queries.models import Query
from tests.fakes.server import echo_reply_text
from tests.ui.test_chat_browser import PASSWORD, SCREENSHOTS, log_in, record_sent_frames
from tests.ui.test_chat_conversations import in_thread, use_openai
from tests.ui.test_chat_documents import ask_and_wait

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def chat_user(vendor_settings):
    # Before the browser starts: see the browser fixture.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return get_user_model().objects.create_user("dana", password=PASSWORD)


def visible_turns(page) -> list[str]:
    return page.locator("#transcript article.turn:not([hidden]) .question-text").all_text_contents()


def position(page) -> str:
    return page.locator(
        "#transcript article.turn:not([hidden]) .alternatives .position"
    ).text_content()


def wait_for_turns(page, count: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('#transcript article.turn').length === n"
        " && !document.querySelector('#transcript .turn.streaming')",
        arg=count,
        timeout=60_000,
    )


def test_regenerate_and_edit_keep_alternatives_and_the_conversation_follows_the_newest(
    live_daphne, fakes, chat_user, browser
):
    page = browser.page
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    use_openai(page)
    ask_and_wait(page, "Name a colour")
    ask_and_wait(page, "Name a fruit")
    fruit = in_thread(lambda: Query.objects.get(query="Name a fruit"))

    page.get_by_role("button", name="Regenerate").last.click()
    wait_for_turns(page, 3)
    assert sent[-1]["alternative_of"] == str(fruit.pk)
    assert visible_turns(page) == ["Name a colour", "Name a fruit"]  # not a new turn
    assert position(page) == "2/2"

    page.get_by_role("button", name="Previous answer").click()
    assert position(page) == "1/2"
    page.get_by_role("button", name="Next answer").click()
    assert position(page) == "2/2"

    # Edit the question and resend: a third alternative, with its own question.
    page.locator("#transcript article.turn:not([hidden])").last.get_by_role(
        "button", name="Edit question"
    ).click()
    editor = page.get_by_label("Edit your question")
    assert editor.input_value() == "Name a fruit"
    editor.fill("Name a vegetable")
    editor.press("Enter")
    wait_for_turns(page, 4)
    assert sent[-1]["query"] == "Name a vegetable"
    assert sent[-1]["alternative_of"] == str(fruit.pk)
    assert visible_turns(page) == ["Name a colour", "Name a vegetable"]
    assert position(page) == "3/3"
    answer = page.locator("#transcript article.turn:not([hidden]) .answer-text").last
    assert answer.text_content() == echo_reply_text("Name a vegetable")

    page.reload()
    page.wait_for_selector("#connection[data-state=open]")
    page.wait_for_function("() => document.querySelectorAll('#transcript .turn').length === 4")
    assert visible_turns(page) == ["Name a colour", "Name a vegetable"]
    assert position(page) == "3/3"
    page.get_by_role("button", name="Previous answer").click()
    page.get_by_role("button", name="Previous answer").click()
    assert visible_turns(page) == ["Name a colour", "Name a fruit"] and position(page) == "1/3"

    # The conversation goes on from the newest alternative (the turns sent after the
    # system prompt; the reload put memory back to this conversation's).
    ask_and_wait(page, "And one more")
    turns = json.dumps(fakes["openai"].chat_requests[-1].body["messages"][1:])
    assert "Name a vegetable" in turns and "Name a fruit" not in turns
