"""Writes of evaluation runs: starting, executing, resuming and sweeping them (datasets
and their items are in ``evaluations.datasets``).

A run asks every item of its dataset of every target, ``repeats`` times, through the one
entry of every question (``queries.start.query_start``, then ``query_wait``), with the
target's overrides, as an end user and session of its own and marked ``evaluation`` in
the query's metadata, so analytics and memory leave it out. Each answer is scored and
stored at once: a run that stops (a crash, a used-up budget) resumes where it stopped.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import timedelta
from typing import Any

from bson import ObjectId
from django.db import IntegrityError
from django.utils import timezone

from agents.providers.registry import default_model_for, default_provider, get_chat_provider
from agents.writer import BASE_PROMPT
from evaluations.models import Dataset, DatasetItem, EvaluationResult, EvaluationRun
from evaluations.scorers import PAIRWISE_TYPES, Item, pairwise, score, scorer_name, scorers_check
from files.charges import Payer
from llmplatform.core.config import provider_config, run_config
from llmplatform.core.dispatch import dispatcher
from llmplatform.core.errors import ApplicationError, NotFound
from llmplatform.core.models import ApiKey
from llmplatform.core.quotas import QuotaRefusal
from queries.models import Query
from queries.question import QuestionParams
from queries.selectors import EVALUATION_SESSION_PREFIX
from queries.start import query_start
from queries.streams import query_wait
from sessions.assignment import overrides_clean
from sessions.models import Experiment

logger = logging.getLogger(__name__)

RUN_EVALUATION_TASK = "evaluations.run_evaluation"
MAX_REPEATS = 10
MAX_TARGETS = 10
MAX_RUN_ANSWERS = 10_000
OVERRIDE_KEYS = ("model_provider", "model_name", "temperature", "system_prompt")


# ----- starting a run -----


def _target(index: int, raw: Any) -> dict[str, Any]:
    overrides = raw.get("overrides", raw) if isinstance(raw, dict) else None
    if not isinstance(overrides, dict) or set(overrides) - set(OVERRIDE_KEYS):
        raise ApplicationError(
            f"targets[{index}] must be an experiment key or an object of overrides "
            f"({', '.join(OVERRIDE_KEYS)}), optionally as {{name, overrides}}.",
            code="invalid_targets",
        )
    # The same rules as an experiment variant's overrides (types, temperature range, lengths).
    overrides = overrides_clean(overrides, where=f"targets[{index}]: ", code="invalid_targets")
    if overrides.get("model_provider"):
        get_chat_provider(overrides["model_provider"])  # a 400 listing the available ones
    temperature = overrides.get("temperature")
    name = raw.get("name") if "overrides" in raw else None
    described = ", ".join(f"{key}={overrides[key]}" for key in OVERRIDE_KEYS if key in overrides)
    provider = (
        overrides.get("model_provider") or default_provider() or provider_config().default_provider
    )
    return {
        "name": name or described or "default",
        "overrides": dict(overrides),
        # Every choice pinned when the run is created: what was evaluated is on record, a
        # change of defaults mid-run changes nothing, and no running experiment can vary
        # an evaluation's question (the request sets every field an experiment varies).
        "settings": {
            "model_provider": provider,
            "model_name": overrides.get("model_name") or default_model_for(provider),
            "temperature": run_config().default_temperature if temperature is None else temperature,
            "system_prompt": overrides.get("system_prompt") or None,
        },
    }


def targets_resolve(*, owner, targets: Any) -> list[dict[str, Any]]:
    """Targets as ``[{name, overrides}]``; an experiment key (the owner's, or an operator's
    for every owner) stands for one target per variant. Raises ApplicationError (400, 404
    for an unknown experiment)."""
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list) or not targets:
        raise ApplicationError(
            "targets must be an experiment key or a non-empty list of variant overrides.",
            code="invalid_targets",
        )
    resolved: list[dict[str, Any]] = []
    for index, raw in enumerate(targets):
        if not isinstance(raw, str):
            resolved.append(_target(index, raw))
            continue
        experiment = (
            Experiment.objects.filter(key=raw, owner=owner).first()
            or Experiment.objects.filter(key=raw, owner__isnull=True).first()
        )
        if experiment is None:
            raise NotFound(f"Experiment {raw!r}")
        resolved.extend(
            {**_target(index, variant.get("overrides") or {}), "name": f"{raw}:{variant['name']}"}
            for variant in experiment.variants
        )
    if len(resolved) > MAX_TARGETS:
        raise ApplicationError(f"At most {MAX_TARGETS} targets.", code="invalid_targets")
    return resolved


def evaluation_create(
    *,
    owner,
    api_key: ApiKey | None,
    dataset: Dataset,
    targets: Any,
    scorers: Any,
    repeats: int = 1,
    in_background: bool = True,
) -> EvaluationRun:
    """Check and store a run, and queue it in the background (unless the caller runs it
    itself: the command). Raises ApplicationError (400, 404)."""
    if not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise ApplicationError(f"repeats must be 1 to {MAX_REPEATS}.", code="invalid_repeats")
    resolved = targets_resolve(owner=owner, targets=targets)
    checked = scorers_check(scorers)
    for spec in checked:
        if spec["type"] in PAIRWISE_TYPES:
            _check_baseline(spec, resolved)
    created_at = timezone.now()
    items = DatasetItem.objects.filter(dataset=dataset, created_at__lte=created_at).count()
    if not items:
        raise ApplicationError("The dataset has no items yet.", code="dataset_empty")
    total = items * len(resolved) * repeats
    if total > MAX_RUN_ANSWERS:
        raise ApplicationError(
            f"A run may ask at most {MAX_RUN_ANSWERS} questions; this one would ask {total}.",
            code="evaluation_too_large",
        )
    run = EvaluationRun.objects.create(
        owner=owner,
        api_key=api_key,
        dataset=dataset,
        targets=resolved,
        scorers=checked,
        repeats=repeats,
        total=total,
        created_at=created_at,
        deadline_at=created_at + _run_budget(total),
    )
    if in_background:
        dispatcher().submit_background(RUN_EVALUATION_TASK, str(run.pk))
    return run


def _check_baseline(spec: dict[str, Any], targets: list[dict[str, Any]]) -> None:
    baseline = spec.setdefault("baseline", 0)
    if len(targets) < 2 or not isinstance(baseline, int) or not 0 <= baseline < len(targets):
        raise ApplicationError(
            "A pairwise scorer compares every target with its baseline (a target's index, "
            "0 by default): it needs at least two targets.",
            code="invalid_scorers",
        )


def _run_budget(total: int) -> timedelta:
    # Each answer is bounded by the question budget (the JSON wait covers every limit).
    return timedelta(seconds=total * run_config().budget.json_wait_s)


# ----- executing a run -----


def _claim(run_id: str) -> EvaluationRun | None:
    run = EvaluationRun.objects.filter(pk=ObjectId(run_id)).first()
    if run is None or run.status in (EvaluationRun.Status.COMPLETED, EvaluationRun.Status.FAILED):
        return None
    if run.status == EvaluationRun.Status.RUNNING and not _stale(run, timezone.now()):
        return None  # another delivery is working on it
    run.status = EvaluationRun.Status.RUNNING
    run.heartbeat_at = timezone.now()
    EvaluationRun.objects.filter(pk=run.pk).update(status=run.status, heartbeat_at=run.heartbeat_at)
    return run


def _stale(run: EvaluationRun, now: Any) -> bool:
    # One answer (the question's whole budget, then its scorers) fits twice over.
    stale_after = timedelta(seconds=2 * run_config().budget.json_wait_s)
    return run.heartbeat_at is None or now - run.heartbeat_at > stale_after


def evaluation_resume(*, run: EvaluationRun) -> EvaluationRun:
    """Make a stopped (failed) run runnable again, with a fresh deadline for what is left.
    Raises nothing."""
    left = run.total - run.done
    run.status = EvaluationRun.Status.PENDING
    run.error = None
    run.deadline_at = timezone.now() + _run_budget(max(left, 1))
    run.save(update_fields=["status", "error", "deadline_at"])
    return run


def _cells(run: EvaluationRun):
    # The items the dataset held when the run was created: ``total`` counts those.
    items = list(
        DatasetItem.objects.filter(
            dataset_id=run.dataset_id, created_at__lte=run.created_at
        ).order_by("created_at", "pk")
    )
    for item in items:
        for target in range(len(run.targets)):
            for repeat in range(run.repeats):
                yield item, target, repeat


def _params(run: EvaluationRun, item: DatasetItem, target: int, repeat: int) -> QuestionParams:
    settings = run.targets[target]["settings"]
    return QuestionParams(
        # An end user and a session per answer: no memory, history or summary of one
        # evaluation question reaches another, or a real user's.
        user_id=f"evaluation-{run.pk}",
        session_id=f"{EVALUATION_SESSION_PREFIX}{run.pk}-{item.pk}-{target}-{repeat}",
        query=item.input,
        use_memory=False,
        model_provider=settings["model_provider"],
        model_name=settings["model_name"],
        temperature=settings["temperature"],
        # A client's system turn is how a question carries its own system prompt; the
        # writer's base prompt stands for "the default" so that it is pinned too.
        messages=[{"role": "system", "content": settings["system_prompt"] or BASE_PROMPT}],
    )


def _payer(run: EvaluationRun) -> Payer:
    return Payer(
        api_key=run.api_key,
        account=run.owner if run.api_key is None else None,
        user_id=f"evaluation-{run.pk}",
    )


def _score(run: EvaluationRun, result: EvaluationResult) -> QuotaRefusal | None:
    """Add the scores ``result`` lacks (every scorer but the pairwise ones), and their
    cost. Returns the refusal that stopped it (the payer's limits), leaving the rest of
    its scores for a resumed run."""
    payer = _payer(run)
    item = Item(input=result.item.input, reference=result.item.reference)
    for spec in run.scorers:
        name = scorer_name(spec)
        if spec["type"] in PAIRWISE_TYPES or name in result.scores:
            continue  # pairwise: once the baseline has answered too (_pairwise_pass)
        try:
            scored = score(spec=spec, item=item, answer=result.answer, payer=payer)
        except QuotaRefusal as refusal:
            return refusal
        result.scores[name] = scored
        if scored.get("cost_usd") is not None:
            result.cost_usd = round((result.cost_usd or 0.0) + scored["cost_usd"], 10)
    return None


def _answer(
    run: EvaluationRun, item: DatasetItem, target: int, repeat: int
) -> tuple[EvaluationResult, QuotaRefusal | None]:
    """Ask one cell and score it; the refusal that stopped its scoring, if any (the
    answer is kept: a resumed run scores it without asking again). Raises QuotaRefusal
    when the question itself is refused."""
    result = EvaluationResult(run=run, item=item, target=target, repeat=repeat)
    try:
        query = query_start(
            owner=run.owner,
            params=_params(run, item, target, repeat),
            api_key=run.api_key,
            evaluation=str(run.pk),
        )
        result.query_id = str(query.pk)
        query = query_wait(query=query)
    except QuotaRefusal:
        raise
    except ApplicationError as exc:
        result.status, result.error = "failed", exc.as_envelope()["error"]
        return result, None
    result.answer = query.response
    result.latency_ms = (query.latency or {}).get("total_ms")
    result.cost_usd = (query.usage or {}).get("cost_usd")
    if query.status != Query.Status.COMPLETED:
        result.status, result.error = "failed", query.error or {"code": query.status}
        return result, None
    return result, _score(run, result)


def _rescore_pass(run: EvaluationRun) -> None:
    """Score the stored answers whose scoring a refusal stopped. Raises QuotaRefusal."""
    wanted = {scorer_name(spec) for spec in run.scorers if spec["type"] not in PAIRWISE_TYPES}
    for result in EvaluationResult.objects.filter(run=run, status="completed").select_related(
        "item"
    ):
        if wanted <= set(result.scores):
            continue
        refusal = _score(run, result)
        result.save(update_fields=["scores", "cost_usd"])
        if refusal is not None:
            raise refusal


def _pairwise_pass(run: EvaluationRun) -> None:
    """Judge every target's answer against its baseline's for the same item and repeat,
    each pair once (a resumed run skips the pairs it judged). Which answer is shown first
    is drawn per pair, seeded by the pair, so a resumed run would draw the same. Raises
    QuotaRefusal."""
    specs = [spec for spec in run.scorers if spec["type"] in PAIRWISE_TYPES]
    if not specs:
        return
    completed = {
        (r.item_id, r.target, r.repeat): r
        for r in EvaluationResult.objects.filter(run=run, status="completed").select_related("item")
    }
    payer = _payer(run)
    for spec in specs:
        name = scorer_name(spec)
        for (item_id, target, repeat), result in completed.items():
            baseline = completed.get((item_id, spec["baseline"], repeat))
            if target == spec["baseline"] or name in result.scores or baseline is None:
                continue
            scored = pairwise(
                spec=spec,
                item=Item(input=result.item.input, reference=result.item.reference),
                answer=result.answer,
                baseline=baseline.answer,
                answer_first=random.Random(f"{run.pk}:{result.pk}:{name}").random() < 0.5,
                payer=payer,
            )
            result.scores[name] = scored
            if scored.get("cost_usd") is not None:
                result.cost_usd = round((result.cost_usd or 0.0) + scored["cost_usd"], 10)
            result.save(update_fields=["scores", "cost_usd"])
            EvaluationRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())


def _store(run: EvaluationRun, result: EvaluationResult) -> None:
    try:
        result.save()
    except IntegrityError:  # another delivery of this run stored it first
        return
    field = "failed" if result.status == "failed" else "done"
    setattr(run, field, getattr(run, field) + 1)
    run.heartbeat_at = timezone.now()
    EvaluationRun.objects.filter(pk=run.pk).update(
        done=run.done, failed=run.failed, heartbeat_at=run.heartbeat_at
    )


def evaluation_execute(
    *, run_id: str, progress: Any = None, slice_s: float | None = None
) -> EvaluationRun | None:
    """Run what is left of a run; None when there is nothing to do (finished, unknown, or
    another delivery is running it).

    Skips every cell already stored, so a redelivery or a resume never asks twice. A
    refusal of the payer's limits stops the run (``failed``, ``budget_exceeded`` or
    ``rate_limited``; resume it later). With ``slice_s`` it stops after about that long
    and leaves the run ``pending`` for its caller to queue again, so one long run never
    holds a background worker for hours. ``progress(run)`` is called after each answer.
    Raises nothing it can store.
    """
    run = _claim(run_id)
    if run is None:
        return None
    started = time.monotonic()
    stored = set(
        EvaluationResult.objects.filter(run=run).values_list("item_id", "target", "repeat")
    )
    run.failed = EvaluationResult.objects.filter(run=run, status="failed").count()
    run.done = len(stored) - run.failed
    run.status = EvaluationRun.Status.COMPLETED
    try:
        for item, target, repeat in _cells(run):
            if (item.pk, target, repeat) in stored:
                continue
            if timezone.now() > run.deadline_at:
                raise ApplicationError(
                    "The evaluation ran past its deadline; resume it to finish.",
                    code="evaluation_timeout",
                    status=504,
                )
            result, refusal = _answer(run, item, target, repeat)
            _store(run, result)
            if refusal is not None:
                raise refusal
            if progress is not None:
                progress(run)
            if slice_s is not None and time.monotonic() - started > slice_s:
                run.status = EvaluationRun.Status.PENDING  # at least one answer a slice
                break
        else:
            _rescore_pass(run)
            _pairwise_pass(run)
    except ApplicationError as exc:  # a refusal of the payer's limits, or the deadline
        logger.warning("evaluation %s stopped: %s", run_id, exc.message)
        run.status, run.error = EvaluationRun.Status.FAILED, exc.as_envelope()["error"]
    if run.status != EvaluationRun.Status.PENDING:
        run.completed_at = timezone.now()
    EvaluationRun.objects.filter(pk=run.pk).update(
        status=run.status,
        error=run.error,
        done=run.done,
        failed=run.failed,
        completed_at=run.completed_at,
    )
    return run


def evaluation_continue(*, run: EvaluationRun) -> None:
    """Queue the rest of a run that handed its worker back (``slice_s``). Raises nothing."""
    dispatcher().submit_background(RUN_EVALUATION_TASK, str(run.pk))


def evaluation_stopped(*, run_id: str, code: str, message: str) -> None:
    """Fail a run whose task ended without finishing it (a crash, the task's time limit),
    so it is not left running; it can be resumed. Raises nothing."""
    EvaluationRun.objects.filter(pk=ObjectId(run_id), status=EvaluationRun.Status.RUNNING).update(
        status=EvaluationRun.Status.FAILED,
        error={"code": code, "message": message},
        completed_at=timezone.now(),
    )


def evaluations_sweep() -> int:
    """Resubmit running runs whose worker died (they resume where they stopped); fail
    those past their deadline, and pending ones no worker took by then. Returns how many
    it touched. Raises nothing."""
    now = timezone.now()
    touched = 0
    for run in EvaluationRun.objects.filter(
        status__in=[EvaluationRun.Status.RUNNING, EvaluationRun.Status.PENDING]
    ):
        if run.deadline_at is not None and now > run.deadline_at:
            touched += EvaluationRun.objects.filter(pk=run.pk, status=run.status).update(
                status=EvaluationRun.Status.FAILED,
                error={
                    "code": "evaluation_timeout",
                    "message": "The evaluation ran past its deadline; resume it to finish.",
                },
                completed_at=now,
            )
        elif run.status == EvaluationRun.Status.RUNNING and _stale(run, now):
            dispatcher().submit_background(RUN_EVALUATION_TASK, str(run.pk))
            touched += 1
    return touched
