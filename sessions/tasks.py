"""Periodic work of the sessions app."""

from __future__ import annotations

from celery import shared_task

from sessions.services import sessions_end_idle


@shared_task(name="sessions.end_idle", acks_late=True, ignore_result=True)
def end_idle_sessions() -> int:
    """End sessions that went idle or whose user left (Celery beat, or the in-process
    scheduler)."""
    return sessions_end_idle()
