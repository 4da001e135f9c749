"""A query run as OpenAI's Responses API answers it: the ``response`` object (an assistant
message with one ``output_text`` part, and a ``function_call`` item per tool call), or,
streaming, its typed SSE events (``response.created`` ... ``response.output_text.delta`` /
``response.function_call_arguments.delta`` ... ``response.completed`` with the usage). The
id is ``resp_<query id>``: GET /api/v1/query/{id} shows the same run, GET
/v1/responses/{id} the same object (rebuilt from the stored query and the request fields
it echoes, ``ResponsesCall.echo``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from llmplatform.core.models import ApiKey
from openai_compat.run_events import run_events
from openai_compat.stored_responses import response_id_of
from queries.models import Query
from queries.outcome import error_of


def response_usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    prompt = usage.get("input_tokens") or 0
    completion = usage.get("output_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": usage.get("cached_tokens") or 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": usage.get("reasoning_tokens") or 0},
        "total_tokens": prompt + completion,
    }


def _annotations(citations: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {"type": "url_citation", "url": c["url"], "title": c.get("title", ""), "start_index": 0,
         "end_index": 0}
        for c in citations or []
        if c.get("url")
    ]  # fmt: skip


def _text_part(text: str, citations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": _annotations(citations)}


def _message(query: Query, *, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{query.pk}",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _function_call(call_id: str, name: str, arguments: str, *, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def _item_status(status: str) -> str:
    """An output item's status in a response of ``status``: items are never cancelled,
    only cut short."""
    return "incomplete" if status == "cancelled" else status


def _stopped_early(query: Query) -> bool:
    return (query.metadata or {}).get("finish_reason") == "length"


def response_object(
    query: Query,
    echo: dict[str, Any],
    *,
    status: str,
    output: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``response`` object: what the request asked (``echo``, with the model and
    previous_response_id) and what was answered."""
    return {
        "id": response_id_of(query),
        "object": "response",
        "created_at": int(query.timestamp.timestamp()),
        "status": status,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "output": output or [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "previous_response_id": None,
        "reasoning": None,
        "store": True,
        "usage": usage,
        **echo,
    }


def response_body(query: Query, echo: dict[str, Any]) -> dict[str, Any]:
    """An answered query as the Responses API's ``response`` object: the message (unless
    the model only called tools), then its calls. Cancelled, it is what was said before
    the stop."""
    status = "incomplete" if _stopped_early(query) else "completed"
    if query.status == Query.Status.CANCELLED:
        status = "cancelled"
    calls = [
        _function_call(c["id"], c["function"]["name"], c["function"]["arguments"],
                       status="completed")
        for c in (query.metadata or {}).get("tool_calls") or []
    ]  # fmt: skip
    output = calls
    if query.response or not calls:
        part = _text_part(query.response or "", query.citations)
        output = [_message(query, status=_item_status(status), content=[part]), *calls]
    return response_object(
        query, echo, status=status, output=output, usage=response_usage(query.usage)
    )


def stored_response_body(query: Query) -> dict[str, Any]:
    """A stored response as its ``response`` object, in whatever state the run is:
    in_progress (no output yet), failed (with the error), or answered (``response_body``)."""
    echo = query.request["client_request"]
    if query.status in (Query.Status.PENDING, Query.Status.RUNNING):
        return response_object(query, echo, status="in_progress")
    if query.status == Query.Status.FAILED:
        error = error_of(query.error)
        return response_object(
            query, echo, status="failed", error={"code": error.code, "message": error.message}
        )
    return response_body(query, echo)


class _Events:
    """Numbered SSE frames, as the Responses API sends them (``event:`` and ``data:``)."""

    def __init__(self) -> None:
        self.sequence = 0

    def frame(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()


class _Output:
    """The output items of a streamed response in the order they began: the message when
    its first text came, a function call when its first piece came (by the writer's call
    index). Each method returns the frames to send."""

    def __init__(self, query: Query, events: _Events) -> None:
        self.query = query
        self.events = events
        self.items: list[dict[str, Any]] = []
        self.message_at: int | None = None
        self.text: list[str] = []
        self.call_at: dict[int, int] = {}  # writer's call index -> output index

    def _message_ref(self) -> dict[str, Any]:
        return {"item_id": f"msg_{self.query.pk}", "output_index": self.message_at}

    def text_delta(self, delta: str) -> list[bytes]:
        frames = []
        if self.message_at is None:
            frames = self.open_message()
        self.text.append(delta)
        frames.append(
            self.events.frame(
                "response.output_text.delta",
                **self._message_ref(),
                content_index=0,
                delta=delta,
                logprobs=[],
            )
        )
        return frames

    def open_message(self) -> list[bytes]:
        self.message_at = len(self.items)
        self.items.append(_message(self.query, status="in_progress", content=[]))
        return [
            self.events.frame(
                "response.output_item.added", output_index=self.message_at, item=self.items[-1]
            ),
            self.events.frame(
                "response.content_part.added",
                **self._message_ref(),
                content_index=0,
                part=_text_part(""),
            ),
        ]

    def call_delta(self, event: dict[str, Any]) -> list[bytes]:
        """A writer's ``tool_call`` event: the first piece of a call opens its item."""
        frames = []
        if event["index"] not in self.call_at:
            self.call_at[event["index"]] = len(self.items)
            self.items.append(
                _function_call(event.get("id") or "", event.get("name") or "", "",
                               status="in_progress")
            )  # fmt: skip
            frames.append(
                self.events.frame(
                    "response.output_item.added", output_index=len(self.items) - 1,
                    item=self.items[-1],
                )
            )  # fmt: skip
        at = self.call_at[event["index"]]
        self.items[at]["arguments"] += event["arguments"]
        if event["arguments"]:
            frames.append(
                self.events.frame(
                    "response.function_call_arguments.delta",
                    item_id=self.items[at]["id"],
                    output_index=at,
                    delta=event["arguments"],
                )
            )
        return frames

    def close(self, status: str, citations: list[dict[str, Any]] | None) -> list[bytes]:
        """Every item done, in order; a response with no item gets its (empty) message."""
        frames = self.open_message() if not self.items else []
        for at, item in enumerate(self.items):
            if item["type"] == "message":
                text = "".join(self.text)
                part = _text_part(text, citations)
                ref = self._message_ref()
                frames.append(
                    self.events.frame(
                        "response.output_text.done", **ref, content_index=0, text=text, logprobs=[]
                    )
                )
                frames.append(
                    self.events.frame(
                        "response.content_part.done", **ref, content_index=0, part=part
                    )
                )
                self.items[at] = _message(self.query, status=_item_status(status), content=[part])
            else:
                frames.append(
                    self.events.frame(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=at,
                        name=item["name"],
                        arguments=item["arguments"],
                    )
                )
                self.items[at] = {**item, "status": "completed"}
            frames.append(
                self.events.frame("response.output_item.done", output_index=at, item=self.items[at])
            )
        return frames


def _failed(query: Query, echo: dict[str, Any], events: _Events, code: str, message: str) -> bytes:
    failed = {"code": code, "message": message}
    return events.frame(
        "response.failed", response=response_object(query, echo, status="failed", error=failed)
    )


async def response_events(
    query: Query, echo: dict[str, Any], *, api_key: ApiKey, stored: Query | None = None
) -> AsyncIterator[bytes]:
    """The query's event log as the Responses API streams it: created and in_progress; the
    message opened at its first text, then a delta per token; a function call opened at its
    first piece, then its argument fragments; each item done; then ``response.completed``
    with the usage. A failed run (or revoking ``api_key`` while the stream is open) ends
    with ``response.failed`` carrying the error. ``stored``: the query as read back (GET
    /v1/responses/{id}?stream=true), replayed from its stored answer once its log expired."""
    events = _Events()
    for kind in ("response.created", "response.in_progress"):
        yield events.frame(kind, response=response_object(query, echo, status="in_progress"))
    output = _Output(query, events)
    final: dict[str, Any] = {}
    async with aclosing(run_events(query, api_key=api_key, stored=stored)) as followed:
        async for event in followed:
            if isinstance(event, bytes):
                yield event
                continue
            kind = event.get("type")
            frames: list[bytes] = []
            if kind == "chunk":
                frames = output.text_delta(event["content"])
            elif kind == "tool_call":
                frames = output.call_delta(event)
            elif kind == "final":
                final = event
                frames = _replayed(output, final)
            elif kind == "error":  # the last event
                error = event.get("error", {})
                yield _failed(
                    query, echo, events, error.get("code", "error"), error.get("message", "")
                )
                return
            for frame in frames:
                yield frame
    if final.get("status") == Query.Status.FAILED:  # a stored failure, replayed
        error = error_of(query.error)
        yield _failed(query, echo, events, error.code, error.message)
        return
    finish = (final.get("metadata") or {}).get("finish_reason")
    status = "incomplete" if finish == "length" else "completed"
    if final.get("status") == Query.Status.CANCELLED:
        status = "cancelled"
    for frame in output.close(status, final.get("citations")):
        yield frame
    # No event type says cancelled: a stopped run ends as one cut short, its status says why.
    yield events.frame(
        "response.incomplete" if status == "cancelled" else f"response.{status}",
        response=response_object(
            query,
            echo,
            status=status,
            output=output.items,
            usage=response_usage(final.get("usage")),
        ),
    )


def _replayed(output: _Output, final: dict[str, Any]) -> list[bytes]:
    """A stored answer replayed without its token events (its log expired): its text as
    one delta, each function call as one piece."""
    if output.items:
        return []
    frames = output.text_delta(final["response"]) if final.get("response") else []
    calls = (final.get("metadata") or {}).get("tool_calls") or []
    for index, call in enumerate(calls):
        frames += output.call_delta(
            {"index": index, "id": call["id"], "name": call["function"]["name"],
             "arguments": call["function"]["arguments"]}
        )  # fmt: skip
    return frames
