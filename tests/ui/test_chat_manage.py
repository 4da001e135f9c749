"""Managing conversations in the chat page (#21), in headless Chromium against a real
daphne, Celery worker and fake vendors: search finds a conversation by its answer,
export downloads it, delete takes its questions and files along (checked in the
database), and a share link opens for a logged-out browser, shows nothing of other
conversations, and is a 404 once revoked."""

from __future__ import annotations

import json
import re
import time

import pytest
from django.contrib.auth import get_user_model

from files.models import DocumentChunk, File
from queries.models import Query
from sessions.models import Session
from tests.fakes.server import echo_reply_text
from tests.ui.test_chat_browser import PASSWORD, SCREENSHOTS, log_in, record_sent_frames
from tests.ui.test_chat_conversations import conversation_titles, in_thread, use_openai
from tests.ui.test_chat_documents import ask_and_wait

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def chat_user(vendor_settings):
    # Before the browser starts: see the browser fixture.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return get_user_model().objects.create_user("dana", password=PASSWORD)


def search_results(page) -> list[str]:
    return page.locator("#conversation-list li").evaluate_all(
        "items => items.map(li => li.dataset.sessionId)"
    )


def test_search_by_answer_export_and_delete_with_its_data(
    live_daphne, fakes, chat_user, browser, tmp_path
):
    page = browser.page
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    use_openai(page)

    ask_and_wait(page, "How do I boil an egg?")
    eggs = sent[-1]["session_id"]
    page.get_by_role("button", name="New conversation").click()
    handbook = tmp_path / "handbook.md"
    handbook.write_text("# Plant handbook\n\nThe chief engineer is Ada Quillfeather.\n")
    page.get_by_label("Attach files", exact=False).set_input_files(str(handbook))
    ask_and_wait(page, "Who is the chief engineer?")
    plant = sent[-1]["session_id"]
    document_id = sent[-1]["documents"][0]
    page.wait_for_function("() => document.querySelectorAll('#conversation-list li').length === 2")

    # "Echo: How do I boil" is in the first conversation's answer only, not in a question.
    page.get_by_label("Search conversations").fill("echo: how do I BOIL")
    page.wait_for_function(
        "() => document.getElementById('search-count').textContent === '1 conversation matches.'"
    )
    assert search_results(page) == [eggs]
    snippet = page.locator("#conversation-list li .snippet").text_content()
    assert snippet.startswith("In the answer: ") and "Echo: How do I boil an egg?" in snippet
    page.get_by_label("Search conversations").press("Escape")
    page.wait_for_function("() => document.querySelectorAll('#conversation-list li').length === 2")

    # Export the open conversation (the plant one) as JSON and as Markdown.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export JSON").click()
    exported = json.loads(download_info.value.path().read_text())
    assert exported["session_id"] == plant
    assert [(t["question"], t["answer"]) for t in exported["turns"]] == [
        ("Who is the chief engineer?", echo_reply_text("Who is the chief engineer?"))
    ]
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export Markdown").click()
    assert download_info.value.suggested_filename == "Who-is-the-chief-engineer.md"
    markdown = download_info.value.path().read_text()
    assert "> Who is the chief engineer?" in markdown

    # Delete it: the questions, the document (its passages too) and the session go.
    assert in_thread(lambda: DocumentChunk.objects.filter(file_id=document_id).count()) > 0
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Delete", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('#conversation-list li').length === 1")
    assert "Who is the chief engineer?" in dialogs[0]
    assert conversation_titles(page) == ["How do I boil an egg?"]
    assert page.locator("#conversation-title").text_content() == "New conversation"
    assert in_thread(lambda: Query.objects.filter(session_id=plant).count()) == 0
    assert not in_thread(lambda: Session.objects.filter(session_id=plant).exists())
    assert not in_thread(lambda: File.objects.filter(pk=document_id).exists())
    assert in_thread(lambda: DocumentChunk.objects.filter(file_id=document_id).count()) == 0
    # The other conversation is untouched.
    assert in_thread(lambda: Query.objects.filter(session_id=eggs).count()) == 1
    page.reload()
    page.wait_for_selector("#connection[data-state=open]")
    assert conversation_titles(page) == ["How do I boil an egg?"]
    assert json.dumps(browser.blocked) == "[]"


def open_conversation(page, session_id: str, first_question: str) -> None:
    """Open a listed conversation and wait until its transcript is shown."""
    page.locator(f'#conversation-list li[data-session-id="{session_id}"] button.open').click()
    page.wait_for_function(
        "question => document.querySelector('#transcript .turn .question')?.textContent"
        " === question",
        arg=first_question,
    )


def test_a_share_link_opens_logged_out_shows_nothing_else_and_dies_on_revoke(
    live_daphne, fakes, chat_user, browser
):
    page = browser.page
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    use_openai(page)
    ask_and_wait(page, "What is the plan for project Alpha?")
    alpha = sent[-1]["session_id"]
    page.get_by_role("button", name="New conversation").click()
    ask_and_wait(page, "A private question about project Beta")
    open_conversation(page, alpha, "What is the plan for project Alpha?")

    page.get_by_role("button", name="Share", exact=True).click()
    share_box = page.get_by_label("Read-only link", exact=False)
    page.wait_for_function("() => document.getElementById('share-url').value.includes('/share/')")
    url = share_box.input_value()
    assert page.evaluate("document.activeElement.id") == "share-url"

    # A logged-out browser (a new context: no session cookie) reads it.
    stranger = page.context.browser.new_context()
    try:
        public = stranger.new_page()
        response = public.goto(url)
        assert response.status == 200
        assert response.headers["x-robots-tag"] == "noindex, nofollow"
        robots = public.locator('meta[name="robots"]').get_attribute("content")
        assert robots == "noindex, nofollow"
        text = public.locator("body").inner_text()
        assert "What is the plan for project Alpha?" in text
        assert echo_reply_text("What is the plan for project Alpha?") in text
        assert "Beta" not in text and "dana" not in text and "Log out" not in text
        assert public.locator("a").count() == 0
        public.screenshot(path=str(SCREENSHOTS / "chat-shared.png"), full_page=True)

        page.get_by_role("button", name="Stop sharing").click()
        page.wait_for_function("() => document.getElementById('share-panel').hidden")
        assert public.goto(url).status == 404
        # Opening the conversation again shows it unshared.
        page.reload()
        page.wait_for_selector("#connection[data-state=open]")
        page.wait_for_function("() => !document.getElementById('conversation-actions').hidden")
        assert page.locator("#share-panel").is_hidden()
    finally:
        stranger.close()
    assert json.dumps(browser.blocked) == "[]"


PIRATE = "Answer like a pirate, matey."


def test_the_vendor_receives_the_conversations_system_prompt_model_and_temperature(
    live_daphne, fakes, chat_user, browser
):
    page = browser.page
    openai = fakes["openai"]
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    # The picker lists the served catalogue; a model that is not openai's default.
    options = page.locator("#conversation-model option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    picked = next(o for o in options if o.startswith("openai/") and o != "openai/gpt-4o-mini")
    page.get_by_label("Answered by").select_option(picked)
    page.get_by_label("Temperature", exact=False).fill("0.3")
    page.get_by_label("System prompt").fill(PIRATE)
    page.get_by_role("button", name="Save for this conversation").click()
    page.wait_for_function(
        "() => document.getElementById('status').textContent.startsWith('Saved')"
    )

    asked = len(openai.chat_requests)
    ask_and_wait(page, "Where is the treasure?")
    # The question itself left the model open: the conversation's settings answered it.
    assert sent[-1]["model_provider"] == "" and sent[-1]["model_name"] == ""
    with_prompt = [r.body for r in openai.chat_requests[asked:] if PIRATE in json.dumps(r.body)]
    assert with_prompt, "the vendor never received the conversation's system prompt"
    assert with_prompt[-1]["model"] == picked.split("/", 1)[1]
    assert with_prompt[-1]["temperature"] == 0.3
    session_id = sent[-1]["session_id"]
    stored = in_thread(lambda: Query.objects.get(session_id=session_id))
    assert (stored.model_provider, stored.model_name) == tuple(picked.split("/", 1))
    assert stored.request["system_prompt"] == PIRATE

    # They are the conversation's: read back after a reload, absent from a new one.
    page.reload()
    page.wait_for_selector("#connection[data-state=open]")
    page.wait_for_function(f"() => document.getElementById('system-prompt').value === {PIRATE!r}")
    assert page.get_by_label("Answered by").input_value() == picked
    assert page.get_by_label("Temperature", exact=False).input_value() == "0.3"
    page.get_by_role("button", name="New conversation").click()
    assert page.get_by_label("System prompt").input_value() == ""
    assert page.get_by_label("Answered by").input_value() == ""
    assert json.dumps(browser.blocked) == "[]"


def box(page, selector: str) -> dict:
    return page.locator(selector).bounding_box()


def test_phone_drawer_and_keyboard_shortcuts(live_daphne, fakes, chat_user, phone_browser):
    page = phone_browser.page
    log_in(page, live_daphne.url)
    # Closed, the drawer is off-screen and inert: the chat starts at the top.
    assert page.locator("#sidebar").is_hidden()
    assert page.evaluate("document.getElementById('sidebar').inert")
    assert box(page, "#conversation-title")["y"] < 120
    # Nothing to export, share or delete before the first question.
    assert page.locator("#conversation-actions").is_hidden()
    toggle = page.get_by_role("button", name="Conversations & settings")
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert page.evaluate("document.activeElement.id") == "new-conversation"
    # It slides in from the left edge, narrower than the screen.
    page.wait_for_function(
        "() => document.getElementById('sidebar').getBoundingClientRect().x === 0"
    )
    assert box(page, "#sidebar")["width"] < 390
    page.get_by_text("Settings", exact=True).click()
    use_openai(page)
    page.keyboard.press("Escape")
    page.locator("#sidebar").wait_for(state="hidden")
    assert page.evaluate("document.activeElement.id") == "drawer-toggle"

    ask_and_wait(page, "What is a drawer?")
    # The answer is on the first screen, not a screen down.
    answer = box(page, "#transcript .turn .answer-text")
    assert 0 < answer["y"] < 844 - answer["height"]
    page.screenshot(path=str(SCREENSHOTS / "chat-phone-drawer-closed.png"))

    # Ctrl+Shift+C copies the last answer.
    page.locator("#transcript").focus()
    page.keyboard.press("Control+Shift+C")
    page.wait_for_function(
        "() => document.getElementById('status').textContent === 'Copied the last answer.'"
    )
    assert page.evaluate("navigator.clipboard.readText()") == echo_reply_text("What is a drawer?")

    # Ctrl+K opens the drawer at the search box; Escape clears, then closes it.
    page.keyboard.press("Control+K")
    assert page.evaluate("document.activeElement.id") == "conversation-search"
    page.wait_for_function(
        "() => document.getElementById('sidebar').getBoundingClientRect().x === 0"
    )
    page.screenshot(path=str(SCREENSHOTS / "chat-phone-drawer-open.png"))
    page.keyboard.type("drawer")
    page.wait_for_function(
        "() => document.getElementById('search-count').textContent === '1 conversation matches.'"
    )
    page.keyboard.press("Escape")
    assert page.get_by_label("Search conversations").input_value() == ""
    page.keyboard.press("Escape")
    page.locator("#sidebar").wait_for(state="hidden")

    # Ctrl+Shift+O starts a new conversation.
    page.keyboard.press("Control+Shift+O")
    page.wait_for_function("() => !document.querySelectorAll('#transcript .turn').length")
    assert page.locator("#conversation-title").text_content() == "New conversation"

    # Escape stops an answer from anywhere on the page, not only in the question box.
    fakes["openai"].chunk_count = 60
    fakes["openai"].chunk_interval = 0.1  # a 6 s answer
    page.get_by_label("Your question").fill("Tell me a long story about drawers")
    page.get_by_label("Your question").press("Enter")
    page.get_by_role("button", name="Stop").wait_for(state="visible")
    page.locator("#transcript").focus()
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.getElementById('status').textContent === 'Stopped.'")

    # Opening a conversation from the drawer closes it.
    toggle.click()
    page.locator("#conversation-list li button.open").last.click()
    page.wait_for_function("() => document.getElementById('sidebar').inert")
    assert json.dumps(phone_browser.blocked) == "[]"


def test_a_late_detail_of_the_conversation_left_does_not_hide_the_opened_ones_actions(
    live_daphne, fakes, chat_user, browser
):
    # The details read at an answer's end can arrive after the user opened another
    # conversation (seen on a loaded CI machine): it must not hide that one's actions.
    page = browser.page
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    use_openai(page)
    ask_and_wait(page, "What is the plan for project Alpha?")
    alpha = sent[-1]["session_id"]
    held: list = []

    def hold_other_details(route) -> None:
        path = route.request.url.split("?")[0]
        if route.request.method == "GET" and not path.endswith("/conversations/" + alpha):
            held.append(route)  # answered below, after Alpha is open
        else:
            route.continue_()

    page.route(re.compile(r".*/conversations/[^/?]+$"), hold_other_details)
    page.get_by_role("button", name="New conversation").click()
    ask_and_wait(page, "A private question about project Beta")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:  # the answer's end reads its details
        page.wait_for_timeout(50)
    assert held, "the answer's end read no details"
    open_conversation(page, alpha, "What is the plan for project Alpha?")
    while held:
        with page.expect_response(lambda response: "/conversations/" in response.url):
            held.pop().continue_()
    page.wait_for_timeout(300)  # the page reads the late answer and handles it
    assert page.get_by_role("button", name="Share", exact=True).is_visible()
