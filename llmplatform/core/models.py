"""API keys (how REST and websocket clients authenticate, one owner each) and the
limits of accounts that sign in without a key (the browser chat)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """A bearer key for the API. Only its SHA-256 is stored; the raw key is shown once."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    # The first characters of the key, shown in admin so operators can tell keys apart.
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Limits and budgets (llmplatform.core.quotas). Blank: the DEFAULT_KEY_* /
    # DEFAULT_USER_* setting applies; no limit when that is unset too.
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Questions per minute (every transport)."
    )
    tokens_per_day = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Input + output tokens per UTC day."
    )
    usd_per_month = models.DecimalField(
        "USD per month",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Provider cost per UTC calendar month.",
    )
    user_requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Questions per minute for each end user (user_id)."
    )
    user_tokens_per_day = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Tokens per UTC day for each end user (user_id)."
    )
    storage_mb = models.PositiveIntegerField(
        "storage (MB)",
        null=True,
        blank=True,
        help_text="Uploaded documents and their chunks, in MB.",
    )

    class Meta:
        db_table = "api_keys"
        verbose_name = "API key"
        indexes = [models.Index(fields=["owner", "created_at"], name="api_keys_owner_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AccountLimits(models.Model):
    """Limits and budgets of a signed-in user's own questions (the chat UI, no API key).

    Blank: the DEFAULT_ACCOUNT_* setting applies; no limit when that is unset too. A user
    without a row gets the defaults.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account_limits"
    )
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Questions per minute from the chat page."
    )
    tokens_per_day = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Input + output tokens per UTC day."
    )
    usd_per_month = models.DecimalField(
        "USD per month",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Provider cost per UTC calendar month.",
    )
    storage_mb = models.PositiveIntegerField(
        "storage (MB)",
        null=True,
        blank=True,
        help_text="Uploaded documents and their chunks, in MB.",
    )

    class Meta:
        db_table = "account_limits"
        verbose_name = "account limits"
        verbose_name_plural = "account limits"

    def __str__(self) -> str:
        return f"limits of {self.user}"


class TraceSpan(models.Model):
    """One finished span of a trace (``llmplatform.core.trace_store``): the built-in store,
    so the embedded default shows traces without a collector. Removed by a TTL index on
    ``expires_at`` (TRACE_RETENTION_DAYS after it was stored); at most TRACE_MAX_SPANS
    per trace."""

    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    # "" for a trace's root (or a span whose parent was another service's).
    parent_id = models.CharField(max_length=16, blank=True, default="")
    name = models.CharField(max_length=200)
    # The question the span served, where known (the run's and its start's spans).
    query_id = models.CharField(max_length=24, blank=True, default="")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    duration_ms = models.FloatField()
    attributes = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, default="unset")  # unset, ok, error
    status_message = models.CharField(max_length=300, blank=True, default="")
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "trace_spans"
        indexes = [models.Index(fields=["trace_id", "started_at"], name="trace_spans_trace")]

    def __str__(self) -> str:
        return f"{self.name} ({self.duration_ms:.1f} ms)"
