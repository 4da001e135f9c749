"""Analytics sessions, their events, and A/B experiments."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from llmplatform.core.contract import MAX_ID_LENGTH


def stored_now() -> datetime:
    """Now, to the millisecond BSON dates hold: a create response shows what a read returns."""
    now = timezone.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Session(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions"
    )
    session_id = models.CharField(max_length=MAX_ID_LENGTH)
    user_id = models.CharField(max_length=MAX_ID_LENGTH)
    environment = models.JSONField(default=dict, blank=True)
    # Copied out of ``environment`` so admin can filter on it.
    device = models.CharField(max_length=50, blank=True, default="")
    # Experiment key -> variant name; written once, when the session starts (exposure).
    experiments = models.JSONField(default=dict, blank=True)
    start_t = models.DateTimeField(default=timezone.now)
    end_t = models.DateTimeField(null=True, blank=True)
    event_count = models.PositiveIntegerField(default=0)
    query_count = models.PositiveIntegerField(default=0)
    first_query_at = models.DateTimeField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    # Shopping interview state (round, answers), kept with the session.
    shopping_state = models.JSONField(default=dict, blank=True)
    # The chat UI's name for the conversation; blank means "titled by its first question".
    title = models.CharField(max_length=200, blank=True, default="")
    # Set by clients that report activity (the chat UI): the idle sweep ends the session
    # at ``last_active_at`` once ``ends_after`` has passed without newer activity.
    last_active_at = models.DateTimeField(null=True, blank=True)
    ends_after = models.DateTimeField(null=True, blank=True)
    # The chat UI's documents of this conversation (file ids, in the order attached): every
    # later question in it is asked with them, until the user removes one.
    document_ids = models.JSONField(default=list, blank=True)
    # The chat UI's answer settings of this conversation, in the experiment overrides'
    # vocabulary (model_provider, model_name, system_prompt, temperature; checked by
    # ``sessions.assignment.overrides_clean``): every question in the session that leaves
    # a field open is answered with them, ahead of an experiment's variant.
    answer_settings = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "sessions"
        indexes = [
            models.Index(fields=["user_id"], name="sessions_user_id"),
            models.Index(fields=["session_id"], name="sessions_session_id"),
            models.Index(fields=["start_t"], name="sessions_start_t"),
            # Analytics reads one owner's sessions by day.
            models.Index(fields=["owner", "start_t"], name="sessions_owner_start"),
            # Rollups fold sessions that ended since their watermark.
            models.Index(fields=["end_t"], name="sessions_end_t"),
            # The admin list's default order, with its _id tie-breaker.
            models.Index(fields=["-start_t", "-id"], name="sessions_page"),
            # The chat UI lists one end user's conversations, newest first.
            models.Index(
                fields=["owner", "user_id", "-start_t", "-id"], name="sessions_owner_user_page"
            ),
            # The idle sweep: open sessions whose end is due.
            models.Index(fields=["end_t", "ends_after"], name="sessions_idle_due"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["owner", "session_id"], name="sessions_unique_id")
        ]

    def __str__(self) -> str:
        return self.session_id

    @property
    def is_ended(self) -> bool:
        return self.end_t is not None


class Event(models.Model):
    """One client event. Its own collection: a session can have unbounded events."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    session_id = models.CharField(max_length=MAX_ID_LENGTH)
    # The client's id for the event (or one we made up): re-sending it stores nothing new.
    event_id = models.CharField(max_length=MAX_ID_LENGTH)
    type = models.CharField(max_length=32)
    t = models.BigIntegerField(help_text="When it happened on the client, epoch milliseconds")
    data = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "events"
        indexes = [
            models.Index(fields=["owner", "session_id", "t"], name="events_session_t"),
            # Analytics counts one owner's events by the day they arrived.
            models.Index(fields=["owner", "received_at"], name="events_owner_received"),
            # Rollups fold events received since their watermark, every owner's.
            models.Index(fields=["received_at"], name="events_received"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "session_id", "event_id"], name="events_unique_client_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.type}@{self.t}"


class Experiment(models.Model):
    """An A/B experiment.

    With an ``owner`` (created over the API with that owner's key) it assigns only that
    owner's sessions; without one (created by an operator in admin) every owner's.
    """

    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        STOPPED = "stopped"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="experiments",
        null=True,
        blank=True,
        help_text="Only this owner's sessions are assigned; empty: every owner's sessions.",
    )
    # Unique per owner (and among operator-wide experiments): sessions and queries store
    # exposure by key, and always belong to one owner, so (owner, key) names the experiment.
    # An owner's key never equals an operator-wide one (services check it): both would
    # assign that owner's sessions under one key. (A slug field is indexed: that check
    # reads by key alone.)
    key = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # [{"name": "control", "weight": 50, "overrides": {"model_provider": ..., "model_name":
    #   ..., "system_prompt": ..., "temperature": ...}}, ...]
    variants = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "experiments"
        indexes = [
            # The API lists one owner's experiments, newest first.
            models.Index(fields=["owner", "-created_at"], name="experiments_owner_created"),
        ]
        constraints = [
            # nulls_distinct=False: operator-wide experiments (owner null) are unique too.
            models.UniqueConstraint(
                fields=["owner", "key"], name="experiments_unique_owner_key", nulls_distinct=False
            )
        ]

    def __str__(self) -> str:
        return self.key


class ConversationShare(models.Model):
    """A read-only link to one chat conversation, for anyone who has it.

    The token is the whole credential: random (``secrets.token_urlsafe``), never derived
    from the session. It is kept readable so the owner can copy the link again; it opens
    a conversation's questions and answers, nothing that signs anyone in. Revoking sets
    ``revoked_at``: the link is then a 404, and sharing again makes a new token.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    session_id = models.CharField(max_length=MAX_ID_LENGTH)
    # The end user whose questions the page shows (the conversation's own user).
    user_id = models.CharField(max_length=MAX_ID_LENGTH)
    token = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "conversation_shares"
        indexes = [
            # The owner's page asks for a conversation's live link.
            models.Index(fields=["owner", "session_id", "revoked_at"], name="shares_owner_session"),
        ]
        constraints = [models.UniqueConstraint(fields=["token"], name="shares_unique_token")]

    def __str__(self) -> str:
        return f"share of {self.session_id}"


class ConversationPreset(models.Model):
    """A chat user's saved answer settings and question options, applied to a
    conversation in one step: ``settings`` in the answer settings' vocabulary (checked
    like ``Session.answer_settings``), ``options`` the page's question options (mode,
    web_search, memory, use_documents)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # The end user the presets belong to (the chat page's: the account's user name).
    user_id = models.CharField(max_length=MAX_ID_LENGTH)
    name = models.CharField(max_length=80)
    settings = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "conversation_presets"
        constraints = [
            # Saving a preset under a name it already has replaces it.
            models.UniqueConstraint(fields=["owner", "user_id", "name"], name="presets_unique_name")
        ]

    def __str__(self) -> str:
        return self.name
