"""A ``POST /v1/responses`` request (OpenAI's Responses API) read as a chat call: ``input``
(a string or message items) with ``instructions`` becomes the chat messages, ``text.format``
the ``response_format``, ``max_output_tokens`` the answer's cap; the run is the same query
run as ``/v1/chat/completions``. Function tools are chat's tools in the Responses shape
(``function_call`` / ``function_call_output`` input items are the tool turns);
``previous_response_id`` puts the earlier response's conversation before the input, as
client-kept turns, in its session. What is not honoured (built-in tools, ``store=false``)
is refused, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from llmplatform.core.contract import (
    MAX_ANSWER_TOKENS,
    MAX_ID_LENGTH,
    MAX_TEMPERATURE,
    MIN_ANSWER_TOKENS,
    MIN_TEMPERATURE,
)
from llmplatform.core.errors import ApplicationError
from openai_compat.chat import ChatCall, chat_call, first_problem
from openai_compat.chat_messages import chat_turns, invalid_request
from openai_compat.serializers import check_metadata, refuse_unhonoured
from openai_compat.stored_responses import previous_response_get, response_turns

# Responses fields this API does not honour, with the values that change nothing (what
# the SDKs send unasked): these, null or empty, pass; any other value is refused.
_DEFAULTS: dict[str, tuple[object, ...]] = {
    "top_p": (1, 1.0),
    # Every answer is recorded (GET /api/v1/query/{id}); store=false cannot be honoured.
    "store": (True,),
    "truncation": ("disabled",),
    "service_tier": ("auto", "default"),
    "background": (False,),
}
_UNHONOURED = {
    *_DEFAULTS,
    "conversation",
    "reasoning",
    "include",
    "top_logprobs",
    "max_tool_calls",
    "prompt",
    "prompt_cache_key",
    "safety_identifier",
    "stream_options",
}
# Message roles of input items, as chat messages take them.
_ROLES = {"user", "assistant", "system", "developer"}


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "minItems": 1, "items": {"type": "object"}},
        ]
    }
)
class ResponsesInputField(serializers.JSONField):
    """A string, or a non-empty list of input items (checked by ``input_messages``)."""


class OpenAIResponseRequestSerializer(serializers.Serializer):
    model = serializers.CharField(
        max_length=300, help_text="provider/model, an alias or a bare name (GET /v1/models)"
    )
    input = ResponsesInputField(
        help_text="a string (the question), or message items {role, content}: content a "
        "string or input_text / output_text / input_image (data URL) parts; the last "
        "user message is the question"
    )
    instructions = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="the system prompt"
    )
    max_output_tokens = serializers.IntegerField(
        min_value=MIN_ANSWER_TOKENS, max_value=MAX_ANSWER_TOKENS, required=False, allow_null=True
    )
    temperature = serializers.FloatField(
        min_value=MIN_TEMPERATURE, max_value=MAX_TEMPERATURE, required=False, allow_null=True
    )
    text = serializers.DictField(
        required=False,
        allow_null=True,
        help_text='{"format": {"type": "text" | "json_object" | "json_schema", name, schema, '
        "strict}}: json_object and json_schema answer that JSON (as response_format does on "
        "chat completions)",
    )
    stream = serializers.BooleanField(default=False, allow_null=True)
    user = serializers.CharField(
        max_length=MAX_ID_LENGTH, required=False, allow_null=True, help_text="the end user"
    )
    metadata = serializers.DictField(
        required=False,
        allow_null=True,
        help_text='session_id (or the X-Session-ID header), use_memory ("true")',
    )
    tools = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        allow_null=True,
        help_text='[{"type": "function", "name", "description", "parameters", "strict"}]: '
        "functions the model may call (answered as function_call output items). Not with "
        "the local model (400 tools_unsupported).",
    )
    tool_choice = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='"auto", "none", "required" or {"type": "function", "name"}',
    )
    parallel_tool_calls = serializers.BooleanField(required=False, allow_null=True)
    previous_response_id = serializers.CharField(
        max_length=MAX_ID_LENGTH,
        required=False,
        allow_null=True,
        help_text="a completed response of this key's owner to continue: its conversation "
        "(input, answer and function calls; not its instructions) comes before input, in "
        "its session",
    )

    def validate_text(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        unknown = set(value) - {"format", "verbosity"}
        if unknown or value.get("verbosity") not in (None, "medium"):
            raise serializers.ValidationError(
                "only text.format is supported (text.verbosity: medium, the default)."
            )
        return value

    def validate(self, attrs: dict) -> dict:
        refuse_unhonoured(self, unhonoured=_UNHONOURED, defaults=_DEFAULTS)
        check_metadata(attrs)
        return attrs


class ResponseRetrieveParamsSerializer(serializers.Serializer):
    """GET /v1/responses/{id}: ``stream`` replays its events; nothing else is taken."""

    stream = serializers.BooleanField(
        default=False,
        help_text="true: the response's typed events from the start (following it while it "
        "runs), as POST with stream=true sends them",
    )

    def validate(self, attrs: dict) -> dict:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            # include and starting_after are not honoured: refused, never ignored.
            raise serializers.ValidationError({unknown[0]: f"{unknown[0]} is not supported here."})
        return attrs


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """``text.format`` as chat's ``response_format`` (json_schema's fields nest there)."""
    fmt = (text or {}).get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise ApplicationError(
            "text.format must be an object with a type.",
            code="invalid_response_format",
            extra={"param": "text.format"},
        )
    if fmt.get("type") != "json_schema":
        return {"type": fmt.get("type")}
    spec = {key: fmt[key] for key in ("name", "schema", "strict", "description") if key in fmt}
    return {"type": "json_schema", "json_schema": spec}


def _part(index: int, part_index: int, part: Any) -> dict[str, Any]:
    """An input content part as a chat content part."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        return {"type": "image_url", "image_url": {"url": part["image_url"]}}
    raise invalid_request(
        f"input[{index}].content[{part_index}]: only input_text, output_text and "
        "input_image (image_url a data URL) parts are supported.",
        "input",
    )


def _tool_turn(index: int, item: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    """A ``function_call`` item joins the assistant turn of the calls before it (or opens
    one); a ``function_call_output`` item is a tool turn."""
    call_id = item.get("call_id")
    if not isinstance(call_id, str):
        raise invalid_request(f"input[{index}] needs its call_id.", "input")
    if item["type"] == "function_call_output":
        output = item.get("output")
        if not isinstance(output, str):
            raise invalid_request(f"input[{index}].output must be a string.", "input")
        messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
        return
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": item.get("name"), "arguments": item.get("arguments")},
    }
    if messages and messages[-1]["role"] == "assistant" and messages[-1].get("tool_calls"):
        messages[-1]["tool_calls"].append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def input_messages(value: Any) -> list[dict[str, Any]]:
    """``input`` as chat messages. Raises ApplicationError (400, param input)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise invalid_request("input must be a string or a non-empty list of messages.", "input")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        kind = item.get("type", "message") if isinstance(item, dict) else type(item).__name__
        if kind in ("function_call", "function_call_output"):
            _tool_turn(index, item, messages)
            continue
        if kind != "message":
            raise invalid_request(
                f"input[{index}]: {kind} items are not supported here; send message, "
                "function_call and function_call_output items.",
                "input",
            )
        role, content = item.get("role"), item.get("content")
        if role not in _ROLES:
            raise invalid_request(
                f"input[{index}].role must be user, assistant, system or developer.", "input"
            )
        if isinstance(content, list):
            content = [_part(index, part_index, part) for part_index, part in enumerate(content)]
        messages.append({"role": role, "content": content})
    return messages


def _chat_tools(tools: list[Any] | None) -> list[Any] | None:
    """Responses function tools (``{"type": "function", "name", ...}``) as chat's."""
    if not tools:
        return None
    chat_tools: list[Any] = []
    for index, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise invalid_request(
                f"tools[{index}]: only function tools are supported here (not "
                f"{tool.get('type')!r}).",
                "tools",
            )
        function = {key: tool[key] for key in ("name", "description", "parameters", "strict")
                    if tool.get(key) is not None}  # fmt: skip
        chat_tools.append({"type": "function", "function": function})
    return chat_tools


def _chat_tool_choice(choice: Any) -> Any:
    """``{"type": "function", "name"}`` as chat's ``{"type": "function", "function":
    {"name"}}``; the modes are the same words."""
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


@dataclass(frozen=True)
class ResponsesCall:
    """A checked Responses request: the chat call that runs it, and what the response
    object echoes back (stored with the query, for GET /v1/responses/{id})."""

    chat: ChatCall
    echo: dict[str, Any]


@dataclass(frozen=True)
class _Continued:
    """The input after what an earlier response's conversation puts before it."""

    messages: list[dict[str, Any]]
    session_id: str | None
    user: str | None


def _continued(*, owner: User, checked: dict[str, Any], session_header: str | None) -> _Continued:
    """``input`` as chat messages, after the previous response's conversation when
    ``previous_response_id`` names one, in its session and (unless ``user`` says) for its
    end user. Raises ApplicationError (400)."""
    messages = input_messages(checked["input"])
    previous_id = checked.get("previous_response_id")
    if previous_id is None:
        try:
            chat_turns(messages)  # checked as given, so a problem names the input's own index
        except ApplicationError as problem:
            raise invalid_request(problem.message.replace("messages", "input"), "input") from None
        return _Continued(messages=messages, session_id=session_header, user=checked.get("user"))
    previous = previous_response_get(owner=owner, response_id=previous_id)
    asked_session = session_header or (checked.get("metadata") or {}).get("session_id")
    if asked_session not in (None, previous.session_id):
        raise invalid_request(
            f"previous_response_id continues session {previous.session_id!r}; the "
            f"X-Session-ID header or metadata.session_id names {asked_session!r}. Send "
            "either one, or the same session.",
            "previous_response_id",
        )
    earlier = response_turns(previous)
    messages = [*earlier, *messages]
    try:
        chat_turns(messages)
    except ApplicationError as problem:
        raise invalid_request(
            f"input, after the {len(earlier)} earlier turns of {previous_id!r} (which "
            f"messages[...] counts first): {problem.message}",
            "input",
        ) from None
    return _Continued(
        messages=messages,
        session_id=previous.session_id,
        user=checked.get("user") or previous.user_id,
    )


def responses_call_from_request(
    data: Any, *, owner: User, session_header: str | None
) -> ResponsesCall:
    """A raw request body as the chat call that answers it. Raises ApplicationError (400,
    404 model_not_found)."""
    if not isinstance(data, dict):
        raise invalid_request("Send a JSON object.", "body")
    serializer = OpenAIResponseRequestSerializer(data=data)
    if not serializer.is_valid():
        field, problem = first_problem(serializer.errors)
        raise invalid_request(f"{field}: {problem}", field)
    checked = serializer.validated_data
    continued = _continued(owner=owner, checked=checked, session_header=session_header)
    messages = continued.messages
    if checked.get("instructions"):
        messages = [{"role": "system", "content": checked["instructions"]}, *messages]
    response_format = _response_format(checked.get("text"))
    try:
        call = chat_call(
            data={
                "model": checked["model"],
                "messages": messages,
                "temperature": checked.get("temperature"),
                "max_completion_tokens": checked.get("max_output_tokens"),
                "user": continued.user,
                "metadata": checked.get("metadata"),
                "response_format": response_format,
                "stream": checked.get("stream"),
                "tools": _chat_tools(checked.get("tools")),
                "tool_choice": _chat_tool_choice(checked.get("tool_choice")),
                "parallel_tool_calls": checked.get("parallel_tool_calls"),
            },
            session_header=continued.session_id,
        )
    except ApplicationError as problem:
        if problem.extra.get("param") != "response_format":
            raise
        # The same checks as chat's response_format, named as this API names the field.
        raise ApplicationError(
            problem.message.replace("response_format", "text.format"),
            code=problem.code,
            status=problem.status,
            extra={**problem.extra, "param": "text.format"},
        ) from None
    echo = {
        "model": call.model_id,
        "previous_response_id": checked.get("previous_response_id"),
        "instructions": checked.get("instructions"),
        "max_output_tokens": checked.get("max_output_tokens"),
        "temperature": checked.get("temperature"),
        "metadata": checked.get("metadata") or {},
        "text": {"format": (checked.get("text") or {}).get("format") or {"type": "text"}},
        "user": checked.get("user"),
        "tools": checked.get("tools") or [],
        "tool_choice": checked.get("tool_choice") or "auto",
        "parallel_tool_calls": checked.get("parallel_tool_calls") is not False,
    }
    # Stored with the query: GET /v1/responses/{id} answers with the same object.
    return ResponsesCall(
        chat=replace(call, params=replace(call.params, client_request=echo)), echo=echo
    )
