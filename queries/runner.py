"""Starting the pipeline from async code (SSE and websocket consumers)."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings

from queries.models import Query

# Strong references: an un-referenced task may be garbage-collected mid-run.
_running: set[asyncio.Task[None]] = set()


async def query_dispatch_async(*, query: Query) -> None:
    """A Celery task with REDIS_URL; else a task on this event loop that outlives the client."""
    query_id = str(query.pk)
    if settings.REDIS_URL:
        from queries.tasks import run_query

        await sync_to_async(run_query.apply_async, thread_sensitive=False)(
            args=[query_id], queue="agents"
        )
        return
    from agents.pipeline import run_pipeline

    task = asyncio.create_task(run_pipeline(query_id, query=query), name=f"query-{query_id}")
    _running.add(task)
    task.add_done_callback(_running.discard)
