"""``POST /v1/responses`` (OpenAI's Responses API) with the real `openai` SDK's
``client.responses.create``, streaming and not, against a live ASGI server and the fake
vendors: the vendor receives the instructions, the input and text.format as its own
fields; the SDK reads ``output_text``, the typed events and the usage; the run is recorded
like any question; what is not honoured is a 400 naming it."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
import redis
from django.conf import settings

from queries.models import Query
from tests.openai_compat.clients import sdk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string"}},
    "required": ["colour"],
    "additionalProperties": False,
}
ANSWER = '{"colour": "blue"}'


@pytest.fixture(autouse=True)
def _wired(vendor_settings):
    """Vendors pointed at the fakes."""


async def _collected(response) -> list[bytes]:
    return [chunk async for chunk in response.streaming_content]


def _query(response_id: str) -> Query:
    assert response_id.startswith("resp_")
    return Query.objects.get(pk=response_id.removeprefix("resp_"))


def test_a_string_input_with_instructions(live_daphne_in_process, owner, fakes):
    fakes["openai"].reply_text = "Blue is calm."
    response = sdk(live_daphne_in_process, owner[1]).responses.create(
        model="openai/gpt-4o-mini",
        instructions="You are terse.",
        input="Name a colour",
        max_output_tokens=50,
        temperature=0.2,
        user="end-user-3",
    )
    assert response.output_text == "Blue is calm."
    assert response.status == "completed"
    assert response.output[0].content[0].text == "Blue is calm."
    assert response.model == "openai/gpt-4o-mini"
    assert response.instructions == "You are terse."
    sent = fakes["openai"].chat_requests[-1].body
    assert sent["messages"][0]["role"] == "system"
    assert sent["messages"][0]["content"].startswith("You are terse.")
    assert sent["messages"][-1] == {"role": "user", "content": "Name a colour"}
    # max_tokens: the name OpenAI-compatible base URLs (the fake's) take.
    assert sent["max_tokens"] == 50 and sent["temperature"] == 0.2
    query = _query(response.id)
    assert query.status == Query.Status.COMPLETED and query.user_id == "end-user-3"
    assert response.usage.input_tokens == query.usage["input_tokens"] > 0
    assert response.usage.output_tokens == query.usage["output_tokens"] > 0
    assert response.usage.total_tokens == (
        response.usage.input_tokens + response.usage.output_tokens
    )


def test_message_items_reach_the_vendor_as_a_conversation(live_daphne_in_process, owner, fakes):
    response = sdk(live_daphne_in_process, owner[1]).responses.create(
        model="anthropic/claude-haiku-4-5",
        input=[
            {"role": "user", "content": "Name a colour"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Blue"}]},
            {"role": "user", "content": [{"type": "input_text", "text": "Another one"}]},
        ],
    )
    assert response.output_text
    sent = fakes["anthropic"].chat_requests[-1].body["messages"]
    texts = [
        (m["role"], m["content"] if isinstance(m["content"], str) else m["content"][0]["text"])
        for m in sent
    ]
    assert texts == [("user", "Name a colour"), ("assistant", "Blue"), ("user", "Another one")]


@pytest.mark.parametrize("vendor", ["openai", "google"])
def test_text_format_json_schema_is_the_vendors_structured_output(
    live_daphne_in_process, owner, fakes, vendor
):
    fakes[vendor].reply_text = ANSWER
    model = {"openai": "openai/gpt-4o-mini", "google": "google/gemini-2.0-flash"}[vendor]
    response = sdk(live_daphne_in_process, owner[1]).responses.create(
        model=model,
        input="Name a colour",
        text={"format": {"type": "json_schema", "name": "colour", "schema": SCHEMA,
                         "strict": True}},
    )  # fmt: skip
    assert json.loads(response.output_text) == {"colour": "blue"}
    sent = fakes[vendor].chat_requests[-1].body
    if vendor == "openai":
        assert sent["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "colour", "schema": SCHEMA, "strict": True},
        }
    else:
        assert sent["generationConfig"]["responseJsonSchema"] == SCHEMA
    assert _query(response.id).request["response_format"]["json_schema"]["schema"] == SCHEMA


def test_streaming_sends_the_typed_events(live_daphne_in_process, owner, fakes):
    fakes["openai"].reply_text = "one two three four"
    events = list(
        sdk(live_daphne_in_process, owner[1]).responses.create(
            model="gpt-4o-mini", input="Count", stream=True
        )
    )
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == "one two three four"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    done = events[-1].response
    assert done.output_text == "one two three four"
    assert done.usage.output_tokens > 0
    assert events[-4].text == "one two three four"
    query = _query(events[0].response.id)
    assert query.status == Query.Status.COMPLETED and query.response == "one two three four"
    assert events[0].response.status == "in_progress"


def test_a_failed_run_ends_the_stream_with_response_failed(live_daphne_in_process, owner, fakes):
    fakes["openai"].fail_next("auth", times=5)  # the vendor refuses: not retryable
    events = list(
        sdk(live_daphne_in_process, owner[1]).responses.create(
            model="openai/gpt-4o-mini", input="Hi", stream=True
        )
    )
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed"
    assert events[-1].response.error.code


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"tools": [{"type": "web_search_preview"}]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),  # without tools
        ({"store": False}, "store"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
    ],
)
def test_what_is_not_honoured_is_400_naming_it(live_daphne_in_process, owner, fields, param):
    body = {"model": "openai/gpt-4o-mini", "input": "Hi", **fields}
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(live_daphne_in_process, owner[1]).responses.create(**body)
    assert refused.value.param == param
    assert not Query.objects.exists()


def test_an_unknown_model_is_404(live_daphne_in_process, owner):
    with pytest.raises(openai.NotFoundError) as missing:
        sdk(live_daphne_in_process, owner[1]).responses.create(model="gpt-9", input="Hi")
    assert missing.value.code == "model_not_found"


def test_the_readme_example_runs_with_the_local_model(in_process, api, settings):
    # README: POST /v1/responses without any provider key; the local model answers.
    settings.LOCAL_MODEL_ENABLED = True
    body = {"model": "local/smollm2-135m-instruct", "instructions": "Be brief.",
            "input": "Name a colour.", "max_output_tokens": 40}  # fmt: skip
    response = api.post("/v1/responses", body, format="json")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["output"][0]["content"][0]["text"].strip()
    assert answer["status"] in ("completed", "incomplete")
    assert 0 < answer["usage"]["output_tokens"] <= 40
    streamed = api.post("/v1/responses", {**body, "stream": True}, format="json")
    frames = b"".join(asyncio.run(_collected(streamed))).decode().split("\n\n")
    kinds = [frame.split("\n")[0].removeprefix("event: ") for frame in frames if frame]
    assert kinds[0] == "response.created"
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert "response.output_text.delta" in kinds


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def test_function_tools_are_called_as_function_call_items(live_daphne_in_process, owner, fakes):
    fakes["openai"].tool_calls = [("get_weather", {"city": "Paris"})]
    response = sdk(live_daphne_in_process, owner[1]).responses.create(
        model="openai/gpt-4o-mini", input="Weather in Paris?", tools=[WEATHER],
        tool_choice="required",
    )  # fmt: skip
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert calls[0].call_id and calls[0].status == "completed"
    sent = fakes["openai"].chat_requests[-1].body
    assert sent["tools"] == [
        {"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}
    ]
    assert sent["tool_choice"] == "required"
    assert response.tools[0].name == "get_weather"
    stored = _query(response.id).metadata["tool_calls"]
    assert stored[0]["id"] == calls[0].call_id


def test_function_call_output_items_answer_the_call(live_daphne_in_process, owner, fakes):
    fakes["anthropic"].reply_text = "It is 21 degrees in Paris."
    response = sdk(live_daphne_in_process, owner[1]).responses.create(
        model="anthropic/claude-haiku-4-5",
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather",
             "arguments": '{"city": "Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": '{"temp_c": 21}'},
        ],
    )  # fmt: skip
    assert response.output_text == "It is 21 degrees in Paris."
    sent = fakes["anthropic"].chat_requests[-1].body["messages"]
    assert sent[-2]["content"][-1] == {
        "type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"},
    }  # fmt: skip
    assert sent[-1]["content"][0]["type"] == "tool_result"
    assert sent[-1]["content"][0]["tool_use_id"] == "call_1"


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_streamed_function_calls(live_daphne_in_process, owner, fakes, vendor):
    fakes[vendor].tool_calls = [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    model = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-haiku-4-5"}[vendor]
    events = list(
        sdk(live_daphne_in_process, owner[1]).responses.create(
            model=model, input="Weather in Paris and Rome?", tools=[WEATHER], stream=True
        )
    )
    added = [e.item for e in events if e.type == "response.output_item.added"]
    assert [item.type for item in added] == ["function_call", "function_call"]
    assert all(item.name == "get_weather" and item.arguments == "" for item in added)
    for index, city in ((0, "Paris"), (1, "Rome")):
        deltas = [
            e.delta
            for e in events
            if e.type == "response.function_call_arguments.delta" and e.output_index == index
        ]
        assert json.loads("".join(deltas)) == {"city": city}  # fmt: skip
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments)["city"] for e in done] == ["Paris", "Rome"]
    assert events[-1].type == "response.completed"
    final = events[-1].response.output
    assert [(item.type, item.call_id) for item in final] == [
        ("function_call", added[0].call_id),
        ("function_call", added[1].call_id),
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))


def _texts(sent: list[dict]) -> list[tuple[str, str]]:
    return [(m["role"], m.get("content") or "") for m in sent]


def _asked(fake, question: str) -> list[dict]:
    """The messages of the vendor call that asked ``question`` last (a session summary,
    made in the background every few answers, may have come after it)."""
    return next(
        request.body["messages"]
        for request in reversed(fake.chat_requests)
        if request.body["messages"][-1] == {"role": "user", "content": question}
    )


def test_previous_response_id_continues_the_conversation(live_daphne_in_process, owner, fakes):
    client = sdk(live_daphne_in_process, owner[1])
    fakes["openai"].reply_text = "Hello Ada."
    first = client.responses.create(
        model="openai/gpt-4o-mini", instructions="You are terse.", input="My name is Ada."
    )
    fakes["openai"].reply_text = "Ada."
    second = client.responses.create(
        model="openai/gpt-4o-mini",
        instructions="Answer in one word.",
        input="What is my name?",
        previous_response_id=first.id,
    )
    assert second.output_text == "Ada." and second.previous_response_id == first.id
    sent = _asked(fakes["openai"], "What is my name?")
    # The earlier turns, then the new input; only the new instructions (OpenAI's rule).
    assert sent[0]["role"] == "system" and sent[0]["content"].startswith("Answer in one word.")
    assert not any("You are terse." in content for _, content in _texts(sent))
    assert _texts(sent)[1:] == [
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
    ]
    # Stored through the session: the continuation is a question of the same conversation.
    assert _query(second.id).session_id == _query(first.id).session_id
    third = client.responses.create(
        model="openai/gpt-4o-mini", input="And again?", previous_response_id=second.id
    )
    assert third.status == "completed"
    sent = _asked(fakes["openai"], "And again?")
    # No instructions this time: the platform's own system prompt, not the earlier ones.
    assert sent[0]["role"] == "system" and "one word" not in sent[0]["content"]
    assert _texts(sent)[1:] == [
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
        ("assistant", "Ada."),
        ("user", "And again?"),
    ]


def test_a_tool_round_trip_through_previous_response_id(live_daphne_in_process, owner, fakes):
    client = sdk(live_daphne_in_process, owner[1])
    fakes["openai"].tool_calls = [("get_weather", {"city": "Paris"})]
    first = client.responses.create(
        model="openai/gpt-4o-mini", input="Weather in Paris?", tools=[WEATHER],
        tool_choice="required",
    )  # fmt: skip
    [call] = [item for item in first.output if item.type == "function_call"]
    fakes["openai"].tool_calls = []
    fakes["openai"].reply_text = "It is 21 degrees in Paris."
    second = client.responses.create(
        model="openai/gpt-4o-mini",
        tools=[WEATHER],
        previous_response_id=first.id,
        input=[
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 21}'}
        ],
    )
    assert second.output_text == "It is 21 degrees in Paris."
    sent = next(
        request.body["messages"]
        for request in reversed(fakes["openai"].chat_requests)
        if request.body["messages"][-1]["role"] == "tool"
    )
    assert sent[-3] == {"role": "user", "content": "Weather in Paris?"}
    assert sent[-2]["role"] == "assistant"
    assert sent[-2]["tool_calls"] == [
        {"id": call.call_id, "type": "function",
         "function": {"name": "get_weather", "arguments": call.arguments}},
    ]  # fmt: skip
    assert sent[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": '{"temp_c": 21}'}
    # The earlier response reads back as it was answered, its function call included.
    assert client.responses.retrieve(first.id).model_dump() == first.model_dump()


def test_retrieve_returns_the_response_streaming_and_not(live_daphne_in_process, owner, fakes):
    client = sdk(live_daphne_in_process, owner[1])
    fakes["openai"].reply_text = "one two three"
    created = client.responses.create(
        model="openai/gpt-4o-mini", instructions="Be brief.", input="Count", user="u-7",
        metadata={"use_memory": "false"}, text={"format": {"type": "json_object"}},
    )  # fmt: skip
    assert client.responses.retrieve(created.id).model_dump() == created.model_dump()
    events = list(client.responses.retrieve(created.id, stream=True))
    assert [e.type for e in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == "one two three"
    assert events[-1].response.model_dump() == created.model_dump()


def test_another_owners_or_a_malformed_id_is_404(live_daphne_in_process, owner, make_owner, fakes):
    created = sdk(live_daphne_in_process, owner[1]).responses.create(
        model="openai/gpt-4o-mini", input="Hi"
    )
    chat = sdk(live_daphne_in_process, owner[1]).chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    other = sdk(live_daphne_in_process, make_owner("mallory")[1])
    chat_run = chat.id.replace("chatcmpl-", "resp_")
    for client, response_id in [
        (other, created.id),
        (sdk(live_daphne_in_process, owner[1]), "resp_nope"),
        (sdk(live_daphne_in_process, owner[1]), created.id.removeprefix("resp_")),
        (sdk(live_daphne_in_process, owner[1]), chat_run),  # a chat completion is no response
    ]:
        with pytest.raises(openai.NotFoundError) as missing:
            client.responses.retrieve(response_id)
        assert missing.value.code == "not_found"
        assert missing.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as refused:
        other.responses.create(
            model="openai/gpt-4o-mini", input="Hi", previous_response_id=created.id
        )
    assert refused.value.code == "previous_response_not_found"
    assert refused.value.param == "previous_response_id"
    assert Query.objects.count() == 2


def test_an_unfinished_or_failed_response(live_daphne_in_process, owner, fakes):
    client = sdk(live_daphne_in_process, owner[1])
    created = client.responses.create(model="openai/gpt-4o-mini", input="Hi")
    Query.objects.filter(pk=_query(created.id).pk).update(status=Query.Status.RUNNING)
    running = client.responses.retrieve(created.id)
    assert running.status == "in_progress" and running.output == [] and running.usage is None
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(
            model="openai/gpt-4o-mini", input="Go on", previous_response_id=created.id
        )
    assert refused.value.code == "previous_response_not_completed"
    assert refused.value.param == "previous_response_id"
    fakes["openai"].fail_next("auth", times=5)
    events = list(client.responses.create(model="openai/gpt-4o-mini", input="Hi", stream=True))
    failed = client.responses.retrieve(events[-1].response.id)
    assert failed.status == "failed" and failed.error.code == events[-1].response.error.code


def test_retrieve_streams_a_stored_answer_after_its_log_expired(live_daphne, owner, fakes):
    # With Redis (the log expires there): the stored answer is replayed as whole items.
    client = sdk(live_daphne, owner[1])
    fakes["openai"].reply_text = "Blue is calm."
    said = client.responses.create(model="openai/gpt-4o-mini", input="Name a colour")
    fakes["openai"].tool_calls = [("get_weather", {"city": "Paris"})]
    called = client.responses.create(
        model="openai/gpt-4o-mini", input="Weather in Paris?", tools=[WEATHER]
    )
    for created, items, deltas in [
        (said, ["message"], ["Blue is calm."]),
        (called, ["function_call"], []),
    ]:
        events_key = f"llmplatform:query:{created.id.removeprefix('resp_')}:events"
        assert redis.Redis.from_url(settings.REDIS_URL).delete(events_key) == 1
        events = list(client.responses.retrieve(created.id, stream=True))
        assert [e.item.type for e in events if e.type == "response.output_item.added"] == items
        assert [e.delta for e in events if e.type == "response.output_text.delta"] == deltas
        assert events[-1].type == "response.completed"
        assert events[-1].response.model_dump() == created.model_dump()


def test_a_stopped_response_reads_back_as_cancelled(live_daphne_in_process, owner, fakes):
    fakes["openai"].reply_text = " ".join(f"w{n}" for n in range(200))
    fakes["openai"].chunk_count, fakes["openai"].chunk_interval = 200, 0.05
    client = sdk(live_daphne_in_process, owner[1])
    events = []
    for event in client.responses.create(model="openai/gpt-4o-mini", input="Talk", stream=True):
        events.append(event)
        if event.type == "response.output_text.delta" and len(events) == 6:
            stop = httpx.post(
                f"{live_daphne_in_process.url}/api/v1/query/"
                f"{event.item_id.removeprefix('msg_')}/cancel",
                headers={"Authorization": f"Bearer {owner[1]}"},
                timeout=10,
            ).json()
            assert stop["cancel_requested"] is True
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.status == "cancelled"
    said = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert 0 < len(said) < len(fakes["openai"].reply_text)
    stored = client.responses.retrieve(events[0].response.id)
    assert stored.status == "cancelled" and stored.output_text == _query(stored.id).response
    assert stored.output[0].status == "incomplete"
