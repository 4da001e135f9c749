"""Writes for experiments: create, change, start, stop and delete.

Assignment (which arm a session is in) happens when a session starts
(``sessions.services.session_start``); the rules for variants are in
``sessions.assignment``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError
from django.utils import timezone

from llmplatform.core.errors import ApplicationError
from sessions.assignment import variants_clean
from sessions.models import Experiment, stored_now
from sessions.selectors import experiment_key_in_use


def experiment_start(*, experiment: Experiment) -> Experiment:
    """Run the experiment (new sessions get assigned). Raises ApplicationError on bad variants."""
    experiment.variants = variants_clean(experiment.variants)
    if experiment.status != Experiment.Status.RUNNING:
        experiment.status = Experiment.Status.RUNNING
        experiment.started_at = experiment.started_at or timezone.now()
        experiment.stopped_at = None
        experiment.save(update_fields=["variants", "status", "started_at", "stopped_at"])
    return experiment


def experiment_stop(*, experiment: Experiment) -> Experiment:
    """Stop assigning the experiment and applying its overrides (idempotent). Raises nothing."""
    if experiment.status == Experiment.Status.RUNNING:
        experiment.status = Experiment.Status.STOPPED
        experiment.stopped_at = timezone.now()
        experiment.save(update_fields=["status", "stopped_at"])
    return experiment


def experiment_save(
    *,
    experiment: Experiment,
    variants: Any,
) -> Experiment:
    """Create or update an experiment with validated variants. Raises ApplicationError 400/409."""
    cleaned = variants_clean(variants)
    if experiment.pk is not None and experiment.status == Experiment.Status.RUNNING:
        stored = (
            Experiment.objects.filter(pk=experiment.pk).values_list("variants", flat=True).first()
        )
        if stored is not None and stored != cleaned:
            # Changing weights of a running experiment re-assigns users mid-test.
            raise ApplicationError(
                "Stop the experiment before changing its variants or weights.",
                code="experiment_running",
                status=409,
            )
    experiment.variants = cleaned
    experiment.save()
    return experiment


def experiment_create(
    *, owner: User, key: str, name: str, description: str = "", variants: Any
) -> Experiment:
    """A draft experiment of ``owner``. Raises ApplicationError 400 (variants), 409 (key
    used by another of the owner's experiments or an operator-wide one)."""
    cleaned = variants_clean(variants)
    if experiment_key_in_use(owner_id=owner.pk, key=key):
        raise _key_taken(key)
    experiment = Experiment(
        owner=owner,
        key=key,
        name=name,
        description=description,
        variants=cleaned,
        created_at=stored_now(),
    )
    try:
        experiment.save(force_insert=True)
    except IntegrityError:
        raise _key_taken(key) from None  # created by a concurrent request
    return experiment


def _key_taken(key: str) -> ApplicationError:
    # Keys are unique per owner: only the owner's own experiments, or an operator-wide
    # one that assigns the owner's sessions too, can hold it. Another owner's never does.
    return ApplicationError(
        f'You already have an experiment with the key "{key}" (or an operator-wide one '
        "uses it); choose another key.",
        code="experiment_key_taken",
        status=409,
    )


def experiment_update(
    *,
    experiment: Experiment,
    name: str | None = None,
    description: str | None = None,
    variants: Any = None,
) -> Experiment:
    """Change name, description or variants. Raises ApplicationError 400, 409 (running)."""
    if name is not None:
        experiment.name = name
    if description is not None:
        experiment.description = description
    return experiment_save(
        experiment=experiment,
        variants=experiment.variants if variants is None else variants,
    )


def experiment_delete(*, experiment: Experiment) -> None:
    """Delete an experiment that never ran. Raises ApplicationError 409 once it has run."""
    if experiment.started_at is not None:
        # Sessions and queries keep its key as their exposure record: deleting it would
        # free the key, and a new experiment under that key would count the old exposure.
        raise ApplicationError(
            "This experiment has run; its sessions and queries refer to its key. Stop it "
            "instead: a stopped experiment changes nothing and keeps its results.",
            code="experiment_has_run",
            status=409,
        )
    experiment.delete()
