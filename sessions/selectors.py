"""Reads of sessions, their events and experiment assignments.

API reads take the calling ``owner`` and never see another owner's documents. Reads that
also need queries (analytics, the dashboard, experiment results) live in ``analytics``:
``queries`` depends on ``sessions``, so ``sessions`` never imports ``queries``; a
session's query numbers are pushed down by the run instead (``session_query_record``).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from django.contrib.auth.models import User
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from llmplatform.core.errors import ApplicationError, NotFound
from sessions.models import Event, Experiment, Session

DEFAULT_EVENTS_LIMIT = 100
MAX_EVENTS_LIMIT = 500
# A session shorter than this counts as this long for events per minute, so a burst of
# clicks in the first seconds does not report an absurd engagement rate.
MIN_ENGAGEMENT_WINDOW_S = 60.0


def session_get(*, owner: User, session_id: str) -> Session:
    """The owner's session. Raises NotFound (also for other owners' sessions)."""
    try:
        return Session.objects.get(owner=owner, session_id=session_id)
    except Session.DoesNotExist:
        raise NotFound(
            f'Session "{session_id}"',
            extra={"hint": "Start it with POST /api/v1/session/start first."},
        ) from None


def end_user_session_get(*, owner: User, user_id: str, session_id: str) -> Session:
    """The owner's session of one end user (the chat page acts only for its own user).

    Raises NotFound, also for the same owner's other end users' sessions: the page must
    not learn that they exist.
    """
    try:
        return Session.objects.get(owner=owner, user_id=user_id, session_id=session_id)
    except Session.DoesNotExist:
        raise NotFound(
            f'Conversation "{session_id}"',
            extra={"hint": "Open one of your own conversations (GET /chat/api/conversations)."},
        ) from None


def conversation_answer_settings(*, owner: User, session_id: str) -> dict[str, Any]:
    """The conversation's answer settings as stored now (a fresh read: callers may hold a
    session read minutes ago, and the user may have changed them since); none for a
    session not started yet. By the session's id, so that it needs no session read before
    it. Raises nothing."""
    stored = Session.objects.filter(owner=owner, session_id=session_id).values_list(
        "answer_settings", flat=True
    )
    return dict(stored.first() or {})


def documents_kept_elsewhere(
    *, owner: User, user_id: str, session_id: str, file_ids: list[str]
) -> set[str]:
    """Which of ``file_ids`` the end user's other conversations keep as documents.
    Raises nothing."""
    if not file_ids:
        return set()
    rows = Session.objects.filter(owner=owner, user_id=user_id).exclude(session_id=session_id)
    kept: set[str] = set()
    for document_ids in rows.values_list("document_ids", flat=True):
        kept.update(set(file_ids).intersection(document_ids or []))
    return kept


@dataclass
class SessionMetrics:
    duration_seconds: float
    query_count: int
    event_count: int
    event_counts_by_type: dict[str, int]
    time_to_first_query_seconds: float | None
    events_per_minute: float
    first_query_at: datetime | None = None

    def as_document(self) -> dict[str, Any]:
        """JSON-safe: what the API returns and what ``session_end`` stores."""
        return {
            "duration_seconds": self.duration_seconds,
            "query_count": self.query_count,
            "event_count": self.event_count,
            "event_counts_by_type": self.event_counts_by_type,
            "time_to_first_query_seconds": self.time_to_first_query_seconds,
            "events_per_minute": self.events_per_minute,
        }


def session_metrics(*, session: Session, now: datetime | None = None) -> SessionMetrics:
    """Live metrics: from the session's events and the queries counted into it."""
    end = session.end_t or now or timezone.now()
    duration = max((end - session.start_t).total_seconds(), 0.0)
    by_type = {
        row["type"]: row["n"]
        for row in Event.objects.filter(owner_id=session.owner_id, session_id=session.session_id)
        .values("type")
        .annotate(n=Count("id"))
        .order_by("type")
    }
    # Counted as the run stores each query (``sessions.services.session_query_record``):
    # this app sits below queries and never reads them.
    query_count, first_query_at = session.query_count, session.first_query_at
    event_count = sum(by_type.values())
    return SessionMetrics(
        duration_seconds=round(duration, 3),
        query_count=query_count,
        event_count=event_count,
        event_counts_by_type=by_type,
        time_to_first_query_seconds=(
            round(max((first_query_at - session.start_t).total_seconds(), 0.0), 3)
            if first_query_at
            else None
        ),
        events_per_minute=round(event_count / (max(duration, MIN_ENGAGEMENT_WINDOW_S) / 60), 3),
        first_query_at=first_query_at,
    )


def session_metrics_document(*, session: Session) -> dict[str, Any]:
    """Final metrics for an ended session (stored when it ended), live ones otherwise."""
    if session.is_ended and session.metrics:
        return session.metrics
    return session_metrics(session=session).as_document()


@dataclass
class EventPage:
    events: list[Event]
    next_cursor: str | None


def _cursor_encode(event: Event) -> str:
    raw = json.dumps([event.t, str(event.pk)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[int, ObjectId]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        t, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if isinstance(t, bool) or not isinstance(t, int):
            raise ValueError("t")
        return t, ObjectId(pk)
    except (ValueError, TypeError, InvalidId, binascii.Error, UnicodeDecodeError):
        raise ApplicationError(
            "events_cursor is not a cursor this API returned; pass the previous page's "
            "next_cursor unchanged.",
            code="invalid_cursor",
            status=400,
        ) from None


def session_events_page(*, session: Session, limit: int, cursor: str | None) -> EventPage:
    """The session's events in client time order (ties by arrival), one page after ``cursor``."""
    events = Event.objects.filter(owner_id=session.owner_id, session_id=session.session_id)
    if cursor:
        t, pk = _cursor_decode(cursor)
        # Keyset pagination: stable while events keep arriving, no skip over large sessions.
        events = events.filter(Q(t__gt=t) | Q(t=t, pk__gt=pk))
    page = list(events.order_by("t", "pk")[: limit + 1])
    has_more = len(page) > limit
    page = page[:limit]
    return EventPage(events=page, next_cursor=_cursor_encode(page[-1]) if has_more else None)


def experiment_list(*, owner: User) -> QuerySet[Experiment]:
    """The owner's experiments (API); operator-wide ones (no owner) are admin's alone."""
    return Experiment.objects.filter(owner=owner)


def experiment_get(*, owner: User, experiment_id: str) -> Experiment:
    """The owner's experiment. Raises NotFound (other owners', operators', malformed ids)."""
    try:
        return Experiment.objects.get(owner=owner, pk=ObjectId(experiment_id))
    except (InvalidId, TypeError, Experiment.DoesNotExist):
        raise NotFound("Experiment") from None


def experiments_applying_to(*, owner_id: ObjectId | str) -> QuerySet[Experiment]:
    """The experiments that may assign this owner's sessions: its own and operator-wide ones."""
    return Experiment.objects.filter(Q(owner__isnull=True) | Q(owner_id=owner_id))


def experiment_key_in_use(
    *, owner_id: ObjectId | None, key: str, exclude_pk: ObjectId | None = None
) -> bool:
    """Whether ``key`` would name two experiments for some owner's sessions: the owner's
    own or an operator-wide one with that key; for an operator-wide experiment
    (``owner_id`` None), any experiment with that key. Other owners' keys never count
    against an owner (keys are per owner)."""
    same_key = Experiment.objects.filter(key=key)
    if exclude_pk is not None:
        same_key = same_key.exclude(pk=exclude_pk)
    if owner_id is not None:
        same_key = same_key.filter(Q(owner__isnull=True) | Q(owner_id=owner_id))
    return same_key.exists()


@dataclass(frozen=True)
class AssignedVariant:
    """A running experiment's variant for one session, and what that variant changes."""

    experiment_key: str
    variant: str
    # Any of: model_provider, model_name, system_prompt, temperature.
    overrides: dict[str, Any]
    # The settings the experiment varies: every key any of its variants overrides. A
    # request that sets one of them itself is not exposed to the experiment, whichever
    # arm it is in, so every arm (a control without overrides too) is counted alike.
    varied: frozenset[str] = frozenset()


def session_variants(*, session: Session) -> list[AssignedVariant]:
    """The running experiments' variants a session was exposed to, oldest experiment first.

    A stopped experiment no longer changes anything. The caller decides which overrides
    apply (a request's own choice wins); when two experiments override the same setting,
    the one started first wins, so a new experiment never silently takes over an older
    one's users.
    """
    assigned = session.experiments or {}
    if not assigned:
        return []
    running = (
        experiments_applying_to(owner_id=session.owner_id)
        .filter(key__in=list(assigned), status=Experiment.Status.RUNNING)
        .order_by("started_at", "key")
    )
    result = []
    for experiment in running:
        name = assigned[experiment.key]
        variants = experiment.variants or []
        overrides = next((v.get("overrides") or {} for v in variants if v.get("name") == name), {})
        varied = frozenset(key for v in variants for key in v.get("overrides") or {})
        result.append(AssignedVariant(experiment.key, name, dict(overrides), varied))
    return result
