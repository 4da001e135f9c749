"""The client-kept conversation (the OpenAI-compatible API) and its tools, checked before
anything is stored or admitted.

A client that keeps its own messages sends them with the question: ``messages`` are the
turns before it (system, user, assistant and tool turns), ``tool_turns`` those after it
when a tool-calling loop is under way (the model's calls and their results, the question
being the last user turn). Turns are stored as OpenAI writes them: ``{role, content}``,
an assistant turn's ``tool_calls`` (``[{id, type: "function", function: {name,
arguments}}]``) and a tool turn's ``tool_call_id``. Every call must be answered by a tool
turn before the conversation goes on, as every vendor requires.
"""

from __future__ import annotations

from typing import Any

from agents.providers.base import capability_error
from agents.providers.registry import get_chat_provider, providers_supporting
from agents.providers.tool_calling import TOOL_NAME, tool_choice_parsed, tools_parsed
from llmplatform.core.errors import ApplicationError
from queries.question import QuestionParams

# The client-kept messages are bounded by the request body size too; this bounds the
# number of turns the writer has to lay out.
MAX_CLIENT_MESSAGES = 500
CLIENT_MESSAGE_ROLES = ("system", "user", "assistant", "tool")
# What may follow the question: the model's calls and their results.
TOOL_TURN_ROLES = ("assistant", "tool")


def _bad_turn(index: int, message: str) -> ApplicationError:
    return ApplicationError(
        f"messages[{index}] {message}",
        code="invalid_conversation",
        extra={"index": index, "param": "messages"},
    )


def _check_calls(index: int, calls: Any) -> list[str]:
    """The ids of an assistant turn's well-formed ``tool_calls``."""
    if not isinstance(calls, list) or not calls:
        raise _bad_turn(index, "tool_calls must be a non-empty list.")
    ids = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(function, dict)
            or set(call) != {"id", "type", "function"}
            or call["type"] != "function"
            or not isinstance(call["id"], str)
            or not call["id"]
            or set(function) != {"name", "arguments"}
            or not isinstance(function["name"], str)
            or not TOOL_NAME.match(function["name"])
            or not isinstance(function["arguments"], str)
        ):
            raise _bad_turn(
                index,
                'tool_calls must be {"id", "type": "function", "function": {"name", '
                '"arguments" (JSON text)}}.',
            )
        ids.append(call["id"])
    return ids


def _check_turn(index: int, turn: Any, roles: tuple[str, ...]) -> None:
    role = turn.get("role") if isinstance(turn, dict) else None
    keys = {"role", "content"}
    if role == "assistant":
        keys.add("tool_calls")
    elif role == "tool":
        keys.add("tool_call_id")
    if (
        role not in roles
        or "content" not in turn
        or not set(turn) <= keys
        or not isinstance(turn["content"], str)
    ):
        raise _bad_turn(
            index,
            f"must be {{role, content}} with role one of {', '.join(roles)} and content a "
            "string (assistant turns may add tool_calls, tool turns need tool_call_id).",
        )
    call_id = turn.get("tool_call_id")
    if role == "tool" and (not isinstance(call_id, str) or not call_id):
        raise _bad_turn(index, "is a tool result and needs the tool_call_id it answers.")


def _check_calls_answered(turns: list[dict[str, Any]]) -> None:
    """Every assistant turn's calls are answered, each once, by the tool turns right after
    it, and every tool turn answers such a call."""
    waiting: dict[str, int] = {}  # call id -> the index of the turn that made it
    for index, turn in enumerate(turns):
        if turn["role"] == "tool":
            if waiting.pop(turn["tool_call_id"], None) is None:
                raise _bad_turn(
                    index,
                    f"answers tool call {turn['tool_call_id']!r}, which no assistant turn "
                    "right before it made (or another tool turn answered already).",
                )
            continue
        if waiting:
            raise _bad_turn(
                index,
                "comes before every tool call was answered: send a tool turn for each of "
                f"{', '.join(sorted(waiting))} first.",
            )
        if turn.get("tool_calls"):
            waiting = dict.fromkeys(_check_calls(index, turn["tool_calls"]), index)
    if waiting:
        raise _bad_turn(
            len(turns) - 1,
            "leaves tool calls unanswered: send a tool turn for each of "
            f"{', '.join(sorted(waiting))}.",
        )


def check_client_messages(params: QuestionParams) -> list[dict[str, Any]] | None:
    """The client's earlier turns, checked with the question and the tool turns after it;
    None when it sent none (then the session's stored history is the context).
    Raises ApplicationError (400 ``invalid_conversation``, param ``messages``)."""
    messages, after = params.messages, params.tool_turns
    if messages is None and after is None:
        return None
    if (
        not isinstance(messages, list)
        or not isinstance(after, list | None)
        or len(messages) + len(after or ()) > MAX_CLIENT_MESSAGES
    ):
        raise ApplicationError(
            f"messages must be a list of at most {MAX_CLIENT_MESSAGES} turns.",
            code="invalid_conversation",
            extra={"param": "messages"},
        )
    for index, turn in enumerate(messages):
        _check_turn(index, turn, CLIENT_MESSAGE_ROLES)
    for index, turn in enumerate(after or (), start=len(messages) + 1):
        _check_turn(index, turn, TOOL_TURN_ROLES)
    _check_calls_answered([*messages, {"role": "user", "content": params.query}, *(after or [])])
    return messages


def client_system_prompt(messages: list[dict[str, Any]] | None) -> str | None:
    """The client's own system prompt: its system turns, in order."""
    parts = [turn["content"] for turn in messages or [] if turn["role"] == "system"]
    return "\n\n".join(parts) or None


def uses_tools(params: QuestionParams) -> bool:
    """Whether the question needs tool calling: tools, a tool choice or tool turns."""
    turns = [*(params.messages or ()), *(params.tool_turns or ())]
    return bool(params.tools) or any(
        turn.get("role") == "tool" or turn.get("tool_calls") for turn in turns
    )


def check_tools(params: QuestionParams) -> None:
    """Refuse (400 ``invalid_tools``, param ``tools``, ``tool_choice`` or
    ``parallel_tool_calls``) tools the vendors could not take."""
    tools = tools_parsed(params.tools)
    tool_choice_parsed(params.tool_choice, tools)
    if params.parallel_tool_calls is not None and not isinstance(params.parallel_tool_calls, bool):
        raise ApplicationError(
            "parallel_tool_calls must be true or false.",
            code="invalid_tools",
            extra={"param": "parallel_tool_calls"},
        )


def check_tools_supported(provider: str, params: QuestionParams) -> None:
    """Refuse tool calling with a provider that cannot do it (the local model), naming
    those that can, before admission or any vendor call. Raises ApplicationError (400
    ``tools_unsupported``)."""
    if get_chat_provider(provider).supports_tools:
        return
    refusal = capability_error(
        provider=provider, feature="tools", supported_by=providers_supporting("tools")
    )
    raise ApplicationError(
        refusal.message,
        code=refusal.code,
        status=refusal.status,
        extra={**refusal.extra, "param": "tools" if params.tools else "messages"},
    )
