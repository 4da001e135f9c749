"""Streaming end to end against a real daphne process, a real Celery worker and Redis."""

from __future__ import annotations

import json

import httpx2
import pytest
import redis
from django.conf import settings
from websockets.sync.client import connect

from queries.models import Query
from tests.fakes.server import echo_reply_text
from tests.live_services import sse_frames

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TEXT = "Tell me a long story about streaming"


@pytest.fixture(autouse=True)
def _wired(vendor_settings):
    """Vendors pointed at the fakes (the daphne processes were started with the same)."""


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


def test_sse_event_sequence(daphne, owner):
    with httpx2.stream(
        "POST", f"{daphne.url}/api/v1/query/stream", json=body(), headers=auth(owner[1]), timeout=30
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        frames = [frame for frame in sse_frames(response) if frame.event is not None]
    assert all(frame.id for frame in frames)
    events = [frame.event for frame in frames]
    query_id = events[0]["query_id"]
    assert events[0] == {"type": "node", "node": "CoordinatorAgent", "query_id": query_id}
    assert {"type": "node", "node": "WriterAgent"} in events
    assert "".join(e["content"] for e in events if e["type"] == "chunk") == echo_reply_text(TEXT)
    final = events[-2]
    assert final["type"] == "final" and final["query_id"] == query_id
    assert {"options", "product_cards", "citations", "metadata"} <= set(final)
    assert events[-1] == {"type": "done", "message": "Query complete"}
    assert Query.objects.get(pk=query_id).status == Query.Status.COMPLETED


def test_resume_after_a_dropped_connection_loses_and_repeats_nothing(daphne, owner, fakes):
    fakes["openai"].chunk_count = 30
    fakes["openai"].chunk_interval = 0.05
    seen = []
    with httpx2.stream(
        "POST", f"{daphne.url}/api/v1/query/stream", json=body(), headers=auth(owner[1]), timeout=30
    ) as response:
        for frame in sse_frames(response):
            if frame.event is None:
                continue
            seen.append(frame)
            if sum(f.event["type"] == "chunk" for f in seen) == 5:
                break  # the client drops the connection mid-answer
    query_id = seen[0].event["query_id"]
    with httpx2.stream(
        "GET",
        f"{daphne.url}/api/v1/query/{query_id}/stream",
        headers={**auth(owner[1]), "Last-Event-ID": seen[-1].id},
        timeout=30,
    ) as response:
        rest = [frame for frame in sse_frames(response) if frame.event is not None]
    ids = [f.id for f in seen + rest]
    assert len(ids) == len(set(ids))
    chunks = "".join(f.event["content"] for f in seen + rest if f.event["type"] == "chunk")
    assert chunks == echo_reply_text(TEXT)
    assert rest[-1].event["type"] == "done"
    # The query-parameter form resumes the same way.
    with httpx2.stream(
        "GET",
        f"{daphne.url}/api/v1/query/{query_id}/stream",
        params={"last_event_id": rest[-2].id},
        headers=auth(owner[1]),
        timeout=30,
    ) as response:
        tail = [f.event for f in sse_frames(response) if f.event is not None]
    assert tail == [{"type": "done", "message": "Query complete"}]


def test_cancel_stops_the_provider_stream_and_stores_the_partial_answer(daphne, owner, fakes):
    fakes["openai"].chunk_count = 100
    fakes["openai"].chunk_interval = 0.1  # the whole answer would take 10 s
    events = []
    query_id = None
    with httpx2.stream(
        "POST", f"{daphne.url}/api/v1/query/stream", json=body(), headers=auth(owner[1]), timeout=30
    ) as response:
        for frame in sse_frames(response):
            if frame.event is None:
                continue
            events.append(frame.event)
            # Once: the stop may land before the next chunk, and final + done follow.
            if query_id is None and sum(e["type"] == "chunk" for e in events) == 3:
                query_id = events[0]["query_id"]
                cancelled = httpx2.post(
                    f"{daphne.url}/api/v1/query/{query_id}/cancel",
                    headers=auth(owner[1]),
                    timeout=10,
                ).json()
                assert cancelled["cancel_requested"] is True
    assert events[-1] == {"type": "done", "message": "Query cancelled"}
    chunks = [e for e in events if e["type"] == "chunk"]
    # A stop polled every 0.1 s lets at most a few more 0.1 s chunks through, not the rest.
    assert 3 <= len(chunks) < 20
    stored = Query.objects.get(pk=query_id)
    assert stored.status == Query.Status.CANCELLED
    assert stored.response == "".join(c["content"] for c in chunks)
    assert stored.usage["estimated"] is True and stored.usage["output_tokens"] == len(chunks)
    again = httpx2.post(
        f"{daphne.url}/api/v1/query/{query_id}/cancel", headers=auth(owner[1]), timeout=10
    ).json()
    assert again["cancel_requested"] is False


def test_expired_log_replays_the_stored_answer(live_daphne, owner):
    with httpx2.stream(
        "POST",
        f"{live_daphne.url}/api/v1/query/stream",
        json=body(),
        headers=auth(owner[1]),
        timeout=30,
    ) as response:
        frames = [f for f in sse_frames(response) if f.event is not None]
    first = frames[0]
    query_id = first.event["query_id"]
    redis.Redis.from_url(settings.REDIS_URL).delete(f"llmplatform:query:{query_id}:events")
    with httpx2.stream(
        "GET",
        f"{live_daphne.url}/api/v1/query/{query_id}/stream",
        headers=auth(owner[1]),
        timeout=30,
    ) as response:
        events = [f.event for f in sse_frames(response) if f.event is not None]
    assert [e["type"] for e in events] == ["final", "done"]
    assert events[0]["response"] == echo_reply_text(TEXT)


def test_sse_rejects_missing_key_and_bad_input_with_envelopes(daphne, owner):
    unauthenticated = httpx2.post(f"{daphne.url}/api/v1/query/stream", json=body(), timeout=10)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "not_authenticated"
    bad = httpx2.post(
        f"{daphne.url}/api/v1/query/stream", json={"query": ""}, headers=auth(owner[1]), timeout=10
    )
    assert bad.status_code == 400
    assert "user_id" in bad.json()["error"]["message"]
    unknown = httpx2.post(
        f"{daphne.url}/api/v1/query/stream",
        json=body(model_provider="nope"),
        headers=auth(owner[1]),
        timeout=10,
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "unknown_provider"


def test_another_owner_cannot_resume_or_cancel(daphne, owner, make_owner):
    _, other_key = make_owner("mallory")
    with httpx2.stream(
        "POST", f"{daphne.url}/api/v1/query/stream", json=body(), headers=auth(owner[1]), timeout=30
    ) as response:
        frames = [f for f in sse_frames(response) if f.event is not None]
    query_id = frames[0].event["query_id"]
    resumed = httpx2.get(
        f"{daphne.url}/api/v1/query/{query_id}/stream", headers=auth(other_key), timeout=10
    )
    assert resumed.status_code == 404
    assert resumed.json()["error"]["code"] == "not_found"
    cancelled = httpx2.post(
        f"{daphne.url}/api/v1/query/{query_id}/cancel", headers=auth(other_key), timeout=10
    )
    assert cancelled.status_code == 404
    ws_url = daphne.url.replace("http", "ws") + f"/ws/chat/?api_key={other_key}"
    with connect(ws_url) as ws:
        ws.send(json.dumps({"type": "resume", "query_id": query_id, "last_event_id": None}))
        assert json.loads(ws.recv(timeout=10))["error"]["code"] == "not_found"


def _until_done(ws) -> list[dict]:
    events = []
    while True:
        events.append(json.loads(ws.recv(timeout=30)))
        if events[-1]["type"] == "done":
            return events


def test_websocket_query_resume_and_two_tabs(daphne, owner):
    ws_url = daphne.url.replace("http", "ws") + "/ws/chat/"
    with connect(ws_url, additional_headers=auth(owner[1])) as tab1:
        tab1.send(json.dumps({"type": "query", **body()}))
        events = _until_done(tab1)
        query_id = events[0]["query_id"]
        assert all(e["query_id"] == query_id and e["event_id"] for e in events)
        assert "".join(e["content"] for e in events if e["type"] == "chunk") == echo_reply_text(
            TEXT
        )
        assert events[-1]["type"] == "done"
        with connect(ws_url + f"?api_key={owner[1]}") as tab2:
            tab2.send(
                json.dumps(
                    {"type": "resume", "query_id": query_id, "last_event_id": events[2]["event_id"]}
                )
            )
            replay = _until_done(tab2)
        assert [e["event_id"] for e in replay] == [e["event_id"] for e in events[3:]]
        tab1.send(json.dumps({"type": "cancel", "query_id": query_id}))
        answer = json.loads(tab1.recv(timeout=10))
        assert answer == {
            "type": "cancel",
            "query_id": query_id,
            "cancel_requested": False,
            "status": "completed",
        }
        tab1.send("not json")
        assert json.loads(tab1.recv(timeout=10))["error"]["code"] == "malformed_request"


def test_websocket_refuses_unauthenticated_and_foreign_origins(daphne, owner):
    from websockets.exceptions import InvalidStatus

    ws_url = daphne.url.replace("http", "ws") + "/ws/chat/"
    for kwargs in ({}, {"additional_headers": auth(owner[1]), "origin": "http://evil.example"}):
        # Refused during the handshake (closed before accept): daphne answers 403.
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url, **kwargs)
        assert refused.value.response.status_code == 403
    # The same key from an allowed origin is accepted.
    with connect(ws_url, additional_headers=auth(owner[1]), origin=daphne.url) as ws:
        ws.send(json.dumps({"type": "nope"}))
        assert json.loads(ws.recv(timeout=10))["error"]["code"] == "unknown_message_type"


def test_silence_is_filled_with_heartbeat_comments(daphne, owner, fakes):
    fakes["openai"].chunk_count = 3
    fakes["openai"].chunk_interval = 1.2  # longer than SSE_HEARTBEAT_SECONDS (0.5 here)
    with httpx2.stream(
        "POST", f"{daphne.url}/api/v1/query/stream", json=body(), headers=auth(owner[1]), timeout=30
    ) as response:
        frames = list(sse_frames(response))
    comments = [f for f in frames if f.event is None]
    assert len(comments) >= 2  # "stream open" plus at least one keep-alive
    assert "".join(
        f.event["content"] for f in frames if f.event and f.event["type"] == "chunk"
    ) == echo_reply_text(TEXT)


def test_resume_with_a_foreign_event_id_is_a_400(daphne, owner):
    with httpx2.stream(
        "POST", f"{daphne.url}/api/v1/query/stream", json=body(), headers=auth(owner[1]), timeout=30
    ) as response:
        frames = [f for f in sse_frames(response) if f.event is not None]
    query_id = frames[0].event["query_id"]
    bad = httpx2.get(
        f"{daphne.url}/api/v1/query/{query_id}/stream",
        headers={**auth(owner[1]), "Last-Event-ID": "abc"},
        timeout=10,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_last_event_id"


def test_an_oversized_stream_request_is_a_413(daphne, owner):
    huge = body(query="x" * (11 * 1024 * 1024))  # over MAX_REQUEST_BODY (10 MiB)
    response = httpx2.post(
        f"{daphne.url}/api/v1/query/stream", json=huge, headers=auth(owner[1]), timeout=30
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
