"""Operator console: the product search cache (read-only; deleting an entry refetches it)."""

from __future__ import annotations

from django.contrib import admin

from llmplatform.admin_site import ReadOnlyAdmin
from llmplatform.core.pagination import LookaheadPaginatorAdminMixin
from products.models import ProductSearch


@admin.register(ProductSearch)
class ProductSearchAdmin(LookaheadPaginatorAdminMixin, ReadOnlyAdmin):
    list_display = ("search_query", "result_count", "created_at", "expires_at")
    list_filter = (("created_at", admin.DateFieldListFilter),)
    search_fields = ("search_query",)
    # Newest first by primary key (stored when uploaded/fetched): the _id index, no
    # sort over the collection, and no full count.
    ordering = ("-pk",)
    show_full_result_count = False

    @admin.display(description="results")
    def result_count(self, search: ProductSearch) -> int:
        return len(search.results or [])
