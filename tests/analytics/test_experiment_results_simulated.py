"""Experiment results on simulated traffic with a known effect (or none).

Users are assigned by the real code (``session_start`` for a sample, the same
``variant_for_user`` it calls for the bulk, checked to agree); their queries and thumbs
are written straight to the models as a run would store them, since 2,000 full runs would
take minutes. The path from a request to a stored, credited query is covered end to end
in ``tests/analytics/test_experiment_exposure.py``. Every random number is seeded,
and owners get fixed primary keys because assignment hashes the owner's id: each run
assigns the same users to the same arms, whatever tests ran before it.
"""

from __future__ import annotations

import random

import pytest
from bson import ObjectId

from analytics.experiments import experiment_report
from analytics.services import experiment_indexes_ensure
from queries.models import Query
from sessions.assignment import variant_for_user
from sessions.experiments import experiment_start
from sessions.models import Experiment, Session
from sessions.services import session_start

pytestmark = pytest.mark.django_db

# A control without overrides: the arm that used to be credited with nothing.
VARIANTS = [
    {"name": "control", "weight": 50, "overrides": {}},
    {"name": "warm", "weight": 50, "overrides": {"system_prompt": "Be warm."}},
]


def _queries(
    rng: random.Random,
    *,
    owner,
    key: str,
    session_id: str,
    variant: str,
    up_rate: float,
    latency_ms: float,
    per_session: int | None = None,
) -> list[Query]:
    """One or two queries of a session (``per_session`` when given): 80% rated, up with
    ``up_rate``; one in twenty set the varied field itself and is stored as excluded, as
    the run stores it."""
    rows = []
    for _ in range(per_session or rng.randint(1, 2)):
        excluded = rng.random() < 0.05
        rated = rng.random() < 0.8
        rows.append(
            Query(
                owner=owner,
                user_id=session_id,
                session_id=session_id,
                query="q",
                model_provider="openai",
                model_name="gpt-4o-mini",
                status="failed" if rng.random() < 0.02 else "completed",
                experiments={} if excluded else {key: variant},
                experiments_excluded=(
                    {key: {"variant": variant, "reason": "request_set:system_prompt"}}
                    if excluded
                    else {}
                ),
                feedback_rating=(1 if rng.random() < up_rate else -1) if rated else None,
                latency={"total_ms": max(1.0, rng.gauss(latency_ms, 300))},
                usage={"total_tokens": 100, "cost_usd": rng.uniform(0.001, 0.003)},
            )
        )
    return rows


def _users(rng: random.Random, *, owner, key: str, count: int, prefix: str) -> list[Session]:
    """``count`` new users' sessions, each assigned by the real assignment function."""
    sessions = []
    for n in range(count):
        user_id = f"user-{rng.getrandbits(64):x}"
        variant = variant_for_user(
            owner_id=str(owner.pk), user_id=user_id, experiment_key=key, variants=VARIANTS
        )
        sessions.append(
            Session(
                owner=owner, session_id=f"{prefix}{n}", user_id=user_id, experiments={key: variant}
            )
        )
    return sessions


def test_2000_users_with_a_ten_point_effect_show_the_variant_ahead(django_user_model):
    user = django_user_model.objects.create(pk=ObjectId(f"{700_001:024x}"), username="simulated")
    rng = random.Random(20)
    experiment = experiment_start(
        experiment=Experiment.objects.create(key="tone", name="Tone", variants=VARIANTS)
    )
    experiment_indexes_ensure(experiment=experiment)
    # The first 100 users start their sessions through the service, as the API does; the
    # rest are stored in bulk with the variant the same assignment function gives them.
    started = [
        session_start(
            owner=user, session_id=f"s{n}", user_id=f"user-{rng.getrandbits(64):x}", environment={}
        ).session
        for n in range(100)
    ]
    for session in started:
        assert session.experiments["tone"] == variant_for_user(
            owner_id=str(user.pk), user_id=session.user_id, experiment_key="tone", variants=VARIANTS
        )
    bulk = _users(rng, owner=user, key="tone", count=1900, prefix="b")
    Session.objects.bulk_create(bulk)
    rows: list[Query] = []
    up_rate = {"control": 0.50, "warm": 0.60}
    latency = {"control": 1000.0, "warm": 1150.0}  # and 150 ms slower
    for session in started + bulk:
        variant = session.experiments["tone"]
        rows += _queries(
            rng,
            owner=user,
            key="tone",
            session_id=session.session_id,
            variant=variant,
            up_rate=up_rate[variant],
            latency_ms=latency[variant],
        )
    Query.objects.bulk_create(rows)

    report = experiment_report(experiment=experiment)
    arms = {arm.name: arm for arm in report.variants}
    control, warm = arms["control"], arms["warm"]
    assert report.control == "control"
    assert control.sessions + warm.sessions == 2000
    assert not report.srm and report.sample_ratio.p_value > 0.01
    # Every arm is credited: the control without overrides too.
    exposed = [row for row in rows if row.experiments]
    for arm in (control, warm):
        mine = [row for row in exposed if row.experiments["tone"] == arm.name]
        assert arm.queries == len(mine) > 1000
        assert arm.rated == sum(row.feedback_rating is not None for row in mine)
        assert arm.errors == sum(row.status == "failed" for row in mine)
        excluded = [
            row
            for row in rows
            if row.experiments_excluded.get("tone", {}).get("variant") == arm.name
        ]
        assert arm.excluded_queries == len(excluded) > 0
        assert arm.excluded_reasons == {"request_set:system_prompt": len(excluded)}
    assert control.thumbs_up_rate == pytest.approx(0.50, abs=0.03)
    assert warm.thumbs_up_rate == pytest.approx(0.60, abs=0.03)
    rate = warm.thumbs_up_comparison
    assert rate.status == "estimated" and rate.significant and rate.ci_low > 0
    assert rate.ci_low < 0.10 < rate.ci_high
    slower = warm.latency_comparison
    assert slower.significant and slower.ci_low < 150 < slower.ci_high
    # Same cost distribution in both arms: no difference claimed.
    assert warm.cost_comparison.status == "estimated" and not warm.cost_comparison.significant


def test_without_an_effect_about_5_percent_of_runs_claim_one(django_user_model):
    """40 seeded runs of 200 users each, every arm alike: a 95% interval excludes 0 in
    about 2 of them by chance; more than 4 means the intervals are too narrow. (The
    statistics alone are calibrated over many more runs in test_statistics.py.)"""
    runs, claims = 40, {"rate": 0, "latency": 0, "cost": 0}
    for run in range(runs):
        rng = random.Random(1000 + run)
        # One owner per run, with its own experiment: a run reads only its owner's rows.
        user = django_user_model.objects.create(
            pk=ObjectId(f"{710_000 + run:024x}"), username=f"null-{run}"
        )
        experiment = Experiment.objects.create(
            owner=user, key="tone", name="Tone", variants=VARIANTS
        )
        sessions = _users(rng, owner=user, key="tone", count=200, prefix="s")
        rows = [
            row
            for session in sessions
            for row in _queries(
                rng,
                owner=user,
                key="tone",
                session_id=session.session_id,
                variant=session.experiments["tone"],
                up_rate=0.5,
                latency_ms=1000,
                per_session=1,
            )
        ]
        Session.objects.bulk_create(sessions)
        Query.objects.bulk_create(rows)
        report = experiment_report(experiment=experiment)
        warm = next(arm for arm in report.variants if arm.name == "warm")
        assert warm.thumbs_up_comparison.status == "estimated"
        assert warm.queries + next(a.queries for a in report.variants if a.is_control) == len(
            [row for row in rows if row.experiments]
        )
        assert not report.srm
        claims["rate"] += warm.thumbs_up_comparison.significant
        claims["latency"] += warm.latency_comparison.significant
        claims["cost"] += warm.cost_comparison.significant
    assert all(count <= 4 for count in claims.values()), claims
