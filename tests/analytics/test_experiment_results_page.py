"""The admin results page shows the per-arm numbers: exclusions, error rate, intervals
against control (or "not enough data"), and the sample-ratio-mismatch warning."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from analytics.experiments import experiment_report
from queries.models import Query
from sessions.models import Experiment, Session

pytestmark = pytest.mark.django_db

VARIANTS = [{"name": "control", "weight": 50}, {"name": "fast", "weight": 50}]


@pytest.fixture
def superuser_client() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client = Client()
    client.force_login(user)
    return client


def _query(owner, variant: str, n: int, *, up: bool, excluded: str | None = None) -> Query:
    return Query(
        owner=owner,
        user_id="u",
        session_id="s",
        query="q",
        model_provider="openai",
        model_name="gpt-4o-mini",
        status="failed" if variant == "fast" and n < 8 else "completed",
        experiments={} if excluded else {"exp": variant},
        experiments_excluded={"exp": {"variant": variant, "reason": excluded}} if excluded else {},
        feedback_rating=1 if up else -1,
        latency={"total_ms": 100 + n},
        usage={"total_tokens": 10, "cost_usd": 0.001},
    )


def _cells(body: str, variant: str) -> dict[str, str]:
    row = re.search(rf'<tr data-variant="{variant}">(.*?)</tr>', body, re.S).group(1)
    return {
        metric: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip()
        for metric, cell in re.findall(r'<td data-metric="([a-z-]+)">(.*?)</td>', row, re.S)
    }


def _page(client: Client, experiment: Experiment) -> str:
    response = client.get(f"/admin/chat_sessions/experiment/{experiment.pk}/results/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_shows_exclusions_errors_intervals_and_a_sample_ratio_mismatch(
    superuser_client, make_owner
):
    owner, _ = make_owner("acme")
    experiment = Experiment.objects.create(
        key="exp", name="Exp", variants=VARIANTS, status="running"
    )
    body = _page(superuser_client, experiment)
    assert "srm-warning" not in body and "srm-ok" not in body  # no sessions yet
    assert _cells(body, "fast")["thumbs-up"] == "not enough data"

    # 100 sessions against 40 at 50/50: p < 0.001.
    Session.objects.bulk_create(
        Session(owner=owner, session_id=f"s{n}", user_id="u", experiments={"exp": variant})
        for n, variant in enumerate(["control"] * 100 + ["fast"] * 40)
    )
    Query.objects.bulk_create(
        [_query(owner, "control", n, up=n < 20) for n in range(40)]
        + [_query(owner, "fast", n, up=n < 32) for n in range(40)]
        + [_query(owner, "fast", n, up=True, excluded="request_set:model_name") for n in range(3)]
    )
    body = _page(superuser_client, experiment)
    report = experiment_report(experiment=experiment)
    assert report.srm
    assert 'id="srm-warning"' in body and "Sample-ratio mismatch" in body
    fast = _cells(body, "fast")
    assert fast["excluded"] == "3 request_set:model_name: 3"
    assert fast["error-rate"] == "20%"
    interval = next(arm for arm in report.variants if arm.name == "fast").thumbs_up_comparison
    assert interval.significant  # 80% against 50%
    assert fast["thumbs-up"] == (
        f"{interval.difference:.3f} [{interval.ci_low:.3f}, {interval.ci_high:.3f}]"
    )
    assert 'class="op-significant"' in body
    assert fast["latency"].startswith("0.0 [")  # the same latencies in both arms
    assert _cells(body, "control")["thumbs-up"] == "baseline"
