"""The chat page's websocket (signed in, no API key) asks only as its own end user: a
``user_id`` in the message cannot make it act for another end user of the account
(issue 19, defect 12)."""

from __future__ import annotations

import asyncio

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import path

from llmplatform.core.errors import ApplicationError
from queries import consumers
from queries.consumers import ChatConsumer

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_pages_socket_asks_as_the_signed_in_user_whatever_the_message_says(
    monkeypatch, settings
):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    user = get_user_model().objects.create_user("bob", password="pw-bob-123456")
    browser = Client()
    browser.force_login(user)
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value
    asked_as = []

    def recording_start(*, owner, params, **kwargs):
        asked_as.append((owner.pk, params.user_id))
        raise ApplicationError("Recorded; not run.", code="recorded")

    monkeypatch.setattr(consumers, "query_start", recording_start)

    async def ask(message):
        app = AuthMiddlewareStack(URLRouter([path("ws/chat/", ChatConsumer.as_asgi())]))
        communicator = WebsocketCommunicator(
            app,
            "/ws/chat/",
            headers=[
                (b"host", b"127.0.0.1:8000"),
                (b"origin", b"http://127.0.0.1:8000"),
                (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()),
            ],
        )
        connected, code = await communicator.connect(timeout=10)
        assert connected, code
        await communicator.send_json_to(message)
        reply = await communicator.receive_json_from(timeout=10)
        await communicator.disconnect()
        return reply

    for named in ("shared_user", "bob", None):
        message = {"type": "query", "query": "What did they ask?", "session_id": "shared"}
        if named is not None:
            message["user_id"] = named
        reply = asyncio.run(ask(message))
        assert reply["error"]["code"] == "recorded", reply
    assert asked_as == [(user.pk, "bob")] * 3
