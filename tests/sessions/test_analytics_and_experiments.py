"""Analytics summary numbers, experiment hooks for the pipeline, and experiment results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.experiments import experiment_results
from llmplatform.core.errors import ApplicationError
from queries.models import Query
from sessions.experiments import experiment_save, experiment_start, experiment_stop
from sessions.models import Event, Experiment, Session
from sessions.selectors import session_variants

pytestmark = pytest.mark.django_db

DAY1 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)


def _query(owner, *, when, provider="openai", model="gpt-4o-mini", tokens=(10, 5), cost=0.01, **kw):
    return Query.objects.create(
        owner=owner,
        user_id=kw.pop("user_id", "u"),
        session_id=kw.pop("session_id", "s"),
        query="q",
        model_provider=provider,
        model_name=model,
        timestamp=when,
        status=kw.pop("status", "completed"),
        usage={
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
            "total_tokens": sum(tokens),
            "cost_usd": cost,
        },
        **kw,
    )


@pytest.fixture
def fixture_data(owner, make_owner):
    user = owner[0]
    stranger, _ = make_owner("stranger")
    Session.objects.create(
        owner=user, session_id="a", user_id="u", start_t=DAY1, end_t=DAY1 + timedelta(seconds=60)
    )
    Session.objects.create(
        owner=user, session_id="b", user_id="u", start_t=DAY1, end_t=DAY1 + timedelta(seconds=120)
    )
    Session.objects.create(owner=user, session_id="c", user_id="u", start_t=DAY1)  # still active
    Session.objects.create(owner=user, session_id="d", user_id="u", start_t=DAY2)
    Session.objects.create(owner=stranger, session_id="x", user_id="u", start_t=DAY1)
    for i in range(3):
        Event.objects.create(
            owner=user, session_id="a", event_id=str(i), type="click", t=i, received_at=DAY1
        )
    Event.objects.create(
        owner=user, session_id="d", event_id="z", type="click", t=1, received_at=DAY2
    )
    Event.objects.create(
        owner=stranger, session_id="x", event_id="q", type="click", t=1, received_at=DAY1
    )
    _query(user, when=DAY1)
    _query(user, when=DAY1 + timedelta(hours=1), cost=0.03)
    _query(user, when=DAY1, provider="anthropic", model="claude", tokens=(100, 50), cost=0.5)
    _query(user, when=DAY2)
    _query(stranger, when=DAY1, cost=9.0)


def test_summary_numbers(api, fixture_data):
    response = api.get("/api/v1/analytics/summary?from=2026-02-28&to=2026-03-02")
    assert response.status_code == 200
    body = response.json()
    assert (body["from"], body["to"]) == ("2026-02-28", "2026-03-02")
    empty, day1, day2 = body["days"]
    assert empty == {
        "date": "2026-02-28",
        "sessions": 0,
        "ended_sessions": 0,
        "queries": 0,
        "events": 0,
        "average_duration_seconds": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "cost_usd": 0.0,
        "by_model": [],
    }
    assert day1["sessions"] == 3
    assert day1["ended_sessions"] == 2
    assert day1["average_duration_seconds"] == pytest.approx(90.0)
    assert day1["events"] == 3
    assert day1["queries"] == 3
    assert day1["total_tokens"] == 15 + 15 + 150
    assert day1["cost_usd"] == pytest.approx(0.54)
    by_model = {(row["provider"], row["model"]): row for row in day1["by_model"]}
    assert by_model[("openai", "gpt-4o-mini")]["queries"] == 2
    assert by_model[("openai", "gpt-4o-mini")]["cost_usd"] == pytest.approx(0.04)
    assert by_model[("anthropic", "claude")]["input_tokens"] == 100
    assert day2["date"] == "2026-03-02"
    assert (day2["sessions"], day2["events"], day2["queries"]) == (1, 1, 1)
    assert body["totals"]["queries"] == 4
    assert body["totals"]["sessions"] == 4


def test_summary_range_is_inclusive_and_bounded(api, fixture_data):
    body = api.get("/api/v1/analytics/summary?from=2026-03-02&to=2026-03-02").json()
    assert len(body["days"]) == 1
    assert body["totals"]["queries"] == 1


def test_summary_defaults_to_last_seven_days(api):
    body = api.get("/api/v1/analytics/summary").json()
    assert len(body["days"]) == 7


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("from=yesterday", "invalid_date"),
        ("from=2026-02-30", "invalid_date"),
        ("to=2026-13-01", "invalid_date"),
        ("from=2026-03-05&to=2026-03-01", "invalid_date_range"),
        ("from=2024-01-01&to=2026-01-01", "date_range_too_large"),
    ],
)
def test_summary_bad_dates(api, query, code):
    response = api.get(f"/api/v1/analytics/summary?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_summary_max_range_is_accepted(api):
    assert api.get("/api/v1/analytics/summary?from=2025-01-01&to=2026-01-01").status_code == 200


def test_summary_needs_auth(anon):
    assert anon.get("/api/v1/analytics/summary").status_code == 401


# ----- the pipeline hook -----


def _experiment(key, variants, status="running", started=None):
    return Experiment.objects.create(
        key=key, name=key, status=status, variants=variants, started_at=started or DAY1
    )


def test_overrides_for_session(api, owner):
    _experiment(
        "model",
        [
            {"name": "control", "weight": 1, "overrides": {}},
            {"name": "claude", "weight": 1e-9, "overrides": {"model_provider": "anthropic"}},
        ],
    )
    _experiment(
        "prompt",
        [
            {
                "name": "terse",
                "weight": 1,
                "overrides": {"system_prompt": "Be terse.", "model_provider": "google"},
            },
            {"name": "other", "weight": 1e-9},
        ],
        started=DAY2,
    )
    api.post("/api/v1/session/start", {"session_id": "s1", "user_id": "u"}, format="json")
    Session.objects.filter(session_id="s1").update(
        experiments={"model": "claude", "prompt": "terse", "gone": "x"}
    )
    session = Session.objects.get(session_id="s1")
    assigned = session_variants(session=session)
    # Running experiments only, the first started first (its overrides win on conflicts).
    assert [(a.experiment_key, a.variant) for a in assigned] == [
        ("model", "claude"),
        ("prompt", "terse"),
    ]
    assert assigned[0].overrides == {"model_provider": "anthropic"}
    assert assigned[1].overrides == {"system_prompt": "Be terse.", "model_provider": "google"}


def test_stopped_experiment_changes_nothing(api, owner):
    experiment = _experiment(
        "model",
        [
            {"name": "a", "weight": 1, "overrides": {"temperature": 0.1}},
            {"name": "b", "weight": 1e-9},
        ],
    )
    api.post("/api/v1/session/start", {"session_id": "s1", "user_id": "u"}, format="json")
    session = Session.objects.get(session_id="s1")
    assert [a.overrides for a in session_variants(session=session)] == [{"temperature": 0.1}]
    experiment_stop(experiment=experiment)
    assert session_variants(session=session) == []


def test_overrides_scoped_to_owner(api, other_api, owner):
    _experiment("model", [{"name": "a", "weight": 1}, {"name": "b", "weight": 1e-9}])
    other_api.post("/api/v1/session/start", {"session_id": "s1", "user_id": "u"}, format="json")
    assert not Session.objects.filter(owner=owner[0], session_id="s1").exists()


def test_experiment_lifecycle_services():
    experiment = Experiment(key="exp", name="Exp")
    experiment_save(
        experiment=experiment, variants=[{"name": "a", "weight": 1}, {"name": "b", "weight": 2}]
    )
    experiment_start(experiment=experiment)
    assert Experiment.objects.get().status == "running"
    with pytest.raises(ApplicationError) as caught:
        experiment_save(
            experiment=experiment, variants=[{"name": "a", "weight": 5}, {"name": "b", "weight": 2}]
        )
    assert caught.value.code == "experiment_running"
    experiment_stop(experiment=experiment)
    stopped = Experiment.objects.get()
    assert stopped.status == "stopped"
    assert stopped.stopped_at is not None
    experiment_save(
        experiment=stopped, variants=[{"name": "a", "weight": 5}, {"name": "b", "weight": 2}]
    )
    assert Experiment.objects.get().variants[0]["weight"] == 5


# ----- results -----


def test_experiment_results_per_variant(owner):
    user = owner[0]
    experiment = _experiment("exp", [{"name": "control", "weight": 1}, {"name": "b", "weight": 1}])
    for i in range(3):
        Session.objects.create(
            owner=user, session_id=f"c{i}", user_id="u", experiments={"exp": "control"}
        )
    Session.objects.create(owner=user, session_id="b0", user_id="u", experiments={"exp": "b"})
    Session.objects.create(owner=user, session_id="n0", user_id="u", experiments={"other": "b"})
    for rating, total_ms in ((1, 40), (1, 100), (-1, 120), (None, 140)):
        _query(
            user,
            when=DAY1,
            experiments={"exp": "control"},
            feedback_rating=rating,
            latency={"total_ms": total_ms},
        )
    for rating in (1, 1):
        _query(
            user,
            when=DAY1,
            experiments={"exp": "b"},
            feedback_rating=rating,
            latency={"total_ms": 300},
            cost=0.2,
        )
    results = {result.name: result for result in experiment_results(experiment=experiment)}
    control, b = results["control"], results["b"]
    assert (control.sessions, control.queries, control.rated, control.thumbs_up) == (3, 4, 3, 2)
    assert control.thumbs_up_rate == pytest.approx(2 / 3)
    assert control.average_latency_ms == 100
    assert (control.latency_p50_ms, control.latency_p95_ms) == (100, 140)
    assert control.total_tokens == 60
    assert control.cost_usd == pytest.approx(0.04)
    assert (b.sessions, b.queries, b.rated, b.thumbs_up) == (1, 2, 2, 2)
    assert b.average_latency_ms == 300
    assert (b.latency_p50_ms, b.latency_p95_ms) == (300, 300)
    assert b.cost_usd == pytest.approx(0.4)
    # Three and two ratings: below the stated minimum, no interval is claimed.
    assert b.thumbs_up_comparison.status == "not_enough_data"
    assert b.difference is None and not b.significant
    assert control.thumbs_up_comparison.status == "baseline"
