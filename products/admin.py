"""Operator console: the product search cache (read-only; deleting an entry refetches it)."""

from __future__ import annotations

from django.contrib import admin

from llmplatform.admin_site import ReadOnlyAdmin
from products.models import ProductSearch


@admin.register(ProductSearch)
class ProductSearchAdmin(ReadOnlyAdmin):
    list_display = ("search_query", "result_count", "created_at", "expires_at")
    list_filter = (("created_at", admin.DateFieldListFilter),)
    search_fields = ("search_query",)
    ordering = ("-created_at",)

    @admin.display(description="results")
    def result_count(self, search: ProductSearch) -> int:
        return len(search.results or [])
