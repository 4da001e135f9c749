"""Celery tasks: ids in, idempotent, time-limited, acknowledged late."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from celery import shared_task

from agents.providers.base import ProviderError

_thread = threading.local()


def run_in_worker_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` on this worker thread's own event loop, kept between tasks.

    asyncio.run() would make a loop per task, and with it new SDK clients (an SSL
    context and a connection pool each): the providers are cached per loop.
    """
    loop = getattr(_thread, "loop", None)
    if loop is None or loop.is_closed():
        loop = _thread.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coroutine)


@shared_task(
    name="queries.run_query",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=240,
    time_limit=300,
)
def run_query(query_id: str) -> None:
    """Run the agent pipeline; provider retries happen inside, before any token is sent."""
    from agents.pipeline import run_pipeline

    run_in_worker_loop(run_pipeline(query_id))


@shared_task(
    name="queries.summarise_session",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=120,
    time_limit=150,
    max_retries=3,
)
def summarise_session(self, owner_id: str, session_id: str, pair_count: int) -> str:
    from queries.services import summary_create

    try:
        return str(
            summary_create(owner_id=owner_id, session_id=session_id, pair_count=pair_count).pk
        )
    except ProviderError as exc:
        if not exc.retryable:
            raise
        raise self.retry(exc=exc, countdown=30 * (self.request.retries + 1)) from exc
