"""``n`` choices of one chat completion: one query answers one question, so n choices are
n queries of the same question, started together, each stored, billed and admitted
against the caller's limits like any question; their answers are read back together
(JSON) or their event logs merged into one stream (SSE).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

from django.contrib.auth.models import User

from llmplatform.core.models import ApiKey
from queries.models import Query
from queries.question import QuestionParams
from queries.start import query_start
from queries.streams import query_cancel, query_wait


def chat_queries_start(
    *, owner: User, params: QuestionParams, n: int, api_key: ApiKey | None
) -> list[Query]:
    """Start ``n`` queries of ``params``, in order. When one is refused (a budget, a rate
    limit), the ones already started are asked to stop, so nothing half-answered is
    billed beyond what they used, and its error is raised. Raises ApplicationError
    (as ``query_start``)."""
    started: list[Query] = []
    try:
        for _ in range(n):
            started.append(query_start(owner=owner, params=params, api_key=api_key))
    except BaseException:  # a refusal, or any failure to start: none is left running
        for query in started:
            query_cancel(query=query)
        raise
    return started


def chat_queries_wait(*, queries: Sequence[Query]) -> list[Query]:
    """Every query's stored outcome, once each has ended (they run at once: the wait is
    the slowest one's). Raises ApplicationError (504) as ``query_wait``."""
    return [query_wait(query=query) for query in queries]


def first_failed(queries: Sequence[Query]) -> Query | None:
    """The first failed query of ``queries`` (its error answers for the request), if any."""
    return next((q for q in queries if q.status == Query.Status.FAILED), None)


# A stream's end in ``merged``.
_END = object()


async def merged[Item](streams: Sequence[AsyncIterator[Item]]) -> AsyncIterator[Item]:
    """The items of ``streams`` as each arrives (each stream's in its order); ends when all
    have ended. One that raises ends it with that error; closing it closes every stream."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump(stream: AsyncIterator[Item]) -> None:
        try:
            async with aclosing(stream) as items:
                async for item in items:
                    await queue.put(item)
        finally:
            queue.put_nowait(_END)  # the task is done when the reader sees it

    pumps = [asyncio.create_task(pump(stream)) for stream in streams]
    try:
        running = len(pumps)
        while running:
            item = await queue.get()
            if item is not _END:
                yield item
                continue
            running -= 1
            for task in pumps:
                error = task.exception() if task.done() and not task.cancelled() else None
                if error is not None:
                    raise error
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
