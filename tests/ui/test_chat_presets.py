"""Presets in the chat page (#21), in headless Chromium against a real daphne, Celery
worker and fake vendors: a preset saved from the settings panel is applied to a new
conversation, and the vendor receives its model, temperature and system prompt, with
its options on the question."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from tests.ui.test_chat_browser import PASSWORD, SCREENSHOTS, log_in, record_sent_frames
from tests.ui.test_chat_documents import ask_and_wait

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PIRATE = "Answer like a pirate, matey."


@pytest.fixture
def chat_user(vendor_settings):
    # Before the browser starts: see the browser fixture.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return get_user_model().objects.create_user("dana", password=PASSWORD)


def status_starts(page, text: str) -> None:
    page.wait_for_function(
        "t => document.getElementById('status').textContent.startsWith(t)", arg=text
    )


def test_a_saved_preset_applied_to_a_conversation_reaches_the_vendor(
    live_daphne, fakes, chat_user, browser
):
    page = browser.page
    openai = fakes["openai"]
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    options = page.locator("#conversation-model option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    picked = next(o for o in options if o.startswith("openai/") and o != "openai/gpt-4o-mini")
    page.get_by_label("Answered by").select_option(picked)
    page.get_by_label("Temperature", exact=False).fill("0.3")
    page.get_by_label("System prompt").fill(PIRATE)
    page.get_by_role("radio", name="All my conversations", exact=True).check()
    page.get_by_label("Web search").check()
    page.get_by_label("Save the current settings as").fill("Pirate")
    page.get_by_role("button", name="Save preset").click()
    status_starts(page, "Preset Pirate saved.")

    # A new conversation starts from the defaults; the preset survives a reload.
    page.reload()
    page.wait_for_selector("#connection[data-state=open]")
    page.get_by_role("button", name="New conversation").click()
    page.get_by_role("radio", name="Off", exact=True).check()
    page.get_by_label("Web search").uncheck()
    assert page.get_by_label("System prompt").input_value() == ""
    page.wait_for_function(
        "() => [...document.querySelectorAll('#preset-select option')]"
        ".some(o => o.textContent === 'Pirate')"
    )
    page.get_by_label("Saved presets").select_option(label="Pirate")
    page.get_by_role("button", name="Apply to this conversation").click()
    status_starts(page, "Preset Pirate applied to this conversation.")
    assert page.get_by_label("System prompt").input_value() == PIRATE
    assert page.get_by_label("Answered by").input_value() == picked
    assert page.get_by_role("radio", name="All my conversations", exact=True).is_checked()
    page.get_by_label("Web search").uncheck()  # the fake vendor's search is not the point

    asked = len(openai.chat_requests)
    ask_and_wait(page, "Where is the treasure?")
    assert sent[-1]["use_memory"] is True and sent[-1]["memory_scope"] == "user"
    with_prompt = [r.body for r in openai.chat_requests[asked:] if PIRATE in json.dumps(r.body)]
    assert with_prompt, "the vendor never received the preset's system prompt"
    assert with_prompt[-1]["model"] == picked.split("/", 1)[1]
    assert with_prompt[-1]["temperature"] == 0.3

    # Deleted: gone from the list.
    page.get_by_label("Saved presets").select_option(label="Pirate")
    page.get_by_role("button", name="Delete preset").click()
    status_starts(page, "Preset Pirate deleted.")
    assert page.locator("#preset-select option").all_text_contents() == ["No preset chosen"]
