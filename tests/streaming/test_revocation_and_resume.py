"""Open streams follow revocation and logout, and resuming always ends: against a real
uvicorn process, with Redis + Celery and in-process (the ``daphne`` fixture runs both)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import httpx2
import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from uvicorn.protocols.utils import ClientDisconnected
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from llmplatform.core.models import ApiKey
from llmplatform.core.services import api_key_revoke
from queries.consumers import ChatConsumer
from queries.models import Query
from tests.live_services import sse_frames

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TEXT = "Tell me a long story about revocation"
# Long enough that a stream cut by revocation (seen within about a second) cannot have
# reached its end: 300 chunks 0.1 s apart is 30 s of answer.
SLOW_CHUNKS, SLOW_INTERVAL_S = 300, 0.1
RECV_S = 15  # every wait on the socket has a deadline
PASSWORD = "revocation-test-password-1"


@pytest.fixture(autouse=True)
def _wired(vendor_settings):
    """Vendors pointed at the fakes (the server processes were started with the same)."""


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def body(**extra):
    return {
        "user_id": "u1",
        "session_id": "s1",
        "query": TEXT,
        "use_memory": False,
        "model_provider": "openai",
        **extra,
    }


def revoke(owner) -> None:
    api_key_revoke(api_key=ApiKey.objects.get(owner=owner[0]))


def ws_url(server) -> str:
    return server.url.replace("http", "ws") + "/ws/chat/"


def until_done(ws) -> list[dict]:
    events = []
    while True:
        events.append(json.loads(ws.recv(timeout=RECV_S)))
        if events[-1]["type"] == "done":
            return events


def refused_and_closed(ws) -> tuple[list[dict], int]:
    """Every message until the server closes the socket, and its close code."""
    received = []
    try:
        while True:
            received.append(json.loads(ws.recv(timeout=RECV_S)))
    except ConnectionClosed:
        pass
    return received, ws.close_code


def ask_after_revocation(ws) -> None:
    """A question right after the credential went; the server may already have closed."""
    with contextlib.suppress(ConnectionClosed):
        ws.send(json.dumps({"type": "query", **body()}))


# ----- revocation and logout reach open websockets -----


def test_a_revoked_key_refuses_the_next_question_and_closes_4401(daphne, owner, fakes):
    with connect(ws_url(daphne), additional_headers=auth(owner[1])) as ws:
        ws.send(json.dumps({"type": "query", **body()}))
        assert until_done(ws)[-1]["type"] == "done"
        asked = len(fakes["openai"].chat_requests)
        revoke(owner)
        ask_after_revocation(ws)
        received, code = refused_and_closed(ws)
    assert code == 4401
    assert [event["error"]["code"] for event in received] == ["api_key_revoked"]
    # Refused before the run started: no second query, no second vendor call.
    assert Query.objects.filter(owner=owner[0]).count() == 1
    assert len(fakes["openai"].chat_requests) == asked


def test_a_revoked_key_closes_an_idle_socket_4401(daphne, owner):
    with connect(ws_url(daphne), additional_headers=auth(owner[1])) as ws:
        ws.send(json.dumps({"type": "nope"}))  # the socket is open and answering
        assert json.loads(ws.recv(timeout=RECV_S))["error"]["code"] == "unknown_message_type"
        revoke(owner)
        received, code = refused_and_closed(ws)  # the client sends nothing more
    assert code == 4401
    assert [event["error"]["code"] for event in received] == ["api_key_revoked"]


def test_a_revoked_key_ends_a_socket_following_a_long_answer(daphne, owner, fakes):
    fakes["openai"].chunk_count = SLOW_CHUNKS
    fakes["openai"].chunk_interval = SLOW_INTERVAL_S
    with connect(ws_url(daphne), additional_headers=auth(owner[1])) as ws:
        ws.send(json.dumps({"type": "query", **body()}))
        while json.loads(ws.recv(timeout=RECV_S))["type"] != "chunk":
            pass
        revoke(owner)
        received, code = refused_and_closed(ws)
    assert code == 4401
    assert received[-1]["type"] == "error"
    assert received[-1]["error"]["code"] == "api_key_revoked"
    assert "final" not in [event["type"] for event in received]


def browser_session(username: str) -> tuple[Client, str]:
    """A user signed in through Django's own login (the chat page's), and its cookie."""
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    return client, f"{settings.SESSION_COOKIE_NAME}={cookie}"


def test_logout_refuses_the_next_question_and_closes_the_browser_socket_4401(daphne, fakes):
    client, cookie = browser_session("erin")
    with connect(ws_url(daphne), additional_headers={"Cookie": cookie}, origin=daphne.url) as ws:
        ws.send(json.dumps({"type": "query", **body()}))
        assert until_done(ws)[-1]["type"] == "done"
        asked = len(fakes["openai"].chat_requests)
        assert client.post("/logout/").status_code == 302  # the chat page's sign-out
        ask_after_revocation(ws)
        received, code = refused_and_closed(ws)
    assert code == 4401
    assert [event["error"]["code"] for event in received] == ["session_ended"]
    assert Query.objects.filter(owner__username="erin").count() == 1
    assert len(fakes["openai"].chat_requests) == asked


def test_logout_closes_an_idle_browser_socket_4401(daphne):
    client, cookie = browser_session("frank")
    with connect(ws_url(daphne), additional_headers={"Cookie": cookie}, origin=daphne.url) as ws:
        ws.send(json.dumps({"type": "nope"}))
        assert json.loads(ws.recv(timeout=RECV_S))["error"]["code"] == "unknown_message_type"
        client.post("/logout/")
        received, code = refused_and_closed(ws)
    assert code == 4401
    assert [event["error"]["code"] for event in received] == ["session_ended"]


def test_a_login_cookie_without_an_origin_is_refused(daphne):
    # A cookie is sent with any site's request: without an Origin there is nothing to
    # check it against (cross-site websocket hijacking), so it does not authenticate.
    _, cookie = browser_session("gina")
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(daphne), additional_headers={"Cookie": cookie})
    assert refused.value.response.status_code == 403  # closed (4401) before accept
    with connect(ws_url(daphne), additional_headers={"Cookie": cookie}, origin=daphne.url) as ws:
        ws.send(json.dumps({"type": "nope"}))
        assert json.loads(ws.recv(timeout=RECV_S))["error"]["code"] == "unknown_message_type"


# ----- revocation ends long SSE streams -----


def test_a_revoked_key_ends_a_long_sse_stream_with_an_error_then_done(daphne, owner, fakes):
    fakes["openai"].chunk_count = SLOW_CHUNKS
    fakes["openai"].chunk_interval = SLOW_INTERVAL_S
    events, revoked = [], False
    with httpx2.stream(
        "POST", f"{daphne.url}/api/v1/query/stream", json=body(), headers=auth(owner[1]), timeout=30
    ) as response:
        assert response.status_code == 200
        for frame in sse_frames(response):
            if frame.event is None:
                continue
            events.append(frame.event)
            if frame.event["type"] == "chunk" and not revoked:
                revoke(owner)
                revoked = True
    kinds = [e["type"] for e in events]
    assert kinds[-2:] == ["error", "done"]
    assert events[-2]["error"]["code"] == "api_key_revoked"
    assert "final" not in kinds  # cut long before the 30 s answer ended


def _revoked_midway(daphne, owner, fakes, path: str, request: dict, *, after: int) -> list[dict]:
    """The events of a long /v1 stream whose key is revoked once ``after`` have come."""
    fakes["openai"].chunk_count = SLOW_CHUNKS
    fakes["openai"].chunk_interval = SLOW_INTERVAL_S
    payloads, revoked = [], False
    with httpx2.stream(
        "POST", f"{daphne.url}{path}", json=request, headers=auth(owner[1]), timeout=30
    ) as response:
        assert response.status_code == 200
        for frame in sse_frames(response):
            if frame.event is None:
                continue
            payloads.append(frame.event)
            if len(payloads) == after and not revoked:
                revoke(owner)
                revoked = True
    return payloads


def test_a_revoked_key_ends_a_long_v1_stream_with_an_error(daphne, owner, fakes):
    request = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": TEXT}],
        "stream": True,
    }
    payloads = _revoked_midway(daphne, owner, fakes, "/v1/chat/completions", request, after=3)
    assert payloads[-1]["error"]["code"] == "api_key_revoked"
    finishes = [p["choices"][0]["finish_reason"] for p in payloads if p.get("choices")]
    assert "stop" not in finishes


def test_a_revoked_key_ends_a_long_v1_responses_stream_with_response_failed(daphne, owner, fakes):
    request = {"model": "openai/gpt-4o-mini", "input": TEXT, "stream": True}
    payloads = _revoked_midway(daphne, owner, fakes, "/v1/responses", request, after=5)
    assert payloads[-1]["type"] == "response.failed"
    assert payloads[-1]["response"]["error"]["code"] == "api_key_revoked"
    assert "response.completed" not in [p["type"] for p in payloads]


# ----- resuming ends -----


def finished_stream(server, owner) -> list:
    with httpx2.stream(
        "POST", f"{server.url}/api/v1/query/stream", json=body(), headers=auth(owner[1]), timeout=30
    ) as response:
        return [frame for frame in sse_frames(response) if frame.event is not None]


def resumed(server, owner, query_id: str, last_event_id: str) -> tuple[int, list]:
    with httpx2.stream(
        "GET",
        f"{server.url}/api/v1/query/{query_id}/stream",
        headers={**auth(owner[1]), "Last-Event-ID": last_event_id},
        timeout=30,
    ) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, [response.json()]
        return 200, [frame for frame in sse_frames(response) if frame.event is not None]


@pytest.fixture
def past_the_end(request) -> str:
    """An id later than any the deployment's log has handed out (positions in memory,
    milliseconds-sequence in Redis)."""
    in_process = request.node.callspec.params["daphne"] == "in-process"
    return "99999" if in_process else "99999999999999-0"


def test_resuming_at_or_past_the_end_of_a_finished_stream_ends_with_done(
    daphne, owner, past_the_end
):
    frames = finished_stream(daphne, owner)
    query_id, done = frames[0].event["query_id"], frames[-1]
    assert done.event["type"] == "done"
    for last_event_id in (done.id, past_the_end):
        status, tail = resumed(daphne, owner, query_id, last_event_id)
        assert status == 200
        assert [(f.id, f.event) for f in tail] == [(done.id, done.event)]
    with connect(ws_url(daphne), additional_headers=auth(owner[1])) as ws:
        for last_event_id in (done.id, past_the_end):
            message = {"type": "resume", "query_id": query_id, "last_event_id": last_event_id}
            ws.send(json.dumps(message))
            assert json.loads(ws.recv(timeout=RECV_S)) == {
                **done.event,
                "query_id": query_id,
                "event_id": done.id,
            }


def test_an_id_past_the_end_of_a_live_stream_or_malformed_is_refused(
    daphne, owner, fakes, past_the_end
):
    fakes["openai"].chunk_count = SLOW_CHUNKS
    fakes["openai"].chunk_interval = SLOW_INTERVAL_S
    with httpx2.stream(
        "POST", f"{daphne.url}/api/v1/query/stream", json=body(), headers=auth(owner[1]), timeout=30
    ) as response:
        first = next(f for f in sse_frames(response) if f.event is not None)
        query_id = first.event["query_id"]
        for last_event_id in (past_the_end, "stored-1", "abc", "stored-x"):
            status, answer = resumed(daphne, owner, query_id, last_event_id)
            assert status == 400, last_event_id
            assert answer[0]["error"]["code"] == "invalid_last_event_id"
        with connect(ws_url(daphne), additional_headers=auth(owner[1])) as ws:
            message = {"type": "resume", "query_id": query_id, "last_event_id": "stored-1"}
            ws.send(json.dumps(message))
            reply = json.loads(ws.recv(timeout=RECV_S))
            assert reply["type"] == "error"
            assert reply["error"]["code"] == "invalid_last_event_id"
        # The id the client really has is accepted: the stream goes on from there.
        status, _ = resumed_first(daphne, owner, query_id, first.id)
        assert status == 200
        httpx2.post(
            f"{daphne.url}/api/v1/query/{query_id}/cancel", headers=auth(owner[1]), timeout=10
        )


def resumed_first(server, owner, query_id: str, last_event_id: str) -> tuple[int, dict | None]:
    """The status and first event of a resumed stream (then the client leaves)."""
    with httpx2.stream(
        "GET",
        f"{server.url}/api/v1/query/{query_id}/stream",
        headers={**auth(owner[1]), "Last-Event-ID": last_event_id},
        timeout=30,
    ) as response:
        if response.status_code != 200:
            return response.status_code, None
        return 200, next(f.event for f in sse_frames(response) if f.event is not None)


def test_stored_ids_resume_like_every_other_id(live_daphne, owner):
    frames = finished_stream(live_daphne, owner)
    query_id = frames[0].event["query_id"]
    redis.Redis.from_url(settings.REDIS_URL).delete(f"llmplatform:query:{query_id}:events")
    status, whole = resumed(live_daphne, owner, query_id, "")
    assert [(f.id, f.event["type"]) for f in whole] == [("stored-1", "final"), ("stored-2", "done")]
    done = [("stored-2", {"type": "done", "message": "Query complete"})]
    for last_event_id in ("stored-1", "stored-2", "stored-9"):
        status, tail = resumed(live_daphne, owner, query_id, last_event_id)
        assert status == 200
        assert [(f.id, f.event) for f in tail] == done, last_event_id
    status, answer = resumed(live_daphne, owner, query_id, "stored-")
    assert status == 400 and answer[0]["error"]["code"] == "invalid_last_event_id"


# ----- a client leaving is not an error -----


def test_a_send_after_the_client_left_is_not_logged_as_an_error(owner, caplog):
    query = Query.objects.create(
        owner=owner[0],
        user_id="u",
        session_id="s",
        query="q",
        response="answer",
        model_provider="openai",
        model_name="m",
        status=Query.Status.COMPLETED,
    )

    async def left(message) -> None:  # what uvicorn raises once the client has gone
        raise ClientDisconnected()

    async def follow_then_cancel() -> None:
        consumer = ChatConsumer()
        consumer.base_send = left
        consumer.owner = owner[0]
        consumer.followers = {}
        await consumer._forward(str(query.pk), after=None, stored=query)
        await consumer.receive_json({"type": "cancel", "query_id": str(query.pk)})

    with caplog.at_level(logging.DEBUG, logger="queries.consumers"):
        asyncio.run(follow_then_cancel())
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("client left" in r.getMessage() for r in caplog.records)
