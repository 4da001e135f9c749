"""Reads of online scores: an experiment's live answers scored in the background
(``evaluations.online_scoring`` writes them through ``analytics.services``).

Per arm and scorer the results show how many answers were scored and their mean score
with a 95% Student t interval (clipped to [0, 1]; none below two scores), beside the
thumbs-up rate. An answer a scorer could not score (a failed judge) is counted as
``unscored`` and left out of the mean.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Sum

from analytics import statistics
from analytics.models import ExperimentScore
from sessions.models import Experiment


@dataclass(frozen=True)
class ScorerSummary:
    """One scorer's live scores in one arm."""

    n: int
    unscored: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    cost_usd: float


def mean_interval(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high) of ``values`` with a 95% t interval clipped to [0, 1]; the
    interval is None below two values."""
    if not values:
        return None, None, None
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None, None
    variance = math.fsum((value - mean) ** 2 for value in values) / (len(values) - 1)
    half = statistics.t_quantile(0.975, len(values) - 1) * math.sqrt(variance / len(values))
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def _summary(scores: list[float | None], costs: list[float]) -> ScorerSummary:
    values = [score for score in scores if score is not None]
    mean, low, high = mean_interval(values)
    return ScorerSummary(
        n=len(values),
        unscored=len(scores) - len(values),
        mean=None if mean is None else round(mean, 4),
        ci_low=None if low is None else round(low, 4),
        ci_high=None if high is None else round(high, 4),
        cost_usd=round(math.fsum(costs), 10),
    )


def arm_scores(*, experiment: Experiment) -> dict[str, dict[str, ScorerSummary]]:
    """Variant -> scorer name -> its summary (arms and scorers without scores absent)."""
    scores: dict[tuple[str, str], list[float | None]] = defaultdict(list)
    costs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for variant, scorer, score, cost in ExperimentScore.objects.filter(
        experiment=experiment
    ).values_list("variant", "scorer", "score", "cost_usd"):
        scores[variant, scorer].append(score)
        costs[variant, scorer].append(cost or 0.0)
    arms: dict[str, dict[str, ScorerSummary]] = defaultdict(dict)
    for (variant, scorer), values in sorted(scores.items()):
        arms[variant][scorer] = _summary(values, costs[variant, scorer])
    return dict(arms)


def online_scores_attach(*, experiment: Experiment, arms: Mapping[str, Any]) -> None:
    """Set ``online_scores`` of each arm's result (``analytics.experiments.VariantResult``)."""
    for variant, scorers in arm_scores(experiment=experiment).items():
        if variant in arms:
            arms[variant].online_scores = scorers


def scores_spent(*, experiment: Experiment, start: datetime, end: datetime) -> float:
    """USD the experiment's scorers (its judges) spent from ``start`` to before ``end``."""
    spent = ExperimentScore.objects.filter(
        experiment=experiment, created_at__gte=start, created_at__lt=end
    ).aggregate(total=Sum("cost_usd"))["total"]
    return float(spent or 0.0)


def scored_pairs(*, experiment: Experiment, query_ids: Iterable[Any]) -> set[tuple[str, str]]:
    """(query id, scorer name) of the given queries' stored scores."""
    return {
        (str(query_id), scorer)
        for query_id, scorer in ExperimentScore.objects.filter(
            experiment=experiment, query_id__in=list(query_ids)
        ).values_list("query_id", "scorer")
    }
