"""Celery tasks: ids in, idempotent, time-limited (from QUERY_TIMEOUT_S), acknowledged late.

The run's soft and hard time limits are the global CELERY_TASK_SOFT_TIME_LIMIT and
CELERY_TASK_TIME_LIMIT, derived in settings from the one run budget.
"""

from __future__ import annotations

from celery import shared_task

from agents.providers.provider_errors import ProviderError
from llmplatform.core import tracing
from llmplatform.core.bridge import run_sync
from queries.run import AFTER_COMPLETION_TASK, queries_sweep, query_execute
from queries.services import query_completed
from queries.start import RUN_TASK

SUMMARY_SOFT_LIMIT_S = 120


@shared_task(name=RUN_TASK, acks_late=True, reject_on_worker_lost=True)
def run_query(query_id: str, trace_context: dict[str, str] | None = None) -> None:
    """Run a query; provider retries happen inside, before any token is sent. Its spans
    continue the trace of ``trace_context`` (the start's)."""
    run_sync(query_execute(query_id, trace_context=trace_context))


@shared_task(
    name=AFTER_COMPLETION_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=SUMMARY_SOFT_LIMIT_S,
    time_limit=SUMMARY_SOFT_LIMIT_S + 30,
    max_retries=3,
)
def after_completion(
    self, query_id: str, trace_context: dict[str, str] | None = None
) -> str | None:
    """What follows an answer (a summary every MEMORY_SUMMARY_INTERVAL pairs), in the
    answer's trace."""
    try:
        with (
            tracing.continued(trace_context),
            tracing.span("query.after_completion", {tracing.QUERY_ID: query_id}),
        ):
            return query_completed(query_id=query_id)
    except ProviderError as exc:
        if not exc.retryable:
            raise
        raise self.retry(exc=exc, countdown=30 * (self.request.retries + 1)) from exc


@shared_task(name="queries.sweep_runs", acks_late=True, ignore_result=True)
def sweep_runs() -> int:
    """Fail runs whose worker died (Celery beat, or the in-process scheduler)."""
    return queries_sweep()
