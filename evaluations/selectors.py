"""Reads of evaluations, always scoped to the calling owner, and a run's report.

A scorer's mean comes with a 95% percentile-bootstrap interval (BOOTSTRAP_RESAMPLES
resamples of the answers, seeded so a report reads the same every time): scores are
bounded in [0, 1] and often piled at 0 and 1, where a t interval can leave the range.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from bson import ObjectId
from bson.errors import InvalidId
from django.db.models import QuerySet
from django.utils import timezone

from analytics.online_scores import scores_spent
from evaluations.models import (
    Dataset,
    DatasetItem,
    EvaluationResult,
    EvaluationRun,
    OnlineScoring,
)
from evaluations.online_scoring import day_bounds
from evaluations.scorers import scorer_name
from llmplatform.core.errors import NotFound
from sessions.models import Experiment

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20
WORST_ITEMS = 5


def dataset_list(*, owner) -> QuerySet[Dataset]:
    return Dataset.objects.filter(owner=owner)


def dataset_get(*, owner, dataset_id: str) -> Dataset:
    """The owner's dataset. Raises NotFound (also another owner's, and malformed ids)."""
    try:
        return Dataset.objects.get(owner=owner, pk=ObjectId(dataset_id))
    except (InvalidId, TypeError, Dataset.DoesNotExist):
        raise NotFound("Dataset") from None


def dataset_items(*, dataset: Dataset) -> QuerySet[DatasetItem]:
    return DatasetItem.objects.filter(dataset=dataset)


def evaluation_list(*, owner) -> QuerySet[EvaluationRun]:
    return EvaluationRun.objects.filter(owner=owner)


def evaluation_get(*, owner, run_id: str) -> EvaluationRun:
    """The owner's run. Raises NotFound (also another owner's, and malformed ids)."""
    try:
        return EvaluationRun.objects.get(owner=owner, pk=ObjectId(run_id))
    except (InvalidId, TypeError, EvaluationRun.DoesNotExist):
        raise NotFound("Evaluation") from None


def mean_interval(values: list[float]) -> dict[str, float | None]:
    """The mean of ``values`` with its 95% bootstrap interval (None without values)."""
    if not values:
        return {"mean": None, "low": None, "high": None}
    scores = np.asarray(values, dtype=float)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = scores[rng.integers(0, len(scores), (BOOTSTRAP_RESAMPLES, len(scores)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {
        "mean": round(float(scores.mean()), 4),
        "low": round(float(low), 4),
        "high": round(float(high), 4),
    }


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def _pairwise_counts(spec: dict[str, Any], run: EvaluationRun, scored: list) -> dict[str, Any]:
    """A pairwise scorer's baseline and outcomes (its mean is the win rate, ties half)."""
    if spec["type"] != "pairwise":
        return {}
    outcomes = [r.scores[scorer_name(spec)].get("outcome") for _, r in scored]
    return {
        "baseline": run.targets[spec["baseline"]]["name"],
        "wins": outcomes.count("win"),
        "ties": outcomes.count("tie"),
        "losses": outcomes.count("loss"),
    }


def evaluation_report(*, run: EvaluationRun) -> dict[str, Any]:
    """Progress, and per target: each scorer's mean with its interval and its worst items
    (answer, reason), cost and latency."""
    results = list(EvaluationResult.objects.filter(run=run).select_related("item"))
    by_target: dict[int, list[EvaluationResult]] = defaultdict(list)
    for result in results:
        by_target[result.target].append(result)
    targets = []
    for index, target in enumerate(run.targets):
        answers = by_target.get(index, [])
        costs = [r.cost_usd for r in answers if r.cost_usd is not None]
        latencies = [r.latency_ms for r in answers if r.latency_ms is not None]
        scorers = {}
        for spec in run.scorers:
            name = scorer_name(spec)
            scored = [
                (r.scores[name]["score"], r)
                for r in answers
                if r.scores.get(name, {}).get("score") is not None
            ]
            worst = sorted(scored, key=lambda pair: pair[0])[:WORST_ITEMS]
            scorers[name] = {
                **_pairwise_counts(spec, run, scored),
                **mean_interval([value for value, _ in scored]),
                "n": len(scored),
                "unscored": len(answers) - len(scored),
                "worst": [
                    {
                        "item_id": str(r.item_id),
                        "repeat": r.repeat,
                        "input": r.item.input,
                        "reference": r.item.reference,
                        "answer": r.answer,
                        "score": value,
                        "reason": r.scores[name].get("reason", ""),
                        "query_id": r.query_id,
                    }
                    for value, r in worst
                ],
            }
        targets.append(
            {
                "index": index,
                "name": target["name"],
                "overrides": target["overrides"],
                "settings": target["settings"],
                "answers": len(answers),
                "failed": sum(1 for r in answers if r.status == "failed"),
                "cost_usd": round(sum(costs), 10) if costs else None,
                "cost_usd_per_answer": round(sum(costs) / len(costs), 10) if costs else None,
                "latency_ms": {
                    "p50": _percentile(latencies, 50),
                    "p95": _percentile(latencies, 95),
                },
                "scorers": scorers,
            }
        )
    return {
        "id": str(run.pk),
        "dataset": str(run.dataset_id),
        "status": run.status,
        "progress": {"total": run.total, "done": run.done, "failed": run.failed},
        "repeats": run.repeats,
        "scorers": run.scorers,
        "error": run.error,
        "created_at": run.created_at,
        "completed_at": run.completed_at,
        "targets": targets,
    }


def online_scoring_get(*, experiment: Experiment) -> OnlineScoring:
    """The experiment's online scoring (the caller has scoped the experiment to its
    owner). Raises NotFound when none is configured."""
    config = OnlineScoring.objects.filter(experiment=experiment).first()
    if config is None:
        raise NotFound("Online scoring")
    return config


def online_scoring_report(*, config: OnlineScoring, now: Any = None) -> dict[str, Any]:
    """The configuration, and what its judges spent today (UTC) against the cap."""
    start, end = day_bounds(now or timezone.now())
    spent = scores_spent(experiment=config.experiment, start=start, end=end)
    return {
        "experiment": str(config.experiment_id),
        "scorers": config.scorers,
        "sample_rate": config.sample_rate,
        "max_usd_per_day": config.max_usd_per_day,
        "spent_today_usd": round(spent, 10),
        "capped_today": spent >= config.max_usd_per_day,
        "created_at": config.created_at,
        "updated_at": config.updated_at,
    }
