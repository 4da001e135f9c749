"""Evaluation datasets, their items, evaluation runs and one result per answer scored."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from llmplatform.core.models import ApiKey


class Dataset(models.Model):
    """A named list of questions (with optional reference answers) to evaluate against."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "evaluation_datasets"
        indexes = [models.Index(fields=["owner", "-created_at"], name="datasets_owner_created")]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="datasets_unique_owner_name")
        ]

    def __str__(self) -> str:
        return self.name


class DatasetItem(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    input = models.TextField()
    reference = models.TextField(blank=True, default="")
    tags = models.JSONField(default=list, blank=True)
    # The query it was collected from (``from_feedback``), so collecting twice adds nothing.
    source_query_id = models.CharField(max_length=24, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "evaluation_dataset_items"
        indexes = [models.Index(fields=["dataset", "-created_at"], name="dataset_items_page")]

    def __str__(self) -> str:
        return self.input[:80]


class EvaluationRun(models.Model):
    """Every item of a dataset asked of every target, ``repeats`` times, then scored."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="evaluation_runs"
    )
    # Whose limits its questions, judge calls and embeddings count against (None: the
    # owner's account, as for the signed-in chat UI).
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, blank=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="runs")
    # [{"name": ..., "overrides": {"model_provider", "model_name", "temperature",
    #   "system_prompt"}}], resolved when the run is created (an experiment key becomes
    #   one target per variant).
    targets = models.JSONField(default=list)
    # [{"type": "contains"}, {"type": "judge", "rubric": ..., "provider": ...}, ...]
    scorers = models.JSONField(default=list)
    repeats = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    error = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Set by the worker while it works: the sweeper resubmits (the run is resumable) a
    # running run whose heartbeat stopped, and fails one past its deadline.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "evaluation_runs"
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="evaluation_runs_owner_created"),
            models.Index(fields=["status", "heartbeat_at"], name="evaluation_runs_sweep"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id} x {len(self.targets)} targets"


class EvaluationResult(models.Model):
    """One answer (item, target, repeat) and its scores."""

    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="results")
    item = models.ForeignKey(DatasetItem, on_delete=models.CASCADE, related_name="results")
    target = models.PositiveSmallIntegerField()
    repeat = models.PositiveSmallIntegerField()
    query_id = models.CharField(max_length=24, blank=True, default="")
    status = models.CharField(max_length=12, default="completed")
    answer = models.TextField(blank=True, default="")
    # {"<scorer name>": {"score": 0..1, "reason": ..., and for a judge "prompt", "model",
    #   "provider", "temperature", "cost_usd"}}
    scores = models.JSONField(default=dict, blank=True)
    # The answer's cost plus its scorers' (the judge, embeddings).
    cost_usd = models.FloatField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "evaluation_results"
        constraints = [
            # A resumed run skips what is stored; a redelivered task cannot store twice.
            models.UniqueConstraint(
                fields=["run", "item", "target", "repeat"], name="evaluation_results_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.item_id} / target {self.target} / #{self.repeat}"


class OnlineScoring(models.Model):
    """Live answers of a running experiment scored in the background (a sample of them,
    within a daily cost cap): ``evaluations.online_scoring``. The scores are stored in
    ``analytics.ExperimentScore``, where the experiment's results read them per arm."""

    experiment = models.OneToOneField(
        "chat_sessions.Experiment", on_delete=models.CASCADE, related_name="online_scoring"
    )
    # Whose limits the judges count against (the key that configured it); None: the
    # experiment owner's account, or no one's for an operator-wide experiment (the daily
    # cap bounds it).
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, blank=True)
    # Reference-free scorer specs, checked like an evaluation run's (judges pinned).
    scorers = models.JSONField(default=list)
    # The share of exposed, completed answers scored, chosen by a hash of the query id.
    sample_rate = models.FloatField(
        default=0.1, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    # The judges' spend per UTC day; scoring waits for the next day once it is reached.
    max_usd_per_day = models.FloatField(default=1.0, validators=[MinValueValidator(0.0)])
    # The last query (by id) every answer up to which has been scored, sampled out or
    # passed over: where the next tick resumes. Empty: from the experiment's first query.
    scanned_through = models.CharField(max_length=24, blank=True, default="")
    # One tick at a time per experiment: a tick claims it until then (a dead one's expires).
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "evaluation_online_scoring"

    def __str__(self) -> str:
        return f"online scoring of {self.experiment_id}"
