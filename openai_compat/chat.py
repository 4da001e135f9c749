"""``/v1/chat/completions`` in terms of the query run: an OpenAI request becomes the
``params`` of ``query_start``; the stored query (JSON) or its event log (streaming)
becomes OpenAI's ``chat.completion`` or its ``chat.completion.chunk`` SSE frames.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from agents.providers.base import Sampling
from agents.providers.structured import response_format_parsed, response_format_stored
from llmplatform.core.config import run_config
from llmplatform.core.models import ApiKey
from openai_compat.catalog import chat_model_resolve
from openai_compat.chat_choices import merged
from openai_compat.chat_messages import chat_tool_params, chat_turns, invalid_request
from openai_compat.errors import openai_error_body
from openai_compat.run_events import run_events
from openai_compat.serializers import OpenAIChatCompletionRequestSerializer
from queries.models import Query
from queries.question import QuestionParams
from queries.serializers import QueryRequestSerializer

# Who asked, when the client does not say (`user`): one end user for the API's callers.
DEFAULT_USER_ID = "openai-api"
# Where a problem found by the query API's own checks lies in an OpenAI request.
_PARAM_OF = {
    "query": "messages",
    "attachments": "messages",
    "user_id": "user",
    "session_id": "metadata",
    "max_tokens": "max_tokens",
    "temperature": "temperature",
}


@dataclass(frozen=True)
class ChatCall:
    """A checked chat request: what the run needs, and how to answer."""

    params: QuestionParams
    model_id: str
    stream: bool
    include_usage: bool
    # Asked with the deprecated ``functions``: answered in kind (``function_call``).
    legacy_functions: bool = False
    # How many choices: each is a query of its own (``openai_compat.chat_choices``).
    n: int = 1


def _metadata_flag(metadata: dict[str, Any], name: str) -> bool:
    return metadata.get(name) in (True, "true")


def first_problem(errors: Any) -> tuple[str, str]:
    """(field, message) of the first problem in DRF's nested ``serializer.errors``."""
    field, problems = next(iter(errors.items()))
    while isinstance(problems, dict | list) and problems:
        problems = next(iter(problems.values())) if isinstance(problems, dict) else problems[0]
    return str(field), str(problems)


def _query_params(raw: dict[str, Any], **extra: Any) -> QuestionParams:
    """The query API's own checks (lengths, attachments, ranges), named as OpenAI's;
    ``extra``: what only this API takes (messages, response_format, tools)."""
    serializer = QueryRequestSerializer(data=raw)
    if serializer.is_valid():
        return serializer.question(**extra)
    field, problem = first_problem(serializer.errors)
    param = _PARAM_OF.get(field, field)
    raise invalid_request(f"{param}: {problem}", param)


# Log probabilities are stored with the answer (about 120 bytes per token and per
# alternative): an answer's entries, max_tokens x (1 + top_logprobs), stay under this,
# about 8 MB, well inside a database document's 16 MB.
MAX_LOGPROB_ENTRIES = 65_536


def sampling_stored(data: dict[str, Any], *, max_tokens: int) -> dict[str, Any] | None:
    """The request's stop, seed, penalties and logprobs as QuestionParams.sampling (None:
    none set); ``max_tokens`` is the answer's cap. Raises ApplicationError (400) for
    top_logprobs without logprobs, as OpenAI, and for more log probabilities than an answer
    can store."""
    if data.get("top_logprobs") is not None and not data.get("logprobs"):
        raise invalid_request("top_logprobs needs logprobs set to true.", "top_logprobs")
    if data.get("logprobs"):
        per_token = 1 + (data.get("top_logprobs") or 0)
        if max_tokens * per_token > MAX_LOGPROB_ENTRIES:
            raise invalid_request(
                f"With logprobs, max_tokens x (1 + top_logprobs) may be at most "
                f"{MAX_LOGPROB_ENTRIES} (they are stored with the answer); this asks for "
                f"{max_tokens} x {per_token}. Send a max_tokens of at most "
                f"{MAX_LOGPROB_ENTRIES // per_token}, or fewer top_logprobs.",
                "top_logprobs" if per_token > 1 else "max_tokens",
            )
    sampling = Sampling(
        stop=tuple(data.get("stop") or ()),
        seed=data.get("seed"),
        presence_penalty=data.get("presence_penalty"),
        frequency_penalty=data.get("frequency_penalty"),
        logprobs=bool(data.get("logprobs")),
        top_logprobs=data.get("top_logprobs"),
    )
    return sampling.stored() or None


def chat_call(*, data: dict[str, Any], session_header: str | None) -> ChatCall:
    """A checked OpenAI chat request as query_start params. Raises ApplicationError (400,
    404 model_not_found)."""
    served = chat_model_resolve(data["model"])
    turns = chat_turns(data["messages"])
    metadata = data.get("metadata") or {}
    session_id = session_header or metadata.get("session_id") or f"v1-{uuid.uuid4().hex}"
    raw: dict[str, Any] = {
        "user_id": data.get("user") or DEFAULT_USER_ID,
        "session_id": session_id,
        "query": turns.question,
        "model_provider": served.provider,
        "model_name": served.model,
        "web_search": data.get("web_search_options") is not None,
        "use_memory": _metadata_flag(metadata, "use_memory"),
        "memory_scope": metadata.get("memory_scope", QuestionParams.memory_scope),
        "attachments": turns.images,
    }
    if data.get("temperature") is not None:
        raw["temperature"] = data["temperature"]
    max_tokens = data.get("max_completion_tokens") or data.get("max_tokens")
    if max_tokens is not None:
        raw["max_tokens"] = max_tokens
    options = data.get("stream_options") or {}
    response_format = (
        None
        if data.get("response_format") is None
        else response_format_parsed(data["response_format"])
    )
    return ChatCall(
        params=_query_params(
            raw,
            messages=turns.earlier,
            tool_turns=turns.tool_turns,
            response_format=(
                None if response_format is None else response_format_stored(response_format)
            ),
            sampling=sampling_stored(
                data, max_tokens=max_tokens or run_config().default_max_tokens
            ),
            **chat_tool_params(data),
        ),
        model_id=served.id,
        stream=bool(data.get("stream")),
        include_usage=bool(options.get("include_usage")),
        legacy_functions=bool(data.get("functions")),
        n=data.get("n") or 1,
    )


def chat_call_from_request(data: Any, *, session_header: str | None) -> ChatCall:
    """``chat_call`` for a raw request body, checked first. Raises ApplicationError."""
    if not isinstance(data, dict):
        raise invalid_request("Send a JSON object.", "body")
    serializer = OpenAIChatCompletionRequestSerializer(data=data)
    if not serializer.is_valid():
        field, problem = first_problem(serializer.errors)
        raise invalid_request(f"{field}: {problem}", field)
    return chat_call(data=serializer.validated_data, session_header=session_header)


# ----- answers -----


def openai_usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    prompt = usage.get("input_tokens") or 0
    completion = usage.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": usage.get("cached_tokens") or 0},
        "completion_tokens_details": {"reasoning_tokens": usage.get("reasoning_tokens") or 0},
    }


def _envelope(query: Query, model_id: str, kind: str) -> dict[str, Any]:
    return {
        # The query's id: GET /api/v1/query/{id} shows the same run with all it recorded.
        "id": f"chatcmpl-{query.pk}",
        "object": kind,
        "created": int(query.timestamp.timestamp()),
        "model": model_id,
        "system_fingerprint": None,
    }


def _annotations(citations: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {
            "type": "url_citation",
            "url_citation": {"url": c["url"], "title": c.get("title", ""), "start_index": 0,
                             "end_index": 0},
        }
        for c in citations or []
    ]  # fmt: skip


def _logprobs_asked(query: Query) -> bool:
    return bool(((query.request or {}).get("sampling") or {}).get("logprobs"))


def _logprobs(content: list[dict[str, Any]] | None) -> dict[str, Any]:
    """OpenAI's ``choices[].logprobs`` of the tokens ``content`` (as the vendor sent them)."""
    return {"content": content or [], "refusal": None}


def _choice(query: Query, *, index: int, legacy_functions: bool) -> dict[str, Any]:
    """A finished query as choice ``index``; one that answered with tool calls has them in
    ``message.tool_calls`` (content null when it said nothing beside them), or its one
    call in ``message.function_call`` when asked with ``functions``."""
    tool_calls = (query.metadata or {}).get("tool_calls") or []
    message: dict[str, Any] = {
        "role": "assistant",
        "content": query.response or None if tool_calls else query.response,
        "refusal": None,
        "annotations": _annotations(query.citations),
    }
    finish = "stop"
    if tool_calls and legacy_functions:
        message["function_call"] = tool_calls[0]["function"]
        finish = "function_call"
    elif tool_calls:
        message["tool_calls"] = tool_calls
        finish = "tool_calls"
    logprobs = _logprobs((query.metadata or {}).get("logprobs")) if _logprobs_asked(query) else None
    return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish}


def usage_summed(usages: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """The stored usage of several queries (the choices of one request) added up."""
    names = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")
    return {name: sum((usage or {}).get(name) or 0 for usage in usages) for name in names}


def completion_body(
    queries: Sequence[Query], *, model_id: str, legacy_functions: bool = False
) -> dict[str, Any]:
    """Finished queries (the ``n`` choices, in order) as OpenAI's ``chat.completion``: the
    first one's id, a choice each, their usage summed."""
    return {
        **_envelope(queries[0], model_id, "chat.completion"),
        "choices": [
            _choice(query, index=index, legacy_functions=legacy_functions)
            for index, query in enumerate(queries)
        ],
        "usage": openai_usage(usage_summed([query.usage for query in queries])),
    }


def _tool_call_delta(event: dict[str, Any], *, legacy_functions: bool) -> dict[str, Any]:
    """A writer's ``tool_call`` event as OpenAI streams it: the first piece of a call
    carries its id, type and name; the later ones only ``index`` and argument text.
    Asked with ``functions``: ``function_call`` pieces, the first with the name."""
    if legacy_functions:
        head = {"name": event["name"]} if event.get("id") else {}
        return {"function_call": {**head, "arguments": event["arguments"]}}
    if event.get("id"):
        return {
            "index": event["index"],
            "id": event["id"],
            "type": "function",
            "function": {"name": event.get("name") or "", "arguments": event["arguments"]},
        }
    return {"index": event["index"], "function": {"arguments": event["arguments"]}}


def _frame(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


@dataclass(frozen=True)
class _ChoiceEnd:
    """How one choice's stream ended: its usage, or the error frame that ends them all."""

    usage: dict[str, Any] | None = None
    error: bytes | None = None


async def _choice_chunks(
    query: Query,
    *,
    index: int,
    frame: Callable[[dict[str, Any]], bytes],
    api_key: ApiKey,
    legacy_functions: bool,
) -> AsyncIterator[bytes | _ChoiceEnd]:
    """One choice's frames (``frame(choice)`` renders a chunk): a role chunk, a chunk per
    token or tool-call piece, its finish chunk; then how it ended."""

    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return frame(choice)

    yield chunk({"role": "assistant", "content": ""})
    usage: dict[str, Any] | None = None
    called_tools = False
    async with aclosing(run_events(query, api_key=api_key)) as events:
        async for event in events:
            if isinstance(event, bytes):
                yield event
                continue
            kind = event.get("type")
            if kind == "chunk":
                logprobs = event.get("logprobs")
                yield chunk(
                    {"content": event["content"]},
                    logprobs=None if logprobs is None else _logprobs(logprobs),
                )
            elif kind == "tool_call" and legacy_functions:
                # The deprecated API has one call per answer (parallel calls are off).
                if event["index"] == 0:
                    called_tools = True
                    yield chunk(_tool_call_delta(event, legacy_functions=True))
            elif kind == "tool_call":
                called_tools = True
                yield chunk({"tool_calls": [_tool_call_delta(event, legacy_functions=False)]})
            elif kind == "final":
                usage = event.get("usage")
            elif kind == "error":  # the last event
                error = event.get("error", {})
                yield _ChoiceEnd(
                    error=_frame(
                        openai_error_body(
                            status=event["status"],
                            code=error.get("code", "error"),
                            message=error.get("message", ""),
                        )
                    )
                )
                return
    finish = "function_call" if legacy_functions else "tool_calls"
    yield chunk({}, finish if called_tools else "stop")
    yield _ChoiceEnd(usage=usage)


async def completion_chunks(
    queries: Sequence[Query],
    *,
    model_id: str,
    include_usage: bool,
    api_key: ApiKey,
    legacy_functions: bool = False,
) -> AsyncIterator[bytes]:
    """The queries' event logs (the ``n`` choices, in order) as OpenAI's SSE, merged as
    their events arrive, each chunk's choice carrying its index: per choice a role chunk,
    a chunk per token (with its ``logprobs`` when asked for) or tool-call piece and a
    finish chunk; then the usage chunk (summed) when asked for, ``[DONE]`` after all have
    ended. An error ends the stream with an ``error`` frame, which the SDKs raise as
    APIError; so does revoking ``api_key`` (the key the request came with) while the
    stream is open (``api_key_revoked``)."""
    base = _envelope(queries[0], model_id, "chat.completion.chunk")
    extra = {"usage": None} if include_usage else {}

    def frame(choice: dict[str, Any]) -> bytes:
        return _frame({**base, "choices": [choice], **extra})

    choices = [
        _choice_chunks(
            query, index=index, frame=frame, api_key=api_key, legacy_functions=legacy_functions
        )
        for index, query in enumerate(queries)
    ]
    usages: list[dict[str, Any] | None] = []
    # One choice (the usual case) is read as is: no task in between.
    items: AsyncIterator[bytes | _ChoiceEnd] = choices[0] if len(choices) == 1 else merged(choices)
    async with aclosing(items) as ordered:
        async for item in ordered:
            if isinstance(item, bytes):
                yield item
            elif item.error is not None:
                yield item.error
                return
            else:
                usages.append(item.usage)
    if include_usage:
        yield _frame({**base, "choices": [], "usage": openai_usage(usage_summed(usages))})
    yield b"data: [DONE]\n\n"
