"""The product search cache."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ProductSearch(models.Model):
    """Cached SerpAPI Google Shopping results for one normalised query.

    Shared by all owners: it holds public shop listings, nothing a tenant wrote.
    """

    search_query = models.CharField(max_length=500)
    results = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "products"
        indexes = [
            models.Index(fields=["search_query"], name="products_search_query"),
            models.Index(fields=["created_at"], name="products_created_at"),
        ]

    def __str__(self) -> str:
        return self.search_query
