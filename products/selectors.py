"""Reads of the product search cache.

The cache is shared by all owners (public shop listings, nothing a tenant wrote), so
these reads take no owner.
"""

from __future__ import annotations

from django.utils import timezone

from products.models import ProductSearch


def product_search_cached(*, query: str) -> ProductSearch | None:
    """The newest unexpired cache entry for an already normalised ``query``, or None."""
    return (
        ProductSearch.objects.filter(search_query=query, expires_at__gt=timezone.now())
        .order_by("-created_at")
        .first()
    )
