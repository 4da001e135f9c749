"""Writes: the daily rollups (fold what was written since the watermark), experiment
indexes, and the scores of an experiment's live answers (online scoring)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, connection
from django.utils import timezone

from analytics.models import ActivityDay, ExperimentScore, QueryDay, RollupWatermark
from analytics.sketch import LatencySketch
from analytics.tallies import (
    UNFINISHED,
    QueryTally,
    queries_after,
    queries_by_id,
    tally_activity,
    tally_queries,
)
from queries.models import Query
from sessions.models import Experiment, Session

# experiment_results filters queries and sessions on "experiments.<key> exists": a
# sparse index per experiment key holds only the rows in that experiment.
EXPERIMENT_INDEX_PREFIX = "experiment_"
# Keys whose indexes this process has already ensured (createIndexes is idempotent).
_experiment_indexes: set[str] = set()

WATERMARK = "daily"
# Rows are stamped (timestamp, start_t, end_t, received_at) a moment before they are
# saved; folding only up to this long ago leaves in-flight writes for the next fold
# instead of skipping them for ever.
FOLD_LAG = timedelta(seconds=60)


@dataclass
class FoldResult:
    folded_until: datetime
    queries: int
    unfinished: int
    claimed: bool


def rollups_fold(*, now: datetime | None = None) -> FoldResult:
    """Add rows written since the watermark to the day rollups. Raises nothing.

    The watermark is claimed first (compare-and-set): two folds at once never count a
    row twice; the loser does nothing. Between the claim and the last write, reads may
    briefly miss the span being folded.
    """
    cut = (now or timezone.now()) - FOLD_LAG
    watermark = RollupWatermark.objects.filter(name=WATERMARK).first()
    previous = watermark.folded_until if watermark else None
    if previous is not None and cut <= previous:
        return FoldResult(previous, 0, len(watermark.unfinished_query_ids), claimed=False)
    carried = list(watermark.unfinished_query_ids) if watermark else []
    rows = [*queries_after(previous, until=cut), *queries_by_id(carried)]
    finished = [row for row in rows if row["status"] not in UNFINISHED]
    unfinished = sorted({str(row["pk"]) for row in rows if row["status"] in UNFINISHED})
    if not _claim(watermark, cut=cut, unfinished=unfinished):
        return FoldResult(previous or cut, 0, 0, claimed=False)
    for (owner_id, day, provider, model), tally in tally_queries(finished).items():
        _add_query_day(owner_id, day, provider, model, tally)
    activity = tally_activity(
        started_after=previous, ended_after=previous, received_after=previous, until=cut
    )
    for (owner_id, day), tally in activity.items():
        rollup, _ = ActivityDay.objects.get_or_create(owner_id=owner_id, day=day)
        rollup.sessions += tally.sessions
        rollup.ended_sessions += tally.ended_sessions
        rollup.duration_seconds += tally.duration_seconds
        rollup.events += tally.events
        rollup.save()
    return FoldResult(cut, len(finished), len(unfinished), claimed=True)


def _claim(watermark: RollupWatermark | None, *, cut: datetime, unfinished: list[str]) -> bool:
    if watermark is None:
        try:
            RollupWatermark.objects.create(
                name=WATERMARK, folded_until=cut, unfinished_query_ids=unfinished
            )
        except IntegrityError:
            return False
        return True
    return bool(
        RollupWatermark.objects.filter(pk=watermark.pk, folded_until=watermark.folded_until).update(
            folded_until=cut, unfinished_query_ids=unfinished
        )
    )


def _add_query_day(owner_id, day, provider: str, model: str, tally: QueryTally) -> None:
    rollup, _ = QueryDay.objects.get_or_create(
        owner_id=owner_id, day=day, model_provider=provider, model_name=model
    )
    rollup.queries += tally.queries
    rollup.input_tokens += tally.input_tokens
    rollup.output_tokens += tally.output_tokens
    rollup.total_tokens += tally.total_tokens
    rollup.cost_usd += tally.cost_usd
    sketch = LatencySketch.from_document(rollup.latency)
    sketch.merge(tally.latency)
    rollup.latency = sketch.as_document()
    rollup.save()


def rollups_rebuild() -> FoldResult:
    """Drop every rollup and fold everything again (after importing backdated rows)."""
    QueryDay.objects.all().delete()
    ActivityDay.objects.all().delete()
    RollupWatermark.objects.all().delete()
    return rollups_fold()


def experiment_index_name(key: str) -> str:
    return f"{EXPERIMENT_INDEX_PREFIX}{key}"


def experiment_indexes_ensure(*, experiment: Experiment) -> None:
    """Create the sparse ``experiments.<key>`` indexes on queries and sessions. Raises PyMongoError.

    Experiment keys are chosen at run time, so no migration can declare these. MongoDB
    can use a wildcard index (``experiments.$**``) instead; SecantusDB has none.
    """
    if experiment.key in _experiment_indexes:
        return
    for model in (Query, Session):
        connection.database[model._meta.db_table].create_index(
            [(f"experiments.{experiment.key}", 1)],
            name=experiment_index_name(experiment.key),
            sparse=True,
        )
    _experiment_indexes.add(experiment.key)


def experiment_score_record(
    *,
    experiment: Experiment,
    variant: str,
    query_id: object,
    scorer: str,
    score: float | None,
    reason: str,
    cost_usd: float,
    details: dict,
    now: datetime,
) -> ExperimentScore | None:
    """Store one live answer's score for the experiment's results; None when that answer
    already has a score from ``scorer`` (a re-run tick stores nothing twice). Raises nothing."""
    try:
        return ExperimentScore.objects.create(
            experiment=experiment,
            variant=variant,
            query_id=query_id,
            scorer=scorer,
            score=score,
            reason=reason[:2000],
            cost_usd=cost_usd,
            details=details,
            created_at=now,
        )
    except IntegrityError:
        return None
