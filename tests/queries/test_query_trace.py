"""One question, one trace, whichever process ran it; and the trace over the API.

The Celery tests run a real worker over Redis, the SSE ones a real daphne process (with
a worker, and in-process): their spans are stored by those processes, and read here
from the same database, as the trace endpoint reads them.
"""

from __future__ import annotations

import json
import os
import time

import httpx2
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from websockets.sync.client import connect

from llmplatform.core.models import TraceSpan
from llmplatform.core.trace_store import traces_drain
from queries.models import Query
from tests.admin.test_admin_browser import browser_page  # noqa: F401  (a fixture used here)
from tests.core.trace_reading import SpanTree
from tests.live_services import sse_frames

CLIENT_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"


def body(**extra):
    return {"user_id": "u1", "session_id": "s1", "query": "Hello", "use_memory": False, **extra}


def stored_trace(trace_id: str, *, until: tuple[str, ...] = ("query.run",)) -> SpanTree:
    """The trace's stored spans once those named ``until`` are there (another process
    may be storing them)."""
    deadline = time.monotonic() + 20
    while True:
        traces_drain()
        spans = list(TraceSpan.objects.filter(trace_id=trace_id))
        if {name for name in until} <= {span.name for span in spans}:
            return SpanTree(spans)
        assert time.monotonic() < deadline, f"{until} not in {[s.name for s in spans]}"
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_celery_run_continues_the_trace_its_start_began(api, celery_worker, vendor_settings):
    answer = api.post("/api/v1/query/", body(), format="json").json()
    assert answer["status"] == "completed"
    tree = stored_trace(answer["trace_id"], until=("query.start", "query.run", "chat gpt-4o-mini"))
    # query.start in this process, query.run in the worker: one tree.
    assert tree.parent("query.run") == tree.one("query.start")
    assert tree.parent("agent WriterAgent") == tree.one("query.run")
    assert tree.one("query.run").attributes["llmplatform.query_id"] == answer["query_id"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_an_sse_clients_traceparent_is_the_parent_of_its_question(daphne, owner, vendor_settings):
    with httpx2.stream(
        "POST",
        f"{daphne.url}/api/v1/query/stream",
        json=body(model_provider="openai"),
        headers={"Authorization": f"Bearer {owner[1]}", "traceparent": TRACEPARENT},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        events = [frame.event for frame in sse_frames(response) if frame.event is not None]
    query = Query.objects.get(pk=events[0]["query_id"])
    assert query.trace_id == CLIENT_TRACE_ID
    tree = stored_trace(CLIENT_TRACE_ID, until=("query.start", "query.run"))
    assert tree.one("query.start").parent_id == CLIENT_SPAN_ID
    assert tree.parent("query.run") == tree.one("query.start")
    TraceSpan.objects.filter(trace_id=CLIENT_TRACE_ID).delete()  # the next mode's turn


HANDSHAKE_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
HANDSHAKE_SPAN_ID = "00f067aa0ba902b7"


def _asked_over_websocket(ws, **message) -> str:
    """Ask one question on ``ws``; its query id once the answer is done."""
    ws.send(json.dumps({"type": "query", **body(model_provider="openai"), **message}))
    while True:
        event = json.loads(ws.recv(timeout=30))
        assert event["type"] != "error", event
        if event["type"] == "done":
            return event["query_id"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_websocket_clients_traceparent_is_the_parent_of_its_question(
    daphne, owner, vendor_settings
):
    url = daphne.url.replace("http", "ws") + "/ws/chat/"
    headers = {
        "Authorization": f"Bearer {owner[1]}",
        "traceparent": f"00-{HANDSHAKE_TRACE_ID}-{HANDSHAKE_SPAN_ID}-01",
    }
    with connect(url, additional_headers=headers) as ws:
        # A message's own traceparent wins over the handshake's ...
        in_message = _asked_over_websocket(ws, traceparent=TRACEPARENT)
        # ... and without one, the handshake's is the parent.
        in_handshake = _asked_over_websocket(ws)
        ws.send(json.dumps({"type": "query", **body(), "traceparent": 7}))
        refused = json.loads(ws.recv(timeout=10))
    assert refused["error"]["code"] == "validation_error"
    for query_id, trace_id, span_id in (
        (in_message, CLIENT_TRACE_ID, CLIENT_SPAN_ID),
        (in_handshake, HANDSHAKE_TRACE_ID, HANDSHAKE_SPAN_ID),
    ):
        assert Query.objects.get(pk=query_id).trace_id == trace_id
        tree = stored_trace(trace_id, until=("query.start", "query.run"))
        assert tree.one("query.start").parent_id == span_id
        assert tree.parent("query.run") == tree.one("query.start")
        assert tree.one("query.run").attributes["llmplatform.query_id"] == query_id
        TraceSpan.objects.filter(trace_id=trace_id).delete()  # the next mode's turn


@pytest.mark.django_db
@pytest.mark.usefixtures("in_process")
def test_a_v1_clients_traceparent_is_the_parent_of_its_question(api):
    response = api.post(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
        format="json",
        HTTP_TRACEPARENT=TRACEPARENT,
    )
    assert response.status_code == 200, response.content
    query = Query.objects.get(trace_id=CLIENT_TRACE_ID)
    tree = stored_trace(CLIENT_TRACE_ID)
    assert tree.one("query.start").parent_id == CLIENT_SPAN_ID
    assert tree.one("query.run").attributes["llmplatform.query_id"] == str(query.pk)


@pytest.mark.django_db
@pytest.mark.usefixtures("in_process")
def test_the_trace_endpoint_returns_the_owners_spans_and_404s_anyone_else(api, other_api):
    answer = api.post("/api/v1/query/", body(), format="json").json()
    stored_trace(answer["trace_id"])
    url = f"/api/v1/query/{answer['query_id']}/trace"
    response = api.get(url)
    assert response.status_code == 200
    trace = response.json()
    assert trace["query_id"] == answer["query_id"]
    assert trace["trace_id"] == answer["trace_id"]
    spans = {span["name"]: span for span in trace["spans"]}
    assert {"query.start", "query.run", "agent WriterAgent", "chat gpt-4o-mini"} <= set(spans)
    run, start = spans["query.run"], spans["query.start"]
    assert run["parent_id"] == start["span_id"] and start["parent_id"] == ""
    assert run["duration_ms"] > 0 and run["status"] == "unset"
    assert run["start"] <= run["end"]
    chat = spans["chat gpt-4o-mini"]
    assert chat["attributes"]["gen_ai.usage.output_tokens"] == answer["usage"]["output_tokens"]
    other = other_api.get(url)
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
@pytest.mark.usefixtures("in_process")
def test_the_admin_waterfall_shows_each_step_linked_from_the_query(api, admin_client):
    answer = api.post("/api/v1/query/", body(), format="json").json()
    stored_trace(answer["trace_id"])
    change = admin_client.get(f"/admin/queries/query/{answer['query_id']}/change/")
    url = f"/admin/queries/query/{answer['query_id']}/trace/"
    assert url in change.content.decode()
    page = admin_client.get(url)
    assert page.status_code == 200
    rows = page.context["rows"]
    names = [row.span.name for row in rows]
    # Tree order: the start, then the run under it, its agents under the run.
    assert names[0] == "query.start" and rows[0].depth == 0
    run = names.index("query.run")
    assert rows[run].depth == 1 and rows[names.index("agent WriterAgent")].depth == 2
    [chat] = [row for row in rows if row.span.name == "chat gpt-4o-mini"]
    assert chat.tokens == answer["usage"]["input_tokens"] + answer["usage"]["output_tokens"]
    assert 0 <= chat.offset_pct <= 100 and 0 < chat.width_pct <= 100
    assert "gen_ai.usage.output_tokens" in page.content.decode()


@pytest.fixture
def traced_answer(in_process, api, live_server) -> dict:
    # Asked and stored before Playwright starts: its sync API runs an event loop in this
    # thread, and Django refuses ORM calls while one is running.
    get_user_model().objects.create_superuser("operator", "op@example.com", "s3cret-pass-123")
    answer = api.post("/api/v1/query/", body(use_memory=True), format="json").json()
    stored_trace(answer["trace_id"])
    return answer


@pytest.fixture
def page(request):
    """The admin tests' headless Chromium page."""
    return request.getfixturevalue("browser_page")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_waterfall_opens_a_step_to_show_its_attributes(live_server, traced_answer, page):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "s3cret-pass-123")
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/queries/query/{traced_answer['query_id']}/change/")
    page.click("text=Waterfall of trace")
    page.wait_for_selector("#waterfall")
    chat = page.locator("tr.span-row", has_text="chat gpt-4o-mini")
    bar = chat.locator(".bar").bounding_box()
    assert bar is not None and bar["width"] > 0
    assert not chat.locator("pre").is_visible()
    chat.locator("summary").click()
    assert '"gen_ai.system": "openai"' in chat.locator("pre").inner_text()
    # WATERFALL_SCREENSHOT=docs/trace-waterfall.png refreshes the README's picture.
    path = os.environ.get("WATERFALL_SCREENSHOT")
    if path:
        page.screenshot(path=path, full_page=True)


@pytest.mark.django_db
@pytest.mark.usefixtures("in_process")
def test_the_chat_pages_answer_trace_is_its_end_users_alone(owner, api, make_owner):
    user = owner[0]
    mine = api.post("/api/v1/query/", body(user_id=user.get_username()), format="json").json()
    another_end_users = api.post("/api/v1/query/", body(), format="json").json()
    stored_trace(mine["trace_id"])
    page = Client()
    page.force_login(user)
    url = f"/chat/api/answers/{mine['query_id']}/trace"
    response = page.get(url)
    assert response.status_code == 200, response.content
    steps = response.json()["steps"]
    names = [step["name"] for step in steps]
    # The same spans as the API's, in the admin waterfall's tree order.
    api_names = {
        span["name"] for span in api.get(f"/api/v1/query/{mine['query_id']}/trace").json()["spans"]
    }
    assert set(names) == api_names
    assert names[0] == "query.start" and steps[0]["depth"] == 0
    run = steps[names.index("query.run")]
    assert run["depth"] == 1 and run["duration_ms"] > 0 and 0 < run["width_pct"] <= 100
    chat = steps[names.index("chat gpt-4o-mini")]
    usage = mine["usage"]
    assert chat["tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert "attributes" not in chat

    mallory = Client()
    mallory.force_login(make_owner("mallory")[0])
    refused = mallory.get(url)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    # The same account's answer for another end user (an API client's) is not the page's.
    other = page.get(f"/chat/api/answers/{another_end_users['query_id']}/trace")
    assert other.status_code == 404
    assert Client().get(url).status_code == 403  # signed out
