"""``response_format`` on the native query API (POST /api/v1/query/ and its SSE stream):
the same field and checks as /v1. The vendor receives its own structured-output field and
the answer is the JSON; a malformed one, or one the local model cannot honour, is a 400
before anything runs."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.routing import URLRouter
from channels.testing import HttpCommunicator
from django.urls import path

from queries.consumers import QueryStreamConsumer
from queries.models import Query

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("in_process")]

SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string"}},
    "required": ["colour"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "colour", "schema": SCHEMA,
                                                      "strict": True}}  # fmt: skip
ANSWER = '{"colour": "blue"}'


def question(**extra) -> dict:
    return {
        "user_id": "u1",
        "session_id": "s-structured",
        "query": "Name a colour",
        "model_provider": "openai",
        "model_name": "gpt-4o-mini",
        "use_memory": False,
        **extra,
    }


def test_the_vendor_receives_it_and_the_answer_is_the_json(api, fakes):
    fakes["openai"].reply_text = ANSWER
    response = api.post("/api/v1/query/", question(response_format=JSON_SCHEMA), format="json")
    assert response.status_code == 200, response.content
    assert json.loads(response.json()["response"]) == {"colour": "blue"}
    assert fakes["openai"].chat_requests[-1].body["response_format"] == JSON_SCHEMA
    assert Query.objects.get().request["response_format"] == JSON_SCHEMA


def test_anthropic_gets_its_native_form(api, fakes):
    fakes["anthropic"].reply_text = ANSWER
    body = question(response_format=JSON_SCHEMA, model_provider="anthropic",
                    model_name="claude-haiku-4-5")  # fmt: skip
    response = api.post("/api/v1/query/", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["response"] == ANSWER
    sent = fakes["anthropic"].chat_requests[-1].body
    assert sent["output_config"]["format"] == {"type": "json_schema", "schema": SCHEMA}


def test_a_strict_answer_that_does_not_match_is_502(api, fakes):
    fakes["openai"].reply_text = '{"color": "blue"}'
    response = api.post("/api/v1/query/", question(response_format=JSON_SCHEMA), format="json")
    assert response.status_code == 502, response.content
    assert response.json()["error"]["code"] == "structured_output_invalid"


def test_the_stream_carries_it_too(owner, fakes):
    fakes["openai"].reply_text = ANSWER
    app = URLRouter([path("api/v1/query/stream", QueryStreamConsumer.as_asgi())])
    communicator = HttpCommunicator(
        app,
        "POST",
        "/api/v1/query/stream",
        body=json.dumps(question(response_format={"type": "json_object"})).encode(),
        headers=[(b"authorization", f"Bearer {owner[1]}".encode())],
    )
    response = asyncio.run(communicator.get_response(timeout=20))
    assert response["status"] == 200
    chunks = [
        json.loads(line.removeprefix("data: "))
        for line in response["body"].decode().splitlines()
        if line.startswith("data: ")
    ]
    text = "".join(c["content"] for c in chunks if c.get("type") == "chunk")
    assert json.loads(text) == {"colour": "blue"}
    assert fakes["openai"].chat_requests[-1].body["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"response_format": {"type": "yaml"}}, "invalid_response_format"),
        ({"response_format": {"type": "json_schema"}}, "invalid_response_format"),
        (
            {"response_format": {"type": "json_object"}, "model_provider": "local",
             "model_name": "smollm2-135m-instruct"},
            "response_format_unsupported",
        ),
    ],
)  # fmt: skip
def test_refusals_come_before_anything_runs(api, settings, fakes, extra, code):
    settings.LOCAL_MODEL_ENABLED = True
    response = api.post("/api/v1/query/", question(**extra), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not Query.objects.exists()
    assert not fakes["openai"].chat_requests


def test_text_is_a_plain_answer(api, fakes):
    response = api.post("/api/v1/query/", question(response_format={"type": "text"}), format="json")
    assert response.status_code == 200, response.content
    assert "response_format" not in fakes["openai"].chat_requests[-1].body
    assert Query.objects.get().request["response_format"] is None
