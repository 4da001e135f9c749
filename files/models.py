"""Uploaded files (metadata; the bytes live in the ``uploads`` storage) and the chunks of
the documents among them, with their embeddings."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_mongodb_backend.fields import ArrayField
from django_mongodb_backend.indexes import SearchIndex, VectorSearchIndex

from llmplatform.core.contract import EMBEDDING_DIMENSIONS, MAX_ID_LENGTH

# As for queries: the Atlas vector index is built for text-embedding-3-small. Chunks of
# the local 384-dimension model are kept in the same field, left out of the index by
# Atlas, and searched by exact cosine instead.
CHUNK_VECTOR_INDEX_DIMENSIONS = EMBEDDING_DIMENSIONS
CHUNK_VECTOR_INDEX_NAME = "chunk_vector_index"
# Atlas Search over the passages' text, for the lexical half of hybrid retrieval
# (files.hybrid_search.score_fusion_pipeline); its scope fields are declared for filters.
CHUNK_TEXT_INDEX_NAME = "chunk_text_index"


class File(models.Model):
    class Ingestion(models.TextChoices):
        # Images are not documents: they are never ingested (status "").
        NONE = ""
        PENDING = "pending"
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=MAX_ID_LENGTH)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    # The name in the uploads storage; never derived from the client's file name.
    storage_path = models.CharField(max_length=255)
    uploaded_at = models.DateTimeField(default=timezone.now)
    ingestion_status = models.CharField(
        max_length=20, choices=Ingestion.choices, default=Ingestion.NONE, blank=True
    )
    ingestion_pages = models.PositiveIntegerField(null=True, blank=True)
    ingestion_chunks = models.PositiveIntegerField(default=0)
    ingestion_progress = models.FloatField(default=0.0)
    ingestion_error = models.JSONField(null=True, blank=True)
    # When the file was queued (pending) and last showed life while processing: the
    # sweeper fails ingestions past their deadline, so none stays in progress for ever.
    ingestion_queued_at = models.DateTimeField(null=True, blank=True)
    ingestion_heartbeat_at = models.DateTimeField(null=True, blank=True)
    ingestion_finished_at = models.DateTimeField(null=True, blank=True)
    # The model of the chunks' vectors: `reindex_documents` re-embeds files of another.
    embedding_model = models.CharField(max_length=100, blank=True, default="")
    # Who pays for the file's ingestion and whose storage limit applies: the key it was
    # uploaded with; none: the owner's own account (the signed-in chat UI).
    api_key = models.ForeignKey(
        "core.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # UTF-8 bytes of the stored passages' text, counted in the owner's storage.
    chunk_bytes = models.PositiveBigIntegerField(default=0)

    class Meta:
        db_table = "files"
        indexes = [
            models.Index(fields=["user_id"], name="files_user_id"),
            models.Index(fields=["uploaded_at"], name="files_uploaded_at"),
            # The sweeper's read: unfinished ingestions by their last sign of life.
            models.Index(
                fields=["ingestion_status", "ingestion_heartbeat_at"],
                name="files_ingestion_heartbeat",
            ),
            models.Index(
                fields=["owner", "user_id", "ingestion_status"], name="files_owner_user_ingestion"
            ),
        ]

    def __str__(self) -> str:
        return self.filename

    @property
    def is_document(self) -> bool:
        return self.ingestion_status != self.Ingestion.NONE


class DocumentChunk(models.Model):
    """A passage of one document, with where it came from and its embedding."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=MAX_ID_LENGTH)
    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="chunks")
    # Position in the document, 0-based; with `file` it names the chunk.
    index = models.PositiveIntegerField()
    # 1-based page for paginated formats (PDF), else None.
    page = models.PositiveIntegerField(null=True, blank=True)
    # Offsets into the page's extracted text (the whole text when there are no pages).
    char_start = models.PositiveIntegerField()
    char_end = models.PositiveIntegerField()
    text = models.TextField()
    embedding = ArrayField(
        models.FloatField(), size=CHUNK_VECTOR_INDEX_DIMENSIONS, null=True, blank=True
    )
    embedding_model = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "document_chunks"
        indexes = [
            # The vector cache's read: one end user's chunks of one model, file by file.
            models.Index(
                fields=["owner", "user_id", "embedding_model", "file"],
                name="chunks_owner_user_vectors",
            ),
            models.Index(fields=["file", "index"], name="chunks_file_index"),
            VectorSearchIndex(
                name=CHUNK_VECTOR_INDEX_NAME,
                fields=["embedding", "owner", "user_id", "file", "embedding_model"],
                similarities="cosine",
            ),
            SearchIndex(
                name=CHUNK_TEXT_INDEX_NAME,
                field_mappings={
                    "text": {"type": "string"},
                    "owner": {"type": "objectId"},
                    "user_id": {"type": "token"},
                    "file": {"type": "objectId"},
                    "embedding_model": {"type": "token"},
                },
            ),
        ]

    def __str__(self) -> str:
        return f"{self.file_id} #{self.index}"
