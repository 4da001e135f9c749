"""Tool calling through /v1 with the real `openai` SDK (and LangChain's ChatOpenAI), a live
ASGI server and the fake vendors: what the client gets (calls, finish reason, arguments),
what each vendor receives in its own form, and what the query run records."""

from __future__ import annotations

import json

import openai
import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from queries.models import Query
from tests.openai_compat.clients import VENDOR_MODELS, sdk, stored_query

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
TIME_PARAMS = {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": WEATHER_PARAMS,
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "Local time", "parameters": TIME_PARAMS},
    },
]
# The parallel calls the fake vendors answer with.
SCRIPTED_CALLS = [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Asia/Tokyo"})]
QUESTION = [{"role": "user", "content": "Weather in Paris and time in Tokyo?"}]
# The ids each vendor gives its calls (Gemini gives none: ours are call_<response id>_<n>).
CALL_IDS = {
    "openai": ["call_fake0", "call_fake1"],
    "anthropic": ["toolu_fake0", "toolu_fake1"],
    "google": ["call_fake0001_0", "call_fake0001_1"],
    "openrouter": ["call_fake0", "call_fake1"],
}
# OpenRouter speaks OpenAI's wire format.
OPENAI_WIRE = ("openai", "openrouter")


@pytest.fixture(autouse=True)
def _wired(vendor_settings):
    """Vendors pointed at the fakes."""


def _sent(fake) -> dict:
    """The writer's request: the last chat request the vendor received."""
    return fake.chat_requests[-1].body


def _expected_calls(vendor: str) -> list[tuple[str, str, dict]]:
    return [
        (call_id, name, arguments)
        for call_id, (name, arguments) in zip(CALL_IDS[vendor], SCRIPTED_CALLS, strict=True)
    ]


def _assert_native_tools(vendor: str, sent: dict) -> None:
    """The vendor received the tools and the `required` choice in its own form."""
    if vendor in OPENAI_WIRE:
        assert sent["tools"] == TOOLS
        assert sent["tool_choice"] == "required"
    elif vendor == "anthropic":
        assert [(t["name"], t["description"], t["input_schema"]) for t in sent["tools"]] == [
            ("get_weather", "Weather for a city", WEATHER_PARAMS),
            ("get_time", "Local time", TIME_PARAMS),
        ]
        assert sent["tool_choice"] == {"type": "any"}
    else:
        declarations = sent["tools"][0]["functionDeclarations"]
        assert [(d["name"], d["parameters_json_schema"]) for d in declarations] == [
            ("get_weather", WEATHER_PARAMS),
            ("get_time", TIME_PARAMS),
        ]
        assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


@pytest.mark.parametrize("vendor", list(VENDOR_MODELS))
def test_tool_calls_come_back_in_openais_shape_and_are_recorded(
    live_daphne_in_process, owner, fakes, vendor
):
    fakes[vendor].tool_calls = list(SCRIPTED_CALLS)
    completion = sdk(live_daphne_in_process, owner[1]).chat.completions.create(
        model=VENDOR_MODELS[vendor], messages=QUESTION, tools=TOOLS, tool_choice="required"
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == (
        _expected_calls(vendor)
    )
    assert all(c.type == "function" for c in calls)
    _assert_native_tools(vendor, _sent(fakes[vendor]))
    query = stored_query(completion.id)
    assert query.status == Query.Status.COMPLETED
    assert query.metadata["finish_reason"] == "tool_calls"
    assert query.metadata["tool_calls"] == [c.model_dump() for c in calls]
    assert query.request["tools"] == TOOLS and query.request["tool_choice"] == "required"
    # The tool turn's usage is recorded and priced like any answer's.
    assert query.usage["output_tokens"] == completion.usage.completion_tokens > 0
    assert query.usage["cost_usd"] is not None


@pytest.mark.parametrize("vendor", list(VENDOR_MODELS))
def test_streamed_parallel_calls_arrive_as_openai_deltas(daphne, owner, fakes, vendor):
    """Through both event logs (Redis Streams with a Celery worker, and in memory)."""
    fakes[vendor].tool_calls = list(SCRIPTED_CALLS)
    chunks = list(
        sdk(daphne, owner[1]).chat.completions.create(
            model=VENDOR_MODELS[vendor],
            messages=QUESTION,
            tools=TOOLS,
            tool_choice="required",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assembled: dict[int, dict] = {}
    for delta in deltas:
        if delta.index not in assembled:
            # The first delta of a call carries its id, type and name.
            assert delta.id and delta.type == "function" and delta.function.name
            assembled[delta.index] = {"id": delta.id, "name": delta.function.name, "args": ""}
        else:
            assert delta.id is None and delta.function.name is None
        assembled[delta.index]["args"] += delta.function.arguments or ""
    calls = [assembled[index] for index in sorted(assembled)]
    assert [(c["id"], c["name"], json.loads(c["args"])) for c in calls] == _expected_calls(vendor)
    if vendor != "google":  # Gemini sends each call whole; the others stream fragments
        assert len(deltas) > len(calls)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert not any(c.choices[0].delta.content for c in chunks if c.choices)
    assert chunks[-1].usage.completion_tokens > 0
    _assert_native_tools(vendor, _sent(fakes[vendor]))
    query = stored_query(chunks[0].id)
    assert [(c["id"], c["function"]["name"]) for c in query.metadata["tool_calls"]] == [
        (c["id"], c["name"]) for c in calls
    ]
    assert query.usage["output_tokens"] == chunks[-1].usage.completion_tokens


def _assert_tool_turns_translated(vendor: str, sent: dict) -> None:
    """The second request carried the model's calls and their results in the vendor's form."""
    ids = CALL_IDS[vendor]
    if vendor in OPENAI_WIRE:
        assistant, *results = sent["messages"][-3:]
        assert [c["id"] for c in assistant["tool_calls"]] == ids
        assert [(r["role"], r["tool_call_id"]) for r in results] == [("tool", i) for i in ids]
    elif vendor == "anthropic":
        assistant, results = sent["messages"][-2:]
        assert [(b["type"], b["id"], b["input"]) for b in assistant["content"]] == [
            ("tool_use", ids[0], {"city": "Paris"}),
            ("tool_use", ids[1], {"tz": "Asia/Tokyo"}),
        ]
        assert [(b["type"], b["tool_use_id"]) for b in results["content"]] == [
            ("tool_result", i) for i in ids
        ]
    else:
        model, results = sent["contents"][-2:]
        assert [p["functionCall"]["name"] for p in model["parts"]] == ["get_weather", "get_time"]
        assert [
            (p["functionResponse"]["name"], p["functionResponse"]["response"])
            for p in results["parts"]
        ] == [("get_weather", {"output": {"temp_c": 21}}), ("get_time", {"output": "09:00"})]


@pytest.mark.parametrize("vendor", list(VENDOR_MODELS))
def test_a_whole_tool_loop_ends_in_a_text_answer(live_daphne_in_process, owner, fakes, vendor):
    client = sdk(live_daphne_in_process, owner[1])
    fakes[vendor].tool_calls = list(SCRIPTED_CALLS)
    first = client.chat.completions.create(
        model=VENDOR_MODELS[vendor], messages=QUESTION, tools=TOOLS
    )
    calls = first.choices[0].message.tool_calls
    results = {"get_weather": '{"temp_c": 21}', "get_time": "09:00"}
    messages = [
        *QUESTION,
        first.choices[0].message.model_dump(exclude_none=True),
        *[
            {"role": "tool", "tool_call_id": c.id, "content": results[c.function.name]}
            for c in calls
        ],
    ]
    fakes[vendor].tool_calls = []
    fakes[vendor].reply_text = "21 °C in Paris; 09:00 in Tokyo."
    second = client.chat.completions.create(
        model=VENDOR_MODELS[vendor], messages=messages, tools=TOOLS
    )
    assert second.choices[0].message.content == "21 °C in Paris; 09:00 in Tokyo."
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None
    _assert_tool_turns_translated(vendor, _sent(fakes[vendor]))
    query = stored_query(second.id)
    assert query.query == QUESTION[0]["content"]
    assert [t["role"] for t in query.request["tool_turns"]] == ["assistant", "tool", "tool"]
    assert query.metadata["tool_calls"] == []


def test_parallel_tool_calls_off_and_a_named_function_reach_openai(
    live_daphne_in_process, owner, fakes
):
    fakes["openai"].tool_calls = SCRIPTED_CALLS[:1]
    completion = sdk(live_daphne_in_process, owner[1]).chat.completions.create(
        model=VENDOR_MODELS["openai"],
        messages=QUESTION,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    assert completion.choices[0].message.tool_calls[0].function.name == "get_weather"
    sent = _sent(fakes["openai"])
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False


def test_legacy_functions_are_tools_answered_in_kind(live_daphne_in_process, owner, fakes):
    fakes["anthropic"].tool_calls = SCRIPTED_CALLS[:1]
    asked = {
        "model": VENDOR_MODELS["anthropic"],
        "messages": QUESTION,
        "functions": [TOOLS[0]["function"]],
        "function_call": {"name": "get_weather"},
    }
    client = sdk(live_daphne_in_process, owner[1])
    choice = client.chat.completions.create(**asked).choices[0]
    assert choice.finish_reason == "function_call" and choice.message.tool_calls is None
    call = choice.message.function_call
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    sent = _sent(fakes["anthropic"])
    assert [tool["name"] for tool in sent["tools"]] == ["get_weather"]
    # One call per answer, as the deprecated API had.
    assert sent["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }
    chunks = [c for c in client.chat.completions.create(**asked, stream=True) if c.choices]
    pieces = [c.choices[0].delta.function_call for c in chunks if c.choices[0].delta.function_call]
    assert pieces[0].name == "get_weather"
    assert json.loads("".join(p.arguments or "" for p in pieces)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "function_call"


def test_legacy_function_turns_are_tool_turns(live_daphne_in_process, owner, fakes):
    fakes["openai"].reply_text = "Sunny."
    messages = [
        *QUESTION,
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"role": "function", "name": "get_weather", "content": '{"sky": "clear"}'},
    ]
    completion = sdk(live_daphne_in_process, owner[1]).chat.completions.create(
        model=VENDOR_MODELS["openai"], messages=messages, functions=[TOOLS[0]["function"]]
    )
    assert completion.choices[0].message.content == "Sunny."
    assistant, result = _sent(fakes["openai"])["messages"][-2:]
    assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"
    assert (result["role"], result["tool_call_id"]) == ("tool", assistant["tool_calls"][0]["id"])


# -- refusals, before anything is stored or any vendor called --------------------------------


def _refused(server, key, **body) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(server, key).chat.completions.create(model=VENDOR_MODELS["openai"], **body)
    return refused.value


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (
            {"messages": QUESTION, "tools": [{"type": "function", "function": {"name": "a b"}}]},
            "invalid_tools",
            "tools",
        ),
        (
            {"messages": QUESTION, "tools": TOOLS, "tool_choice": {"type": "function",
             "function": {"name": "get_stock"}}},
            "invalid_tools",
            "tool_choice",
        ),
        ({"messages": QUESTION, "tool_choice": "required"}, "invalid_tools", "tool_choice"),
        (
            {"messages": QUESTION, "functions": [TOOLS[0]["function"]], "tools": TOOLS},
            "invalid_tools",
            "functions",
        ),
        (
            {
                "messages": [
                    *QUESTION,
                    {"role": "assistant", "content": None, "tool_calls": [
                        {"id": "c1", "type": "function",
                         "function": {"name": "get_time", "arguments": "{}"}}]},
                    {"role": "user", "content": "And?"},
                ],
                "tools": TOOLS,
            },
            "invalid_conversation",
            "messages",
        ),
        (
            {"messages": [*QUESTION, {"role": "tool", "tool_call_id": "nope", "content": "x"}]},
            "invalid_conversation",
            "messages",
        ),
    ],
)  # fmt: skip
def test_malformed_tools_and_turns_are_400s_naming_the_param(
    live_daphne_in_process, owner, fakes, body, code, param
):
    refused = _refused(live_daphne_in_process, owner[1], **body)
    assert (refused.code, refused.body["param"]) == (code, param)
    assert not Query.objects.exists() and not fakes["openai"].chat_requests


def test_the_local_model_refuses_tools_naming_the_providers_that_have_them(api, settings):
    settings.LOCAL_MODEL_ENABLED = True
    response = api.post(
        "/v1/chat/completions",
        {"model": "local/smollm2-135m-instruct", "messages": QUESTION, "tools": TOOLS},
        format="json",
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"], error["type"]) == (
        "tools_unsupported",
        "tools",
        "invalid_request_error",
    )
    assert "openai" in error["message"] and "anthropic" in error["message"]
    assert not Query.objects.exists()


# -- LangChain's ChatOpenAI against /v1 ------------------------------------------------------


class Weather(BaseModel):
    """Weather for a city."""

    city: str
    temp_c: int


def _langchain(server, key: str, model: str) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=f"{server.url}/v1", api_key=key, model=model, max_retries=0, timeout=30
    )


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_langchain_bind_tools_gets_parsed_tool_calls(live_daphne_in_process, owner, fakes, vendor):
    fakes[vendor].tool_calls = SCRIPTED_CALLS[:1]

    def get_weather(city: str) -> str:
        """Weather for a city."""
        return "sunny"

    llm = _langchain(live_daphne_in_process, owner[1], VENDOR_MODELS[vendor]).bind_tools(
        [get_weather]
    )
    answer = llm.invoke("Weather in Paris?")
    assert [(c["name"], c["args"], c["id"]) for c in answer.tool_calls] == [
        ("get_weather", {"city": "Paris"}, CALL_IDS[vendor][0])
    ]
    assert answer.response_metadata["finish_reason"] == "tool_calls"
    sent = _sent(fakes[vendor])["tools"]
    names = [t["function"]["name"] if vendor == "openai" else t["name"] for t in sent]
    assert names == ["get_weather"]


def test_langchain_structured_output_by_function_calling(live_daphne_in_process, owner, fakes):
    fakes["openai"].tool_calls = [("Weather", {"city": "Paris", "temp_c": 21})]
    llm = _langchain(live_daphne_in_process, owner[1], VENDOR_MODELS["openai"])
    structured = llm.with_structured_output(Weather, method="function_calling")
    assert structured.invoke("Weather in Paris?") == Weather(city="Paris", temp_c=21)
    sent = _sent(fakes["openai"])
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "Weather"}}
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["city", "temp_c"]


def test_langchain_structured_output_by_json_schema(live_daphne_in_process, owner, fakes):
    fakes["google"].reply_text = '{"city": "Paris", "temp_c": 21}'
    llm = _langchain(live_daphne_in_process, owner[1], VENDOR_MODELS["google"])
    structured = llm.with_structured_output(Weather, method="json_schema")
    assert structured.invoke("Weather in Paris?") == Weather(city="Paris", temp_c=21)
    config = _sent(fakes["google"])["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"]["required"] == ["city", "temp_c"]


def test_langchain_structured_output_by_json_mode(live_daphne_in_process, owner, fakes):
    # LangChain's third method: response_format json_object, the schema only in the prompt.
    fakes["anthropic"].reply_text = '{"city": "Paris", "temp_c": 21}'
    llm = _langchain(live_daphne_in_process, owner[1], VENDOR_MODELS["anthropic"])
    structured = llm.with_structured_output(Weather, method="json_mode")
    assert structured.invoke("Weather in Paris? Answer in JSON.") == Weather(
        city="Paris", temp_c=21
    )
    # Anthropic has no JSON mode: the platform forces its json_answer tool.
    sent = _sent(fakes["anthropic"])
    assert sent["tool_choice"]["name"] == "json_answer"
