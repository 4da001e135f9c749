"""Celery tasks of evaluations: ids in, idempotent (a run skips what it stored), acked late."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from evaluations.online_scoring import SCORE_LIVE_ANSWERS_TASK, online_scores_tick
from evaluations.services import (
    RUN_EVALUATION_TASK,
    evaluation_continue,
    evaluation_execute,
    evaluation_stopped,
    evaluations_sweep,
)

logger = logging.getLogger(__name__)

# A task asks questions for about this long, then queues the rest of its run and hands
# the worker back, so other background work (ingestions, summaries) is not held up.
EVALUATION_SLICE_S = 60.0
# The slice's last answer may take a whole question budget (and its judge) past the slice;
# past this limit the task stops and the run is failed, resumable.
EVALUATION_SOFT_LIMIT_S = 3600


@shared_task(
    name=RUN_EVALUATION_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=EVALUATION_SOFT_LIMIT_S,
    time_limit=EVALUATION_SOFT_LIMIT_S + 60,
    ignore_result=True,
)
def run_evaluation(run_id: str) -> None:
    """Ask and score what is left of an evaluation run."""
    try:
        run = evaluation_execute(run_id=run_id, slice_s=EVALUATION_SLICE_S)
    except SoftTimeLimitExceeded:
        evaluation_stopped(
            run_id=run_id,
            code="evaluation_timeout",
            message="The evaluation task reached its time limit; resume it to finish.",
        )
        return
    except Exception:  # the task boundary: a bug must not leave the run "running"
        logger.exception("evaluation %s crashed", run_id)
        evaluation_stopped(
            run_id=run_id, code="internal_error", message="The evaluation crashed; resume it."
        )
        return
    if run is not None and run.status == run.Status.PENDING:
        evaluation_continue(run=run)


@shared_task(name="evaluations.sweep_runs", acks_late=True, ignore_result=True)
def sweep_runs() -> int:
    """Resume runs whose worker died; fail those past their deadline (beat, or in-process)."""
    return evaluations_sweep()


# A tick starts no new answer after online_scoring.TICK_BUDGET_S; the limit leaves room
# for the answers (and their judges) in flight, and stays under the tick's claim.
ONLINE_SCORING_SOFT_LIMIT_S = 240


@shared_task(
    name=SCORE_LIVE_ANSWERS_TASK,
    acks_late=True,
    ignore_result=True,
    soft_time_limit=ONLINE_SCORING_SOFT_LIMIT_S,
    time_limit=ONLINE_SCORING_SOFT_LIMIT_S + 60,
)
def score_live_answers() -> int:
    """Score a sample of running experiments' live answers (beat, or in-process)."""
    return online_scores_tick()
