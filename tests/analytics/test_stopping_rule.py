"""The stopping rule: an operator who looks at the results after every batch of traffic
and acts on the first verdict is right about as often as the rule promises.

Traffic is simulated as in ``test_experiment_results_simulated.py`` (users assigned by the
real assignment function, queries and thumbs stored as a run stores them), and every look
reads ``experiment_report``, the numbers behind the results page and API. The false-alarm
rate needs many more runs than the database allows in a test, so it is measured on the
statistics alone (the same function the report calls), against the fixed-horizon interval
peeked at in exactly the same way. Every random number is seeded.
"""

from __future__ import annotations

import math
import random
import re

import pytest
from bson import ObjectId
from django.test import Client

from analytics import statistics
from analytics.experiments import experiment_report
from analytics.sequential import (
    ALPHA,
    BETTER,
    MIXING_SD,
    NO_DIFFERENCE_YET,
    WORSE,
    half_width,
    stopping_decision,
)
from queries.models import Query
from sessions.models import Experiment, Session
from tests.analytics.test_experiment_results_simulated import VARIANTS, _queries, _users

pytestmark = pytest.mark.django_db


def _look(experiment: Experiment):
    warm = next(
        arm for arm in experiment_report(experiment=experiment).variants if not arm.is_control
    )
    return warm


def _add_traffic(rng, *, owner, users: int, batch: int, up_rate: dict[str, float]) -> None:
    sessions = _users(rng, owner=owner, key="tone", count=users, prefix=f"b{batch}-")
    Session.objects.bulk_create(sessions)
    Query.objects.bulk_create(
        [
            row
            for session in sessions
            for row in _queries(
                rng,
                owner=owner,
                key="tone",
                session_id=session.session_id,
                variant=session.experiments["tone"],
                up_rate=up_rate[session.experiments["tone"]],
                latency_ms=1000,
            )
        ]
    )


def test_a_ten_point_effect_becomes_better_and_stays_better(django_user_model):
    """2,000 users arriving in 10 batches, control 50% up and warm 60%, a look after each."""
    user = django_user_model.objects.create(pk=ObjectId(f"{720_001:024x}"), username="peeker")
    experiment = Experiment.objects.create(
        owner=user, key="tone", name="Tone", variants=VARIANTS, status="running"
    )
    rng = random.Random(2021)
    looks = []
    for batch in range(10):
        _add_traffic(rng, owner=user, users=200, batch=batch, up_rate={"control": 0.5, "warm": 0.6})
        looks.append(_look(experiment).stopping)
    verdicts = [look.verdict for look in looks]
    assert verdicts[0] == NO_DIFFERENCE_YET  # ~120 ratings per arm cannot tell 10 points
    assert verdicts[-1] == BETTER
    decided_at = verdicts.index(BETTER)
    assert verdicts[decided_at:] == [BETTER] * (10 - decided_at), verdicts
    assert all(look.cs_low > 0 for look in looks[decided_at:])
    assert all(look.cs_low < 0.10 < look.cs_high for look in looks)  # the truth is inside
    # Before deciding, each look said when to look again, and once decided it stops asking.
    for look in looks[:decided_at]:
        assert look.look_again_after_rated >= statistics.MIN_RATED_PER_ARM
        assert look.look_again_after_rated <= max(look.rated, look.control_rated)
    assert all(look.look_again_after_rated is None for look in looks[decided_at:])
    # The estimate at the look before deciding was of the right order: the decision came
    # within a few times the ratings it said were missing.
    before = looks[decided_at - 1]
    added = looks[decided_at].rated - before.rated
    assert before.more_rated_per_arm is not None
    assert added <= 4 * before.more_rated_per_arm


def test_without_an_effect_peeking_after_every_batch_rarely_claims_a_winner(django_user_model):
    """Through the report: 8 seeded runs, a look after each of 6 batches of 100 users."""
    claims = 0
    for run in range(8):
        user = django_user_model.objects.create(
            pk=ObjectId(f"{730_000 + run:024x}"), username=f"peek-null-{run}"
        )
        experiment = Experiment.objects.create(
            owner=user, key="tone", name="Tone", variants=VARIANTS, status="running"
        )
        rng = random.Random(3000 + run)
        decided = False
        for batch in range(6):
            _add_traffic(
                rng, owner=user, users=100, batch=batch, up_rate={"control": 0.5, "warm": 0.5}
            )
            decided |= _look(experiment).stopping.decided
        claims += decided
    assert claims <= 1


def _peeking_runs(*, runs: int, looks: int, batch: int, up: float, control_up: float, seed: int):
    """Per seeded run: the verdicts the sequential test gave at any look, and whether the
    fixed-horizon interval ever excluded 0, peeked at after every batch of ``batch``
    ratings per arm."""
    for run in range(runs):
        rng = random.Random(seed + run)
        up_count = control_count = n = 0
        verdicts, naive = set(), False
        for _ in range(looks):
            up_count += sum(rng.random() < up for _ in range(batch))
            control_count += sum(rng.random() < control_up for _ in range(batch))
            n += batch
            verdicts.add(
                stopping_decision(
                    successes=up_count, n=n, control_successes=control_count, control_n=n
                ).verdict
            )
            interval = statistics.proportion_difference(
                successes=up_count, n=n, control_successes=control_count, control_n=n
            )
            naive |= interval.significant
        yield verdicts, naive


def test_continuous_peeking_errs_at_most_5_percent_where_the_fixed_interval_errs_often():
    """1,000 runs without an effect, 40 looks each (every 50 ratings per arm, to 2,000)."""
    results = list(_peeking_runs(runs=1000, looks=40, batch=50, up=0.5, control_up=0.5, seed=9000))
    sequential = sum(verdicts != {NO_DIFFERENCE_YET} for verdicts, _ in results) / len(results)
    naive = sum(naive for _, naive in results) / len(results)
    assert sequential <= 0.05, sequential
    # The fixed-horizon 95% interval, peeked at the same way, finds a winner in over a
    # quarter of the runs: that is what the always-valid sequence is for.
    assert naive >= 0.20 and naive > 4 * max(sequential, 0.01), (sequential, naive)


def test_the_sequence_finds_a_real_effect_and_never_calls_it_worse():
    """100 runs of 60% against 50%, to 2,000 ratings per arm: power is about 99%."""
    results = list(_peeking_runs(runs=100, looks=40, batch=50, up=0.6, control_up=0.5, seed=500))
    assert sum(BETTER in verdicts for verdicts, _ in results) >= 98
    assert not any(WORSE in verdicts for verdicts, _ in results)


def test_a_worse_variant_is_called_worse():
    decision = stopping_decision(successes=400, n=1000, control_successes=500, control_n=1000)
    assert decision.verdict == WORSE and decision.cs_high < 0
    assert decision.look_again_after_rated is None and decision.more_rated_per_arm is None


def test_the_interval_is_the_documented_formula():
    decision = stopping_decision(successes=330, n=600, control_successes=300, control_n=600)
    p1, p2 = 331 / 602, 301 / 602  # shrunk towards 1/2 for the variance
    variance = p1 * (1 - p1) / 600 + p2 * (1 - p2) / 600
    tau2 = MIXING_SD**2
    half = math.sqrt(
        variance
        * (variance + tau2)
        / tau2
        * (2 * math.log(1 / 0.05) + math.log((variance + tau2) / variance))
    )
    assert half == pytest.approx(half_width(variance), rel=1e-6)
    assert decision.difference == pytest.approx(0.05)
    assert (decision.cs_low, decision.cs_high) == (
        pytest.approx(0.05 - half, abs=1e-6),
        pytest.approx(0.05 + half, abs=1e-6),
    )
    assert decision.alpha == ALPHA
    # Two variants against control: alpha is split, the sequence widens.
    split = stopping_decision(
        successes=330, n=600, control_successes=300, control_n=600, comparisons=2
    )
    assert split.alpha == ALPHA / 2 and split.cs_high - split.cs_low > half * 2


def test_small_samples_say_no_difference_yet_and_when_to_look_again(api, owner):
    """20 rated queries per arm, every warm one up: below the minimum, no verdict."""
    user = owner[0]
    experiment = Experiment.objects.create(
        owner=user, key="tone", name="Tone", variants=VARIANTS, status="running"
    )
    Query.objects.bulk_create(
        Query(
            owner=user,
            user_id="u",
            session_id="s",
            query="q",
            model_provider="openai",
            model_name="gpt-4o-mini",
            status="completed",
            experiments={"tone": variant},
            feedback_rating=1 if variant == "warm" or n % 2 else -1,
            latency={"total_ms": 100},
            usage={"total_tokens": 10, "cost_usd": 0.001},
        )
        for variant in ("control", "warm")
        for n in range(20)
    )
    body = api.get(f"/api/v1/experiments/{experiment.pk}/results").json()
    rows = {row["name"]: row for row in body["variants"]}
    assert rows["control"]["stopping"] is None
    assert rows["warm"]["stopping"] == {
        "verdict": "no_difference_yet",
        "rated": 20,
        "control_rated": 20,
        "difference": None,
        "cs_low": None,
        "cs_high": None,
        "alpha": 0.05,
        "mixing_sd": 0.05,
        "more_rated_per_arm": None,
        "look_again_after_rated": 10,
    }

    # At 60 per arm, 100% against 50% is decided; the page says so in words.
    Query.objects.bulk_create(
        Query(
            owner=user,
            user_id="u",
            session_id="s",
            query="q",
            model_provider="openai",
            model_name="gpt-4o-mini",
            status="completed",
            experiments={"tone": variant},
            feedback_rating=1 if variant == "warm" or n % 2 else -1,
        )
        for variant in ("control", "warm")
        for n in range(40)
    )
    stopping = api.get(f"/api/v1/experiments/{experiment.pk}/results").json()["variants"][1]
    assert stopping["stopping"]["verdict"] == "better"
    assert stopping["stopping"]["cs_low"] > 0


def _verdict_text(body: str, variant: str) -> str:
    item = re.search(rf'<li data-verdict="{variant}"[^>]*>(.*?)</li>', body, re.S).group(1)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", item)).strip()


def test_the_results_page_says_the_verdict_and_when_to_look_again(django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw-123456")
    client = Client()
    client.force_login(root)
    experiment = Experiment.objects.create(
        key="tone", name="Tone", variants=VARIANTS, status="running"
    )

    def page() -> str:
        response = client.get(f"/admin/chat_sessions/experiment/{experiment.pk}/results/")
        assert response.status_code == 200
        return response.content.decode()

    def rate(variant: str, ups: int, downs: int) -> None:
        Query.objects.bulk_create(
            Query(
                owner=root,
                user_id="u",
                session_id="s",
                query="q",
                model_provider="openai",
                model_name="gpt-4o-mini",
                status="completed",
                experiments={"tone": variant},
                feedback_rating=rating,
            )
            for rating in [1] * ups + [-1] * downs
        )

    assert _verdict_text(page(), "warm") == (
        "warm vs control: no difference yet (0 and 0 rated; the test starts at 30 in each). "
        "Look again after 30 more ratings per arm."
    )
    rate("control", 100, 100)
    rate("warm", 110, 90)
    warm = _look(experiment).stopping
    assert warm.verdict == NO_DIFFERENCE_YET and warm.more_rated_per_arm > 200
    assert _verdict_text(page(), "warm") == (
        f"warm vs control: no difference yet (thumbs-up {warm.difference:.3f}, always-valid "
        f"interval [{warm.cs_low:.3f}, {warm.cs_high:.3f}]). Look again after 200 more "
        f"ratings per arm (about {warm.more_rated_per_arm} more per arm to decide, if the "
        "observed difference is real)."
    )
    rate("control", 200, 200)
    rate("warm", 20, 380)
    warm = _look(experiment).stopping
    assert warm.verdict == WORSE
    assert _verdict_text(page(), "warm") == (
        f"warm is worse than control (thumbs-up {warm.difference:.3f}, always-valid "
        f"interval [{warm.cs_low:.3f}, {warm.cs_high:.3f}])."
    )
