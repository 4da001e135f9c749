"""``/v1/chat/completions`` in terms of the query run: an OpenAI request becomes the
``params`` of ``query_start``; the stored query (JSON) or its event log (streaming)
becomes OpenAI's ``chat.completion`` or its ``chat.completion.chunk`` SSE frames.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from agents.providers.structured import response_format_parsed, response_format_stored
from llmplatform.core import metrics
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import ApiKey
from llmplatform.core.stream_access import StreamAccess
from openai_compat.catalog import chat_model_resolve
from openai_compat.errors import openai_error_body
from openai_compat.serializers import OpenAIChatCompletionRequestSerializer
from queries.models import Query
from queries.question import QuestionParams
from queries.serializers import QueryRequestSerializer
from queries.streams import follow_query

# Who asked, when the client does not say (`user`): one end user for the API's callers.
DEFAULT_USER_ID = "openai-api"
# OpenAI's "developer" role is the system prompt of its newer models.
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
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


def _invalid(message: str, param: str = "messages") -> ApplicationError:
    return ApplicationError(message, code="invalid_request", extra={"param": param})


def _message_parts(index: int, role: str, content: Any) -> tuple[str, list[str]]:
    """(text, image data URLs) of one message's content."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise _invalid(f"messages[{index}].content must be a string or a list of parts.")
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
                raise _invalid(f"{where}.image_url.url must be a string.")
            if not url.startswith("data:"):
                # The platform never fetches URLs a request names (no server-side requests
                # to wherever a caller points); the image itself must come in the request.
                raise _invalid(
                    f"{where}: image URLs are not fetched; send the image as a data URL "
                    "(data:image/png;base64,...)."
                )
            images.append(url)
        else:
            raise _invalid(
                f"{where}: only text parts (and image_url parts in user messages) are supported."
            )
    return "\n".join(texts), images


def _turns(messages: list[dict[str, Any]]) -> tuple[list[dict[str, str]], str, list[str]]:
    """(earlier turns, the question, the question's images) from OpenAI messages."""
    turns: list[dict[str, str]] = []
    images: list[str] = []  # of the last message, once the loop ends
    for index, message in enumerate(messages):
        role = _ROLES.get(message.get("role"))
        if role is None:
            raise _invalid(
                f"messages[{index}].role {message.get('role')!r} is not supported: use "
                "system, developer, user or assistant (tool calling is not supported)."
            )
        if message.get("tool_calls") or message.get("function_call"):
            raise _invalid(f"messages[{index}]: tool calls are not supported.")
        text, images = _message_parts(index, role, message.get("content"))
        turns.append({"role": role, "content": text})
    if turns[-1]["role"] != "user":
        raise _invalid("The last message must be the user's (the question to answer).")
    question = turns.pop()["content"]
    if not question.strip():
        raise _invalid("The last user message needs text: the question to answer.")
    # Only the question's own images are looked at: earlier ones were answered already, and
    # what was said about them is in the assistant turns.
    return turns, question, images


def _metadata_flag(metadata: dict[str, Any], name: str) -> bool:
    return metadata.get(name) in (True, "true")


def _first_problem(errors: Any) -> tuple[str, str]:
    """(field, message) of the first problem in DRF's nested ``serializer.errors``."""
    field, problems = next(iter(errors.items()))
    while isinstance(problems, dict | list) and problems:
        problems = next(iter(problems.values())) if isinstance(problems, dict) else problems[0]
    return str(field), str(problems)


def _query_params(
    raw: dict[str, Any],
    messages: list[dict[str, str]],
    *,
    response_format: dict[str, Any] | None,
) -> QuestionParams:
    """The query API's own checks (lengths, attachments, ranges), named as OpenAI's."""
    serializer = QueryRequestSerializer(data=raw)
    if serializer.is_valid():
        return serializer.question(messages=messages, response_format=response_format)
    field, problem = _first_problem(serializer.errors)
    param = _PARAM_OF.get(field, field)
    raise _invalid(f"{param}: {problem}", param)


def chat_call(*, data: dict[str, Any], session_header: str | None) -> ChatCall:
    """A checked OpenAI chat request as query_start params. Raises ApplicationError (400,
    404 model_not_found)."""
    served = chat_model_resolve(data["model"])
    turns, question, images = _turns(data["messages"])
    metadata = data.get("metadata") or {}
    session_id = session_header or metadata.get("session_id") or f"v1-{uuid.uuid4().hex}"
    raw: dict[str, Any] = {
        "user_id": data.get("user") or DEFAULT_USER_ID,
        "session_id": session_id,
        "query": question,
        "model_provider": served.provider,
        "model_name": served.model,
        "web_search": data.get("web_search_options") is not None,
        "use_memory": _metadata_flag(metadata, "use_memory"),
        "attachments": images,
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
            turns,
            response_format=(
                None if response_format is None else response_format_stored(response_format)
            ),
        ),
        model_id=served.id,
        stream=bool(data.get("stream")),
        include_usage=bool(options.get("include_usage")),
    )


def chat_call_from_request(data: Any, *, session_header: str | None) -> ChatCall:
    """``chat_call`` for a raw request body, checked first. Raises ApplicationError."""
    if not isinstance(data, dict):
        raise _invalid("Send a JSON object.", "body")
    serializer = OpenAIChatCompletionRequestSerializer(data=data)
    if not serializer.is_valid():
        field, problem = _first_problem(serializer.errors)
        raise _invalid(f"{field}: {problem}", field)
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


def completion_body(query: Query, *, model_id: str) -> dict[str, Any]:
    """A finished query as OpenAI's ``chat.completion``."""
    message = {
        "role": "assistant",
        "content": query.response,
        "refusal": None,
        "annotations": _annotations(query.citations),
    }
    return {
        **_envelope(query, model_id, "chat.completion"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": openai_usage(query.usage),
    }


def _frame(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


async def completion_chunks(
    query: Query, *, model_id: str, include_usage: bool, api_key: ApiKey
) -> AsyncIterator[bytes]:
    """The query's event log as OpenAI's SSE: a role chunk, a chunk per token, a finish
    chunk, the usage chunk when asked for, ``[DONE]``. An error ends the stream with an
    ``error`` frame, which the SDKs raise as APIError; so does revoking ``api_key`` (the
    key the request came with) while the stream is open (``api_key_revoked``)."""
    base = _envelope(query, model_id, "chat.completion.chunk")
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _frame({**base, "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": ""})
    usage: dict[str, Any] | None = None
    # Counted with the other SSE streams in the active-streams gauge, however it ends.
    with metrics.stream_active("sse"):
        events = follow_query(str(query.pk), after=None, access=StreamAccess.for_api_key(api_key))
        try:
            async for entry_id, event in events:
                if entry_id is None:
                    yield b": keep-alive\n\n"  # SSE comment: the SDKs skip it, proxies see it
                    continue
                kind = event.get("type")
                if kind == "chunk":
                    yield chunk({"content": event["content"]})
                elif kind == "final":
                    usage = event.get("usage")
                elif kind == "error":
                    error = event.get("error", {})
                    yield _frame(
                        openai_error_body(
                            status=500,
                            code=error.get("code", "error"),
                            message=error.get("message", ""),
                        )
                    )
                    return
        except ApplicationError as refusal:  # the key was revoked mid-stream
            yield _frame(
                openai_error_body(status=refusal.status, code=refusal.code, message=refusal.message)
            )
            return
    yield chunk({}, "stop")
    if include_usage:
        yield _frame({**base, "choices": [], "usage": openai_usage(usage)})
    yield b"data: [DONE]\n\n"
