"""Reads of sessions, events, analytics and experiment results.

API reads take the calling ``owner`` and never see another owner's documents. The
operator reads (``owner=None``, experiment results, the dashboard) are for Django admin
only, behind its permission checks.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from django.db.models import Avg, Count, F, Min, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import TruncDate
from django.utils import timezone

from llmplatform.core.errors import ApplicationError, NotFound
from queries.models import Query
from sessions.assignment import control_variant_name
from sessions.models import Event, Experiment, Session

DEFAULT_EVENTS_LIMIT = 100
MAX_EVENTS_LIMIT = 500
MAX_ANALYTICS_DAYS = 366
# A session shorter than this counts as this long for events per minute, so a burst of
# clicks in the first seconds does not report an absurd engagement rate.
MIN_ENGAGEMENT_WINDOW_S = 60.0
Z_95 = 1.959963984540054


def session_get(*, owner, session_id: str) -> Session:
    """The owner's session. Raises NotFound (also for other owners' sessions)."""
    try:
        return Session.objects.get(owner=owner, session_id=session_id)
    except Session.DoesNotExist:
        raise NotFound(
            f'Session "{session_id}"',
            extra={"hint": "Start it with POST /api/v1/session/start first."},
        ) from None


@dataclass
class SessionMetrics:
    duration_seconds: float
    query_count: int
    event_count: int
    event_counts_by_type: dict[str, int]
    time_to_first_query_seconds: float | None
    events_per_minute: float
    first_query_at: datetime | None = None

    def as_document(self) -> dict[str, Any]:
        """JSON-safe: what the API returns and what ``session_end`` stores."""
        return {
            "duration_seconds": self.duration_seconds,
            "query_count": self.query_count,
            "event_count": self.event_count,
            "event_counts_by_type": self.event_counts_by_type,
            "time_to_first_query_seconds": self.time_to_first_query_seconds,
            "events_per_minute": self.events_per_minute,
        }


def session_metrics(*, session: Session, now: datetime | None = None) -> SessionMetrics:
    """Live metrics: from the session's events and the owner's queries in that session."""
    end = session.end_t or now or timezone.now()
    duration = max((end - session.start_t).total_seconds(), 0.0)
    by_type = {
        row["type"]: row["n"]
        for row in Event.objects.filter(owner_id=session.owner_id, session_id=session.session_id)
        .values("type")
        .annotate(n=Count("id"))
        .order_by("type")
    }
    queries = Query.objects.filter(owner_id=session.owner_id, session_id=session.session_id)
    query_stats = queries.aggregate(n=Count("id"), first=Min("timestamp"))
    first_query_at = query_stats["first"]
    event_count = sum(by_type.values())
    return SessionMetrics(
        duration_seconds=round(duration, 3),
        query_count=query_stats["n"] or 0,
        event_count=event_count,
        event_counts_by_type=by_type,
        time_to_first_query_seconds=(
            round(max((first_query_at - session.start_t).total_seconds(), 0.0), 3)
            if first_query_at
            else None
        ),
        events_per_minute=round(event_count / (max(duration, MIN_ENGAGEMENT_WINDOW_S) / 60), 3),
        first_query_at=first_query_at,
    )


def session_metrics_document(*, session: Session) -> dict[str, Any]:
    """Final metrics for an ended session (stored when it ended), live ones otherwise."""
    if session.is_ended and session.metrics:
        return session.metrics
    return session_metrics(session=session).as_document()


@dataclass
class EventPage:
    events: list[Event]
    next_cursor: str | None


def _cursor_encode(event: Event) -> str:
    raw = json.dumps([event.t, str(event.pk)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[int, ObjectId]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        t, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if isinstance(t, bool) or not isinstance(t, int):
            raise ValueError("t")
        return t, ObjectId(pk)
    except (ValueError, TypeError, InvalidId, binascii.Error, UnicodeDecodeError):
        raise ApplicationError(
            "events_cursor is not a cursor this API returned; pass the previous page's "
            "next_cursor unchanged.",
            code="invalid_cursor",
            status=400,
        ) from None


def session_events_page(*, session: Session, limit: int, cursor: str | None) -> EventPage:
    """The session's events in client time order (ties by arrival), one page after ``cursor``."""
    events = Event.objects.filter(owner_id=session.owner_id, session_id=session.session_id)
    if cursor:
        t, pk = _cursor_decode(cursor)
        # Keyset pagination: stable while events keep arriving, no skip over large sessions.
        events = events.filter(Q(t__gt=t) | Q(t=t, pk__gt=pk))
    page = list(events.order_by("t", "pk")[: limit + 1])
    has_more = len(page) > limit
    page = page[:limit]
    return EventPage(events=page, next_cursor=_cursor_encode(page[-1]) if has_more else None)


@dataclass
class ExperimentAssignment:
    """What the experiments change for one session's queries."""

    # Experiment key -> variant name, only for experiments still running.
    variants: dict[str, str] = field(default_factory=dict)
    # Merged overrides: model_provider, model_name, system_prompt, temperature.
    overrides: dict[str, Any] = field(default_factory=dict)


def experiment_overrides_for_session(*, owner, session_id: str) -> ExperimentAssignment:
    """The variants a session was exposed to and what they change. Raises nothing.

    The agent pipeline calls this before each query and stores ``variants`` on the
    Query. A stopped experiment no longer changes anything. When two running
    experiments override the same setting, the one started first wins, so starting a
    new experiment never silently takes over an older one's users.
    """
    assigned = (
        Session.objects.filter(owner=owner, session_id=session_id)
        .values_list("experiments", flat=True)
        .first()
    )
    if not assigned:
        return ExperimentAssignment()
    running = Experiment.objects.filter(
        key__in=list(assigned), status=Experiment.Status.RUNNING
    ).order_by("started_at", "key")
    result = ExperimentAssignment()
    for experiment in running:
        variant_name = assigned[experiment.key]
        result.variants[experiment.key] = variant_name
        for variant in experiment.variants:
            if variant.get("name") == variant_name:
                for key, value in (variant.get("overrides") or {}).items():
                    result.overrides.setdefault(key, value)
    return result


# ----- analytics -----


def analytics_range(*, start: str | None, end: str | None) -> tuple[date, date]:
    """Parse ``from``/``to`` (ISO dates, inclusive, UTC). Raises ApplicationError 400."""
    today = timezone.now().date()

    def parse(value: str | None, name: str, default: date) -> date:
        if value in (None, ""):
            return default
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ApplicationError(
                f'"{name}" must be an ISO date like 2026-01-31, not "{value[:40]}".',
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


def _day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    return (
        datetime.combine(start, time.min, tzinfo=tz),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz),
    )


def _scoped(queryset: QuerySet, owner) -> QuerySet:
    return queryset if owner is None else queryset.filter(owner=owner)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def analytics_summary(*, owner, start: date, end: date) -> dict[str, Any]:
    """Per day (UTC): sessions, queries, events, average duration, tokens and cost by model.

    ``owner=None`` is every owner (operators only).
    """
    lower, upper = _day_bounds(start, end)
    sessions = (
        _scoped(Session.objects.filter(start_t__gte=lower, start_t__lt=upper), owner)
        .annotate(day=TruncDate("start_t"))
        .values("day")
        .annotate(n=Count("id"))
        .order_by("day")
    )
    durations = (
        _scoped(
            Session.objects.filter(start_t__gte=lower, start_t__lt=upper, end_t__isnull=False),
            owner,
        )
        .annotate(day=TruncDate("start_t"))
        .values("day")
        .annotate(avg=Avg(F("end_t") - F("start_t")), n=Count("id"))
        .order_by("day")
    )
    events = (
        _scoped(Event.objects.filter(received_at__gte=lower, received_at__lt=upper), owner)
        .annotate(day=TruncDate("received_at"))
        .values("day")
        .annotate(n=Count("id"))
        .order_by("day")
    )
    queries = (
        _scoped(Query.objects.filter(timestamp__gte=lower, timestamp__lt=upper), owner)
        .annotate(day=TruncDate("timestamp"))
        .values("day", "model_provider", "model_name")
        .annotate(
            n=Count("id"),
            input_tokens=Sum("usage__input_tokens"),
            output_tokens=Sum("usage__output_tokens"),
            total_tokens=Sum("usage__total_tokens"),
            cost_usd=Sum("usage__cost_usd"),
        )
        .order_by("day", "model_provider", "model_name")
    )
    days: dict[date, dict[str, Any]] = {}
    day = start
    while day <= end:
        days[day] = {
            "date": day.isoformat(),
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
        day += timedelta(days=1)
    for row in sessions:
        days[row["day"]]["sessions"] = row["n"]
    for row in durations:
        average = row["avg"]
        seconds = average.total_seconds() if isinstance(average, timedelta) else average / 1000
        days[row["day"]]["average_duration_seconds"] = round(seconds, 3)
        days[row["day"]]["ended_sessions"] = row["n"]
    for row in events:
        days[row["day"]]["events"] = row["n"]
    for row in queries:
        bucket = days[row["day"]]
        tokens = {
            key: int(_number(row[key])) for key in ("input_tokens", "output_tokens", "total_tokens")
        }
        cost = round(_number(row["cost_usd"]), 6)
        bucket["queries"] += row["n"]
        for key, value in tokens.items():
            bucket[key] += value
        bucket["cost_usd"] = round(bucket["cost_usd"] + cost, 6)
        bucket["by_model"].append(
            {
                "provider": row["model_provider"],
                "model": row["model_name"],
                "queries": row["n"],
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


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    rank = max(math.ceil(fraction * len(sorted_values)), 1)
    return sorted_values[rank - 1]


def latency_percentiles_by_day(*, start: date, end: date) -> list[dict[str, Any]]:
    """p50/p95 of total latency (ms) of completed queries per day, every owner (operators)."""
    lower, upper = _day_bounds(start, end)
    by_day: dict[date, list[float]] = defaultdict(list)
    rows = (
        Query.objects.filter(timestamp__gte=lower, timestamp__lt=upper, status="completed")
        .annotate(day=TruncDate("timestamp"))
        .values_list("day", "latency__total_ms")
    )
    for day, total_ms in rows:
        if isinstance(total_ms, (int, float)) and not isinstance(total_ms, bool):
            by_day[day].append(float(total_ms))
    result = []
    day = start
    while day <= end:
        values = sorted(by_day.get(day, []))
        result.append(
            {
                "date": day.isoformat(),
                "p50": _percentile(values, 0.50),
                "p95": _percentile(values, 0.95),
                "n": len(values),
            }
        )
        day += timedelta(days=1)
    return result


def cost_by_provider(*, start: date, end: date) -> list[dict[str, Any]]:
    """Queries, tokens and cost per provider over the range, every owner (operators)."""
    lower, upper = _day_bounds(start, end)
    rows = (
        Query.objects.filter(timestamp__gte=lower, timestamp__lt=upper)
        .values("model_provider")
        .annotate(n=Count("id"), tokens=Sum("usage__total_tokens"), cost_usd=Sum("usage__cost_usd"))
        .order_by("model_provider")
    )
    return [
        {
            "provider": row["model_provider"] or "(none)",
            "queries": row["n"],
            "total_tokens": int(_number(row["tokens"])),
            "cost_usd": round(_number(row["cost_usd"]), 6),
        }
        for row in rows
    ]


# ----- experiment results -----


@dataclass
class VariantResult:
    name: str
    weight: float
    is_control: bool
    sessions: int = 0
    queries: int = 0
    rated: int = 0
    thumbs_up: int = 0
    average_latency_ms: float | None = None
    total_tokens: int = 0
    cost_usd: float = 0.0
    # Thumbs-up rate minus control's, with its 95% confidence interval.
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def thumbs_up_rate(self) -> float | None:
        return self.thumbs_up / self.rated if self.rated else None

    @property
    def significant(self) -> bool:
        return self.ci_low is not None and (self.ci_low > 0 or self.ci_high < 0)


def difference_interval(
    *, up_a: int, n_a: int, up_b: int, n_b: int, z: float = Z_95
) -> tuple[float, float, float] | None:
    """p_a - p_b with its normal-approximation (Wald) interval; None without data."""
    if not n_a or not n_b:
        return None
    p_a, p_b = up_a / n_a, up_b / n_b
    standard_error = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    difference = p_a - p_b
    return difference, difference - z * standard_error, difference + z * standard_error


def experiment_results(*, experiment: Experiment) -> list[VariantResult]:
    """Per variant: exposure, queries, thumbs-up, latency, tokens, cost; CI vs control."""
    variants = experiment.variants or []
    if not variants:
        return []
    control = control_variant_name(variants)
    results = {
        variant["name"]: VariantResult(
            name=variant["name"],
            weight=float(variant["weight"]),
            is_control=variant["name"] == control,
        )
        for variant in variants
    }
    # An explicit KeyTransform: a key holding "__" would be split by a kwargs lookup.
    variant_of_session = KeyTransform(experiment.key, "experiments")
    for row in (
        Session.objects.filter(experiments__has_key=experiment.key)
        .annotate(variant=variant_of_session)
        .values("variant")
        .annotate(n=Count("id"))
        .order_by("variant")
    ):
        if row["variant"] in results:
            results[row["variant"]].sessions = row["n"]
    for row in (
        Query.objects.filter(experiments__has_key=experiment.key)
        .annotate(variant=KeyTransform(experiment.key, "experiments"))
        .values("variant")
        .annotate(
            n=Count("id"),
            rated=Count("id", filter=Q(feedback_rating__in=[1, -1])),
            up=Count("id", filter=Q(feedback_rating=1)),
            latency=Avg("latency__total_ms"),
            tokens=Sum("usage__total_tokens"),
            cost=Sum("usage__cost_usd"),
        )
        .order_by("variant")
    ):
        result = results.get(row["variant"])
        if result is None:
            continue
        result.queries = row["n"]
        result.rated = row["rated"]
        result.thumbs_up = row["up"]
        result.average_latency_ms = round(row["latency"], 1) if row["latency"] is not None else None
        result.total_tokens = int(_number(row["tokens"]))
        result.cost_usd = round(_number(row["cost"]), 6)
    baseline = results[control]
    for result in results.values():
        if result.is_control:
            continue
        interval = difference_interval(
            up_a=result.thumbs_up, n_a=result.rated, up_b=baseline.thumbs_up, n_b=baseline.rated
        )
        if interval is not None:
            result.difference, result.ci_low, result.ci_high = (
                round(value, 4) for value in interval
            )
    return list(results.values())
