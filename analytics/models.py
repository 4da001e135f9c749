"""Daily rollups: what the analytics summary and the dashboard read instead of every row.

Maintained by ``analytics.services.rollups_fold`` (a periodic task) up to a watermark;
reads add the rows past the watermark, so answers are exact without waiting for the task.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class QueryDay(models.Model):
    """One owner's queries of one day (by ``timestamp``, UTC) and one provider/model."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    model_provider = models.CharField(max_length=50, blank=True, default="")
    model_name = models.CharField(max_length=200, blank=True, default="")
    queries = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)
    # Total latency (ms) of the completed queries, as a mergeable sketch
    # (analytics.sketch.LatencySketch.as_document).
    latency = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "analytics_query_days"
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "day", "model_provider", "model_name"],
                name="analytics_query_day_unique",
            )
        ]
        indexes = [models.Index(fields=["day"], name="analytics_query_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.model_provider}/{self.model_name}: {self.queries}"


class ActivityDay(models.Model):
    """One owner's sessions started, sessions ended (by start day) and events of one day."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    sessions = models.PositiveIntegerField(default=0)
    ended_sessions = models.PositiveIntegerField(default=0)
    duration_seconds = models.FloatField(default=0.0)
    events = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "analytics_activity_days"
        constraints = [
            models.UniqueConstraint(fields=["owner", "day"], name="analytics_activity_day_unique")
        ]
        indexes = [models.Index(fields=["day"], name="analytics_activity_day")]

    def __str__(self) -> str:
        return f"{self.day}: {self.sessions} sessions, {self.events} events"


class RollupWatermark(models.Model):
    """How far the rollups have folded: every row at or before ``folded_until``.

    ``unfinished_query_ids``: queries before the watermark that had not finished when it
    was set (their cost and latency were not known yet); they are folded once finished.
    """

    name = models.CharField(max_length=32, unique=True)
    folded_until = models.DateTimeField()
    unfinished_query_ids = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "analytics_rollup_watermarks"

    def __str__(self) -> str:
        return f"{self.name} @ {self.folded_until.isoformat()}"


class ExperimentScore(models.Model):
    """One live answer of an experiment's arm scored by one scorer (online scoring,
    written by ``evaluations.online_scoring`` through ``analytics.services``)."""

    experiment = models.ForeignKey(
        "chat_sessions.Experiment", on_delete=models.CASCADE, related_name="scores"
    )
    variant = models.CharField(max_length=100)
    query = models.ForeignKey("queries.Query", on_delete=models.CASCADE, related_name="+")
    scorer = models.CharField(max_length=100)
    # None: the scorer could not score this answer (a failed judge); ``reason`` says why.
    score = models.FloatField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")
    cost_usd = models.FloatField(default=0.0)
    # A judge's provider, model, temperature and prompt, as evaluation results keep them.
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "analytics_experiment_scores"
        constraints = [
            # A re-run or redelivered tick never scores an answer twice with one scorer.
            models.UniqueConstraint(
                fields=["experiment", "query", "scorer"], name="experiment_scores_unique"
            )
        ]
        indexes = [
            # The day's spend and the per-arm means read one experiment's rows.
            models.Index(fields=["experiment", "created_at"], name="experiment_scores_day"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}/{self.variant} {self.scorer}: {self.score}"
