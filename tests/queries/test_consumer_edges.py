"""The SSE and websocket edges, driven in-process through Channels' communicators: bad
input gets a 4xx envelope (never a hang), a crash gets a 500 envelope and a log line, one
Last-Event-ID parser serves every transport, and browsers' origins are checked whole."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from channels.routing import URLRouter
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.urls import path

from queries import consumers
from queries.consumers import ChatConsumer, QueryResumeConsumer, QueryStreamConsumer
from queries.models import Query

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("in_process")]

http_app = URLRouter(
    [
        path("api/v1/query/stream", QueryStreamConsumer.as_asgi()),
        path("api/v1/query/<str:query_id>/stream", QueryResumeConsumer.as_asgi()),
    ]
)
ws_app = URLRouter([path("ws/chat/", ChatConsumer.as_asgi())])


def sse(method, url, key, *, body=b"", headers=()):
    communicator = HttpCommunicator(
        http_app,
        method,
        url,
        body=body,
        headers=[(b"authorization", f"Bearer {key}".encode()), *headers],
    )
    return asyncio.run(communicator.get_response(timeout=20))


def envelope(response) -> dict:
    return json.loads(response["body"])["error"]


def header(response, name: bytes) -> bytes | None:
    return dict(response["headers"]).get(name)


def test_deeply_nested_json_to_the_stream_is_a_400_not_a_hang(owner):
    nested = b"[" * 1500 + b"]" * 1500
    response = sse("POST", "/api/v1/query/stream", owner[1], body=nested)
    assert response["status"] == 400
    assert envelope(response)["code"] == "json_too_deep"
    # Served outside Django's middleware, yet with its security headers.
    assert header(response, b"X-Content-Type-Options") == b"nosniff"
    assert b"default-src 'none'" in header(response, b"Content-Security-Policy")


def test_an_unexpected_error_in_the_stream_is_a_logged_500_envelope(owner, monkeypatch, caplog):
    def broken_start(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(consumers, "query_start", broken_start)
    body = json.dumps({"user_id": "u", "session_id": "s", "query": "hi"}).encode()
    with caplog.at_level(logging.ERROR, logger="queries.consumers"):
        response = sse("POST", "/api/v1/query/stream", owner[1], body=body)
    assert response["status"] == 500
    assert envelope(response)["code"] == "internal_error"
    assert "a bug" not in response["body"].decode()  # the caller learns nothing internal
    assert any("SSE request failed" in record.message for record in caplog.records)


def _finished_query(owner) -> Query:
    return Query.objects.create(
        owner=owner,
        user_id="u",
        session_id="s",
        query="q",
        response="answer",
        model_provider="openai",
        model_name="m",
        status=Query.Status.COMPLETED,
    )


@pytest.mark.parametrize("bad_id", ["garbage", "1732512345678-0", "-1", "1" * 40])
def test_the_in_memory_log_refuses_ids_it_never_handed_out(owner, bad_id):
    query = _finished_query(owner[0])
    response = sse(
        "GET",
        f"/api/v1/query/{query.pk}/stream",
        owner[1],
        headers=[(b"last-event-id", bad_id.encode())],
    )
    assert response["status"] == 400
    assert envelope(response)["code"] == "invalid_last_event_id"


def test_a_stored_answer_replay_id_resumes_after_that_frame(owner):
    query = _finished_query(owner[0])
    response = sse(
        "GET",
        f"/api/v1/query/{query.pk}/stream",
        owner[1],
        headers=[(b"last-event-id", b"stored-1")],
    )
    assert response["status"] == 200
    text = response["body"].decode()
    # stored-1 is the final event: only done follows it (never the whole answer again).
    assert '"type": "final"' not in text
    assert text.rstrip().endswith('"type": "done", "message": "Query complete"}')


async def _ws_exchange(key: str, message, *, origin: bytes | None = None):
    headers = [(b"authorization", f"Bearer {key}".encode()), (b"host", b"127.0.0.1:8000")]
    if origin is not None:
        headers.append((b"origin", origin))
    communicator = WebsocketCommunicator(ws_app, "/ws/chat/", headers=headers)
    connected, code = await communicator.connect(timeout=10)
    if not connected:
        return connected, code
    await communicator.send_to(text_data=json.dumps(message))
    reply = await communicator.receive_json_from(timeout=10)
    await communicator.disconnect()
    return connected, reply


@pytest.mark.parametrize("bad_id", [{"id": 1}, ["1"], "garbage", 12.5])
def test_a_websocket_resume_with_a_bad_id_is_an_error_event(owner, bad_id):
    query = _finished_query(owner[0])
    message = {"type": "resume", "query_id": str(query.pk), "last_event_id": bad_id}
    connected, reply = asyncio.run(_ws_exchange(owner[1], message))
    assert connected
    assert reply["type"] == "error"
    assert reply["error"]["code"] == "invalid_last_event_id"


def test_a_websocket_message_nested_too_deep_is_an_error_event(owner):
    message = {"type": "query", "query": "hi", "deep": json.loads("[" * 200 + "]" * 200)}
    connected, reply = asyncio.run(_ws_exchange(owner[1], message))
    assert connected
    assert reply["error"]["code"] == "json_too_deep"


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (b"http://127.0.0.1:8000", True),  # the site itself
        (b"http://127.0.0.1:9999", False),  # same host, another port
        (b"https://127.0.0.1:8000", False),  # another scheme
        (b"http://localhost:1234", False),
        (b"https://evil.example", False),
    ],
)
def test_a_browser_origin_must_match_scheme_host_and_port(owner, settings, origin, accepted):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    settings.CSRF_TRUSTED_ORIGINS = []
    query = _finished_query(owner[0])
    message = {"type": "cancel", "query_id": str(query.pk)}
    connected, reply = asyncio.run(_ws_exchange(owner[1], message, origin=origin))
    assert connected is accepted
    if not accepted:
        assert reply == 4403


def test_a_websocket_from_an_address_over_the_wrong_key_limit_is_closed_4429(settings):
    settings.API_KEY_FAILURES_PER_MINUTE = 2

    async def connect_with_a_wrong_key():
        communicator = WebsocketCommunicator(
            ws_app, "/ws/chat/", headers=[(b"authorization", b"Bearer llmp_wrong-0123456789")]
        )
        communicator.scope["client"] = ("192.0.2.77", 40000)
        connected, code = await communicator.connect(timeout=10)
        return connected, code

    codes = [asyncio.run(connect_with_a_wrong_key()) for _ in range(4)]
    assert codes[0] == (False, 4401)
    assert codes[-1] == (False, 4429)
