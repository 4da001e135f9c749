"""Queries (one question and its answer, with its embedding) and session summaries."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_mongodb_backend.fields import ArrayField
from django_mongodb_backend.indexes import SearchIndex, VectorSearchIndex

from llmplatform.core.contract import EMBEDDING_DIMENSIONS, MAX_ID_LENGTH

# The vector index is built for OpenAI's text-embedding-3-small. Vectors of another
# model (the local 384-dimension model) are stored in the same field but Atlas leaves
# them out of the index, and memory retrieval uses exact cosine for them instead.
VECTOR_INDEX_DIMENSIONS = EMBEDDING_DIMENSIONS
VECTOR_INDEX_NAME = "vector_index"
# Atlas Search over past questions, the lexical half of hybrid memory retrieval.
TEXT_INDEX_NAME = "query_text_index"


class Query(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="queries"
    )
    # The caller's end user and session, inside the owner's namespace.
    user_id = models.CharField(max_length=MAX_ID_LENGTH)
    session_id = models.CharField(max_length=MAX_ID_LENGTH)
    query = models.TextField()
    response = models.TextField(blank=True, default="")
    embedding = ArrayField(models.FloatField(), size=VECTOR_INDEX_DIMENSIONS, null=True, blank=True)
    embedding_model = models.CharField(max_length=100, blank=True, default="")
    citations = models.JSONField(default=list, blank=True)
    product_cards = models.JSONField(default=list, blank=True)
    options = models.JSONField(default=list, blank=True)
    intent = models.CharField(max_length=50, blank=True, default="")
    mode = models.CharField(max_length=20, blank=True, default="chat")
    model_provider = models.CharField(max_length=50)
    model_name = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    usage = models.JSONField(default=dict, blank=True)
    latency = models.JSONField(default=dict, blank=True)
    agents_used = models.JSONField(default=list, blank=True)
    # Experiment key -> variant name, for every running experiment the query was exposed to.
    experiments = models.JSONField(default=dict, blank=True)
    # Experiment key -> {"variant", "reason"} for the session's experiments the query was
    # not exposed to: "request_set:<field>" (the request chose a field the experiment
    # varies) or "conflict:<field>" (an older experiment varies it too and wins).
    experiments_excluded = models.JSONField(default=dict, blank=True)
    request = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    error = models.JSONField(null=True, blank=True)
    feedback_rating = models.SmallIntegerField(null=True, blank=True)
    feedback_comment = models.TextField(blank=True, default="")
    feedback_at = models.DateTimeField(null=True, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)
    # Set by the run while it works (claimed, then every RUN_HEARTBEAT_S): the sweeper fails
    # a running query whose heartbeat stopped, so a dead worker never leaves it "running".
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # When the row was last written in a way that can put it in memory (inserted,
    # completed, re-embedded), by the writer's clock at that write. Memory's incremental
    # read follows this, not completed_at: an import copies completed_at from the past,
    # and a row stamped before the last read would never reach a warm matrix.
    indexed_at = models.DateTimeField(default=timezone.now)
    # The OpenTelemetry trace of the question (32 hex digits): its spans in TraceSpan and
    # in any OTLP collector. "" for a query stored before traces.
    trace_id = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        db_table = "queries"
        verbose_name_plural = "queries"
        indexes = [
            models.Index(fields=["user_id"], name="queries_user_id"),
            models.Index(fields=["session_id"], name="queries_session_id"),
            models.Index(fields=["timestamp"], name="queries_timestamp"),
            # History pages: the filter's fields, then the page order with its _id
            # tie-breaker, so a page is read off the index instead of sorting every row.
            models.Index(
                fields=["owner", "session_id", "-timestamp", "-id"],
                name="queries_owner_session_page",
            ),
            models.Index(
                fields=["owner", "user_id", "-timestamp", "-id"], name="queries_owner_user_page"
            ),
            models.Index(fields=["owner", "-timestamp", "-id"], name="queries_owner_page"),
            # The admin list's default order.
            models.Index(fields=["-timestamp", "-id"], name="queries_page"),
            # Memory: one end user's completed vectors of one model, read incrementally.
            models.Index(
                fields=["owner", "user_id", "embedding_model", "status", "indexed_at"],
                name="queries_owner_user_memory",
            ),
            # The sweeper's read: unfinished queries by heartbeat.
            models.Index(fields=["status", "heartbeat_at"], name="queries_status_heartbeat"),
            VectorSearchIndex(
                name=VECTOR_INDEX_NAME,
                # Filters applied inside the search, so other users' and unfinished queries
                # never use up the result limit.
                fields=["embedding", "owner", "user_id", "embedding_model", "status"],
                similarities="cosine",
            ),
            SearchIndex(
                name=TEXT_INDEX_NAME,
                field_mappings={
                    "query": {"type": "string"},
                    "owner": {"type": "objectId"},
                    "user_id": {"type": "token"},
                    "embedding_model": {"type": "token"},
                    "status": {"type": "token"},
                },
            ),
        ]

    def __str__(self) -> str:
        return self.query[:80]


class Summary(models.Model):
    """A summary of a session's conversation up to ``pair_count`` question/answer pairs."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="summaries"
    )
    user_id = models.CharField(max_length=MAX_ID_LENGTH)
    session_id = models.CharField(max_length=MAX_ID_LENGTH)
    summary = models.TextField()
    pair_count = models.PositiveIntegerField()
    model_provider = models.CharField(max_length=50, blank=True, default="")
    model_name = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "summaries"
        verbose_name_plural = "summaries"
        indexes = [
            models.Index(fields=["user_id"], name="summaries_user_id"),
            models.Index(fields=["session_id"], name="summaries_session_id"),
            models.Index(fields=["created_at"], name="summaries_created_at"),
        ]
        constraints = [
            # Summarising the same span twice (a retried task) must not make two summaries.
            models.UniqueConstraint(
                fields=["owner", "session_id", "pair_count"], name="summaries_unique_span"
            )
        ]

    def __str__(self) -> str:
        return f"{self.session_id} @ {self.pair_count} pairs"
