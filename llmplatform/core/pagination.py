"""Cursor pagination: stable under inserts, newest first, no skip/count over large collections."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100

    def __init__(self, *, ordering: str = "-timestamp") -> None:
        self.ordering = (ordering, "-pk")
