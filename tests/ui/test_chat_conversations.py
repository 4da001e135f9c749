"""The chat page's conversations, Markdown, answer actions and phone layout in headless
Chromium, against a real daphne, Celery worker and fake vendors."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from queries.models import Query
from sessions.models import Session
from tests.fakes.server import echo_reply_text
from tests.ui.test_chat_browser import (
    PASSWORD,
    SCREENSHOTS,
    ask,
    last_answer,
    log_in,
    record_sent_frames,
    wait_until_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _wired(vendor_settings):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture
def chat_user(vendor_settings):
    # Before the browser starts: see the browser fixture.
    return get_user_model().objects.create_user("dana", password=PASSWORD)


def in_thread(function, *args, **kwargs):
    """Run an ORM read in a plain thread: Playwright's event loop owns this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args, **kwargs).result()


def queries_of(session_id: str) -> list[Query]:
    return list(Query.objects.filter(session_id=session_id).order_by("timestamp"))


def conversation_titles(page) -> list[str]:
    return page.locator("#conversation-list li button.open").all_text_contents()


def use_openai(page) -> None:
    page.get_by_label("Provider").select_option("openai")
    page.get_by_role("radio", name="Off", exact=True).check()


def test_conversations_are_sessions_listed_after_a_reload_renamed_and_reopened(
    live_daphne, fakes, chat_user, browser
):
    page = browser.page
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    use_openai(page)

    ask(page, "Where should I travel in May?")
    wait_until_idle(page)
    first_session = sent[-1]["session_id"]
    page.get_by_role("button", name="New conversation").click()
    # Focus goes where the user types next.
    assert page.evaluate("document.activeElement.id") == "question"
    assert page.locator("#transcript .turn").count() == 0
    ask(page, "How do I boil an egg?")
    wait_until_idle(page)
    second_session = sent[-1]["session_id"]
    assert second_session != first_session
    page.wait_for_function("() => document.querySelectorAll('#conversation-list li').length === 2")
    assert conversation_titles(page) == ["How do I boil an egg?", "Where should I travel in May?"]

    # Each conversation is a session started with this browser's environment.
    sessions = in_thread(lambda: list(Session.objects.order_by("start_t")))
    assert [s.session_id for s in sessions] == [first_session, second_session]
    assert "HeadlessChrome" in sessions[0].environment["user_agent"]
    assert sessions[0].environment["viewport"] == {"width": 1200, "height": 900}
    assert sessions[0].environment["client"] == "chat-ui"
    assert in_thread(lambda: Query.objects.get(session_id=first_session).status) == "completed"

    page.reload()
    page.wait_for_selector("#connection[data-state=open]")
    page.wait_for_function("() => document.querySelectorAll('#conversation-list li').length === 2")
    assert conversation_titles(page) == ["How do I boil an egg?", "Where should I travel in May?"]
    # The open conversation came back from the server, not from the tab's storage.
    assert last_answer(page) == echo_reply_text("How do I boil an egg?")

    # Rename with the keyboard only.
    older = page.locator(f'#conversation-list li[data-session-id="{first_session}"]')
    older.get_by_role("button", name="Rename").focus()
    page.keyboard.press("Enter")
    title_box = page.get_by_label("New title")
    assert page.evaluate("document.activeElement.id") == f"rename-{first_session}"
    title_box.fill("May trip")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#conversation-list button.open')]"
        ".some(b => b.textContent === 'May trip')"
    )
    assert in_thread(lambda: Session.objects.get(session_id=first_session).title) == "May trip"

    # Open the older one: its history is read back.
    page.get_by_role("button", name="May trip", exact=True).click()
    page.wait_for_function(
        "() => document.getElementById('conversation-title').textContent === 'May trip'"
    )
    assert page.evaluate("document.activeElement.id") == "conversation-title"
    assert page.locator("#transcript .turn .question").all_text_contents() == [
        "Where should I travel in May?"
    ]
    assert last_answer(page) == echo_reply_text("Where should I travel in May?")
    page.reload()
    page.wait_for_selector("#connection[data-state=open]")
    assert conversation_titles(page) == ["How do I boil an egg?", "May trip"]
    page.wait_for_function("() => document.querySelectorAll('#transcript .turn').length === 1")
    assert last_answer(page) == echo_reply_text("Where should I travel in May?")

    # Per-conversation usage in the details panel.
    page.get_by_text("Conversation details").click()
    assert page.locator('#details dd[data-field="answers"]').text_content() == "1"
    tokens = page.locator('#details dd[data-field="tokens"]').text_content()
    assert re.fullmatch(r"[1-9]\d* \([1-9]\d* in, [1-9]\d* out\)", tokens), tokens

    # Leaving the page ends the session soon after (a beacon), unless the user comes back.
    page.goto("about:blank")

    def left_soon() -> bool:
        session = Session.objects.get(session_id=first_session)
        return session.end_t is None and session.ends_after <= timezone.now() + timedelta(
            seconds=61
        )

    # The beacon is delivered after the page is gone: give a busy server a few seconds.
    for _ in range(50):
        if in_thread(left_soon):
            break
        page.wait_for_timeout(200)
    assert in_thread(left_soon)


def test_markdown_is_rendered_and_the_models_html_is_shown_as_text(
    live_daphne, fakes, chat_user, browser
):
    page = browser.page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    log_in(page, live_daphne.url)
    use_openai(page)
    injected_img = '<img src="/pwned.png" onerror="window.__pwned = 1">'
    injected_script = "<script>window.__pwned = 2</script>"
    question = (
        "**Bold claim** and a [link](https://example.com/x).\n\n"
        "```python\ndef greet():\n    return 'hi'\n```\n\n"
        f"{injected_img}\n\n{injected_script} and [bad](javascript:alert(1))"
    )
    page.get_by_label("Your question").fill(question)
    page.get_by_label("Your question").press("Enter")
    wait_until_idle(page)
    answer = page.locator("#transcript .turn .answer-text").last

    assert answer.locator("strong").text_content() == "Bold claim"
    link = answer.get_by_role("link", name="link")
    assert link.get_attribute("href") == "https://example.com/x"
    assert link.get_attribute("rel") == "noopener noreferrer nofollow"
    code = answer.locator(".code-block pre code")
    assert "def greet():" in code.text_content()
    assert code.locator("span.hljs-keyword").first.text_content() == "def"  # highlighted

    # New text was announced politely, in phrases, for screen readers.
    assert page.locator("#announcer").get_attribute("aria-live") == "polite"
    assert "Bold claim" in page.locator("#announcer").text_content()

    # The model's HTML is text: nothing was created, fetched or run.
    text = answer.text_content()
    assert injected_img in text and injected_script in text
    assert answer.locator("img, script").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert not any("pwned" in url for url in requested)
    # Nothing needed a looser CSP: the vendored libraries run under script-src 'self'.
    assert not [text for text in console if "Content Security Policy" in text], console
    bad = answer.get_by_role("link", name="bad")
    assert bad.count() == 0 or not (bad.get_attribute("href") or "").startswith("javascript:")

    # Copy buttons: the code block's and the whole answer's.
    answer.get_by_role("button", name="Copy code").click()
    assert page.evaluate("navigator.clipboard.readText()") == "def greet():\n    return 'hi'\n"
    page.locator("#transcript .turn").last.get_by_role("button", name="Copy answer").click()
    assert page.evaluate("navigator.clipboard.readText()") == echo_reply_text(question)
    page.locator("#transcript .turn").last.screenshot(path=str(SCREENSHOTS / "chat-markdown.png"))


def test_feedback_is_stored_and_regenerate_asks_again(live_daphne, fakes, chat_user, browser):
    page = browser.page
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    use_openai(page)
    ask(page, "Name a prime number")
    wait_until_idle(page)
    turn = page.locator("#transcript .turn").last
    query_id = turn.get_attribute("data-query-id")
    assert re.fullmatch(r"[0-9a-f]{24}", query_id)

    turn.get_by_role("button", name="Bad answer").click()
    comment = page.get_by_label("What was good or bad about it? (optional)")
    comment.wait_for()
    assert page.evaluate("document.activeElement.tagName") == "TEXTAREA"
    comment.fill("It named 9")
    page.get_by_role("button", name="Send comment").click()
    page.get_by_text("Your comment: It named 9").wait_for()
    assert turn.get_by_role("button", name="Bad answer").get_attribute("aria-pressed") == "true"
    rated = in_thread(Query.objects.get, pk=query_id)
    assert (rated.feedback_rating, rated.feedback_comment) == (-1, "It named 9")

    # Regenerate: a new query with the same input, in the same conversation.
    first_frame = sent[-1]
    turn.get_by_role("button", name="Regenerate").click()
    wait_until_idle(page)
    again = sent[-1]
    assert again["type"] == "query"
    assert (
        again["query"] == first_frame["query"] and again["session_id"] == first_frame["session_id"]
    )
    assert again["model_provider"] == first_frame["model_provider"]
    assert page.locator("#transcript .turn").count() == 2
    stored = in_thread(queries_of, first_frame["session_id"])
    assert [q.query for q in stored] == ["Name a prime number", "Name a prime number"]
    assert stored[1].pk != stored[0].pk and stored[1].status == "completed"
    assert page.locator("#transcript .turn").last.get_attribute("data-query-id") == str(
        stored[1].pk
    )

    # Keyboard only: Escape in the question box stops a streaming answer.
    fakes["openai"].chunk_count = 60
    fakes["openai"].chunk_interval = 0.1
    ask(page, "Tell me a long story that I will interrupt")
    page.wait_for_function(
        "() => (document.querySelector('#transcript .turn.streaming .answer-text') || {})"
        ".textContent?.length > 5"
    )
    assert page.evaluate("document.activeElement.id") == "question"
    page.keyboard.press("Escape")
    wait_until_idle(page)
    assert page.locator("#status").text_content() == "Stopped."


@pytest.fixture
def operator(chat_user):
    return get_user_model().objects.create_superuser("ops", password=PASSWORD)


def sessions_on_dashboard(page, base_url: str) -> str:
    page.context.clear_cookies()
    page.goto(f"{base_url}/admin/login/?next=/admin/dashboard/")
    page.get_by_label("Username").fill("ops")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/admin/dashboard/$"))
    return page.locator("#total-sessions").text_content().strip()


def test_a_chat_shows_up_as_a_session_on_the_admin_dashboard(live_daphne, fakes, operator, browser):
    page = browser.page
    assert sessions_on_dashboard(page, live_daphne.url) == "0"

    page.context.clear_cookies()
    log_in(page, live_daphne.url)
    use_openai(page)
    ask(page, "Count me in")
    wait_until_idle(page)

    assert sessions_on_dashboard(page, live_daphne.url) == "1"
    page.screenshot(path=str(SCREENSHOTS / "admin-dashboard-after-chat.png"))


def test_phone_width_has_no_horizontal_scroll_in_dark_mode(
    live_daphne, fakes, chat_user, phone_browser
):
    page = phone_browser.page
    log_in(page, live_daphne.url)
    # On a phone the conversations and settings are a closed drawer: the chat is on top.
    assert not page.get_by_label("Provider").is_visible()
    page.get_by_role("button", name="Conversations & settings").click()
    page.get_by_text("Settings", exact=True).click()
    use_openai(page)
    page.keyboard.press("Escape")

    def no_horizontal_scroll() -> None:
        widths = page.evaluate(
            "({scroll: document.documentElement.scrollWidth,"
            " client: document.documentElement.clientWidth})"
        )
        assert widths["client"] == 390
        assert widths["scroll"] <= widths["client"], widths

    no_horizontal_scroll()
    page.screenshot(path=str(SCREENSHOTS / "chat-phone-empty.png"), full_page=True)
    question = (
        "A very long line: " + "x" * 300 + "\n\n"
        "```\n" + "a_very_long_identifier_" * 20 + "\n```\n\n"
        "| a | table | with | many | columns | that | is | wide |\n"
        "|---|---|---|---|---|---|---|---|\n"
        "| 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 |\n\nhttps://example.com/" + "path/" * 40
    )
    page.get_by_label("Your question").fill(question)
    page.get_by_label("Your question").press("Enter")
    wait_until_idle(page)
    no_horizontal_scroll()
    page.get_by_role("button", name="Conversations & settings").click()
    page.get_by_text("Conversation details").click()
    no_horizontal_scroll()
    # Dark mode follows the system setting.
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    channels = [int(c) for c in re.findall(r"\d+", background)[:3]]
    assert max(channels) < 64, background
    page.screenshot(path=str(SCREENSHOTS / "chat-phone-answer.png"), full_page=True)
    assert json.dumps(phone_browser.blocked) == "[]"


@pytest.fixture
def answered_with_sources(chat_user):
    """A finished conversation whose answer cites a web page and a document passage."""
    Session.objects.create(owner=chat_user, session_id="c-sources", user_id="dana")
    return Query.objects.create(
        owner=chat_user,
        user_id="dana",
        session_id="c-sources",
        query="What does the lease say about pets?",
        response="Pets need written consent [1], as is common [2].",
        status="completed",
        model_provider="openai",
        model_name="gpt-4o-mini",
        citations=[
            {
                "type": "document",
                "file_id": "6650f0c2a1b2c3d4e5f60718",
                "title": "lease.pdf",
                "page": 4,
                "snippet": "No animals without the landlord's written consent.",
                "url": "/api/v1/files/6650f0c2a1b2c3d4e5f60718/content#page=4",
            },
            {"type": "web", "title": "Tenancy guide", "url": "https://example.org/guide"},
            {"type": "web", "title": "Evil", "url": "javascript:alert(1)"},
        ],
        usage={"input_tokens": 12, "output_tokens": 9, "total_tokens": 21, "cost_usd": 0.0004},
        latency={"total_ms": 1500.0},
    )


def test_document_and_web_sources_are_numbered_and_documents_are_sent_by_id(
    live_daphne, fakes, answered_with_sources, browser, tmp_path
):
    page = browser.page
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    page.get_by_role("button", name="What does the lease say about pets?", exact=True).click()
    turn = page.locator("#transcript .turn").last
    turn.locator(".citations").wait_for()
    sources = turn.locator(".citations > li")
    assert sources.count() == 2  # the javascript: link is dropped
    document, web = sources.nth(0), sources.nth(1)
    assert document.get_attribute("data-type") == "document"
    assert document.get_by_role("link").text_content() == "lease.pdf"
    assert document.get_by_role("link").get_attribute("href").endswith("/content#page=4")
    assert "page 4" in document.text_content()
    assert document.locator(".snippet").text_content() == (
        "No animals without the landlord's written consent."
    )
    assert web.get_by_role("link").text_content() == "Tenancy guide"
    assert turn.locator(".meta").text_content() == (
        "openai / gpt-4o-mini · 21 tokens (12 in, 9 out) · $0.00040 · 1.5 s"
    )

    # A document is uploaded, its reading followed until it is ready, and sent by id as
    # `documents`; the answer cites it.
    use_openai(page)
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nThe cat is called Miso.\n")
    page.get_by_label("Attach files", exact=False).set_input_files(str(notes))
    state = page.locator("#conversation-documents li[data-kind=document] .attachment-state")
    page.wait_for_function(
        "() => document.querySelector("
        "'#conversation-documents li[data-kind=document] .attachment-state')"
        "?.textContent.startsWith('ready')",
        timeout=60_000,
    )
    assert re.fullmatch(r"ready \(.*1 passages?\)", state.text_content()), state.text_content()
    assert page.locator("#status").text_content().startswith("notes.md: ready")
    ask(page, "What is the cat called?")
    wait_until_idle(page)
    asked = sent[-1]
    assert asked["attachments"] == [] and len(asked["documents"]) == 1
    assert asked["session_id"] == "c-sources"  # asked in the opened conversation
    assert "notes.md" in page.locator("#transcript .turn .question").last.text_content()
    cited = page.locator("#transcript .turn").last.locator(".citations li[data-type=document]")
    assert cited.count() >= 1
    assert cited.first.locator(".citation-title, a").first.text_content() == "notes.md"


@pytest.fixture
def model_experiment(chat_user):
    from sessions.models import Experiment

    return Experiment.objects.create(
        key="ui-model",
        name="Which model in the chat UI",
        status="running",
        started_at=timezone.now(),
        variants=[
            {
                "name": "claude",
                "weight": 1,
                "overrides": {"model_provider": "anthropic", "model_name": "claude-test-model"},
            }
        ],
    )


def test_a_conversation_gets_its_experiment_variant_unless_the_user_picks_a_model(
    live_daphne, fakes, model_experiment, browser
):
    page = browser.page
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    ask(page, "Which model are you?")
    wait_until_idle(page)
    frame = sent[-1]
    assert frame["model_provider"] == "" and frame["model_name"] == ""  # left to the server
    session = in_thread(Session.objects.get, session_id=frame["session_id"])
    assert session.experiments == {"ui-model": "claude"}
    answered = in_thread(queries_of, frame["session_id"])[0]
    assert (answered.model_provider, answered.model_name) == ("anthropic", "claude-test-model")
    assert answered.experiments == {"ui-model": "claude"}
    # The page shows the model that really answered, not its own default.
    page.wait_for_function(
        "() => document.querySelector('#transcript .turn .meta')?.textContent"
        ".startsWith('anthropic / claude-test-model')"
    )

    # A model the user picks wins over the experiment's.
    page.get_by_label("Provider").select_option("openai")
    ask(page, "And now?")
    wait_until_idle(page)
    assert sent[-1]["model_provider"] == "openai"
    assert in_thread(queries_of, frame["session_id"])[1].model_provider == "openai"
