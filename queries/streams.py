"""A run seen from outside, through its event log: what every edge reads of a query.

Following a run (``follow_query``, resumable from any event id it handed out), waiting for
its outcome (``query_wait``), asking it to stop (``query_cancel``), and the shape of its
``final`` event. Nothing here imports the runner (``queries.run``), so an edge that reads
a query pulls in no engine.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

from llmplatform.core.config import run_config
from llmplatform.core.dispatch import dispatcher
from llmplatform.core.errors import ApplicationError
from llmplatform.core.event_log import TERMINAL_TYPES, event_log
from llmplatform.core.stream_access import STREAM_ACCESS_CHECK_S, StreamAccess
from queries.models import Query

FINISHED = frozenset({Query.Status.COMPLETED, Query.Status.FAILED, Query.Status.CANCELLED})


def final_event(query: Query) -> dict[str, Any]:
    """The ``final`` event for a stored query (also replayed after the log expired)."""
    return {
        "type": "final",
        "query_id": str(query.pk),
        "status": query.status,
        "response": query.response,
        "options": query.options,
        "product_cards": query.product_cards,
        "citations": query.citations,
        "intent": query.intent,
        "agents_used": query.agents_used,
        "usage": query.usage,
        "latency": query.latency,
        "metadata": query.metadata,
    }


# Frames of a stored answer replayed after its log expired: ``stored-1`` (final) and
# ``stored-2`` (done). Resumed like any id: after stored-1 comes done; past it, done again.
_STORED_ID = re.compile(r"^stored-(\d{1,12})$")


def _stored_position(after: str | None) -> int | None:
    match = _STORED_ID.match(after or "")
    return None if match is None else int(match.group(1))


def _ends_the_stream(event: Any) -> bool:
    return isinstance(event, dict) and event.get("type") in TERMINAL_TYPES


async def follow_query(
    query_id: str, *, after: str | None, stored: Any = None, access: StreamAccess | None = None
) -> AsyncIterator[tuple[str, Any]]:
    """Events after ``after`` until ``done``; ``(None, None)`` marks a heartbeat's silence.

    ``after`` comes from ``resume_point`` (or None: from the start). ``stored`` is the
    Query as the caller read it (None for a query this connection just started: no log yet
    and nothing stored, so it is simply followed). When it is finished and its log has
    expired (or never existed in this process), or ``after`` is a ``stored-N`` id, the
    stored answer is replayed as ``final`` + ``done``. Resuming at or past the end of a
    finished stream gets its ``done`` at once.

    ``access``, when given, is asked again every STREAM_ACCESS_CHECK_S (never per event);
    raises its refusal (ApplicationError ``api_key_revoked`` or ``session_ended``) once the
    credential no longer holds.
    """
    log = event_log()
    position = _stored_position(after)
    if (
        stored is not None
        and stored.status in FINISHED
        and (position is not None or not await log.aexists(query_id))
    ):
        replay = [
            ("stored-1", final_event(stored)),
            ("stored-2", {"type": "done", "message": "Query complete"}),
        ]
        for entry in replay[position or 0 :] or replay[-1:]:
            yield entry
        return
    if position is not None:
        after = None  # stored-N of a query still running (resume_point refuses it)
    if after is not None:
        tail = await log.alast(query_id)
        if (
            tail is not None
            and _ends_the_stream(tail[1])
            and log.id_order(after) >= log.id_order(tail[0])
        ):
            yield tail
            return
    heartbeat_s = run_config().sse_heartbeat_s
    last_sent = time.monotonic()
    while True:
        if access is not None:
            refusal = await access.due_refusal()
            if refusal is not None:
                raise refusal
        wait_s = heartbeat_s - (time.monotonic() - last_sent)
        if access is not None:
            wait_s = min(wait_s, STREAM_ACCESS_CHECK_S)
        entries = await log.aread(query_id, after=after, block_ms=max(1, int(wait_s * 1000)))
        if not entries:
            if time.monotonic() - last_sent >= heartbeat_s:
                last_sent = time.monotonic()
                yield None, None
            continue
        last_sent = time.monotonic()
        for entry_id, event in entries:
            after = entry_id
            yield entry_id, event
            if _ends_the_stream(event):
                return


def _not_from_this_stream(value: Any) -> ApplicationError:
    shown = value[:40] if isinstance(value, str) else type(value).__name__
    return ApplicationError(
        f"Last-Event-ID {shown!r} is not an id from this stream: send the `id:` (SSE) or "
        "`event_id` (websocket) of the last event you received, or nothing to replay from "
        "the start.",
        code="invalid_last_event_id",
    )


def resume_after(value: Any) -> str | None:
    """The event id to resume after, from a Last-Event-ID (SSE) or ``last_event_id``
    (websocket); None replays from the start. One parser for every transport: checks the
    form only (``resume_point`` checks it against the stream).

    Raises ApplicationError(400, invalid_last_event_id) for anything that is not an id
    this deployment's event log (or a stored answer's replay, ``stored-N``) hands out.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str) and (
        _STORED_ID.match(value) or event_log().event_id_pattern.match(value)
    ):
        return value
    raise _not_from_this_stream(value)


async def resume_point(*, query: Any, last_event_id: Any) -> str | None:
    """The id ``follow_query`` resumes ``query``'s stream after (None: from the start).

    Raises ApplicationError(400, invalid_last_event_id) for an id that cannot belong to
    this stream: malformed, an event this log never held (another query's, or past the end
    of a live stream), or ``stored-N`` of a query that is not finished. An id at or past
    the end of a finished stream is accepted: following it returns ``done`` at once.
    """
    after = resume_after(last_event_id)
    if after is None:
        return None
    query_id = str(query.pk)
    finished = query.status in FINISHED
    if _stored_position(after) is not None:
        if finished:
            return after
        raise _not_from_this_stream(after)
    log = event_log()
    tail = await log.alast(query_id)
    if tail is None:
        if finished:
            return after  # the log expired: its stored answer is replayed whole
        raise _not_from_this_stream(after)
    if log.id_order(after) >= log.id_order(tail[0]):
        if _ends_the_stream(tail[1]) or after == tail[0]:
            return after
        raise _not_from_this_stream(after)  # past the end of a live stream: never handed out
    if not await log.ahas(query_id, after):
        raise _not_from_this_stream(after)
    return after


def query_wait(*, query: Query) -> Query:
    """Block until the run's event log says ``done``; the stored outcome.

    Waits longer than the worker's hard time limit, so a run that ends at all is seen
    ending. Raises ApplicationError(504) only when no worker took the query.
    """
    log = event_log()
    deadline = time.monotonic() + run_config().budget.json_wait_s
    after: str | None = None
    while (remaining := deadline - time.monotonic()) > 0:
        for entry_id, event in log.read(
            str(query.pk), after=after, block_ms=int(min(remaining, 5) * 1000)
        ):
            after = entry_id
            if event["type"] == "done":
                return dispatcher().outcome(query)
    raise ApplicationError(
        "The answer is taking longer than expected; no worker has finished it. "
        f"Fetch it later from /api/v1/query/{query.pk}, and check that a worker runs.",
        code="query_timeout",
        status=504,
        extra={"query_id": str(query.pk)},
    )


def query_cancel(*, query: Query) -> tuple[Query, bool]:
    """Ask the run to stop; returns (query, whether a stop was requested). Raises nothing."""
    if query.status in FINISHED:
        return query, False
    event_log().request_cancel(str(query.pk))
    return query, True
