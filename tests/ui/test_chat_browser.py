"""The chat page in headless Chromium against a real daphne, Celery worker and fake vendors:
log in, ask, watch the answer stream, stop it, reload mid-answer and see it resume."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from files.models import File
from queries.models import Query
from tests.fakes.server import echo_reply_text

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "s3cret-pass-123"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture(autouse=True)
def _wired(vendor_settings):
    """Vendors pointed at the fakes (reset for every test by vendor_settings)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture
def chat_user(vendor_settings):
    # Before the browser starts: see the browser fixture.
    return get_user_model().objects.create_user("dana", password=PASSWORD)


def stored(query_id: str) -> Query:
    """Read a query from a plain thread: Playwright's event loop owns this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(Query.objects.get, pk=query_id).result()


def stored_file(file_id: str) -> File:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(File.objects.get, pk=file_id).result()


def record_sent_frames(page) -> list[dict]:
    sent: list[dict] = []

    def on_websocket(ws):
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)))

    page.on("websocket", on_websocket)
    return sent


def log_in(page, base_url: str, *, screenshot: str | None = None) -> None:
    page.goto(f"{base_url}/")
    assert page.url == f"{base_url}/login/?next=/"
    if screenshot:
        page.screenshot(path=str(SCREENSHOTS / screenshot))
    page.get_by_label("Username").fill("dana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/")
    page.wait_for_selector("#connection[data-state=open]")


def last_answer(page) -> str:
    return page.locator("#transcript .turn .answer-text").last.text_content() or ""


def wait_until_idle(page) -> None:
    page.wait_for_selector("#transcript .turn.streaming", state="detached", timeout=30_000)


def ask(page, text: str) -> None:
    page.get_by_label("Your question").fill(text)
    page.get_by_label("Your question").press("Enter")


def wait_for_answer_longer_than(page, length: int) -> str:
    page.wait_for_function(
        "n => (document.querySelector('#transcript .turn.streaming .answer-text') || {})"
        ".textContent?.length > n",
        arg=length,
    )
    return last_answer(page)


def test_ask_stream_stop_and_resume_after_reload(live_daphne, fakes, chat_user, browser):
    page = browser.page
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url, screenshot="chat-login.png")

    page.get_by_label("Provider").select_option("openai")
    assert page.get_by_label("Model").input_value() == "gpt-4o-mini"
    page.get_by_role("radio", name="Off", exact=True).check()

    # 1. A whole answer.
    ask(page, "Hello there")
    wait_until_idle(page)
    assert last_answer(page) == echo_reply_text("Hello there")
    assert page.locator("#status").text_content() == "Answer complete."
    query = sent[-1]
    assert query["type"] == "query" and query["user_id"] == "dana"
    assert query["model_provider"] == "openai" and query["model_name"] == "gpt-4o-mini"
    assert query["mode"] == "chat" and query["use_memory"] is False and query["session_id"]

    fakes["openai"].chunk_count = 60
    fakes["openai"].chunk_interval = 0.1  # a 6 s answer

    # 2. Streamed text appears bit by bit; Stop ends it early.
    long_question = "Tell me a long story about streaming answers in a browser"
    full = echo_reply_text(long_question)
    ask(page, long_question)
    page.get_by_role("button", name="Stop").wait_for(state="visible")
    early = wait_for_answer_longer_than(page, 5)
    later = wait_for_answer_longer_than(page, len(early) + 3)
    assert full.startswith(early) and full.startswith(later) and len(early) < len(later) < len(full)
    page.screenshot(path=str(SCREENSHOTS / "chat-streaming.png"))
    page.get_by_role("button", name="Stop").click()
    wait_until_idle(page)
    stopped_text = last_answer(page)
    assert full.startswith(stopped_text) and len(later) <= len(stopped_text) < len(full)
    assert page.locator("#transcript .turn .stopped").last.is_visible()
    assert page.locator("#status").text_content() == "Stopped."
    assert page.get_by_role("button", name="Stop").is_hidden()
    cancel = next(frame for frame in reversed(sent) if frame["type"] == "cancel")
    stopped_query = stored(cancel["query_id"])
    assert stopped_query.status == Query.Status.CANCELLED
    assert stopped_query.response == stopped_text

    # 3. Reload mid-answer: the page resumes from the last event it saw.
    other_question = "Now a story that survives a reload of the page"
    full = echo_reply_text(other_question)
    ask(page, other_question)
    before_reload = wait_for_answer_longer_than(page, 12)
    assert len(before_reload) < len(full)
    sent.clear()
    page.reload()
    page.wait_for_selector("#connection[data-state=open]")
    resume = next(frame for frame in sent if frame["type"] == "resume")
    assert resume["last_event_id"]
    # The partial answer is back at once (kept by the page), then the rest streams in.
    assert full.startswith(last_answer(page)) and len(last_answer(page)) >= len(before_reload)
    assert page.get_by_role("button", name="Stop").is_visible()
    wait_until_idle(page)
    assert last_answer(page) == full  # nothing lost, nothing twice
    assert page.locator("#transcript .turn").count() == 3  # earlier turns survive the reload
    resumed_query = stored(resume["query_id"])
    assert resumed_query.status == Query.Status.COMPLETED
    assert resumed_query.response == full
    assert not any(frame["type"] == "query" for frame in sent)  # resumed, not asked again
    assert browser.blocked == []  # the page loads nothing from elsewhere


def test_a_dropped_websocket_reconnects_and_resumes(live_daphne, fakes, chat_user, browser):
    page = browser.page
    sockets = []  # one (page side, server side) pair per connection the page opens
    sent: list[dict] = []

    def through_proxy(route):
        server = route.connect_to_server()

        def to_server(message):
            sent.append(json.loads(message))
            server.send(message)

        route.on_message(to_server)  # server -> page frames are still forwarded as they are
        sockets.append(route)

    page.route_web_socket(re.compile(r"/ws/chat/$"), through_proxy)
    log_in(page, live_daphne.url)
    page.get_by_label("Provider").select_option("openai")
    page.get_by_role("radio", name="Off", exact=True).check()
    fakes["openai"].chunk_count = 60
    fakes["openai"].chunk_interval = 0.1

    question = "A story told over a flaky network connection"
    full = echo_reply_text(question)
    ask(page, question)
    before_drop = wait_for_answer_longer_than(page, 12)
    assert len(before_drop) < len(full) and len(sockets) == 1
    sockets[0].close(code=1011, reason="network trouble")  # closes the server side too
    page.wait_for_selector("#connection[data-state=closed]")
    page.wait_for_selector("#connection[data-state=open]")
    assert len(sockets) == 2
    resume = sent[-1]
    assert resume["type"] == "resume" and resume["last_event_id"]
    wait_until_idle(page)
    assert last_answer(page) == full  # nothing lost, nothing twice
    assert stored(resume["query_id"]).response == full
    assert [frame["type"] for frame in sent] == ["query", "resume"]


def test_shopping_options_product_cards_citations_and_image(
    live_daphne, fakes, chat_user, browser, tmp_path
):
    page = browser.page
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    page.get_by_label("Provider").select_option("openai")
    page.get_by_role("radio", name="Off", exact=True).check()

    # Web search: the answer comes with its sources as links.
    page.get_by_label("Web search").check()
    ask(page, "What is new in Django?")
    wait_until_idle(page)
    sources = page.locator("#transcript .turn").last.locator(".citations a")
    assert sources.all_text_contents() == ["Source A", "Source B"]
    assert sources.first.get_attribute("href") == "https://example.com/a"
    page.get_by_label("Web search").uncheck()

    # An attached image is uploaded first; the question carries its file id, not its bytes.
    png = tmp_path / "dot.png"
    png.write_bytes(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5f6d1"
            "d50000000049454e44ae426082"
        )
    )
    page.get_by_label("Attach files", exact=False).set_input_files(str(png))
    page.get_by_role("button", name="Remove dot.png").wait_for()
    page.wait_for_selector("#attachments li[data-state=ready]")
    ask(page, "What is in this picture?")
    wait_until_idle(page)
    asked = sent[-1]
    assert len(asked["attachments"]) == 1
    uploaded = stored_file(asked["attachments"][0])
    assert (uploaded.filename, uploaded.content_type, uploaded.user_id) == (
        "dot.png",
        "image/png",
        "dana",
    )
    assert not any("data:" in json.dumps(frame) for frame in sent)
    assert page.locator("#attachments li").count() == 0

    # Shopping: the interview's options are buttons; a click answers in the same session.
    page.get_by_label("Shopping").check()
    ask(page, "I need headphones")
    wait_until_idle(page)
    assert "What will you mainly use it for?" in last_answer(page)
    options = page.locator("#transcript .turn").last.locator("button.option")
    assert "Just show me products" in options.all_text_contents()
    options.filter(has_text="Just show me products").click()
    wait_until_idle(page)
    choice = sent[-1]
    assert choice["selected_option"] == "Just show me products"
    assert choice["mode"] == "shopping" and choice["session_id"] == sent[-2]["session_id"]
    cards = page.locator("#transcript .turn").last.locator(".cards .card")
    assert cards.count() >= 1
    first = cards.first
    assert first.locator("h3 a").get_attribute("href").startswith("http")
    assert first.locator(".price").text_content()
    assert first.locator(".source").text_content()
    # Shop images are off-machine (refused here): each leaves a placeholder, not a broken box.
    first.locator(".no-image").wait_for()
    assert browser.blocked
    assert all(url.startswith("https://encrypted-tbn0.gstatic.com/") for url in browser.blocked)
    page.locator("#transcript .turn").last.screenshot(path=str(SCREENSHOTS / "chat-products.png"))
    page.screenshot(path=str(SCREENSHOTS / "chat-shopping.png"))


def test_errors_from_the_server_are_shown(live_daphne, chat_user, browser):
    page = browser.page
    log_in(page, live_daphne.url)
    page.get_by_label("Provider").select_option("openai")
    page.get_by_label("Model").fill("")
    page.evaluate("document.getElementById('question').removeAttribute('maxlength')")
    ask(page, "x" * 8001)  # longer than the server accepts
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "8000" in alert.text_content()
    wait_until_idle(page)
    assert page.get_by_role("button", name="Send").is_enabled()
    assert page.get_by_role("button", name="Stop").is_hidden()

    # Logging out forgets this tab's conversation: the next user of the tab starts clean.
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{live_daphne.url}/login/")
    kept = page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('llmchat:'))")
    assert kept == []


def stored_span_names(query_id: str) -> set[str]:
    """The names of the answer's stored spans, read from a plain thread (see ``stored``)."""
    from llmplatform.core.models import TraceSpan

    def read() -> set[str]:
        trace_id = Query.objects.get(pk=query_id).trace_id
        return set(TraceSpan.objects.filter(trace_id=trace_id).values_list("name", flat=True))

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(read).result()


def test_an_answers_trace_shows_its_steps(live_daphne, fakes, chat_user, browser):
    page = browser.page
    log_in(page, live_daphne.url)
    page.get_by_label("Provider").select_option("openai")
    page.get_by_role("radio", name="Off", exact=True).check()
    ask(page, "Hello there")
    wait_until_idle(page)
    turn = page.locator("#transcript .turn").last
    query_id = turn.get_attribute("data-query-id")
    # The servers store a trace once its run has ended, a moment after the answer's done.
    deadline = time.monotonic() + 20
    while not {"query.start", "query.run", "chat gpt-4o-mini"} <= stored_span_names(query_id):
        assert time.monotonic() < deadline, stored_span_names(query_id)
        time.sleep(0.1)

    turn.locator(".answer-trace summary", has_text="Trace").click()
    steps = turn.locator(".trace-steps .trace-step")
    steps.first.wait_for()
    names = [name.strip() for name in steps.locator(".trace-name").all_text_contents()]
    assert names[0] == "query.start"
    assert {"query.run", "agent WriterAgent", "chat gpt-4o-mini"} <= set(names)
    # Indented under its parent, its bar drawn on the answer's timeline.
    start_indent = steps.nth(0).locator(".trace-name").evaluate("n => n.style.paddingLeft")
    run = steps.filter(has_text="query.run")
    assert run.locator(".trace-name").evaluate("n => n.style.paddingLeft") != start_indent
    chat = steps.filter(has_text="chat gpt-4o-mini")
    bar = chat.locator(".trace-bar").bounding_box()
    assert bar is not None and bar["width"] > 0
    assert "tokens" in chat.locator(".trace-facts").text_content()
    turn.screenshot(path=str(SCREENSHOTS / "chat-trace.png"))
