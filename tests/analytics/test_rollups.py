"""Day rollups: folded and unfolded rows give the same answers as counting every row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.models import QueryDay, RollupWatermark
from analytics.selectors import analytics_summary, cost_by_provider, latency_percentiles_by_day
from analytics.services import FOLD_LAG, rollups_fold
from analytics.sketch import RELATIVE_ACCURACY, LatencySketch
from queries.models import Query
from sessions.models import Event, Session

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
NOW = DAY + timedelta(days=2)


def _query(owner, *, when, status="completed", total_ms=100, cost=0.01):
    return Query.objects.create(
        owner=owner,
        user_id="u",
        session_id="s",
        query="q",
        model_provider="openai",
        model_name="m",
        status=status,
        timestamp=when,
        usage={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3, "cost_usd": cost},
        latency={"total_ms": total_ms},
    )


def _summary(owner):
    return analytics_summary(owner=owner, start=DAY.date(), end=NOW.date())


def test_folded_rows_and_new_rows_add_up(make_owner):
    acme, _ = make_owner("acme")
    globex, _ = make_owner("globex")
    for ms in (100, 200, 300):
        _query(acme, when=DAY, total_ms=ms)
    _query(globex, when=DAY, cost=5.0)
    Session.objects.create(
        owner=acme, session_id="a", user_id="u", start_t=DAY, end_t=DAY + timedelta(seconds=30)
    )
    Event.objects.create(
        owner=acme, session_id="a", event_id="1", type="click", t=1, received_at=DAY
    )
    before = _summary(acme)
    result = rollups_fold(now=NOW)
    assert result.claimed and result.queries == 4
    assert QueryDay.objects.count() == 2
    # Read from the rollups now, not the rows: same answer.
    assert _summary(acme) == before
    # Rows after the watermark are added at read time.
    _query(acme, when=NOW - FOLD_LAG + timedelta(seconds=1), total_ms=400)
    Event.objects.create(
        owner=acme, session_id="a", event_id="2", type="click", t=2, received_at=NOW
    )
    after = _summary(acme)
    assert after["totals"]["queries"] == 4 and after["totals"]["events"] == 2
    assert after["days"][0]["average_duration_seconds"] == 30.0
    assert after["totals"]["cost_usd"] == pytest.approx(0.04)
    # A second fold counts nothing twice.
    rollups_fold(now=NOW + timedelta(minutes=5))
    assert _summary(acme) == after
    providers = cost_by_provider(start=DAY.date(), end=NOW.date())
    assert providers[0]["queries"] == 5 and providers[0]["cost_usd"] == pytest.approx(5.04)


def test_a_query_unfinished_at_fold_time_is_folded_once_it_finishes(make_owner):
    acme, _ = make_owner("acme")
    running = _query(acme, when=DAY, status="running", total_ms=None)
    rollups_fold(now=NOW)
    assert RollupWatermark.objects.get().unfinished_query_ids == [str(running.pk)]
    assert _summary(acme)["totals"]["queries"] == 1  # counted live meanwhile
    Query.objects.filter(pk=running.pk).update(status="completed", latency={"total_ms": 250})
    rollups_fold(now=NOW + timedelta(minutes=5))
    assert RollupWatermark.objects.get().unfinished_query_ids == []
    assert _summary(acme)["totals"]["queries"] == 1
    [day] = [row for row in latency_percentiles_by_day(start=DAY.date(), end=DAY.date())]
    assert (day["p50"], day["n"]) == (250.0, 1)


def test_a_fold_that_lost_the_race_writes_nothing(make_owner):
    acme, _ = make_owner("acme")
    _query(acme, when=DAY)
    rollups_fold(now=NOW)
    stale = RollupWatermark.objects.get()
    RollupWatermark.objects.filter(pk=stale.pk).update(
        folded_until=stale.folded_until + timedelta(seconds=1)
    )
    from analytics import services

    assert not services._claim(stale, cut=NOW + timedelta(minutes=1), unfinished=[])


def test_sketch_percentiles_are_within_one_percent():
    values = [float(v) for v in range(1, 2001)]
    sketch = LatencySketch()
    for value in values:
        sketch.add(value)
    merged = LatencySketch.from_document(sketch.as_document())
    for fraction in (0.5, 0.95, 0.99):
        exact = values[max(int(fraction * len(values) + 0.999999), 1) - 1]
        assert merged.percentile(fraction) == pytest.approx(exact, rel=RELATIVE_ACCURACY)
