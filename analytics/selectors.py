"""Reads that combine queries with sessions: analytics, the dashboard, experiment results.

Here because both apps are read: ``queries`` depends on ``sessions`` and ``sessions``
never imports ``queries``. API reads take the calling ``owner``; ``owner=None`` is every
owner, for operators in Django admin only, behind its permission checks.

Day numbers come from the rollups (``analytics.models``: one document per owner, day and
model, however many rows) plus the rows the rollup task has not folded yet, so they are
exact at any moment and cost grows with the days asked for, not with rows stored.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Min, QuerySet
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from analytics import statistics
from analytics.models import ActivityDay, QueryDay, RollupWatermark
from analytics.services import WATERMARK
from analytics.sketch import LatencySketch
from analytics.tallies import (
    ActivityTally,
    QueryTally,
    number,
    queries_after,
    queries_by_id,
    tally_activity,
    tally_queries,
)
from llmplatform.core.errors import ApplicationError
from queries.models import Query
from sessions.assignment import control_variant_name
from sessions.models import Experiment, Session

MAX_ANALYTICS_DAYS = 366


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


def _owner_matches(owner, owner_id) -> bool:
    return owner is None or owner_id == owner.pk


def day_facts(*, owner, start: date, end: date) -> DayFacts:
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
    *, owner, start: date, end: date, facts: DayFacts | None = None
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


# ----- sessions: the per-session query numbers session metrics need -----


def session_query_stats(*, owner_id, session_id: str) -> tuple[int, datetime | None]:
    """How many queries the owner's session has, and when the first was asked."""
    stats = Query.objects.filter(owner_id=owner_id, session_id=session_id).aggregate(
        n=Count("id"), first=Min("timestamp")
    )
    return stats["n"] or 0, stats["first"]


# ----- experiment results -----

EXCLUDED_FIELD = "experiments_excluded"


@dataclass(frozen=True)
class Comparison:
    """One metric of a variant against control (``analytics.statistics``).

    ``status``: "baseline" (the control arm itself), "not_enough_data" (below the stated
    minimum in either arm), or "estimated" (``difference`` with its 95% interval).
    """

    status: str
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def significant(self) -> bool:
        return self.ci_low is not None and (self.ci_low > 0 or self.ci_high < 0)


BASELINE = Comparison(status="baseline")
NOT_ENOUGH_DATA = Comparison(status="not_enough_data")


def _comparison(interval: statistics.Interval | None) -> Comparison:
    if interval is None:
        return NOT_ENOUGH_DATA
    return Comparison(
        status="estimated",
        difference=round(interval.difference, 6),
        ci_low=round(interval.low, 6),
        ci_high=round(interval.high, 6),
    )


@dataclass
class VariantResult:
    name: str
    weight: float
    is_control: bool
    sessions: int = 0
    # Queries exposed to the experiment in this arm.
    queries: int = 0
    # Queries of this arm's sessions not exposed, and why ("request_set:temperature": n).
    excluded_queries: int = 0
    excluded_reasons: dict[str, int] = field(default_factory=dict)
    rated: int = 0
    thumbs_up: int = 0
    errors: int = 0
    average_latency_ms: float | None = None
    # Exact nearest-rank percentiles of the variant's answers' total latency.
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    total_tokens: int = 0
    cost_usd: float = 0.0
    # Against control: the thumbs-up rate (Newcombe), cost per query and latency (Welch).
    thumbs_up_comparison: Comparison = NOT_ENOUGH_DATA
    cost_comparison: Comparison = NOT_ENOUGH_DATA
    latency_comparison: Comparison = NOT_ENOUGH_DATA

    @property
    def thumbs_up_rate(self) -> float | None:
        return self.thumbs_up / self.rated if self.rated else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.queries if self.queries else None

    @property
    def tokens_per_query(self) -> float | None:
        return round(self.total_tokens / self.queries, 1) if self.queries else None

    @property
    def cost_per_query_usd(self) -> float | None:
        return round(self.cost_usd / self.queries, 8) if self.queries else None

    # The thumbs-up difference, flat, as the page and API showed it before.
    @property
    def difference(self) -> float | None:
        return self.thumbs_up_comparison.difference

    @property
    def ci_low(self) -> float | None:
        return self.thumbs_up_comparison.ci_low

    @property
    def ci_high(self) -> float | None:
        return self.thumbs_up_comparison.ci_high

    @property
    def significant(self) -> bool:
        return self.thumbs_up_comparison.significant


@dataclass
class ExperimentReport:
    """An experiment's results: per arm, and whether the split of sessions is trustworthy."""

    control: str | None
    variants: list[VariantResult]
    # Chi-square of sessions per arm against the weights; None without sessions.
    sample_ratio: statistics.SampleRatio | None = None

    @property
    def srm(self) -> bool:
        """A sample-ratio mismatch: p < SRM_P_VALUE. No difference should be trusted."""
        return self.sample_ratio is not None and self.sample_ratio.mismatch

    @property
    def minimums(self) -> dict[str, float]:
        return {
            "rated_per_arm": statistics.MIN_RATED_PER_ARM,
            "queries_per_arm": statistics.MIN_QUERIES_PER_ARM,
            "srm_p_value": statistics.SRM_P_VALUE,
        }


def in_experiment(rows: QuerySet, key: str, *, field_name: str = "experiments") -> QuerySet:
    """The rows with ``experiments.<key>`` set, as ``{"experiments.<key>": {"$exists": true}}``.

    ``has_key`` is sent as an ``$expr`` that no index can answer; an explicit KeyTransform
    (a key holding "__" would be split by a kwargs lookup) tested for ``isnull=False`` is
    the plain path the sparse ``experiments.<key>`` index serves
    (``analytics.services.experiment_indexes_ensure``). ``field_name`` reads another
    key -> arm field the same way (``experiments_excluded`` of queries).
    """
    return rows.alias(_experiment_variant=KeyTransform(key, field_name)).filter(
        _experiment_variant__isnull=False
    )


def experiment_rows(
    rows: QuerySet, experiment: Experiment, *, field_name: str = "experiments"
) -> QuerySet:
    """The rows (sessions or queries) exposed to ``experiment``: keys are per owner, so an
    owner's experiment counts only that owner's rows, and an operator-wide one every
    owner's except those of owners whose own experiment has the same key."""
    rows = in_experiment(rows, experiment.key, field_name=field_name)
    if experiment.owner_id is not None:
        return rows.filter(owner_id=experiment.owner_id)
    own_keys = Experiment.objects.filter(key=experiment.key, owner__isnull=False)
    owners = list(own_keys.values_list("owner_id", flat=True))
    return rows.exclude(owner_id__in=owners) if owners else rows


def nearest_rank(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of a non-empty, sorted list."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class _ArmValues:
    latencies: list[float] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)


def experiment_report(*, experiment: Experiment) -> ExperimentReport:
    """Per arm: exposure (sessions, queries, excluded queries and why), thumbs-up, errors,
    latency, tokens and cost; each variant against control with a 95% interval; and the
    sample-ratio-mismatch check of the sessions' split.

    Control is the variant named "control", else the first. A query counts in an arm
    when it was exposed (``Query.experiments``); the rate compares thumbs-up among rated
    queries, cost the per-query cost of every exposed query (0 when none was recorded,
    e.g. a failed run), latency the ``total_ms`` of those that have one.
    """
    variants = experiment.variants or []
    if not variants:
        return ExperimentReport(control=None, variants=[])
    control = control_variant_name(variants)
    results = {
        variant["name"]: VariantResult(
            name=variant["name"],
            weight=float(variant["weight"]),
            is_control=variant["name"] == control,
        )
        for variant in variants
    }
    for row in (
        experiment_rows(Session.objects.all(), experiment)
        .annotate(variant=KeyTransform(experiment.key, "experiments"))
        .values("variant")
        .annotate(n=Count("id"))
        .order_by("variant")
    ):
        if row["variant"] in results:
            results[row["variant"]].sessions = row["n"]
    values: dict[str, _ArmValues] = defaultdict(_ArmValues)
    # One pass over the exposed queries: the intervals need every value, not sums.
    for variant, status, rating, total_ms, tokens, cost in (
        experiment_rows(Query.objects.all(), experiment)
        .annotate(variant=KeyTransform(experiment.key, "experiments"))
        .values_list(
            "variant",
            "status",
            "feedback_rating",
            "latency__total_ms",
            "usage__total_tokens",
            "usage__cost_usd",
        )
    ):
        result = results.get(variant)
        if result is None:
            continue
        result.queries += 1
        result.rated += rating in (1, -1)
        result.thumbs_up += rating == 1
        result.errors += status == Query.Status.FAILED
        result.total_tokens += int(number(tokens))
        result.cost_usd += number(cost)
        values[variant].costs.append(number(cost))
        if isinstance(total_ms, int | float):
            values[variant].latencies.append(float(total_ms))
    for row in (
        experiment_rows(Query.objects.all(), experiment, field_name=EXCLUDED_FIELD)
        .annotate(excluded=KeyTransform(experiment.key, EXCLUDED_FIELD))
        .values_list("excluded", flat=True)
    ):
        result = results.get(row.get("variant")) if isinstance(row, dict) else None
        if result is None:
            continue
        reason = str(row.get("reason") or "unknown")
        result.excluded_queries += 1
        result.excluded_reasons[reason] = result.excluded_reasons.get(reason, 0) + 1
    for name, arm in values.items():
        result = results[name]
        result.cost_usd = round(result.cost_usd, 6)
        if arm.latencies:
            latencies = sorted(arm.latencies)
            result.average_latency_ms = round(math.fsum(latencies) / len(latencies), 1)
            result.latency_p50_ms = round(nearest_rank(latencies, 0.50), 1)
            result.latency_p95_ms = round(nearest_rank(latencies, 0.95), 1)
    baseline = results[control]
    for result in results.values():
        if result.is_control:
            result.thumbs_up_comparison = result.cost_comparison = BASELINE
            result.latency_comparison = BASELINE
            continue
        result.thumbs_up_comparison = _comparison(
            statistics.proportion_difference(
                successes=result.thumbs_up,
                n=result.rated,
                control_successes=baseline.thumbs_up,
                control_n=baseline.rated,
            )
        )
        result.cost_comparison = _comparison(
            statistics.welch_difference(values[result.name].costs, values[control].costs)
        )
        result.latency_comparison = _comparison(
            statistics.welch_difference(values[result.name].latencies, values[control].latencies)
        )
    arms = list(results.values())
    return ExperimentReport(
        control=control,
        variants=arms,
        sample_ratio=statistics.sample_ratio(
            observed=[arm.sessions for arm in arms], weights=[arm.weight for arm in arms]
        ),
    )


def experiment_results(*, experiment: Experiment) -> list[VariantResult]:
    """The per-arm rows of ``experiment_report``."""
    return experiment_report(experiment=experiment).variants
