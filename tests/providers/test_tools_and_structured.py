"""Tools and structured output in the provider contract, per vendor, through each real SDK
against its fake server (tests/fakes): the exact vendor payload for tools, tool choices,
a conversation with tool calls and results and response_format; tool calls read back
whole and streamed; the local model refusing; retries and fallbacks around tool calls.

Over 500 lines on purpose: one parametrised table of vendors, as in
test_provider_contract.py."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents.providers.base import (
    ChatChunk,
    ChatMessage,
    ChatProvider,
    ChatRequest,
    ResponseFormat,
    ToolCall,
    ToolCallAssembler,
    ToolCallDelta,
    ToolChoice,
    ToolDefinition,
    collect_stream,
)
from agents.providers.google_provider import gemini_json_schema
from agents.providers.local import LocalProvider
from agents.providers.provider_errors import ProviderError
from agents.providers.registry import (
    check_request_capabilities,
    get_chat_provider,
    providers_supporting,
)
from agents.providers.reliability import FallbackProvider, ReliableProvider, RetryPolicy
from agents.providers.structured import answer_errors, check_response_format, needs_validation
from llmplatform.core.errors import ApplicationError
from tests.fakes.server import FakeVendorServer
from tests.providers.conftest import VENDORS, FakeVendors, run

pytestmark = pytest.mark.usefixtures("provider_settings")

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
TIME_PARAMS = {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}
TOOLS = (
    ToolDefinition(name="get_weather", description="Weather for a city", parameters=WEATHER_PARAMS),
    ToolDefinition(name="get_time", description="Local time", parameters=TIME_PARAMS),
)
# Two parallel calls the fake vendors answer with.
SCRIPTED_CALLS = [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Asia/Tokyo"})]
# A whole tool round trip: the question, the model's two calls, their results, a follow-up.
CONVERSATION = (
    ChatMessage("user", "Weather in Paris and time in Tokyo?"),
    ChatMessage(
        "assistant",
        "",
        tool_calls=(
            ToolCall(id="call_a", name="get_weather", arguments='{"city": "Paris"}'),
            ToolCall(id="call_b", name="get_time", arguments='{"tz": "Asia/Tokyo"}'),
        ),
    ),
    ChatMessage("tool", '{"temp_c": 21}', tool_call_id="call_a"),
    ChatMessage("tool", "09:00", tool_call_id="call_b"),
    ChatMessage("user", "Thanks. One line, please."),
)
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def ask(**kwargs: Any) -> ChatRequest:
    return ChatRequest(
        model="", messages=(ChatMessage("user", "Weather in Paris and time in Tokyo?"),), **kwargs
    )


def body(server: FakeVendorServer) -> dict[str, Any]:
    assert len(server.chat_requests) == 1
    return server.chat_requests[-1].body


async def complete_on_this_loop(vendor: str, request: ChatRequest) -> Any:
    # Providers hold connections of the loop that built them: several run() calls in one
    # test each need the provider built on their own loop.
    return await get_chat_provider(vendor).complete(request)


async def chunks_of(provider: Any, request: ChatRequest) -> list[ChatChunk]:
    return [chunk async for chunk in provider.stream(request)]


# -- request payloads: tools, tool choices, the conversation --------------------------------

OPENAI_TOOLS = [
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
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "input_schema": WEATHER_PARAMS, "description": "Weather for a city"},
    {"name": "get_time", "input_schema": TIME_PARAMS, "description": "Local time"},
]
# google-genai 3.3 sends parameters_json_schema in snake case (Google's JSON parsing takes
# both spellings); the rest of the request in camel case.
GOOGLE_TOOLS = [
    {
        "functionDeclarations": [
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters_json_schema": WEATHER_PARAMS,
            },
            {
                "name": "get_time",
                "description": "Local time",
                "parameters_json_schema": TIME_PARAMS,
            },
        ]
    }
]


@pytest.mark.parametrize("vendor", ["openai", "openrouter"])
def test_openai_wire_carries_tools_choice_parallel_and_conversation_as_is(
    vendor: str, fakes: FakeVendors
) -> None:
    request = ChatRequest(
        model="",
        messages=CONVERSATION,
        tools=TOOLS,
        tool_choice=ToolChoice("function", "get_weather"),
        parallel_tool_calls=False,
    )
    run(get_chat_provider(vendor).complete(request))
    sent = body(fakes[vendor])
    assert sent["tools"] == OPENAI_TOOLS
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    assert sent["messages"] == [
        {"role": "user", "content": "Weather in Paris and time in Tokyo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"tz": "Asia/Tokyo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp_c": 21}'},
        {"role": "tool", "tool_call_id": "call_b", "content": "09:00"},
        {"role": "user", "content": "Thanks. One line, please."},
    ]


def test_anthropic_wire_has_tools_tool_use_and_tool_result_blocks(fakes: FakeVendors) -> None:
    request = ChatRequest(
        model="",
        messages=CONVERSATION,
        tools=TOOLS,
        tool_choice=ToolChoice("required"),
        parallel_tool_calls=False,
    )
    run(get_chat_provider("anthropic").complete(request))
    sent = body(fakes["anthropic"])
    assert sent["tools"] == ANTHROPIC_TOOLS
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert sent["messages"] == [
        {"role": "user", "content": "Weather in Paris and time in Tokyo?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_a",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "call_b",
                    "name": "get_time",
                    "input": {"tz": "Asia/Tokyo"},
                },
            ],
        },
        # Both results and the follow-up question in the one user turn after the calls.
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_a", "content": '{"temp_c": 21}'},
                {"type": "tool_result", "tool_use_id": "call_b", "content": "09:00"},
                {"type": "text", "text": "Thanks. One line, please."},
            ],
        },
    ]


def test_google_wire_has_declarations_config_and_function_parts(fakes: FakeVendors) -> None:
    request = ChatRequest(
        model="",
        messages=CONVERSATION,
        tools=TOOLS,
        tool_choice=ToolChoice("function", "get_weather"),
    )
    run(get_chat_provider("google").complete(request))
    sent = body(fakes["google"])
    assert sent["tools"] == GOOGLE_TOOLS
    assert sent["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    assert sent["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and time in Tokyo?"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {"tz": "Asia/Tokyo"}}},
            ],
        },
        # Results carry the function's name (from the call they answer), in one turn; a
        # JSON result is sent parsed, a plain one as text.
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "get_weather",
                        "response": {"output": {"temp_c": 21}},
                    }
                },
                {"functionResponse": {"name": "get_time", "response": {"output": "09:00"}}},
            ],
        },
        {"role": "user", "parts": [{"text": "Thanks. One line, please."}]},
    ]


CHOICES = [
    ToolChoice("auto"),
    ToolChoice("none"),
    ToolChoice("required"),
    ToolChoice("function", "get_time"),
]
EXPECTED_CHOICE = {
    "openai": ["auto", "none", "required", {"type": "function", "function": {"name": "get_time"}}],
    "anthropic": [
        {"type": "auto"},
        {"type": "none"},
        {"type": "any"},
        {"type": "tool", "name": "get_time"},
    ],
    "google": [
        {"functionCallingConfig": {"mode": "AUTO"}},
        {"functionCallingConfig": {"mode": "NONE"}},
        {"functionCallingConfig": {"mode": "ANY"}},
        {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}},
    ],
}
EXPECTED_CHOICE["openrouter"] = EXPECTED_CHOICE["openai"]
CHOICE_FIELD = {"openai": "tool_choice", "openrouter": "tool_choice", "anthropic": "tool_choice"}


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("which", range(len(CHOICES)))
def test_each_tool_choice_in_the_vendors_form(vendor: str, which: int, fakes: FakeVendors) -> None:
    run(get_chat_provider(vendor).complete(ask(tools=TOOLS, tool_choice=CHOICES[which])))
    sent = body(fakes[vendor])
    assert sent[CHOICE_FIELD.get(vendor, "toolConfig")] == EXPECTED_CHOICE[vendor][which]
    assert "parallel_tool_calls" not in sent  # not sent unless asked for


# -- tool calls read back, whole and streamed ------------------------------------------------

EXPECTED_IDS = {
    "openai": ["call_fake0", "call_fake1"],
    "openrouter": ["call_fake0", "call_fake1"],
    "anthropic": ["toolu_fake0", "toolu_fake1"],
    # Gemini gives no ids: ours are call_<response id>_<n>.
    "google": ["call_fake0001_0", "call_fake0001_1"],
}


def expected_calls(vendor: str) -> list[ToolCall]:
    return [
        ToolCall(id=call_id, name=name, arguments=json.dumps(arguments))
        for call_id, (name, arguments) in zip(EXPECTED_IDS[vendor], SCRIPTED_CALLS, strict=True)
    ]


@pytest.mark.parametrize("vendor", VENDORS)
def test_complete_returns_parallel_tool_calls(vendor: str, fakes: FakeVendors) -> None:
    fakes[vendor].tool_calls = list(SCRIPTED_CALLS)
    result = run(get_chat_provider(vendor).complete(ask(tools=TOOLS)))
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls == expected_calls(vendor)
    assert result.text == ""
    assert result.usage.output_tokens > 0 and result.usage.cost_usd is not None


@pytest.mark.parametrize("vendor", VENDORS)
def test_stream_yields_deltas_that_assemble_into_the_same_calls(
    vendor: str, fakes: FakeVendors
) -> None:
    fakes[vendor].tool_calls = list(SCRIPTED_CALLS)
    chunks = run(chunks_of(get_chat_provider(vendor), ask(tools=TOOLS)))
    deltas = [delta for chunk in chunks for delta in chunk.tool_calls]
    assert chunks[-1].finish_reason == "tool_calls"
    assert not any(chunk.text for chunk in chunks)
    # The first delta of each index names the call; later ones only add arguments.
    for index, call in enumerate(expected_calls(vendor)):
        mine = [d for d in deltas if d.index == index]
        assert (mine[0].id, mine[0].name) == (call.id, call.name)
        assert all(d.id is None and d.name is None for d in mine[1:])
        if vendor != "google":  # Gemini sends each call whole
            assert len([d for d in mine if d.arguments]) == 3
    assembler = ToolCallAssembler()
    for delta in deltas:
        assembler.add(delta)
    assert assembler.calls() == expected_calls(vendor)


@pytest.mark.parametrize("vendor", VENDORS)
def test_collected_stream_has_the_tool_calls(vendor: str, fakes: FakeVendors) -> None:
    fakes[vendor].tool_calls = list(SCRIPTED_CALLS)
    result = run(collect_stream(get_chat_provider(vendor), ask(tools=TOOLS)))
    assert result.tool_calls == expected_calls(vendor)
    assert result.finish_reason == "tool_calls"
    assert result.timings.time_to_first_token_ms is not None


def test_interleaved_deltas_assemble_by_index() -> None:
    assembler = ToolCallAssembler()
    for delta in [
        ToolCallDelta(0, "c0", "a"),
        ToolCallDelta(1, "c1", "b"),
        ToolCallDelta(1, arguments='{"y"'),
        ToolCallDelta(0, arguments='{"x": 1}'),
        ToolCallDelta(1, arguments=": 2}"),
    ]:
        assembler.add(delta)
    assert assembler.calls() == [ToolCall("c0", "a", '{"x": 1}'), ToolCall("c1", "b", '{"y": 2}')]


def test_gemini_thought_signature_travels_in_the_call_id_and_comes_back(
    fakes: FakeVendors,
) -> None:
    signature = base64.b64encode(b"\x00signed\xff").decode()
    fakes["google"].tool_calls = SCRIPTED_CALLS[:1]
    fakes["google"].thought_signature = signature
    call = run(complete_on_this_loop("google", ask(tools=TOOLS))).tool_calls[0]
    assert call.id.startswith("call_fake0001_0__ts__")
    fakes["google"].reset()
    follow_up = ChatRequest(
        model="",
        messages=(
            ChatMessage("user", "Weather in Paris?"),
            ChatMessage("assistant", "", tool_calls=(call,)),
            ChatMessage("tool", "sunny", tool_call_id=call.id),
        ),
        tools=TOOLS,
    )
    run(complete_on_this_loop("google", follow_up))
    model_turn = body(fakes["google"])["contents"][1]
    assert model_turn["parts"] == [
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": signature,
        }
    ]


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_gemini_keeps_one_call_when_parallel_calls_are_off(mode: str, fakes: FakeVendors) -> None:
    fakes["google"].tool_calls = list(SCRIPTED_CALLS)
    request = ask(tools=TOOLS, parallel_tool_calls=False)
    provider = get_chat_provider("google")
    if mode == "complete":
        result = run(provider.complete(request))
    else:
        result = run(collect_stream(provider, request))
    assert result.tool_calls == expected_calls("google")[:1]
    assert result.finish_reason == "tool_calls"


def test_a_tool_result_for_an_unknown_call_is_a_400_for_gemini() -> None:
    request = ChatRequest(
        model="",
        messages=(ChatMessage("user", "hi"), ChatMessage("tool", "x", tool_call_id="nope")),
    )
    with pytest.raises(ProviderError) as caught:
        run(get_chat_provider("google").complete(request))
    assert caught.value.status == 400 and caught.value.code == "invalid_conversation"
    assert "'nope'" in caught.value.message


def test_tool_arguments_that_are_not_json_are_a_400_for_anthropic(fakes: FakeVendors) -> None:
    bad = ChatMessage("assistant", "", tool_calls=(ToolCall("c", "get_time", "{not json"),))
    request = ChatRequest(model="", messages=(ChatMessage("user", "hi"), bad))
    with pytest.raises(ProviderError) as caught:
        run(get_chat_provider("anthropic").complete(request))
    assert caught.value.status == 400 and not caught.value.retryable
    assert fakes["anthropic"].chat_requests == []


# -- structured output ------------------------------------------------------------------------

JSON_SCHEMA_FORMAT = ResponseFormat(
    type="json_schema", schema=PERSON_SCHEMA, name="person", strict=True
)


@pytest.mark.parametrize("vendor", VENDORS)
def test_json_schema_response_format_in_the_vendors_form(vendor: str, fakes: FakeVendors) -> None:
    fakes[vendor].reply_text = '{"name": "Ada", "age": 36}'
    result = run(get_chat_provider(vendor).complete(ask(response_format=JSON_SCHEMA_FORMAT)))
    sent = body(fakes[vendor])
    if vendor in ("openai", "openrouter"):
        assert sent["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
        }
    elif vendor == "anthropic":
        assert sent["output_config"] == {"format": {"type": "json_schema", "schema": PERSON_SCHEMA}}
        assert "tools" not in sent
    else:
        assert sent["generationConfig"]["responseMimeType"] == "application/json"
        assert sent["generationConfig"]["responseJsonSchema"] == PERSON_SCHEMA
    assert answer_errors(result.text, JSON_SCHEMA_FORMAT) == []


@pytest.mark.parametrize("vendor", ["openai", "openrouter", "google"])
def test_json_object_response_format_in_the_vendors_form(vendor: str, fakes: FakeVendors) -> None:
    run(get_chat_provider(vendor).complete(ask(response_format=ResponseFormat("json_object"))))
    sent = body(fakes[vendor])
    if vendor == "google":
        assert sent["generationConfig"]["responseMimeType"] == "application/json"
        assert "responseJsonSchema" not in sent["generationConfig"]
    else:
        assert sent["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_anthropic_json_object_is_a_forced_tool_whose_input_is_the_answer(
    mode: str, fakes: FakeVendors
) -> None:
    fakes["anthropic"].tool_calls = [("json_answer", {"name": "Ada", "age": 36})]
    provider = get_chat_provider("anthropic")
    request = ask(response_format=ResponseFormat("json_object"))
    if mode == "complete":
        result = run(provider.complete(request))
    else:
        result = run(collect_stream(provider, request))
    sent = body(fakes["anthropic"])
    assert sent["tools"] == [
        {
            "name": "json_answer",
            "description": "Give your whole answer as one JSON object.",
            "input_schema": {"type": "object"},
        }
    ]
    assert sent["tool_choice"] == {"type": "tool", "name": "json_answer"}
    assert json.loads(result.text) == {"name": "Ada", "age": 36}
    assert result.finish_reason == "stop"
    assert result.tool_calls == []


def test_anthropic_refuses_json_object_with_own_tools(fakes: FakeVendors) -> None:
    request = ask(tools=TOOLS, response_format=ResponseFormat("json_object"))
    with pytest.raises(ProviderError) as caught:
        run(get_chat_provider("anthropic").complete(request))
    assert caught.value.code == "response_format_unsupported" and caught.value.status == 400
    assert "json_schema" in caught.value.message
    assert fakes["anthropic"].chat_requests == []


def test_gemini_schema_translation_and_refusal() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "kind": {"const": "person", "default": "person"},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
            "any": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "$defs": {"tag": {"type": "string", "examples": ["x"]}},
    }
    assert gemini_json_schema(schema, where="w") == {
        "type": "object",
        "properties": {
            "kind": {"enum": ["person"]},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
            "any": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "$defs": {"tag": {"type": "string"}},
    }
    nested = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]+$"}}}
    with pytest.raises(ProviderError) as caught:
        gemini_json_schema(nested, where="response_format schema")
    assert caught.value.status == 400 and caught.value.code == "schema_unsupported"
    assert "'pattern'" in caught.value.message and "#/properties/code" in caught.value.message
    # A property merely called like an unsupported keyword is fine.
    assert gemini_json_schema({"properties": {"pattern": {"type": "string"}}}, where="w")


def test_gemini_refuses_an_untranslatable_schema_before_calling(fakes: FakeVendors) -> None:
    request = ask(response_format=ResponseFormat("json_schema", schema={"allOf": [PERSON_SCHEMA]}))
    with pytest.raises(ProviderError) as caught:
        run(get_chat_provider("google").complete(request))
    assert caught.value.code == "schema_unsupported" and "'allOf'" in caught.value.message
    assert fakes["google"].chat_requests == []


def test_answer_validation_against_the_schema() -> None:
    assert needs_validation(JSON_SCHEMA_FORMAT)
    assert not needs_validation(ResponseFormat("json_object"))
    assert answer_errors('{"name": "Ada", "age": 36}', JSON_SCHEMA_FORMAT) == []
    errors = answer_errors('{"name": "Ada", "age": "old", "x": 1}', JSON_SCHEMA_FORMAT)
    assert any(e.startswith("$.age:") for e in errors)
    assert any("'x'" in e for e in errors)  # additionalProperties
    assert answer_errors("Sure! Here it is", JSON_SCHEMA_FORMAT)[0].startswith("the answer is not")
    assert answer_errors("[1]", ResponseFormat("json_object")) == [
        "the answer is JSON but not an object"
    ]
    assert answer_errors('{"a": 1}', ResponseFormat("json_object")) == []


def test_an_invalid_schema_is_refused_with_its_location() -> None:
    bad = ResponseFormat("json_schema", schema={"type": "object", "properties": {"a": {"type": 5}}})
    with pytest.raises(ApplicationError) as caught:
        check_response_format(bad)
    assert caught.value.status == 400 and caught.value.code == "invalid_response_format"
    check_response_format(JSON_SCHEMA_FORMAT)


# -- capabilities: local refuses, the registry checks, fallbacks skip ----------------------


@pytest.mark.parametrize(
    ("request_kwargs", "code"),
    [
        ({"tools": TOOLS}, "tools_unsupported"),
        ({"tool_choice": ToolChoice("none")}, "tools_unsupported"),
        ({"response_format": ResponseFormat("json_object")}, "response_format_unsupported"),
    ],
)
def test_local_refuses_tools_and_response_format(request_kwargs: dict, code: str) -> None:
    request = ask(**request_kwargs)

    async def first_chunk() -> None:
        async for _ in LocalProvider(providers_supporting=providers_supporting).stream(request):
            pass

    with pytest.raises(ApplicationError) as caught:
        run(first_chunk())
    assert caught.value.code == code and caught.value.status == 400
    key = (
        "providers_with_tools"
        if code == "tools_unsupported"
        else ("providers_with_response_format")
    )
    assert caught.value.extra[key] == list(VENDORS)
    assert "openai, anthropic, google, openrouter" in caught.value.message


def test_local_refuses_a_conversation_with_tool_turns() -> None:
    request = ChatRequest(model="", messages=CONVERSATION)
    assert request.uses_tools and not ask().uses_tools
    with pytest.raises(ApplicationError) as caught:
        run(LocalProvider().complete(request))
    assert caught.value.code == "tools_unsupported"


def test_vendors_declare_the_capabilities_and_the_registry_check_passes() -> None:
    for vendor in VENDORS:
        provider = get_chat_provider(vendor)
        assert provider.supports_tools and provider.supports_response_format
        check_request_capabilities(
            vendor, ask(tools=TOOLS, response_format=ResponseFormat("json_object"))
        )
    assert not LocalProvider().supports_tools
    assert not LocalProvider().supports_response_format


class _ToolThenFail(ChatProvider):
    """Yields one tool-call delta, then fails with a retryable error."""

    name = "scripted"
    supports_tools = True

    def __init__(self) -> None:
        self.calls = 0

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.calls += 1
        yield ChatChunk(tool_calls=(ToolCallDelta(0, "c0", "get_time"),))
        raise ProviderError("cut", provider=self.name, retryable=True)


def test_a_stream_is_not_retried_after_a_tool_call_delta() -> None:
    inner = _ToolThenFail()
    reliable = ReliableProvider(inner, policy=RetryPolicy(max_retries=3, base_delay=0.0))
    with pytest.raises(ProviderError):
        run(chunks_of(reliable, ask(tools=TOOLS)))
    assert inner.calls == 1


class _Recorder(ChatProvider):
    def __init__(self, name: str, *, tools: bool, fail: bool = False) -> None:
        self.name = name
        self.supports_tools = tools
        self.fail = fail
        self.requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.requests.append(request)
        if self.fail:
            raise ProviderError("down", provider=self.name, retryable=True)
        yield ChatChunk(text="ok", finish_reason="stop")


def test_fallbacks_without_tools_are_skipped_and_tools_pass_through() -> None:
    primary = _Recorder("primary", tools=True, fail=True)
    no_tools = _Recorder("no_tools", tools=False)
    with_tools = _Recorder("with_tools", tools=True)
    chain = FallbackProvider([primary, no_tools, with_tools])
    request = ask(tools=TOOLS, tool_choice=ToolChoice("required"))
    run(chunks_of(chain, request))
    assert no_tools.requests == []
    assert with_tools.requests[0].tools == TOOLS
    assert with_tools.requests[0].tool_choice == ToolChoice("required")
    # Without tools every member is tried in order.
    run(chain.complete(ask()))
    assert len(no_tools.requests) == 1
