"""A conversation's documents stay with it (#21): in headless Chromium against a real
daphne, Celery worker and fake vendors, every later question in the conversation is asked
with them, after a reload and after switching conversations too, until the user removes
one; a question typed while a document is still being read waits for it, visibly."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from sessions.models import Session
from tests.ui.test_chat_browser import PASSWORD, log_in, record_sent_frames
from tests.ui.test_chat_conversations import in_thread, use_openai

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSAGE = "The chief engineer of the Zorblax plant is Ada Quillfeather."


@pytest.fixture
def chat_user(vendor_settings):
    # Before the browser starts: see the browser fixture.
    return get_user_model().objects.create_user("dana", password=PASSWORD)


def ask_and_wait(page, text: str) -> None:
    """Ask, then wait until the answer is finished (the question may first wait for its
    documents, so there is no streaming turn yet when this returns from pressing Enter)."""
    turns = page.locator("#transcript .turn").count()
    page.get_by_label("Your question").fill(text)
    page.get_by_label("Your question").press("Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('#transcript .turn').length > n"
        " && !document.querySelector('#transcript .turn.streaming')",
        arg=turns,
        timeout=90_000,
    )


def vendor_prompts_since(fake, count: int) -> str:
    """Every request body the fake vendor received after the first ``count``, as text."""
    return json.dumps([request.body for request in fake.chat_requests[count:]])


def chips(page) -> list[str]:
    return page.locator("#conversation-documents li .attachment-name").all_text_contents()


def test_a_follow_up_is_asked_with_the_conversations_document(
    live_daphne, fakes, chat_user, browser, tmp_path
):
    page = browser.page
    openai = fakes["openai"]
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    use_openai(page)
    # Whether the waiting line was ever shown (it may be brief).
    page.evaluate(
        """() => {
          window.waitingSeen = [];
          const waiting = document.getElementById('waiting');
          new MutationObserver(() => {
            if (!waiting.hidden) window.waitingSeen.push(waiting.textContent);
          }).observe(waiting, {attributes: true, childList: true, subtree: true});
        }"""
    )

    handbook = tmp_path / "handbook.md"
    handbook.write_text(f"# Plant handbook\n\n{PASSAGE}\n")
    page.get_by_label("Attach files", exact=False).set_input_files(str(handbook))
    # Asked at once, while the document is still uploading or being read: it waits, then goes.
    asked = len(openai.chat_requests)
    ask_and_wait(page, "Who is the chief engineer of the Zorblax plant?")
    seen = page.evaluate("window.waitingSeen")
    assert seen and "handbook.md" in seen[0], seen
    assert page.locator("#waiting").is_hidden()
    first = sent[-1]
    assert first["type"] == "query" and len(first["documents"]) == 1
    document_id = first["documents"][0]
    assert PASSAGE in vendor_prompts_since(openai, asked)
    assert chips(page) == ["handbook.md"]
    session = in_thread(Session.objects.get, session_id=first["session_id"])
    assert session.document_ids == [document_id]

    # The follow-up in the same conversation is asked with the document again.
    asked = len(openai.chat_requests)
    ask_and_wait(page, "And who is the chief engineer's deputy at the Zorblax plant?")
    assert sent[-1]["documents"] == [document_id]
    assert PASSAGE in vendor_prompts_since(openai, asked)

    # After a reload the server still knows the conversation's document.
    page.reload()
    page.wait_for_selector("#connection[data-state=open]")
    page.wait_for_function("() => document.querySelectorAll('#conversation-documents li').length")
    assert chips(page) == ["handbook.md"]
    asked = len(openai.chat_requests)
    ask_and_wait(page, "Remind me: who is the chief engineer of the Zorblax plant?")
    assert sent[-1]["documents"] == [document_id]
    assert sent[-1]["session_id"] == first["session_id"]
    assert PASSAGE in vendor_prompts_since(openai, asked)

    # Another conversation has none; coming back brings the document back.
    page.get_by_role("button", name="New conversation").click()
    assert chips(page) == [] and page.locator("#documents-bar").is_hidden()
    page.locator(
        f'#conversation-list li[data-session-id="{first["session_id"]}"] button.open'
    ).click()
    page.wait_for_function("() => document.querySelectorAll('#conversation-documents li').length")
    assert chips(page) == ["handbook.md"]

    # Removed, it is no longer sent, and the server forgets it (a reload shows none).
    page.get_by_role("button", name="Remove handbook.md from this conversation").click()
    assert chips(page) == []
    page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('removed')"
    )
    asked = len(openai.chat_requests)
    ask_and_wait(page, "Who is the chief engineer of the Zorblax plant, once more?")
    assert "documents" not in sent[-1]
    assert PASSAGE not in vendor_prompts_since(openai, asked)
    session = in_thread(Session.objects.get, session_id=first["session_id"])
    assert session.document_ids == []
    page.reload()
    page.wait_for_selector("#connection[data-state=open]")
    page.wait_for_function("() => document.querySelectorAll('#transcript .turn').length === 4")
    assert chips(page) == []
    assert json.dumps(browser.blocked) == "[]"
