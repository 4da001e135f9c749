"""Reads of uploads, always scoped to the calling owner."""

from __future__ import annotations

from pathlib import Path

from bson import ObjectId
from bson.errors import InvalidId
from django.conf import settings
from django.db.models import QuerySet

from files.models import File
from llmplatform.core.errors import NotFound


def file_list(*, owner, user_id: str | None = None) -> QuerySet[File]:
    files = File.objects.filter(owner=owner)
    if user_id:
        files = files.filter(user_id=user_id)
    return files


def file_get(*, owner, file_id: str) -> File:
    """The owner's file. Raises NotFound (also for other owners' files and malformed ids)."""
    try:
        return File.objects.get(owner=owner, pk=ObjectId(file_id))
    except (InvalidId, TypeError, File.DoesNotExist):
        raise NotFound("File") from None


def file_bytes(*, file: File) -> bytes:
    return (Path(settings.UPLOAD_DIR) / file.storage_path).read_bytes()
