"""One time budget (QUERY_TIMEOUT_S) orders every limit of a query run."""

from __future__ import annotations

import pytest
from django.conf import settings

from llmplatform.core.config import RunBudget, run_config


@pytest.mark.parametrize("timeout_s", [1, 5, 30, 240, 600, 3600, 86_400])
def test_every_limit_comes_in_order_whatever_the_budget(timeout_s):
    budget = RunBudget.for_timeout(timeout_s)
    # The engine stops itself first and stores a timeout; Celery's soft limit, then its
    # hard limit (which kills the worker) come later; the JSON wait outlasts both.
    assert budget.engine_deadline_s == timeout_s
    assert budget.engine_deadline_s < budget.celery_soft_limit_s < budget.celery_hard_limit_s
    assert budget.celery_hard_limit_s < budget.json_wait_s
    # A task is redelivered only once its first delivery is certainly dead.
    assert budget.celery_hard_limit_s < budget.visibility_timeout_s
    # A live run beats several times before the sweeper would call it dead.
    assert budget.heartbeat_s * 2 < budget.stale_after_s
    assert budget.stale_after_s + budget.sweep_every_s <= timeout_s + 4 * budget.grace_s


def test_settings_derive_celery_limits_and_redelivery_from_the_budget():
    budget = RunBudget.for_timeout(settings.QUERY_TIMEOUT_S)
    assert budget.celery_soft_limit_s == settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert budget.celery_hard_limit_s == settings.CELERY_TASK_TIME_LIMIT
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] == (
        budget.visibility_timeout_s
    )
    sweep = settings.CELERY_BEAT_SCHEDULE["fail-runs-whose-worker-died"]
    assert (sweep["task"], sweep["schedule"]) == ("queries.sweep_runs", budget.sweep_every_s)


def test_the_run_task_takes_its_limits_from_the_budget():
    # A literal on the task would override the budget's (raising QUERY_TIMEOUT_S would
    # then re-create runs killed before their deadline).
    from queries.tasks import run_query

    budget = RunBudget.for_timeout(settings.QUERY_TIMEOUT_S)
    assert run_query.soft_time_limit == budget.celery_soft_limit_s
    assert run_query.time_limit == budget.celery_hard_limit_s
    assert run_query.acks_late and run_query.reject_on_worker_lost


def test_raising_the_budget_moves_the_running_config(settings):
    settings.QUERY_TIMEOUT_S = 900
    assert run_config().budget.engine_deadline_s == 900
    assert run_config().budget.json_wait_s > 900
