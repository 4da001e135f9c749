"""Writes that start document ingestion: store an upload, queue (re-)ingestion."""

from __future__ import annotations

from django.core.files.uploadedfile import UploadedFile

from files.ingestion import document_requeue
from files.models import File
from files.services import file_upload
from queries.dispatch import dispatcher

INGEST_TASK = "files.ingest_document"


def document_ingest_queue(*, file: File) -> None:
    """Hand a ``pending`` document to the background (Celery, or this process's background
    thread in the embedded default). Raises nothing it can avoid."""
    if file.ingestion_status == File.Ingestion.PENDING:
        dispatcher().submit_background(INGEST_TASK, str(file.pk))


def document_upload(*, owner, user_id: str, upload: UploadedFile) -> File:
    """Store an upload; a document is queued for ingestion (upload never waits for it).

    Raises ApplicationError (413, 415).
    """
    stored = file_upload(owner=owner, user_id=user_id, upload=upload)
    document_ingest_queue(file=stored)
    return stored


def document_reingest(*, file: File) -> File:
    """Ingest a document again (after a failure, or to re-embed); images are left alone.
    Raises nothing."""
    requeued = document_requeue(file=file)
    document_ingest_queue(file=requeued)
    return requeued
