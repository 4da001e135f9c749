"""An evaluation run on the production path: a real Celery worker runs the evaluation task,
which asks its questions through the run entry (queued to the worker too)."""

from __future__ import annotations

import time

import pytest

from queries.models import Query

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(autouse=True)
def _wired(celery_worker, vendor_settings):
    """A real worker, and vendors pointed at the fakes."""


def test_a_run_through_the_celery_worker(api, fakes):
    fakes["openai"].reply_text = "Paris"
    dataset = api.post("/api/v1/datasets", {"name": "celery"}, format="json").json()
    api.post(
        f"/api/v1/datasets/{dataset['id']}/items",
        {"items": [{"input": "Capital of France?", "reference": "Paris"}, {"input": "Of Peru?"}]},
        format="json",
    )
    started = api.post(
        "/api/v1/evaluations",
        {
            "dataset": dataset["id"],
            "targets": [{"model_provider": "openai"}],
            "scorers": ["contains"],
            "repeats": 2,
        },
        format="json",
    ).json()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        report = api.get(f"/api/v1/evaluations/{started['id']}").json()
        if report["status"] in ("completed", "failed"):
            break
        time.sleep(0.2)
    assert report["status"] == "completed", report
    assert report["progress"] == {"total": 4, "done": 4, "failed": 0}
    contains = report["targets"][0]["scorers"]["contains"]
    assert (contains["mean"], contains["n"], contains["unscored"]) == (1.0, 2, 2)
    assert Query.objects.filter(metadata__evaluation=started["id"]).count() == 4
