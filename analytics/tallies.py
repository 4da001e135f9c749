"""Per-day tallies of queries, sessions and events: one definition for the rollup task
(which stores them) and for reads (which add the rows the task has not folded yet).

Days are UTC dates (TIME_ZONE is UTC). Only ``$gt``/``$gte`` ranges are sent to the
database: the ORM wraps ``$lt`` in not-null clauses that keep the embedded server off the
index, so upper bounds are applied here, over rows that are few by construction (those
past the watermark).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from analytics.sketch import LatencySketch
from queries.models import Query
from queries.selectors import EVALUATION_SESSION_PREFIX, users_queries
from sessions.models import Event, Session

QUERY_FIELDS = (
    "pk",
    "owner_id",
    "timestamp",
    "model_provider",
    "model_name",
    "status",
    "usage",
    "latency",
)
UNFINISHED = (Query.Status.PENDING, Query.Status.RUNNING)


def number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


@dataclass
class QueryTally:
    queries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    latency: LatencySketch = field(default_factory=LatencySketch)

    def add_row(self, row: dict[str, Any]) -> None:
        usage = row.get("usage") or {}
        self.queries += 1
        self.input_tokens += int(number(usage.get("input_tokens")))
        self.output_tokens += int(number(usage.get("output_tokens")))
        self.total_tokens += int(number(usage.get("total_tokens")))
        self.cost_usd += number(usage.get("cost_usd"))
        total_ms = (row.get("latency") or {}).get("total_ms")
        measured = isinstance(total_ms, (int, float)) and not isinstance(total_ms, bool)
        if row.get("status") == Query.Status.COMPLETED and measured:
            self.latency.add(float(total_ms))

    def merge(self, other: QueryTally) -> None:
        self.queries += other.queries
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.total_tokens += other.total_tokens
        self.cost_usd += other.cost_usd
        self.latency.merge(other.latency)


@dataclass
class ActivityTally:
    sessions: int = 0
    ended_sessions: int = 0
    duration_seconds: float = 0.0
    events: int = 0

    def merge(self, other: ActivityTally) -> None:
        self.sessions += other.sessions
        self.ended_sessions += other.ended_sessions
        self.duration_seconds += other.duration_seconds
        self.events += other.events


# (owner_id, day, provider, model) and (owner_id, day)
QueryKey = tuple[Any, date, str, str]
ActivityKey = tuple[Any, date]


def tally_queries(rows: Iterable[dict[str, Any]]) -> dict[QueryKey, QueryTally]:
    tallies: dict[QueryKey, QueryTally] = defaultdict(QueryTally)
    for row in rows:
        key = (row["owner_id"], row["timestamp"].date(), row["model_provider"], row["model_name"])
        tallies[key].add_row(row)
    return tallies


def queries_after(moment: datetime | None, *, until: datetime | None = None):
    """Query rows with ``timestamp`` after ``moment`` (and not after ``until``)."""
    rows = users_queries() if moment is None else users_queries().filter(timestamp__gt=moment)
    for row in rows.values(*QUERY_FIELDS):
        if until is None or row["timestamp"] <= until:
            yield row


def queries_by_id(ids: list[str]):
    if not ids:
        return []
    from bson import ObjectId

    return users_queries().filter(pk__in=[ObjectId(pk) for pk in ids]).values(*QUERY_FIELDS)


def tally_activity(
    *,
    started_after: datetime | None,
    ended_after: datetime | None,
    received_after: datetime | None,
    until: datetime | None = None,
) -> dict[ActivityKey, ActivityTally]:
    """Sessions started, sessions ended (counted on their start day) and events received
    after the given moments (and not after ``until``), per owner and day."""
    tallies: dict[ActivityKey, ActivityTally] = defaultdict(ActivityTally)

    def within(moment: datetime) -> bool:
        return until is None or moment <= until

    users_sessions = Session.objects.exclude(session_id__startswith=EVALUATION_SESSION_PREFIX)
    started = users_sessions
    if started_after is not None:
        started = started.filter(start_t__gt=started_after)
    for owner_id, start_t in started.values_list("owner_id", "start_t"):
        if within(start_t):
            tallies[(owner_id, start_t.date())].sessions += 1
    ended = (
        users_sessions.filter(end_t__isnull=False)
        if ended_after is None
        else users_sessions.filter(end_t__gt=ended_after)
    )
    for owner_id, start_t, end_t in ended.values_list("owner_id", "start_t", "end_t"):
        if end_t is not None and within(end_t):
            tally = tallies[(owner_id, start_t.date())]
            tally.ended_sessions += 1
            tally.duration_seconds += max((end_t - start_t).total_seconds(), 0.0)
    events = Event.objects.all()
    if received_after is not None:
        events = events.filter(received_at__gt=received_after)
    for owner_id, received_at in events.values_list("owner_id", "received_at"):
        if within(received_at):
            tallies[(owner_id, received_at.date())].events += 1
    return tallies
