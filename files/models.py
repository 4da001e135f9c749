"""Uploaded file metadata; the bytes live under UPLOAD_DIR."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class File(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=128)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    # Relative to UPLOAD_DIR; never derived from the client's file name.
    storage_path = models.CharField(max_length=255)
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "files"
        indexes = [
            models.Index(fields=["user_id"], name="files_user_id"),
            models.Index(fields=["uploaded_at"], name="files_uploaded_at"),
        ]

    def __str__(self) -> str:
        return self.filename
