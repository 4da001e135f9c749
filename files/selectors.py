"""Reads of uploads, always scoped to the calling owner."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId
from django.contrib.auth.models import User
from django.db.models import QuerySet

from files.models import File
from files.storage import upload_storage
from llmplatform.core.errors import ApplicationError, NotFound


def file_list(*, owner: User, user_id: str | None = None) -> QuerySet[File]:
    files = File.objects.filter(owner=owner)
    if user_id:
        files = files.filter(user_id=user_id)
    return files


def file_get(*, owner: User, file_id: str) -> File:
    """The owner's file. Raises NotFound (also for other owners' files and malformed ids)."""
    try:
        return File.objects.get(owner=owner, pk=ObjectId(file_id))
    except (InvalidId, TypeError, File.DoesNotExist):
        raise NotFound("File") from None


def file_bytes(*, file: File) -> bytes:
    """The stored bytes. Raises OSError when they are gone from the storage."""
    with upload_storage().open(file.storage_path, "rb") as stored:
        return stored.read()


def documents_ready(*, owner: User, user_id: str, file_ids: list[str]) -> list[str]:
    """The ids (deduplicated, in order) of the end user's ready documents named by
    ``file_ids``, for a question that asks about them.

    Raises NotFound (404) for an unknown id or another owner's or end user's file, and
    ApplicationError (409 ``document_not_ready`` naming its status; 400 for a file that
    is not a document).
    """
    ready: list[str] = []
    for index, file_id in enumerate(dict.fromkeys(file_ids)):
        file = file_get(owner=owner, file_id=file_id)
        if file.user_id != user_id:
            raise NotFound("File")
        if not file.is_document:
            raise ApplicationError(
                f"documents[{index}] is {file.filename!r} ({file.content_type}), which is not "
                "a document; attach images with `attachments`.",
                code="not_a_document",
            )
        if file.ingestion_status != File.Ingestion.READY:
            hint = {
                File.Ingestion.PENDING: "it is queued for ingestion; ask again shortly",
                File.Ingestion.PROCESSING: "it is being ingested; ask again shortly",
                File.Ingestion.FAILED: "its ingestion failed: "
                + (file.ingestion_error or {}).get("message", "upload it again"),
            }[file.ingestion_status]
            raise ApplicationError(
                f"Document {file.filename!r} is {file.ingestion_status}, not ready: {hint}.",
                code="document_not_ready",
                status=409,
                extra={"file_id": str(file.pk), "status": file.ingestion_status},
            )
        ready.append(str(file.pk))
    return ready
