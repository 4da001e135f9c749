"""OpenAI chat messages and tools as the query run stores them (``queries.client_turns``):
the earlier turns, the question and the tool turns after it; ``tools``/``tool_choice``
with the deprecated ``functions``/``function_call`` read as the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.providers.tool_calling import (
    invalid_tools,
    openai_tools,
    tool_choice_parsed,
    tool_choice_stored,
    tools_parsed,
)
from llmplatform.core.errors import ApplicationError

# OpenAI's "developer" role is the system prompt of its newer models.
# A ``function`` message is the deprecated form of a ``tool`` result.
_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}


def invalid_request(message: str, param: str = "messages") -> ApplicationError:
    return ApplicationError(message, code="invalid_request", extra={"param": param})


def _message_parts(index: int, role: str, content: Any) -> tuple[str, list[str]]:
    """(text, image data URLs) of one message's content."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise invalid_request(f"messages[{index}].content must be a string or a list of parts.")
    texts: list[str] = []
    images: list[str] = []
    for part_index, part in enumerate(content):
        where = f"messages[{index}].content[{part_index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url" and role == "user":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str):
                raise invalid_request(f"{where}.image_url.url must be a string.")
            if not url.startswith("data:"):
                # The platform never fetches URLs a request names (no server-side requests
                # to wherever a caller points); the image itself must come in the request.
                raise invalid_request(
                    f"{where}: image URLs are not fetched; send the image as a data URL "
                    "(data:image/png;base64,...)."
                )
            images.append(url)
        else:
            raise invalid_request(
                f"{where}: only text parts (and image_url parts in user messages) are supported."
            )
    return "\n".join(texts), images


def _tool_calls_of(index: int, calls: Any) -> list[dict[str, Any]]:
    """An assistant message's ``tool_calls`` as stored (OpenAI's shape, nothing more)."""
    if not isinstance(calls, list) or not calls:
        raise invalid_request(f"messages[{index}].tool_calls must be a non-empty list.")
    stored = []
    for call_index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(function, dict)
            or call.get("type", "function") != "function"
            or not isinstance(call.get("id"), str)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments"), str)
        ):
            raise invalid_request(
                f"messages[{index}].tool_calls[{call_index}] must be {{id, type: function, "
                "function: {name, arguments (JSON text)}}."
            )
        stored.append(
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": function["arguments"]},
            }
        )
    return stored


class _LegacyCalls:
    """Ids for the deprecated ``function_call`` turns, which have none: a ``function``
    result answers the latest call of its name."""

    def __init__(self) -> None:
        self._latest: dict[str, str] = {}

    def call(self, index: int, function_call: Any) -> list[dict[str, Any]]:
        if not isinstance(function_call, dict) or not isinstance(function_call.get("name"), str):
            raise invalid_request(f"messages[{index}].function_call must be {{name, arguments}}.")
        call_id = f"call_legacy_{index}"
        self._latest[function_call["name"]] = call_id
        arguments = function_call.get("arguments") or "{}"
        return _tool_calls_of(
            index,
            [{"id": call_id, "function": {"name": function_call["name"], "arguments": arguments}}],
        )

    def answered(self, index: int, name: Any) -> str:
        if not isinstance(name, str) or name not in self._latest:
            raise invalid_request(
                f"messages[{index}] answers no earlier function_call named {name!r}."
            )
        return self._latest[name]


def _turn(index: int, message: dict[str, Any], legacy: _LegacyCalls) -> tuple[dict, list[str]]:
    """One OpenAI message as a stored turn (``queries.client_turns``), with its images."""
    given = message.get("role")
    role = _ROLES.get(given) if isinstance(given, str) else None
    if role is None:
        raise invalid_request(
            f"messages[{index}].role {message.get('role')!r} is not supported: use "
            "system, developer, user, assistant or tool."
        )
    calls = None
    if role == "assistant" and message.get("tool_calls"):
        calls = _tool_calls_of(index, message["tool_calls"])
    elif role == "assistant" and message.get("function_call"):
        calls = legacy.call(index, message["function_call"])
    content = message.get("content")
    # An assistant turn that only calls tools has no text (OpenAI sends null).
    text, images = _message_parts(index, role, "" if content is None and calls else content)
    turn: dict[str, Any] = {"role": role, "content": text}
    if calls:
        turn["tool_calls"] = calls
    if message.get("role") == "function":
        turn["tool_call_id"] = legacy.answered(index, message.get("name"))
    elif role == "tool":
        if not isinstance(message.get("tool_call_id"), str):
            raise invalid_request(f"messages[{index}] is a tool result and needs its tool_call_id.")
        turn["tool_call_id"] = message["tool_call_id"]
    return turn, images


@dataclass(frozen=True)
class ChatTurns:
    earlier: list[dict[str, Any]]
    question: str
    images: list[str]  # the question's own
    tool_turns: list[dict[str, Any]] | None  # after the question: a tool loop under way


def chat_turns(messages: list[dict[str, Any]]) -> ChatTurns:
    """The earlier turns, the question (the last user message) with its images, and the
    tool turns after it, from OpenAI messages."""
    legacy = _LegacyCalls()
    turns: list[dict[str, Any]] = []
    images_of: dict[int, list[str]] = {}
    for index, message in enumerate(messages):
        turn, images_of[index] = _turn(index, message, legacy)
        turns.append(turn)
    users = [index for index, turn in enumerate(turns) if turn["role"] == "user"]
    if not users or (turns[-1]["role"] != "tool" and users[-1] != len(turns) - 1):
        raise invalid_request(
            "The last message must be the user's (the question to answer), or the tool "
            "results that answer the model's calls after it."
        )
    at = users[-1]
    question = turns[at]["content"]
    if not question.strip():
        raise invalid_request("The last user message needs text: the question to answer.")
    # Only the question's own images are looked at: earlier ones were answered already, and
    # what was said about them is in the assistant turns.
    return ChatTurns(
        earlier=turns[:at],
        question=question,
        images=images_of[at],
        tool_turns=turns[at + 1 :] or None,
    )


def chat_tool_params(data: dict[str, Any]) -> dict[str, Any]:
    """``tools``, ``tool_choice`` and ``parallel_tool_calls`` as stored (OpenAI's shapes),
    the deprecated ``functions``/``function_call`` mapped onto them. Raises
    ApplicationError (400 ``invalid_tools``, param the field at fault)."""
    tools, choice = data.get("tools"), data.get("tool_choice")
    functions, function_call = data.get("functions"), data.get("function_call")
    if functions and tools:
        raise invalid_tools("send tools or the deprecated functions, not both.", param="functions")
    if function_call is not None and choice is not None:
        raise invalid_tools(
            "send tool_choice or the deprecated function_call, not both.", param="function_call"
        )
    if function_call is not None:
        if isinstance(function_call, dict) and "name" in function_call:
            choice = {"type": "function", "function": {"name": function_call["name"]}}
        elif function_call in ("auto", "none"):
            choice = function_call
        else:
            raise invalid_tools('must be "auto", "none" or {"name"}.', param="function_call")
    if functions:
        try:
            parsed = tools_parsed([{"type": "function", "function": f} for f in functions])
        except ApplicationError as problem:
            raise invalid_tools(f"(read as tools) {problem.message}", param="functions") from None
    else:
        parsed = tools_parsed(tools)
    return {
        "tools": openai_tools(parsed) or None,
        "tool_choice": tool_choice_stored(tool_choice_parsed(choice, parsed)),
        # The deprecated API answers with one function call: parallel calls are off.
        "parallel_tool_calls": False if functions else data.get("parallel_tool_calls"),
    }
