"""Online scoring: a sample of a running experiment's live answers, scored in the background.

An experiment's ``OnlineScoring`` names reference-free scorers (a judge with a rubric,
``regex``, ``length``, ``json_schema``, ``contains`` with a ``text``), a sample rate and a
cap on what its judges may spend per UTC day. Every minute ``evaluations.score_live_answers``
(``online_scores_tick``) walks each running experiment's exposed answers in query-id order
from where it stopped, and stores each score in ``analytics.ExperimentScore``, where the
experiment's results show them per arm beside the thumbs-up rate.

- **Which answers:** those exposed to the experiment (``analytics.experiments.experiment_rows``,
  the selector its results count with) that completed; evaluation traffic is never read.
  An answer is sampled when a hash of (experiment, query id) falls below the rate: the same
  answers on every pass, in every process, and raising the rate only adds answers.
- **Once:** each (experiment, answer, scorer) is stored once (a unique constraint), so a
  re-run or redelivered tick stores nothing twice, and one tick at a time works on an
  experiment (a claim that expires), so no judge is asked twice either.
- **Cost:** before each answer the day's spend is compared with the cap; once it reaches
  the cap the experiment's scoring waits for the next UTC day and goes on from the oldest
  answer it left (the cap is passed by at most the one answer being judged). The judges
  are also admitted against the payer's limits, as every paid call is.
- **Bounded:** per experiment and tick, at most ``SCAN_LIMIT`` answers read and
  ``MAX_ANSWERS_PER_TICK`` scored; no answer is started ``TICK_BUDGET_S`` after the tick
  began (the experiments left wait for the next tick).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from django.db.models import Q
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from analytics.experiments import experiment_rows
from analytics.online_scores import scored_pairs, scores_spent
from analytics.services import experiment_score_record
from evaluations.models import OnlineScoring
from evaluations.scorers import REFERENCE_FREE_TYPES, Item, score, scorer_name, scorers_check
from files.charges import Payer
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import ApiKey
from llmplatform.core.quotas import QuotaRefusal
from queries.models import Query
from queries.selectors import EVALUATION_SESSION_PREFIX, users_queries
from sessions.models import Experiment

logger = logging.getLogger(__name__)

SCORE_LIVE_ANSWERS_TASK = "evaluations.score_live_answers"
SCAN_LIMIT = 500
MAX_ANSWERS_PER_TICK = 50
TICK_BUDGET_S = 45.0
# Longer than the task's hard time limit: a claim outlives only a tick that died.
CLAIM = timedelta(minutes=10)
# A query's id is made by the process that inserts it: only ids older than this are
# passed over, so one inserted a moment later with a smaller id is never skipped.
SETTLE = timedelta(seconds=10)
MAX_SCORER_NAME = 100
UNFINISHED = (Query.Status.PENDING, Query.Status.RUNNING)


def online_scorers_check(scorers: Any) -> list[dict[str, Any]]:
    """Scorer specs that can score a live answer alone (no reference, no second answer),
    normalised as an evaluation run's. Raises ApplicationError (400 invalid_scorers)."""
    checked = scorers_check(scorers)
    for index, spec in enumerate(checked):
        kind = spec["type"]
        if kind not in REFERENCE_FREE_TYPES or (kind == "contains" and not spec.get("text")):
            raise ApplicationError(
                f"scorers[{index}] ({kind}) needs a reference answer or a second answer, "
                "which live answers do not have: use judge, regex, length, json_schema, or "
                "contains with a text.",
                code="invalid_scorers",
            )
        if len(scorer_name(spec)) > MAX_SCORER_NAME:
            raise ApplicationError(
                f"scorers[{index}].name must be a string of at most {MAX_SCORER_NAME} characters.",
                code="invalid_scorers",
            )
    return checked


def online_scoring_set(
    *,
    experiment: Experiment,
    scorers: Any,
    sample_rate: float,
    max_usd_per_day: float,
    api_key: ApiKey | None = None,
) -> OnlineScoring:
    """Create or replace the experiment's online scoring. Changing the scorers or the rate
    goes over the experiment's answers again (nothing scored is scored twice). Raises
    ApplicationError (400 invalid_scorers, invalid_online_scoring)."""
    checked = online_scorers_check(scorers)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float):
        sample_rate = math.nan
    if not 0 <= sample_rate <= 1:
        raise ApplicationError(
            "sample_rate must be a number from 0 to 1.", code="invalid_online_scoring"
        )
    if (
        isinstance(max_usd_per_day, bool)
        or not isinstance(max_usd_per_day, int | float)
        or not 0 <= max_usd_per_day < math.inf
    ):
        raise ApplicationError(
            "max_usd_per_day must be a number from 0.", code="invalid_online_scoring"
        )
    config = OnlineScoring.objects.filter(experiment=experiment).first()
    if config is None:
        config = OnlineScoring(experiment=experiment)
    elif config.scorers != checked or config.sample_rate != sample_rate:
        config.scanned_through = ""
    config.scorers = checked
    config.sample_rate = float(sample_rate)
    config.max_usd_per_day = float(max_usd_per_day)
    config.api_key = api_key
    config.updated_at = timezone.now()
    config.save()
    return config


def online_scoring_delete(*, config: OnlineScoring) -> None:
    """Stop scoring the experiment's answers; the scores stored stay in its results.
    Raises nothing."""
    config.delete()


def day_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The UTC day ``now`` falls in: [start, end)."""
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def sampled(*, experiment_id: Any, query_id: Any, rate: float) -> bool:
    """Whether the answer is in the experiment's sample: a hash, not a draw, so every
    pass and process agrees, and a higher rate keeps every answer a lower one chose."""
    digest = hashlib.sha256(f"{experiment_id}:{query_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def online_scores_tick(*, now: datetime | None = None) -> int:
    """Score what is due of every running experiment's live answers (beat, or the
    in-process scheduler). Returns how many answers it scored. Raises nothing it can
    avoid: a refusal of the payer's limits leaves the rest for a later tick."""
    now = now or timezone.now()
    deadline = time.monotonic() + TICK_BUDGET_S
    scored = 0
    configs = list(
        OnlineScoring.objects.filter(experiment__status=Experiment.Status.RUNNING).select_related(
            "experiment", "api_key"
        )
    )
    # In a random order: an experiment with a long backlog cannot take every tick's budget.
    random.shuffle(configs)
    for config in configs:
        if time.monotonic() > deadline:
            break  # the rest wait for the next tick
        claimed = OnlineScoring.objects.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), pk=config.pk
        ).update(claimed_until=now + CLAIM)
        if not claimed:
            continue  # another tick is scoring this experiment
        try:
            scored += _score_experiment(config, now, deadline)
        except Exception:  # a bug in one experiment's scoring must not starve the others
            logger.exception("online scoring of experiment %s crashed", config.experiment_id)
        finally:
            OnlineScoring.objects.filter(pk=config.pk).update(claimed_until=None)
    return scored


def _payer(config: OnlineScoring) -> Payer:
    owner = config.experiment.owner if config.experiment.owner_id else None
    user_id = f"online-scoring-{config.experiment_id}"
    if config.api_key is not None:
        return Payer(api_key=config.api_key, user_id=user_id)
    return Payer(api_key=None, account=owner, user_id=user_id)


def _answers(config: OnlineScoring, now: datetime) -> list[tuple[Any, str, str]]:
    """(query id, variant, status) of the next exposed answers, oldest id first."""
    experiment = config.experiment
    rows = experiment_rows(
        users_queries().exclude(session_id__startswith=EVALUATION_SESSION_PREFIX), experiment
    ).filter(pk__lt=ObjectId.from_datetime(now - SETTLE))
    if config.scanned_through:
        rows = rows.filter(pk__gt=ObjectId(config.scanned_through))
    return list(
        rows.annotate(variant=KeyTransform(experiment.key, "experiments"))
        .order_by("pk")
        .values_list("pk", "variant", "status")[:SCAN_LIMIT]
    )


def _score_experiment(config: OnlineScoring, now: datetime, deadline: float) -> int:
    """Score the due answers of one experiment; move its cursor past what is done."""
    experiment = config.experiment
    start, end = day_bounds(now)
    spent = scores_spent(experiment=experiment, start=start, end=end)
    answers = _answers(config, now)
    done = scored_pairs(experiment=experiment, query_ids=[pk for pk, _, _ in answers])
    payer = _payer(config)
    cursor, blocked, scored = config.scanned_through, False, 0
    for pk, variant, status in answers:
        if status in UNFINISHED:
            blocked = True  # the cursor waits for it; later answers are scored meanwhile
            continue
        due = []
        if status == Query.Status.COMPLETED and sampled(
            experiment_id=experiment.pk, query_id=pk, rate=config.sample_rate
        ):
            due = [spec for spec in config.scorers if (str(pk), scorer_name(spec)) not in done]
        if due:
            paid = any(spec["type"] == "judge" for spec in due)
            if (
                scored >= MAX_ANSWERS_PER_TICK
                or time.monotonic() > deadline
                or (paid and spent >= config.max_usd_per_day)
            ):
                break
            try:
                spent += _score_answer(experiment, pk, variant, due, payer, now)
            except QuotaRefusal:
                break  # the payer's limits: a later tick goes on from here
            scored += 1
        if not blocked:
            cursor = str(pk)
    if cursor != config.scanned_through:
        # Unless a new configuration sent the cursor back meanwhile (to score again).
        OnlineScoring.objects.filter(pk=config.pk, scanned_through=config.scanned_through).update(
            scanned_through=cursor
        )
    return scored


def _score_answer(
    experiment: Experiment,
    query_id: Any,
    variant: str,
    specs: list[dict[str, Any]],
    payer: Payer,
    now: datetime,
) -> float:
    """Score one answer with ``specs`` and store each score; returns what it cost.
    Raises QuotaRefusal (the scores stored before it stay)."""
    query = Query.objects.only("query", "response").get(pk=query_id)
    item = Item(input=query.query, reference="")
    cost = 0.0
    for spec in specs:
        result = score(spec=spec, item=item, answer=query.response, payer=payer)
        details = {k: v for k, v in result.items() if k not in ("score", "reason", "cost_usd")}
        cost += float(result.get("cost_usd") or 0.0)
        experiment_score_record(
            experiment=experiment,
            variant=variant,
            query_id=query_id,
            scorer=scorer_name(spec),
            score=result.get("score"),
            reason=str(result.get("reason") or ""),
            cost_usd=float(result.get("cost_usd") or 0.0),
            details=details,
            now=now,
        )
    return cost
