"""Document ingestion: stored bytes → pages → chunks → embeddings → ``DocumentChunk`` rows.

``document_ingest`` runs in the background (a Celery task with REDIS_URL, the in-process
dispatcher's background thread without) and never on a request's path. Its states:

    pending ──claim──▶ processing ──▶ ready
                           └────────▶ failed  (with {"code", "message"} saying what to do)

Every in-progress state has a way out without a person: ``processing`` beats a heartbeat
as it embeds and stops itself at DOCUMENT_INGEST_TIMEOUT_S; the Celery hard limit kills
what does not stop; ``documents_sweep`` fails a ``processing`` file whose heartbeat went
quiet (its worker died) and a ``pending`` one no worker took within
DOCUMENT_PENDING_TIMEOUT_S.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from bson import ObjectId
from django.utils import timezone

from agents.providers.embeddings import get_embedder
from agents.providers.provider_errors import ProviderError
from files.charges import (
    EmbeddingCharge,
    Payer,
    embedding_admit,
    embedding_settle,
    embedding_tokens,
)
from files.chunking import Chunk, chunk_pages
from files.config import documents_config
from files.extraction import ExtractionFailed
from files.extraction_process import extract_pages_isolated
from files.models import DocumentChunk, File
from files.selectors import file_bytes
from files.storage_quota import storage_check
from llmplatform.core.bridge import run_sync
from llmplatform.core.errors import ApplicationError

logger = logging.getLogger(__name__)

# Texts per embedding call: the deadline is checked between calls. (The local embedder
# still runs them one by one, yielding to requests between passages: embed_bulk.)
EMBED_BATCH = 64
# Progress and the heartbeat are written at most this often while embedding: each is a
# database round trip, and the sweeper's staleness limit is minutes.
PROGRESS_EVERY_S = 2.0
WRITE_BATCH = 500
# Share of the progress bar each stage stands for (embedding is nearly all of the time).
EXTRACTED_PROGRESS = 0.1
EMBEDDED_PROGRESS = 0.95


class _IngestionFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _now():
    return timezone.now()


def _claim(file_id: str) -> File | None:
    """The file, marked ``processing``; None when there is nothing to do here.

    ``ready`` and ``failed`` are final (a redelivered task does nothing); ``processing``
    with a live heartbeat is another worker's; with a dead one its worker died and this
    delivery starts over.
    """
    if not ObjectId.is_valid(file_id):
        return None
    file = File.objects.filter(pk=ObjectId(file_id)).first()
    if file is None or file.ingestion_status not in (
        File.Ingestion.PENDING,
        File.Ingestion.PROCESSING,
    ):
        return None
    now = _now()
    stale_before = now - timedelta(seconds=documents_config().stale_after_s)
    if file.ingestion_status == File.Ingestion.PROCESSING and (
        file.ingestion_heartbeat_at is not None and file.ingestion_heartbeat_at >= stale_before
    ):
        return None
    claimed = File.objects.filter(
        pk=file.pk,
        ingestion_status=file.ingestion_status,
        ingestion_heartbeat_at=file.ingestion_heartbeat_at,
    ).update(
        ingestion_status=File.Ingestion.PROCESSING,
        ingestion_heartbeat_at=now,
        ingestion_progress=0.0,
        ingestion_error=None,
    )
    if not claimed:
        return None  # another delivery claimed it between the read and the write
    file.ingestion_status = File.Ingestion.PROCESSING
    file.ingestion_heartbeat_at = now
    return file


def _beat(file: File, progress: float, **fields: object) -> None:
    """Progress and a heartbeat; raises _IngestionFailed when the file was deleted or
    failed by the sweeper meanwhile (nothing more to do for it)."""
    changed = File.objects.filter(pk=file.pk, ingestion_status=File.Ingestion.PROCESSING).update(
        ingestion_progress=round(progress, 4), ingestion_heartbeat_at=_now(), **fields
    )
    if not changed:
        raise _IngestionFailed("ingestion_abandoned", "The file was deleted or failed meanwhile.")


def _check_deadline(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise _IngestionFailed(
            "document_too_slow",
            "Ingesting the file took longer than the per-file limit (DOCUMENT_INGEST_TIMEOUT_S); "
            "split it into smaller files and upload them.",
        )


def _payer(file: File) -> Payer:
    # The key the file was uploaded with; none (the chat UI, or a deleted key): the account.
    if file.api_key_id is not None:
        return Payer(api_key=file.api_key, user_id=file.user_id)
    return Payer(api_key=None, account=file.owner, user_id=file.user_id)


def _text_bytes(chunks: list[Chunk]) -> int:
    return sum(len(chunk.text.encode("utf-8", "surrogatepass")) for chunk in chunks)


def _admit(file: File, chunks: list[Chunk], model: str, deadline: float) -> EmbeddingCharge:
    """The passages' storage checked and their tokens admitted against the uploader's
    limits, before any is embedded. A full minute is waited out (within the deadline); a
    used-up budget or storage quota fails the file, charging nothing."""
    payer = _payer(file)
    try:
        storage_check(
            owner_id=file.owner_id,
            payer=payer,
            adding=_text_bytes(chunks),
            excluding_file_id=file.pk,
            what="this document's passages",
        )
    except ApplicationError as exc:
        raise _IngestionFailed(exc.code, exc.message) from None
    tokens = embedding_tokens([chunk.text for chunk in chunks])
    while True:
        try:
            return embedding_admit(payer=payer, model=model, tokens=tokens)
        except ApplicationError as exc:
            wait_s = float(exc.extra.get("retry_after") or 0)
            if exc.code != "rate_limited" or time.monotonic() + wait_s > deadline:
                raise _IngestionFailed(
                    exc.code,
                    f"The document was not embedded and nothing was charged: {exc.message} "
                    "Then upload it again (or re-ingest it: admin → Files).",
                ) from None
        time.sleep(wait_s)  # the requests-per-minute window starts over
        _beat(file, EXTRACTED_PROGRESS)


def _embed(
    file: File, chunks: list[Chunk], deadline: float, charge: EmbeddingCharge
) -> tuple[list[list[float]], str]:
    embedder = get_embedder()
    vectors: list[list[float]] = []
    last_beat = time.monotonic()
    for start in range(0, len(chunks), EMBED_BATCH):
        _check_deadline(deadline)
        batch = [chunk.text for chunk in chunks[start : start + EMBED_BATCH]]
        try:
            # Background work: the embedder yields to questions' embeddings (embed_bulk).
            vectors.extend(run_sync(embedder.embed_bulk(batch)))
            charge.embedded(embedding_tokens(batch))
        except ProviderError as exc:
            raise _IngestionFailed(
                "embedding_failed",
                f"The embedding service failed ({exc.message}). Re-ingest the file later "
                "(admin: Files → re-ingest) or upload it again.",
            ) from exc
        if time.monotonic() - last_beat >= PROGRESS_EVERY_S:
            done = min(start + EMBED_BATCH, len(chunks)) / len(chunks)
            _beat(file, EXTRACTED_PROGRESS + (EMBEDDED_PROGRESS - EXTRACTED_PROGRESS) * done)
            last_beat = time.monotonic()
    return vectors, embedder.model


def _store_chunks(file: File, chunks: list[Chunk], vectors: list[list[float]], model: str) -> None:
    # Any earlier attempt's (or an older model's) chunks make way; the file is not
    # `ready` while this runs, so no search sees the two sets side by side.
    DocumentChunk.objects.filter(file_id=file.pk).delete()
    created_at = _now()
    rows = [
        DocumentChunk(
            owner_id=file.owner_id,
            user_id=file.user_id,
            file_id=file.pk,
            index=index,
            page=chunk.page,
            char_start=chunk.char_start,
            char_end=chunk.char_end,
            text=chunk.text,
            embedding=vector,
            embedding_model=model,
            created_at=created_at,
        )
        for index, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))
    ]
    for start in range(0, len(rows), WRITE_BATCH):
        DocumentChunk.objects.bulk_create(rows[start : start + WRITE_BATCH])


def _ingest(file: File) -> None:
    config = documents_config()
    deadline = time.monotonic() + config.ingest_timeout_s
    try:
        data = file_bytes(file=file)
    except OSError:
        raise _IngestionFailed(
            "document_missing", "The file's bytes are no longer stored; upload it again."
        ) from None
    try:
        # In a child process, killed at the deadline: a hostile file cannot hold this
        # process's memory or time (files.extraction_process).
        pages = extract_pages_isolated(
            data=data,
            content_type=file.content_type,
            max_pages=config.max_pages,
            max_unzipped_bytes=config.max_unzipped_bytes,
            memory_mb=config.extract_memory_mb,
            deadline=deadline,
        )
    except ExtractionFailed as exc:
        raise _IngestionFailed(exc.code, exc.message) from None
    paginated = pages[0].number is not None
    _beat(file, EXTRACTED_PROGRESS, ingestion_pages=len(pages) if paginated else None)
    model = get_embedder().model
    chunks: list[Chunk] = []
    for chunk in chunk_pages(pages, model=model):
        chunks.append(chunk)
        if len(chunks) > config.max_chunks:
            raise _IngestionFailed(
                "document_too_many_chunks",
                f"The document splits into more than {config.max_chunks} passages "
                "(DOCUMENT_MAX_CHUNKS). Split it into smaller files and upload them.",
            )
    _check_deadline(deadline)
    if not chunks:
        raise _IngestionFailed("document_no_text", "The file has no text to search.")
    charge = _admit(file, chunks, model, deadline)
    try:
        vectors, model = _embed(file, chunks, deadline, charge)
    finally:
        embedding_settle(charge)  # what was embedded, also when it stopped half-way
    _check_deadline(deadline)
    _store_chunks(file, chunks, vectors, model)
    finished = File.objects.filter(pk=file.pk, ingestion_status=File.Ingestion.PROCESSING).update(
        ingestion_status=File.Ingestion.READY,
        ingestion_chunks=len(chunks),
        chunk_bytes=_text_bytes(chunks),
        ingestion_progress=1.0,
        ingestion_heartbeat_at=_now(),
        ingestion_finished_at=_now(),
        embedding_model=model,
    )
    if not finished:
        # Deleted (or swept) while the chunks were written: they must not outlive it.
        DocumentChunk.objects.filter(file_id=file.pk).delete()


def _store_failure(file_id: object, code: str, message: str) -> None:
    File.objects.filter(
        pk=file_id, ingestion_status__in=[File.Ingestion.PENDING, File.Ingestion.PROCESSING]
    ).update(
        ingestion_status=File.Ingestion.FAILED,
        ingestion_error={"code": code, "message": message},
        ingestion_chunks=0,
        chunk_bytes=0,
        ingestion_finished_at=_now(),
    )
    DocumentChunk.objects.filter(file_id=file_id).delete()


def document_ingest(*, file_id: str) -> None:
    """Ingest one document; idempotent (a finished or claimed file is left alone).

    Every failure of the file itself is stored as ``failed`` with a message; raises
    nothing for those.
    """
    file = _claim(file_id)
    if file is None:
        return
    try:
        _ingest(file)
    except _IngestionFailed as exc:
        logger.info("document %s failed: %s", file_id, exc.code)
        _store_failure(file.pk, exc.code, exc.message)


def document_ingest_timed_out(*, file_id: str) -> None:
    """Fail the file after the worker's time limit stopped its ingestion. Raises nothing."""
    if ObjectId.is_valid(file_id):
        _store_failure(
            ObjectId(file_id),
            "document_too_slow",
            "Ingesting the file took longer than the per-file limit (DOCUMENT_INGEST_TIMEOUT_S); "
            "split it into smaller files and upload them.",
        )


def document_ingest_crashed(*, file_id: str) -> None:
    """Fail the file after an unexpected error (a bug), so it does not stay in progress."""
    if ObjectId.is_valid(file_id):
        _store_failure(
            ObjectId(file_id),
            "internal_error",
            "Ingestion failed unexpectedly. Try again (admin: Files → re-ingest) or upload "
            "the file again; if it keeps failing, report it with the file's id.",
        )


def document_requeue(*, file: File) -> File:
    """Mark a document ``pending`` again (re-ingest, or re-embed with a new model); the
    caller queues ``files.ingest_document``. Raises nothing; images are left alone."""
    if not file.is_document:
        return file
    now = _now()
    File.objects.filter(pk=file.pk).update(
        ingestion_status=File.Ingestion.PENDING,
        ingestion_queued_at=now,
        ingestion_heartbeat_at=None,
        ingestion_progress=0.0,
        ingestion_error=None,
    )
    file.refresh_from_db()
    return file


def documents_sweep() -> int:
    """Fail ingestions that can no longer finish; returns how many. Raises nothing."""
    config = documents_config()
    now = _now()
    stale = File.objects.filter(
        ingestion_status=File.Ingestion.PROCESSING,
        ingestion_heartbeat_at__lt=now - timedelta(seconds=config.stale_after_s),
    ).values_list("pk", flat=True)
    never_taken = File.objects.filter(
        ingestion_status=File.Ingestion.PENDING,
        ingestion_queued_at__lt=now - timedelta(seconds=config.pending_timeout_s),
    ).values_list("pk", flat=True)
    swept = 0
    for pk in stale:
        _store_failure(
            pk,
            "worker_lost",
            "The worker ingesting this file stopped before it finished. Re-ingest it "
            "(admin: Files → re-ingest) or upload it again.",
        )
        swept += 1
    for pk in never_taken:
        _store_failure(
            pk,
            "ingestion_not_started",
            "No worker took this file for ingestion in time. Check that a Celery worker "
            "consumes the default queue, then re-ingest it or upload it again.",
        )
        swept += 1
    return swept
