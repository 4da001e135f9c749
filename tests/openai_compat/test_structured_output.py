"""``response_format`` through /v1 with the real `openai` SDK, a live ASGI server and the
fake vendors: the vendor receives its own structured-output field, the answer is the JSON,
and the query run records what was asked."""

from __future__ import annotations

import json

import openai
import pytest

from queries.models import Query
from tests.openai_compat.clients import VENDOR_MODELS, sdk, stored_query

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string"}},
    "required": ["colour"],
    "additionalProperties": False,
}
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "colour", "schema": SCHEMA, "strict": True},
}
ANSWER = '{"colour": "blue"}'


@pytest.fixture(autouse=True)
def _wired(vendor_settings):
    """Vendors pointed at the fakes."""


def _ask(server, key: str, model: str, response_format: dict, *, stream: bool = False):
    client = sdk(server, key)
    messages = [{"role": "user", "content": "Name a colour"}]
    if not stream:
        return client.chat.completions.create(
            model=model, messages=messages, response_format=response_format
        )
    chunks = list(
        client.chat.completions.create(
            model=model, messages=messages, response_format=response_format, stream=True
        )
    )
    return chunks[0].id, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _sent(fake) -> dict:
    """The writer's request: the last chat request the vendor received."""
    return fake.chat_requests[-1].body


# Every vendor with structured output but OpenRouter (the same wire as OpenAI).
MODELS = {vendor: VENDOR_MODELS[vendor] for vendor in ("openai", "anthropic", "google")}


@pytest.mark.parametrize("vendor", list(MODELS))
def test_json_schema_reaches_the_vendor_natively_and_the_answer_is_the_json(
    live_daphne_in_process, owner, fakes, vendor
):
    fakes[vendor].reply_text = ANSWER
    completion = _ask(live_daphne_in_process, owner[1], MODELS[vendor], JSON_SCHEMA)
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"
    sent = _sent(fakes[vendor])
    if vendor == "openai":
        assert sent["response_format"] == JSON_SCHEMA
    elif vendor == "anthropic":
        assert sent["output_config"]["format"] == {"type": "json_schema", "schema": SCHEMA}
    else:
        config = sent["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert config["responseJsonSchema"] == SCHEMA
    query = stored_query(completion.id)
    assert query.status == Query.Status.COMPLETED and query.response == ANSWER
    assert query.request["response_format"] == JSON_SCHEMA


@pytest.mark.parametrize("vendor", list(MODELS))
def test_json_object_reaches_the_vendor_natively(live_daphne_in_process, owner, fakes, vendor):
    if vendor == "anthropic":
        # Anthropic has no JSON mode: a forced tool call whose input is the answer.
        fakes[vendor].tool_calls = [("json_answer", {"colour": "blue"})]
    else:
        fakes[vendor].reply_text = ANSWER
    completion = _ask(live_daphne_in_process, owner[1], MODELS[vendor], {"type": "json_object"})
    assert json.loads(completion.choices[0].message.content) == {"colour": "blue"}
    sent = _sent(fakes[vendor])
    if vendor == "openai":
        assert sent["response_format"] == {"type": "json_object"}
    elif vendor == "anthropic":
        assert sent["tool_choice"] == {"type": "tool", "name": "json_answer"}
        assert [tool["name"] for tool in sent["tools"]] == ["json_answer"]
    else:
        assert sent["generationConfig"]["responseMimeType"] == "application/json"
    assert stored_query(completion.id).request["response_format"] == {"type": "json_object"}


def test_a_streamed_structured_answer(live_daphne_in_process, owner, fakes):
    fakes["openai"].reply_text = ANSWER
    completion_id, text = _ask(
        live_daphne_in_process, owner[1], MODELS["openai"], JSON_SCHEMA, stream=True
    )
    assert text == ANSWER
    assert _sent(fakes["openai"])["response_format"] == JSON_SCHEMA
    assert stored_query(completion_id).status == Query.Status.COMPLETED


def test_a_strict_answer_that_does_not_validate_is_an_error(live_daphne_in_process, owner, fakes):
    fakes["openai"].reply_text = '{"color": "blue"}'  # not the schema's property
    with pytest.raises(openai.APIStatusError) as failed:
        _ask(live_daphne_in_process, owner[1], MODELS["openai"], JSON_SCHEMA)
    assert failed.value.status_code == 502
    assert failed.value.code == "structured_output_invalid"
    assert "colour" in failed.value.message
    query = Query.objects.get()
    assert query.status == Query.Status.FAILED
    assert query.error["code"] == "structured_output_invalid"


def test_a_strict_answer_is_asked_for_once_more_and_never_streamed_invalid(
    live_daphne_in_process, owner, fakes
):
    answers = iter(['{"color": "blue"}', ANSWER])  # the first does not validate
    fakes["openai"].reply_for = lambda prompt: next(answers, ANSWER)
    completion_id, text = _ask(
        live_daphne_in_process, owner[1], MODELS["openai"], JSON_SCHEMA, stream=True
    )
    assert text == ANSWER  # the invalid answer never reached the client
    writer_calls = [
        r for r in fakes["openai"].chat_requests if r.body.get("response_format") == JSON_SCHEMA
    ]
    assert len(writer_calls) == 2
    query = stored_query(completion_id)
    assert query.status == Query.Status.COMPLETED and query.response == ANSWER
    # Both calls are paid: the usage counts both answers' tokens.
    assert query.usage["output_tokens"] == 2 * len(ANSWER.split())


def test_without_strict_the_answer_is_returned_as_the_vendor_gave_it(
    live_daphne_in_process, owner, fakes
):
    fakes["openai"].reply_text = '{"color": "blue"}'
    loose = {"type": "json_schema", "json_schema": {"name": "colour", "schema": SCHEMA}}
    completion = _ask(live_daphne_in_process, owner[1], MODELS["openai"], loose)
    assert completion.choices[0].message.content == '{"color": "blue"}'
