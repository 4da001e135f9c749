"""Which source documents an import has written, so a rerun writes none of them twice."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ImportedRecord(models.Model):
    """One seed-era document (collection + ``_id``) and the document it became."""

    source_collection = models.CharField(max_length=32)
    source_id = models.CharField(max_length=64)
    # The seed database's name, for the record; identity is (collection, _id): ObjectIds
    # are unique across databases, and a URI spelled differently must not import twice.
    source_db = models.CharField(max_length=200)
    target_id = models.CharField(max_length=64)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "imported_records"
        constraints = [
            models.UniqueConstraint(
                fields=["source_collection", "source_id"], name="imported_records_unique_source"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source_collection}/{self.source_id} -> {self.target_id}"
