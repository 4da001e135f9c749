"""Writes that start document ingestion: store an upload, queue (re-)ingestion."""

from __future__ import annotations

from django.core.files.uploadedfile import UploadedFile

from agents.providers.embeddings import get_embedder
from documents.selectors import semantic_search
from files.charges import Payer, embedding_charged
from files.ingestion import document_requeue
from files.models import File
from files.services import file_upload
from llmplatform.core.models import ApiKey
from queries.dispatch import dispatcher

INGEST_TASK = "files.ingest_document"


def document_ingest_queue(*, file: File) -> None:
    """Hand a ``pending`` document to the background (Celery, or this process's background
    thread in the embedded default). Raises nothing it can avoid."""
    if file.ingestion_status == File.Ingestion.PENDING:
        dispatcher().submit_background(INGEST_TASK, str(file.pk))


def _payer(*, owner, api_key: ApiKey | None, user_id: str) -> Payer:
    # Without a key (the signed-in chat UI) the owner's own account pays.
    if api_key is not None:
        return Payer(api_key=api_key, user_id=user_id)
    return Payer(api_key=None, account=owner, user_id=user_id)


def document_upload(
    *, owner, user_id: str, upload: UploadedFile, api_key: ApiKey | None = None
) -> File:
    """Store an upload; a document is queued for ingestion (upload never waits for it).

    Its ingestion is charged to ``api_key`` (none: the owner's account), whose storage
    quota applies. Raises ApplicationError (413 too large or over the storage quota, 415,
    429 budget used up).
    """
    payer = _payer(owner=owner, api_key=api_key, user_id=user_id)
    stored = file_upload(owner=owner, user_id=user_id, upload=upload, payer=payer)
    document_ingest_queue(file=stored)
    return stored


def document_reingest(*, file: File) -> File:
    """Ingest a document again (after a failure, or to re-embed); images are left alone.
    Raises nothing."""
    requeued = document_requeue(file=file)
    document_ingest_queue(file=requeued)
    return requeued


def document_search(
    *, owner, api_key: ApiKey | None, user_id: str, q: str, scope: str, limit: int
) -> list[dict]:
    """``semantic_search``, with the embedding of ``q`` admitted against ``api_key``'s
    limits (none: the owner's account) and settled after. Raises ApplicationError (429)
    and ProviderError (503)."""
    with embedding_charged(
        payer=_payer(owner=owner, api_key=api_key, user_id=user_id),
        model=get_embedder().model,
        texts=[q],
    ):
        return semantic_search(owner=owner, user_id=user_id, q=q, scope=scope, limit=limit)
