"""The Celery application. All Celery settings live in settings.py (CELERY_*)."""

from __future__ import annotations

import os

from celery import Celery, signals

from llmplatform.core import metrics

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmplatform.settings")


@signals.import_modules.connect
def attach_embedded_database(**_kwargs: object) -> None:
    """A worker, beat or ``celery shell`` on the embedded default joins (or starts) it.

    Connected before the app exists so that it runs before the Django fix-up's model
    checks, which query the database. A prefork pool's children share its lease.
    """
    from llmplatform.embedded.attach import attach_embedded_database

    attach_embedded_database()


# Task outcomes and durations, and a worker's own metrics port (METRICS_WORKER_PORT).
metrics.connect_celery_signals()

app = Celery("llmplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
