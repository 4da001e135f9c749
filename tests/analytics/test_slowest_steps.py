"""The dashboard's slowest steps per day, from spans stored with known durations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from analytics.selectors import slowest_steps_by_day
from llmplatform.core.models import TraceSpan

pytestmark = pytest.mark.django_db

DAY = date(2026, 12, 1)


def spans(day: date, name: str, durations: list[float]) -> None:
    at = datetime(day.year, day.month, day.day, 23, 0, tzinfo=UTC)
    TraceSpan.objects.bulk_create(
        TraceSpan(
            trace_id=f"{index:032x}",
            span_id=f"{index:016x}",
            name=name,
            started_at=at,
            ended_at=at + timedelta(milliseconds=duration),
            duration_ms=duration,
            expires_at=at + timedelta(days=7),
        )
        for index, duration in enumerate(durations)
    )


def test_each_days_steps_are_ranked_by_p95_with_their_count_and_p50():
    # 1..100 ms: nearest-rank p50 = 50, p95 = 95 (the sketch is within 1%).
    spans(DAY, "agent MemoryAgent", [float(ms) for ms in range(1, 101)])
    # A higher p50 but a lower p95: ranked below the memory step.
    spans(DAY, "chat gpt-4o-mini", [60.0] * 10)
    spans(DAY, "query.session", [2.0, 4.0])
    spans(DAY - timedelta(days=1), "chat gpt-4o-mini", [300.0])
    spans(DAY - timedelta(days=5), "outside the range", [900.0])

    rows = slowest_steps_by_day(start=DAY - timedelta(days=1), end=DAY)

    assert [(row["date"], row["name"]) for row in rows] == [
        ("2026-12-01", "agent MemoryAgent"),
        ("2026-12-01", "chat gpt-4o-mini"),
        ("2026-12-01", "query.session"),
        ("2026-11-30", "chat gpt-4o-mini"),
    ]
    memory, chat, session, yesterday = rows
    assert memory["count"] == 100
    assert memory["p50_ms"] == pytest.approx(50, rel=0.01)
    assert memory["p95_ms"] == pytest.approx(95, rel=0.01)
    assert memory["max_ms"] == 100
    assert (chat["count"], chat["p50_ms"], chat["p95_ms"]) == (10, 60, 60)
    assert (session["count"], session["p50_ms"], session["p95_ms"]) == (2, 2, 4)
    assert (yesterday["count"], yesterday["p95_ms"]) == (1, 300)


def test_only_the_slowest_steps_of_a_day_are_kept():
    for rank in range(4):
        spans(DAY, f"step {rank}", [10.0 * (rank + 1)])
    rows = slowest_steps_by_day(start=DAY, end=DAY, limit=2)
    assert [row["name"] for row in rows] == ["step 3", "step 2"]


def test_the_dashboard_shows_todays_slowest_steps():
    spans(datetime.now(tz=UTC).date(), "agent WriterAgent", [120.0, 80.0])
    operator = get_user_model().objects.create_superuser("op", "op@example.com", "pw-op-123456")
    client = Client()
    client.force_login(operator)
    page = client.get("/admin/dashboard/?days=7")
    assert page.status_code == 200
    [row] = page.context["slowest_steps"]
    assert (row["name"], row["count"], row["p95_ms"]) == ("agent WriterAgent", 2, 120)
    assert 'data-step="agent WriterAgent"' in page.content.decode()
