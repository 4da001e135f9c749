"""Periodic work logs only when it did something.

Celery logs every task's success at INFO ("Task queries.sweep_runs[...] succeeded in
0.01s: 0"). The sweepers run every few seconds (CELERY_BEAT_SCHEDULE, run by beat or by
the in-process scheduler of llmplatform/core/dispatch.py), so those lines buried everything else,
the first-run credentials included. This filter, on the ``celery.app.trace`` logger
(settings.LOGGING), turns the success line of a scheduled task into DEBUG when its
result says it did nothing. The scheduled tasks' convention: the last number in what
they return counts what they did (``0`` from a sweep, ``"folded until ... (0 queries)"``
from the rollups). Failures, and every task not on the schedule, are left as they are.
"""

from __future__ import annotations

import logging
import re

_LAST_NUMBER = re.compile(r"(\d+)\D*$")


def _scheduled_tasks() -> frozenset[str]:
    from django.conf import settings

    return frozenset(entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values())


def did_nothing(return_value: str) -> bool:
    """Whether a scheduled task's (repr'd) result counts zero things done."""
    match = _LAST_NUMBER.search(return_value)
    return match is not None and int(match.group(1)) == 0


class QuietIdleSweeps(logging.Filter):
    """Demote "succeeded ... 0" of scheduled tasks to DEBUG (kept only at LOG_LEVEL=DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = record.args
        if record.levelno != logging.INFO or not isinstance(context, dict):
            return True
        if "return_value" not in context or context.get("name") not in _scheduled_tasks():
            return True
        if not did_nothing(str(context["return_value"])):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        # The logger let the record through at INFO; at DEBUG it is kept only if wanted.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
