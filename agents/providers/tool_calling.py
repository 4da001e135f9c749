"""Tool calling in OpenAI's shape: what a run stores of it and reads back.

A request's ``tools`` and ``tool_choice``, the tool turns of its messages and the calls a
model answered with travel through the stored query as OpenAI writes them (the edge that
speaks OpenAI's API stores them unchanged, and so can a later edge); here they become the
provider types of ``agents.providers.base`` and back. Malformed ones are refused with a
400 naming the request field at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from agents.providers.base import ChatMessage, ToolCall, ToolChoice, ToolDefinition
from llmplatform.core.errors import ApplicationError

# OpenAI's own limits on a function's name and on the number of tools in one request.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TOOLS = 128
_CHOICE_MODES = ("auto", "none", "required")


def invalid_tools(message: str, *, param: str = "tools") -> ApplicationError:
    """The 400 for malformed tools, tool choice or tool turns; ``param`` names the field."""
    return ApplicationError(
        f"{param}: {message}", code="invalid_tools", status=400, extra={"param": param}
    )


def _tool_parsed(index: int, value: Any) -> ToolDefinition:
    where = f"tools[{index}]"
    if not isinstance(value, Mapping) or value.get("type") != "function":
        raise invalid_tools(f'{where} must be {{"type": "function", "function": {{...}}}}.')
    function = value.get("function")
    if not isinstance(function, Mapping):
        raise invalid_tools(f"{where}.function must be an object with a name.")
    name = function.get("name")
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise invalid_tools(
            f"{where}.function.name must be 1 to 64 letters, digits, underscores or dashes."
        )
    description = function.get("description") or ""
    if not isinstance(description, str):
        raise invalid_tools(f"{where}.function.description must be a string.")
    parameters = function.get("parameters")
    if parameters is not None:
        if not isinstance(parameters, Mapping):
            raise invalid_tools(f"{where}.function.parameters must be a JSON Schema object.")
        try:
            jsonschema.Draft202012Validator.check_schema(dict(parameters))
        except SchemaError as exc:
            location = "/".join(str(part) for part in exc.path) or "(root)"
            raise invalid_tools(
                f"{where}.function.parameters is not a valid JSON Schema at {location}: "
                f"{exc.message}"
            ) from None
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise invalid_tools(f"{where}.function.strict must be true or false.")
    return ToolDefinition(
        name=name,
        description=description,
        parameters=None if parameters is None else dict(parameters),
        strict=strict,
    )


def tools_parsed(value: Any) -> tuple[ToolDefinition, ...]:
    """OpenAI's ``tools`` (``[{"type": "function", "function": {name, description,
    parameters, strict}}]``) as ToolDefinitions. Raises ApplicationError 400
    ``invalid_tools`` (param ``tools``)."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise invalid_tools(f"must be a list of at most {MAX_TOOLS} function tools.")
    tools = tuple(_tool_parsed(index, tool) for index, tool in enumerate(value))
    names = [tool.name for tool in tools]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise invalid_tools(f"function names must be unique; repeated: {', '.join(repeated)}.")
    return tools


def openai_tools(tools: Sequence[ToolDefinition]) -> list[dict[str, Any]]:
    """OpenAI's shape of ``tools``: what a run stores and reads back, and what
    OpenAI-compatible vendors are sent."""
    stored = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        if tool.parameters is not None:
            function["parameters"] = dict(tool.parameters)
        if tool.strict is not None:
            function["strict"] = tool.strict
        stored.append({"type": "function", "function": function})
    return stored


def tool_choice_parsed(value: Any, tools: Sequence[ToolDefinition]) -> ToolChoice | None:
    """OpenAI's ``tool_choice`` (``auto``, ``none``, ``required`` or ``{"type":
    "function", "function": {"name"}}``) for a request with ``tools``; None when absent.
    ``none`` without tools changes nothing (SDKs send it unasked). Raises ApplicationError
    400 ``invalid_tools`` (param ``tool_choice``)."""
    if value is None or (value == "none" and not tools):
        return None
    if not tools:
        raise invalid_tools(
            "needs tools: send the functions the model may call.", param="tool_choice"
        )
    if value in _CHOICE_MODES:
        return ToolChoice(mode=value)
    named = isinstance(value, Mapping) and value.get("type") == "function"
    function = value.get("function") if named else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str):
        raise invalid_tools(
            'must be "auto", "none", "required" or {"type": "function", "function": '
            '{"name": ...}}.',
            param="tool_choice",
        )
    if name not in {tool.name for tool in tools}:
        raise invalid_tools(f"names {name!r}, which is not one of the tools.", param="tool_choice")
    return ToolChoice(mode="function", name=name)


def tool_choice_stored(choice: ToolChoice | None) -> str | dict[str, Any] | None:
    """OpenAI's shape of ``tool_choice``."""
    if choice is None:
        return None
    if choice.mode == "function":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def tool_calls_stored(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """The calls a model made, as a query stores them and OpenAI's ``message.tool_calls``
    shows them (arguments are the model's JSON text, unparsed)."""
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for call in calls
    ]


def tool_calls_read(stored: Sequence[Mapping[str, Any]]) -> tuple[ToolCall, ...]:
    """Stored (OpenAI-shaped, checked) calls as ToolCalls."""
    return tuple(
        ToolCall(
            id=call["id"],
            name=call["function"]["name"],
            arguments=call["function"]["arguments"],
        )
        for call in stored
    )


def chat_message_of(turn: Mapping[str, Any]) -> ChatMessage:
    """A stored (checked) user, assistant or tool turn as the provider's ChatMessage."""
    return ChatMessage(
        role=turn["role"],
        content=turn.get("content") or "",
        tool_calls=tool_calls_read(turn.get("tool_calls") or ()),
        tool_call_id=turn.get("tool_call_id"),
    )
