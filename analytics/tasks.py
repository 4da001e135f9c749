from __future__ import annotations

from celery import shared_task

from analytics.services import rollups_fold


@shared_task(
    name="analytics.fold_rollups",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=240,
    time_limit=300,
)
def fold_rollups() -> str:
    """Fold newly written queries, sessions and events into the day rollups."""
    result = rollups_fold()
    return f"folded until {result.folded_until.isoformat()} ({result.queries} queries)"
