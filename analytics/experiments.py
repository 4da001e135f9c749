"""Experiment results: per arm, each variant against control, and the split's check.

Read by the admin results page (``analytics.admin``) and
``GET /api/v1/experiments/{id}/results``; the statistics are in ``analytics.statistics``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, QuerySet
from django.db.models.fields.json import KeyTransform

from analytics import statistics
from analytics.online_scores import ScorerSummary, online_scores_attach
from analytics.sequential import StoppingDecision, stopping_decision
from analytics.tallies import number
from queries.models import Query
from queries.selectors import EVALUATION_SESSION_PREFIX, users_queries
from sessions.assignment import control_variant_name
from sessions.models import Experiment, Session

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
    # The stopping rule (``analytics.sequential``): better / worse / no difference yet,
    # safe to read at any look. None for control.
    stopping: StoppingDecision | None = None
    # Scorer name -> its live answers' scores in this arm (analytics.online_scores).
    online_scores: dict[str, ScorerSummary] = field(default_factory=dict)

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
        experiment_rows(
            Session.objects.exclude(session_id__startswith=EVALUATION_SESSION_PREFIX), experiment
        )
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
        experiment_rows(users_queries(), experiment)
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
        experiment_rows(users_queries(), experiment, field_name=EXCLUDED_FIELD)
        .annotate(excluded=KeyTransform(experiment.key, EXCLUDED_FIELD))
        .values_list("excluded", flat=True)
    ):
        result = results.get(row.get("variant")) if isinstance(row, dict) else None
        if result is None:
            continue
        reason = str(row.get("reason") or "unknown")
        result.excluded_queries += 1
        result.excluded_reasons[reason] = result.excluded_reasons.get(reason, 0) + 1
    online_scores_attach(experiment=experiment, arms=results)
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
        result.stopping = stopping_decision(
            successes=result.thumbs_up,
            n=result.rated,
            control_successes=baseline.thumbs_up,
            control_n=baseline.rated,
            comparisons=len(results) - 1,
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
