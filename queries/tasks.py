"""Celery tasks: ids in, idempotent, time-limited, acknowledged late."""

from __future__ import annotations

import asyncio

from celery import shared_task

from agents.providers.base import ProviderError


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

    asyncio.run(run_pipeline(query_id))


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
