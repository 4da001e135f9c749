"""Pagination that never counts a whole collection.

- ``NewestFirstCursorPagination`` (API history): cursor pages, stable under inserts, read
  off an index that ends with the page order and its ``_id`` tie-breaker.
- ``LookaheadPaginator`` (admin change lists): counts only up to a few pages past the
  one shown, so page N costs the same at 1k rows and at 1M.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property
from rest_framework import serializers
from rest_framework.pagination import CursorPagination

# How many pages past the current one the admin paginator looks for ("next" links).
LOOKAHEAD_PAGES = 2


class NewestFirstCursorPagination(CursorPagination):
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100

    def __init__(self, *, ordering: str = "-timestamp") -> None:
        self.ordering = (ordering, "-pk")


class LookaheadPaginator(Paginator):
    """A paginator whose ``count`` stops a few pages past the requested page.

    Django admin passes the request's page to nothing but ``page()``, so the page is
    read from the query string (admin's ``p``) when the paginator is built. The count is
    exact when the list ends within the look-ahead; otherwise it is a lower bound, and
    the change list shows "next" without a last page (``show_full_result_count`` off).
    """

    def __init__(self, object_list, per_page, *args, current_page: int = 1, **kwargs):
        super().__init__(object_list, per_page, *args, **kwargs)
        self.current_page = max(current_page, 1)

    @cached_property
    def count(self) -> int:
        horizon = (self.current_page + LOOKAHEAD_PAGES) * self.per_page + 1
        return len(self.object_list[:horizon].values_list("pk", flat=True))


class LookaheadPaginatorAdminMixin:
    """``get_paginator`` that tells LookaheadPaginator which page is being shown."""

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        try:
            # Admin's page parameter is 1-based ("p"); a bad value is admin's to report.
            current_page = int(request.GET.get("p", 1))
        except ValueError:
            current_page = 1
        return LookaheadPaginator(
            queryset,
            per_page,
            orphans,
            allow_empty_first_page,
            current_page=current_page,
        )


class CursorPageParamsSerializer(serializers.Serializer):
    """The ``cursor`` and ``limit`` of a cursor-paginated list, validated (the paginator
    itself ignores a bad limit: a client asking for ``limit=abc`` gets a 400).

    Subclass it to add a list's own filters."""

    # An unknown cursor is a 404 from the paginator, as documented.
    cursor = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="from the next/previous link",
    )
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=NewestFirstCursorPagination.max_page_size,
        help_text=f"page size, default {NewestFirstCursorPagination.page_size}",
    )
