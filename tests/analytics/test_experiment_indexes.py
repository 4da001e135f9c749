"""Experiment results read through a sparse index on the experiment's key."""

from __future__ import annotations

import pytest
from django.db import connection

from analytics import services
from analytics.experiments import experiment_results, in_experiment
from analytics.services import experiment_index_name, experiment_indexes_ensure
from queries.models import Query
from sessions.models import Experiment, Session

pytestmark = pytest.mark.django_db(transaction=True)
VARIANTS = [{"name": "control", "weight": 1}, {"name": "b", "weight": 1}]


@pytest.fixture(autouse=True)
def _forget_ensured():
    services._experiment_indexes.clear()
    yield
    services._experiment_indexes.clear()


def _query(owner, n: int, experiments: dict) -> Query:
    return Query.objects.create(
        owner=owner,
        user_id="u",
        session_id=f"s{n}",
        query="q",
        model_provider="openai",
        model_name="m",
        status=Query.Status.COMPLETED,
        experiments=experiments,
        feedback_rating=1 if n % 2 else None,
        latency={"total_ms": 100 + n},
    )


def _as_tuples(results):
    return [(r.name, r.sessions, r.queries, r.rated, r.thumbs_up) for r in results]


def test_results_are_the_same_and_read_off_the_index(make_owner):
    owner, _ = make_owner("acme")
    experiment = Experiment.objects.create(key="pan-test", name="Pans", variants=VARIANTS)
    for n in range(12):
        experiments = {"pan-test": "b" if n % 3 else "control"} if n % 2 else {}
        _query(owner, n, experiments)
        Session.objects.create(
            owner=owner, session_id=f"s{n}", user_id="u", experiments=experiments
        )
    before = _as_tuples(experiment_results(experiment=experiment))

    experiment_indexes_ensure(experiment=experiment)
    experiment_indexes_ensure(experiment=experiment)  # idempotent

    assert _as_tuples(experiment_results(experiment=experiment)) == before
    name = experiment_index_name("pan-test")
    for model in (Query, Session):
        info = connection.database[model._meta.db_table].index_information()
        assert info[name]["key"] == [("experiments.pan-test", 1)] and info[name]["sparse"]
    # The filter experiment_results sends is answered from that index, not a scan.
    for model in (Query, Session):
        plan = in_experiment(model.objects.all(), "pan-test").values("pk").explain()
        assert name in plan and "COLLSCAN" not in plan
