"""Document ingestion limits, read once from settings into one typed object."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from files.extraction import MB

# Beyond the per-file limit: a Celery soft limit lets the task store `failed` itself, the
# hard limit a little later kills a worker stuck inside a C extension.
CELERY_SOFT_MARGIN_S = 15.0
CELERY_HARD_MARGIN_S = 45.0


@dataclass(frozen=True)
class DocumentsConfig:
    max_pages: int
    max_chunks: int
    ingest_timeout_s: float
    pending_timeout_s: float
    max_unzipped_bytes: int
    extract_memory_mb: int

    @property
    def celery_soft_limit_s(self) -> float:
        return self.ingest_timeout_s + CELERY_SOFT_MARGIN_S

    @property
    def celery_hard_limit_s(self) -> float:
        return self.ingest_timeout_s + CELERY_HARD_MARGIN_S

    @property
    def stale_after_s(self) -> float:
        """A `processing` file whose heartbeat is older than this has lost its worker:
        the hard limit has certainly killed the task by then."""
        return self.celery_hard_limit_s + CELERY_SOFT_MARGIN_S


def documents_config() -> DocumentsConfig:
    return DocumentsConfig(
        max_pages=settings.DOCUMENT_MAX_PAGES,
        max_chunks=settings.DOCUMENT_MAX_CHUNKS,
        ingest_timeout_s=settings.DOCUMENT_INGEST_TIMEOUT_S,
        pending_timeout_s=settings.DOCUMENT_PENDING_TIMEOUT_S,
        max_unzipped_bytes=settings.DOCUMENT_MAX_UNZIPPED_MB * MB,
        extract_memory_mb=settings.DOCUMENT_EXTRACT_MEMORY_MB,
    )
