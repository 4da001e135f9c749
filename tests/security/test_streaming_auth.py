"""SSE authentication through the real consumer (in process): header only, Bearer only,
wrong keys counted with REST's."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator

from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _low_limit(settings):
    settings.API_KEY_FAILURES_PER_MINUTE = 3


def _sse(path: str, *, headers: list[tuple[bytes, bytes]], peer: str = "192.0.2.80") -> dict:
    async def call() -> dict:
        communicator = HttpCommunicator(application, "POST", path, body=b"{}", headers=headers)
        communicator.scope["client"] = (peer, 50000)
        try:
            return await communicator.get_response(timeout=10)
        finally:
            await communicator.wait()

    return async_to_sync(call)()


def _code(response: dict) -> str:
    return json.loads(response["body"])["error"]["code"]


def test_sse_refuses_a_key_in_the_query_string(owner):
    response = _sse(f"/api/v1/query/stream?api_key={owner[1]}", headers=[])
    assert response["status"] == 401
    assert _code(response) == "not_authenticated"


@pytest.mark.parametrize("scheme", ["Token", "Basic", "Key"])
def test_sse_accepts_only_the_bearer_scheme(owner, scheme):
    response = _sse(
        "/api/v1/query/stream", headers=[(b"authorization", f"{scheme} {owner[1]}".encode())]
    )
    assert response["status"] == 401


def test_sse_wrong_keys_are_rate_limited_per_address():
    wrong = [(b"authorization", b"Bearer wrong-key-0123456789")]
    codes = [_sse("/api/v1/query/stream", headers=wrong)["status"] for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    refused = _sse("/api/v1/query/stream", headers=wrong)
    assert _code(refused) == "rate_limited"
    assert _sse("/api/v1/query/stream", headers=wrong, peer="192.0.2.81")["status"] == 401
