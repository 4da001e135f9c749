"""Chat UI conversations as sessions: they end after inactivity, or soon after the user
left, at their last activity (sessions.services.sessions_end_idle)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from llmplatform.core.errors import ApplicationError
from sessions.models import Session
from sessions.services import (
    CONVERSATION_IDLE_END,
    CONVERSATION_LEAVE_GRACE,
    conversation_activity_record,
    conversation_leave,
    conversation_start,
    sessions_end_idle,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def user():
    return get_user_model().objects.create(username="erin")


def started(user, session_id: str) -> Session:
    return conversation_start(
        owner=user, session_id=session_id, user_id="erin", environment={"device": "phone"}
    ).session


def test_an_idle_conversation_ends_at_its_last_activity(user):
    session = started(user, "idle")
    active_at = session.last_active_at
    assert sessions_end_idle(now=timezone.now() + CONVERSATION_IDLE_END / 2) == 0
    assert sessions_end_idle(now=timezone.now() + CONVERSATION_IDLE_END + timedelta(seconds=1)) == 1
    session.refresh_from_db()
    assert session.end_t == active_at
    assert session.metrics["duration_seconds"] == pytest.approx(
        (active_at - session.start_t).total_seconds(), abs=0.01
    )
    assert sessions_end_idle(now=timezone.now() + CONVERSATION_IDLE_END * 3) == 0


def test_leaving_ends_it_after_the_grace_unless_the_user_comes_back(user):
    started(user, "left")
    started(user, "reloaded")
    conversation_leave(owner=user, user_id="erin", session_id="left")
    conversation_leave(owner=user, user_id="erin", session_id="reloaded")
    conversation_activity_record(
        owner=user, user_id="erin", session_id="reloaded", event={"type": "page_view", "t": 1}
    )
    assert sessions_end_idle(now=timezone.now() + CONVERSATION_LEAVE_GRACE * 2) == 1
    assert Session.objects.get(session_id="left").end_t is not None
    assert Session.objects.get(session_id="reloaded").end_t is None


def test_sessions_that_report_no_activity_are_left_alone(user):
    # Sessions of API clients are ended by those clients (POST /session/end), not swept.
    Session.objects.create(owner=user, session_id="api", user_id="erin")
    assert sessions_end_idle(now=timezone.now() + timedelta(days=30)) == 0


def test_an_ended_conversation_accepts_no_activity(user):
    started(user, "over")
    sessions_end_idle(now=timezone.now() + CONVERSATION_IDLE_END * 2)
    with pytest.raises(ApplicationError) as raised:
        conversation_activity_record(
            owner=user, user_id="erin", session_id="over", event={"type": "query", "t": 1}
        )
    assert raised.value.code == "session_ended"


def test_the_sweep_is_a_scheduled_task(user, settings):
    from sessions.tasks import end_idle_sessions

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert end_idle_sessions.name in scheduled
    started(user, "due")
    Session.objects.filter(session_id="due").update(
        ends_after=timezone.now() - timedelta(seconds=1)
    )
    assert end_idle_sessions.apply().get() == 1
    assert Session.objects.get(session_id="due").end_t is not None
