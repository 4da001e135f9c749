"""Writes for sessions, their events and the chat UI's conversations.

Experiment writes are in ``sessions.experiments``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from django.contrib.auth.models import User
from django.db import IntegrityError
from django.db.models import F, Value
from django.db.models.functions import Coalesce

from llmplatform.core.contract import MAX_ID_LENGTH
from llmplatform.core.errors import ApplicationError
from sessions.assignment import variant_for_user
from sessions.models import Event, Experiment, Session, stored_now
from sessions.selectors import (
    end_user_session_get,
    experiments_applying_to,
    session_get,
    session_metrics,
)

# The event types clients may send. "custom" is the escape hatch for anything else.
EVENT_TYPES = (
    "click",
    "scroll",
    "input",
    "custom",
    "page_view",
    "focus",
    "blur",
    "navigation",
    "error",
    "query",
)
MAX_EVENT_DATA_BYTES = 16 * 1024
MAX_BATCH_EVENTS = 500
# Year 9999 in epoch ms: anything larger is not a timestamp, it is a bug on the client.
MAX_EVENT_T = 253_402_300_799_999


@dataclass
class EventRejection:
    index: int
    code: str
    reason: str
    id: str | None = None


@dataclass
class EventBatchResult:
    session_id: str
    received: int
    stored: int
    duplicates: int
    rejected: list[EventRejection] = field(default_factory=list)


@dataclass
class SessionStartResult:
    session: Session
    created: bool


@dataclass
class SessionEndResult:
    session: Session
    already_ended: bool


def _running_experiment_assignments(*, owner_id: str, user_id: str) -> dict[str, str]:
    return {
        experiment.key: variant_for_user(
            owner_id=owner_id,
            user_id=user_id,
            experiment_key=experiment.key,
            variants=experiment.variants,
        )
        # An owner's experiment assigns only that owner's sessions: an API key owner's
        # test must not move another tenant's users between models or prompts.
        for experiment in experiments_applying_to(owner_id=owner_id)
        .filter(status=Experiment.Status.RUNNING)
        .only("key", "variants")
    }


def session_start(
    *, owner: User, session_id: str, user_id: str, environment: Mapping[str, Any]
) -> SessionStartResult:
    """Create the session (or return the existing one). Raises ApplicationError 409."""
    existing = Session.objects.filter(owner=owner, session_id=session_id).first()
    if existing is None:
        session = Session(
            owner=owner,
            session_id=session_id,
            user_id=user_id,
            environment=dict(environment),
            device=str(environment.get("device") or ""),
            start_t=stored_now(),
            # Exposure: the assignments are written once, here, and never re-rolled.
            experiments=_running_experiment_assignments(owner_id=str(owner.pk), user_id=user_id),
        )
        try:
            session.save(force_insert=True)
        except IntegrityError:
            # A retried start raced us to the unique (owner, session_id) index.
            existing = Session.objects.get(owner=owner, session_id=session_id)
        else:
            return SessionStartResult(session=session, created=True)
    if existing.user_id != user_id:
        raise ApplicationError(
            f'Session "{session_id}" already exists for another user_id. Session ids must '
            "be unique per API key owner; start a new session with a new id.",
            code="session_conflict",
            status=409,
        )
    return SessionStartResult(session=existing, created=False)


# (owner id, session id) -> (session, when it was read). What a query needs of its session
# never changes once it started (its experiment assignments are written once), so the
# next questions of a conversation skip the read.
_KNOWN_SESSIONS: OrderedDict[tuple[str, str], tuple[Session, float]] = OrderedDict()
_KNOWN_SESSIONS_MAX = 10_000
_KNOWN_SESSION_TTL_S = 300.0
_known_lock = threading.Lock()


def session_for_query(*, owner: User, session_id: str, user_id: str) -> Session:
    """The session a query belongs to, started through ``session_start`` when it is new.

    A query may name a session that another of the owner's end users started (the query
    API always allowed it): that session is used as it is. Raises nothing it can avoid.
    """
    key = (str(owner.pk), session_id)
    now = time.monotonic()
    with _known_lock:
        known = _KNOWN_SESSIONS.get(key)
        if known is not None and now - known[1] < _KNOWN_SESSION_TTL_S:
            _KNOWN_SESSIONS.move_to_end(key)
            return known[0]
    session = Session.objects.filter(owner=owner, session_id=session_id).first()
    if session is None:
        try:
            session = session_start(
                owner=owner, session_id=session_id, user_id=user_id, environment={}
            ).session
        except ApplicationError:
            # Started for another end user by a concurrent request, between read and write.
            session = Session.objects.get(owner=owner, session_id=session_id)
    with _known_lock:
        _KNOWN_SESSIONS[key] = (session, now)
        while len(_KNOWN_SESSIONS) > _KNOWN_SESSIONS_MAX:
            _KNOWN_SESSIONS.popitem(last=False)
    return session


def session_query_record(*, session: Session, at: datetime) -> None:
    """Count a query the run stored in ``session`` (asked at ``at``). Raises nothing.

    The run calls this once per stored query: sessions sit below queries and never read
    them, so a session's query numbers are pushed down here. An ended session keeps the
    numbers it ended with.
    """
    # One update (one round trip on the question's path): the first query's time is kept.
    Session.objects.filter(pk=session.pk, end_t=None).update(
        query_count=F("query_count") + 1,
        first_query_at=Coalesce(F("first_query_at"), Value(at)),
    )


def _data_size(data: Any) -> int:
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def _event_problem(raw: Any) -> ApplicationError | None:
    """Why an event cannot be stored (its code, reason and status), or None when it is valid."""
    if not isinstance(raw, dict):
        return ApplicationError(
            "An event must be an object with t, type and data.", code="invalid_event"
        )
    event_type = raw.get("type")
    if not isinstance(event_type, str) or not event_type:
        return ApplicationError('The event has no "type".', code="invalid_event")
    if event_type not in EVENT_TYPES:
        return ApplicationError(
            f'Unknown event type "{event_type[:40]}"; allowed: {", ".join(EVENT_TYPES)}.',
            code="unknown_event_type",
        )
    t = raw.get("t")
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= MAX_EVENT_T:
        return ApplicationError(
            '"t" must be an integer time in epoch milliseconds.', code="invalid_event"
        )
    data = raw.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return ApplicationError('"data" must be an object.', code="invalid_event")
    size = _data_size(data)
    if size > MAX_EVENT_DATA_BYTES:
        return ApplicationError(
            f'"data" is {size} bytes as JSON; the limit is {MAX_EVENT_DATA_BYTES} bytes.',
            code="event_data_too_large",
            status=413,
        )
    event_id = raw.get("id")
    if event_id is not None and (
        not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID_LENGTH
    ):
        return ApplicationError(
            f'"id" must be a string of 1-{MAX_ID_LENGTH} characters.', code="invalid_event"
        )
    unknown = sorted(set(raw) - {"id", "t", "type", "data"})
    if unknown:
        return ApplicationError(
            f"Unknown event field(s): {', '.join(unknown)}.", code="invalid_event"
        )
    return None


def _open_session(*, owner: User, session_id: str) -> Session:
    session = session_get(owner=owner, session_id=session_id)
    if session.is_ended:
        raise ApplicationError(
            f'Session "{session_id}" has ended; it accepts no more events. Start a new session.',
            code="session_ended",
            status=409,
        )
    return session


def _events_insert(*, events: list[Event]) -> int:
    """Insert events whose ids were new a moment ago; returns how many *this call* stored."""
    if not events:
        return 0
    # Our own primary keys let us tell, after a duplicate-key error, which documents we
    # wrote: the ordered insert stops at the first duplicate and leaves the rest unwritten.
    for event in events:
        event.pk = ObjectId()
    try:
        Event.objects.bulk_create(events)
    except IntegrityError:
        # Only a concurrent retry of the same events gets here (ids were checked just now).
        ours = set(
            Event.objects.filter(pk__in=[event.pk for event in events]).values_list("pk", flat=True)
        )
        stored = len(ours)
        for event in events:
            if event.pk in ours:
                continue
            try:
                event.save(force_insert=True)
            except IntegrityError:
                continue  # the other request stored this one
            stored += 1
        return stored
    return len(events)


def session_events_track(
    *, owner: User, session_id: str, events: Sequence[Any]
) -> EventBatchResult:
    """Store the valid events of a batch once each. Raises NotFound, ApplicationError 4xx."""
    if not events:
        raise ApplicationError(
            '"events" is empty; send 1 to 500 events.', code="empty_batch", status=400
        )
    if len(events) > MAX_BATCH_EVENTS:
        raise ApplicationError(
            f"The batch has {len(events)} events; the limit is {MAX_BATCH_EVENTS} per request.",
            code="batch_too_large",
            status=413,
        )
    session = _open_session(owner=owner, session_id=session_id)
    now = stored_now()
    rejected: list[EventRejection] = []
    candidates: dict[str, Event] = {}
    duplicates = 0
    for index, raw in enumerate(events):
        problem = _event_problem(raw)
        if problem is not None:
            client_id = raw.get("id") if isinstance(raw, dict) else None
            rejected.append(
                EventRejection(
                    index=index,
                    code=problem.code,
                    reason=problem.message,
                    id=client_id if isinstance(client_id, str) else None,
                )
            )
            continue
        event_id = raw.get("id") or uuid.uuid4().hex
        if event_id in candidates:
            duplicates += 1
            continue
        candidates[event_id] = Event(
            owner=owner,
            session_id=session.session_id,
            event_id=event_id,
            type=raw["type"],
            t=raw["t"],
            data=raw.get("data") or {},
            received_at=now,
        )
    already_stored = set(
        Event.objects.filter(
            owner=owner, session_id=session.session_id, event_id__in=list(candidates)
        ).values_list("event_id", flat=True)
    )
    fresh = [event for event_id, event in candidates.items() if event_id not in already_stored]
    stored = _events_insert(events=fresh)
    if stored:
        Session.objects.filter(pk=session.pk).update(event_count=F("event_count") + stored)
    return EventBatchResult(
        session_id=session.session_id,
        received=len(events),
        stored=stored,
        duplicates=duplicates + len(candidates) - stored,
        rejected=rejected,
    )


def session_event_track(*, owner: User, session_id: str, event: Any) -> EventBatchResult:
    """Store one event once. Raises NotFound, ApplicationError (400, 409, 413)."""
    problem = _event_problem(event)
    if problem is not None:
        raise problem
    return session_events_track(owner=owner, session_id=session_id, events=[event])


def session_end(*, owner: User, session_id: str, end_t: datetime | None = None) -> SessionEndResult:
    """End the session (at ``end_t``, default now) and store its final metrics; a no-op
    when ended. Raises NotFound."""
    session = session_get(owner=owner, session_id=session_id)
    if session.is_ended:
        return SessionEndResult(session=session, already_ended=True)
    end_t = stored_now() if end_t is None else max(end_t, session.start_t)
    metrics = session_metrics(session=session, now=end_t)
    # The end_t filter makes two concurrent ends write once: the loser sees 0 rows.
    updated = Session.objects.filter(pk=session.pk, end_t=None).update(
        end_t=end_t, metrics=metrics.as_document(), event_count=metrics.event_count
    )
    session.refresh_from_db()
    return SessionEndResult(session=session, already_ended=updated == 0)


# ----- chat UI conversations: sessions that end when the user leaves or goes idle -----

# Activity keeps a conversation's session open this long. Leaving the page gives a reload
# (which reports activity again) this long to come back before the session ends.
CONVERSATION_IDLE_END = timedelta(minutes=30)
CONVERSATION_LEAVE_GRACE = timedelta(seconds=60)
MAX_TITLE_CHARS = 200


def conversation_start(
    *, owner: User, session_id: str, user_id: str, environment: Mapping[str, Any]
) -> SessionStartResult:
    """``session_start``, then the session ends after inactivity. Raises ApplicationError 409."""
    result = session_start(
        owner=owner, session_id=session_id, user_id=user_id, environment=environment
    )
    if not result.session.is_ended:
        _activity_mark(session=result.session, ends_in=CONVERSATION_IDLE_END)
    return result


def _activity_mark(*, session: Session, ends_in: timedelta) -> None:
    now = stored_now()
    Session.objects.filter(pk=session.pk, end_t=None).update(
        last_active_at=now, ends_after=now + ends_in
    )
    session.last_active_at, session.ends_after = now, now + ends_in


def conversation_activity_record(
    *, owner: User, user_id: str, session_id: str, event: Any
) -> EventBatchResult:
    """Store the event and keep the end user's session open. Raises NotFound (also for the
    owner's other end users' sessions), ApplicationError 4xx (409 session_ended once it ended)."""
    end_user_session_get(owner=owner, user_id=user_id, session_id=session_id)
    result = session_event_track(owner=owner, session_id=session_id, event=event)
    _activity_mark(
        session=end_user_session_get(owner=owner, user_id=user_id, session_id=session_id),
        ends_in=CONVERSATION_IDLE_END,
    )
    return result


def conversation_leave(*, owner: User, user_id: str, session_id: str) -> Session:
    """The end user left the page: the session ends unless they come back within the grace
    period. Raises NotFound (also for the owner's other end users' sessions)."""
    session = end_user_session_get(owner=owner, user_id=user_id, session_id=session_id)
    if not session.is_ended:
        _activity_mark(session=session, ends_in=CONVERSATION_LEAVE_GRACE)
    return session


def conversation_rename(*, owner: User, user_id: str, session_id: str, title: str) -> Session:
    """Set the end user's conversation's title; blank returns to its first question.
    Raises NotFound (also for the owner's other end users' sessions), ApplicationError 400."""
    session = end_user_session_get(owner=owner, user_id=user_id, session_id=session_id)
    title = " ".join(title.split())
    if len(title) > MAX_TITLE_CHARS:
        raise ApplicationError(
            f"A title has at most {MAX_TITLE_CHARS} characters.", code="title_too_long"
        )
    session.title = title
    session.save(update_fields=["title"])
    return session


def session_cache_forget(*, owner_id: object, session_id: str) -> None:
    """Drop a deleted session from this process's cache of sessions queries belong to."""
    with _known_lock:
        _KNOWN_SESSIONS.pop((str(owner_id), session_id), None)


def sessions_end_idle(*, now: datetime | None = None) -> int:
    """End every session whose activity window passed, at its last activity; returns how
    many this call ended. Raises nothing."""
    now = now or stored_now()
    due = Session.objects.filter(end_t=None, ends_after__lt=now)
    ended = 0
    for session in due.iterator():
        result = session_end(
            owner=session.owner,
            session_id=session.session_id,
            end_t=session.last_active_at or session.start_t,
        )
        ended += not result.already_ended
    return ended
