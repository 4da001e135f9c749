"""Celery tasks of documents: ids in, idempotent, time-limited, acknowledged late."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from files.config import documents_config
from files.ingestion import (
    document_ingest,
    document_ingest_crashed,
    document_ingest_timed_out,
    documents_sweep,
)
from llmplatform.core import tracing

logger = logging.getLogger(__name__)
_config = documents_config()


@shared_task(
    name="files.ingest_document",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=_config.celery_soft_limit_s,
    time_limit=_config.celery_hard_limit_s,
    ignore_result=True,
)
def ingest_document(file_id: str) -> None:
    """Extract, chunk and embed one uploaded document (stores ``ready`` or ``failed``).
    Traced as ``document.ingest``, a trace of its own."""
    try:
        with tracing.span("document.ingest", {"llmplatform.file_id": file_id}):
            document_ingest(file_id=file_id)
    except SoftTimeLimitExceeded:
        document_ingest_timed_out(file_id=file_id)
    except Exception:  # the task boundary: a bug must not leave the file "processing"
        logger.exception("ingesting document %s crashed", file_id)
        document_ingest_crashed(file_id=file_id)


@shared_task(name="files.sweep_ingestions", acks_late=True, ignore_result=True)
def sweep_ingestions() -> int:
    """Fail ingestions whose worker died or that no worker took (beat, or in-process)."""
    return documents_sweep()
