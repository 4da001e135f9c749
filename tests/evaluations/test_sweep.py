"""No run stays running: a dead worker's run is resumed, one past its deadline fails."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from evaluations.models import Dataset, EvaluationRun
from evaluations.services import RUN_EVALUATION_TASK, evaluations_sweep

pytestmark = pytest.mark.django_db


@pytest.fixture
def submitted(monkeypatch):
    sent: list[tuple[str, ...]] = []

    class _Queue:
        def submit_background(self, task_name: str, *ids: str) -> None:
            sent.append((task_name, *ids))

    monkeypatch.setattr("evaluations.services.dispatcher", lambda: _Queue())
    return sent


def _run(owner, **fields) -> EvaluationRun:
    dataset, _ = Dataset.objects.get_or_create(owner=owner, name="d")
    return EvaluationRun.objects.create(owner=owner, dataset=dataset, total=4, **fields)


def test_sweep_resumes_dead_runs_and_fails_late_ones(owner, submitted):
    now = timezone.now()
    alive = _run(owner[0], status="running", heartbeat_at=now, deadline_at=now + timedelta(hours=1))
    dead = _run(
        owner[0],
        status="running",
        heartbeat_at=now - timedelta(hours=1),
        deadline_at=now + timedelta(hours=1),
    )
    late = _run(owner[0], status="pending", deadline_at=now - timedelta(seconds=1))
    assert evaluations_sweep() == 2
    assert submitted == [(RUN_EVALUATION_TASK, str(dead.pk))]
    late.refresh_from_db()
    alive.refresh_from_db()
    assert late.status == "failed" and late.error["code"] == "evaluation_timeout"
    assert alive.status == "running"
