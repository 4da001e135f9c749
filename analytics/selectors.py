"""Reads that combine queries with sessions: analytics summaries and the dashboard.

Here because both apps are read: ``queries`` depends on ``sessions`` and ``sessions``
never imports ``queries``. API reads take the calling ``owner``; ``owner=None`` is every
owner, for operators in Django admin only, behind its permission checks. Experiment
results are in ``analytics.experiments``.

Day numbers come from the rollups (``analytics.models``: one document per owner, day and
model, however many rows) plus the rows the rollup task has not folded yet, so they are
exact at any moment and cost grows with the days asked for, not with rows stored.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bson import ObjectId
from django.contrib.auth.models import User
from django.utils import timezone

from analytics.models import ActivityDay, QueryDay, RollupWatermark
from analytics.services import WATERMARK
from analytics.sketch import LatencySketch
from analytics.tallies import (
    ActivityTally,
    QueryTally,
    queries_after,
    queries_by_id,
    tally_activity,
    tally_queries,
)
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import TraceSpan

MAX_ANALYTICS_DAYS = 366
# The dashboard's slowest steps: this many span names per day.
SLOWEST_STEPS_PER_DAY = 10


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def analytics_range(*, start: str | None, end: str | None) -> tuple[date, date]:
    """Parse ``from``/``to`` (ISO dates, inclusive, UTC). Raises ApplicationError 400."""
    today = timezone.now().date()

    def parse(value: str | None, name: str, default: date) -> date:
        if value is None:
            return default
        try:
            # Exactly YYYY-MM-DD, as the schema's "date" format says: fromisoformat alone
            # also reads 20260131 and week dates.
            if not ISO_DATE.fullmatch(value):
                raise ValueError(value)
            return date.fromisoformat(value)
        except ValueError:
            raise ApplicationError(
                f'"{name}" must be an ISO date like 2026-01-31, not "{value[:40]}"; leave '
                "it out for the default.",
                code="invalid_date",
                status=400,
            ) from None

    end_day = parse(end, "to", today)
    start_day = parse(start, "from", end_day - timedelta(days=6))
    if start_day > end_day:
        raise ApplicationError('"from" is after "to".', code="invalid_date_range", status=400)
    if (end_day - start_day).days + 1 > MAX_ANALYTICS_DAYS:
        raise ApplicationError(
            f"The range is {(end_day - start_day).days + 1} days; the limit is "
            f"{MAX_ANALYTICS_DAYS}.",
            code="date_range_too_large",
            status=400,
        )
    return start_day, end_day


# ----- day facts: rollups plus what they have not folded yet -----


@dataclass
class DayFacts:
    queries: dict[tuple[date, str, str], QueryTally]
    activity: dict[date, ActivityTally]


def _owner_matches(owner: User | None, owner_id: ObjectId) -> bool:
    return owner is None or owner_id == owner.pk


def day_facts(*, owner: User | None, start: date, end: date) -> DayFacts:
    """Per day (and provider/model for queries) over [start, end], one owner or all."""
    queries: dict[tuple[date, str, str], QueryTally] = defaultdict(QueryTally)
    activity: dict[date, ActivityTally] = defaultdict(ActivityTally)
    watermark = RollupWatermark.objects.filter(name=WATERMARK).first()
    in_range = {"day__gte": start, "day__lte": end}
    owner_filter = {} if owner is None else {"owner": owner}
    if watermark is not None:
        for rollup in QueryDay.objects.filter(**in_range, **owner_filter):
            queries[(rollup.day, rollup.model_provider, rollup.model_name)].merge(
                QueryTally(
                    queries=rollup.queries,
                    input_tokens=rollup.input_tokens,
                    output_tokens=rollup.output_tokens,
                    total_tokens=rollup.total_tokens,
                    cost_usd=rollup.cost_usd,
                    latency=LatencySketch.from_document(rollup.latency),
                )
            )
        for rollup in ActivityDay.objects.filter(**in_range, **owner_filter):
            activity[rollup.day].merge(
                ActivityTally(
                    sessions=rollup.sessions,
                    ended_sessions=rollup.ended_sessions,
                    duration_seconds=rollup.duration_seconds,
                    events=rollup.events,
                )
            )
    folded_until = watermark.folded_until if watermark else None
    unfolded = [
        *queries_after(folded_until),
        *queries_by_id(watermark.unfinished_query_ids if watermark else []),
    ]
    for (owner_id, day, provider, model), tally in tally_queries(unfolded).items():
        if start <= day <= end and _owner_matches(owner, owner_id):
            queries[(day, provider, model)].merge(tally)
    live_activity = tally_activity(
        started_after=folded_until, ended_after=folded_until, received_after=folded_until
    )
    for (owner_id, day), tally in live_activity.items():
        if start <= day <= end and _owner_matches(owner, owner_id):
            activity[day].merge(tally)
    return DayFacts(queries=queries, activity=activity)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def analytics_summary(
    *, owner: User | None, start: date, end: date, facts: DayFacts | None = None
) -> dict[str, Any]:
    """Per day (UTC): sessions, queries, events, average duration, tokens and cost by model.

    ``owner=None`` is every owner (operators only).
    """
    facts = facts or day_facts(owner=owner, start=start, end=end)
    days: dict[date, dict[str, Any]] = {}
    for day in _days(start, end):
        activity = facts.activity.get(day, ActivityTally())
        days[day] = {
            "date": day.isoformat(),
            "sessions": activity.sessions,
            "ended_sessions": activity.ended_sessions,
            "queries": 0,
            "events": activity.events,
            "average_duration_seconds": (
                round(activity.duration_seconds / activity.ended_sessions, 3)
                if activity.ended_sessions
                else None
            ),
            "input_tokens": 0,
            "output_tokens": 0,
            "total_tokens": 0,
            "cost_usd": 0.0,
            "by_model": [],
        }
    for (day, provider, model), tally in sorted(facts.queries.items()):
        bucket = days[day]
        cost = round(tally.cost_usd, 6)
        tokens = {
            "input_tokens": tally.input_tokens,
            "output_tokens": tally.output_tokens,
            "total_tokens": tally.total_tokens,
        }
        bucket["queries"] += tally.queries
        for key, value in tokens.items():
            bucket[key] += value
        bucket["cost_usd"] = round(bucket["cost_usd"] + cost, 6)
        bucket["by_model"].append(
            {
                "provider": provider,
                "model": model,
                "queries": tally.queries,
                **tokens,
                "cost_usd": cost,
            }
        )
    rows = list(days.values())
    totals = {
        key: sum(row[key] for row in rows)
        for key in (
            "sessions",
            "queries",
            "events",
            "input_tokens",
            "output_tokens",
            "total_tokens",
        )
    }
    totals["cost_usd"] = round(sum(row["cost_usd"] for row in rows), 6)
    return {"from": start.isoformat(), "to": end.isoformat(), "totals": totals, "days": rows}


def latency_percentiles_by_day(
    *, start: date, end: date, facts: DayFacts | None = None
) -> list[dict[str, Any]]:
    """p50/p95 of total latency (ms) of completed queries per day, every owner (operators).

    Within 1% of the exact nearest-rank percentile (analytics.sketch).
    """
    facts = facts or day_facts(owner=None, start=start, end=end)
    sketches: dict[date, LatencySketch] = defaultdict(LatencySketch)
    for (day, _provider, _model), tally in facts.queries.items():
        sketches[day].merge(tally.latency)
    return [
        {
            "date": day.isoformat(),
            "p50": sketches[day].percentile(0.50),
            "p95": sketches[day].percentile(0.95),
            "n": sketches[day].count,
        }
        for day in _days(start, end)
    ]


def cost_by_provider(
    *, start: date, end: date, facts: DayFacts | None = None
) -> list[dict[str, Any]]:
    """Queries, tokens and cost per provider over the range, every owner (operators)."""
    facts = facts or day_facts(owner=None, start=start, end=end)
    by_provider: dict[str, QueryTally] = defaultdict(QueryTally)
    for (_day, provider, _model), tally in facts.queries.items():
        by_provider[provider].merge(tally)
    return [
        {
            "provider": provider or "(none)",
            "queries": tally.queries,
            "total_tokens": tally.total_tokens,
            "cost_usd": round(tally.cost_usd, 6),
        }
        for provider, tally in sorted(by_provider.items())
    ]


def slowest_steps_by_day(
    *, start: date, end: date, limit: int = SLOWEST_STEPS_PER_DAY
) -> list[dict[str, Any]]:
    """Per UTC day (newest first), the ``limit`` span names with the highest p95 duration
    in the built-in trace store, every owner (operators): ``date``, ``name``, ``count``,
    ``p50_ms``, ``p95_ms`` (within 1%, analytics.sketch), ``max_ms``.

    Reads the stored spans of the range, three fields each: the store keeps only
    TRACE_RETENTION_DAYS of them (a TTL index), which bounds the read; days before that
    have no rows. A trace sampled out (TRACE_SAMPLE_RATE) is not counted.
    """
    since = datetime.combine(start, time.min, tzinfo=UTC)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    sketches: dict[tuple[date, str], LatencySketch] = defaultdict(LatencySketch)
    spans = TraceSpan.objects.filter(started_at__gte=since, started_at__lt=until)
    for name, started_at, duration_ms in spans.values_list(
        "name", "started_at", "duration_ms"
    ).iterator():
        sketches[(started_at.astimezone(UTC).date(), name)].add(duration_ms)
    rows = [
        {
            "date": day.isoformat(),
            "name": name,
            "count": sketch.count,
            "p50_ms": sketch.percentile(0.50),
            "p95_ms": sketch.percentile(0.95),
            "max_ms": sketch.maximum,
        }
        for (day, name), sketch in sketches.items()
    ]
    rows.sort(key=lambda row: (row["date"], row["p95_ms"]), reverse=True)
    ranked: list[dict[str, Any]] = []
    shown: dict[str, int] = defaultdict(int)
    for row in rows:
        if shown[row["date"]] < limit:
            shown[row["date"]] += 1
            ranked.append(row)
    return ranked
