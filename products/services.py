"""Product search through SerpAPI Google Shopping, cached in ProductSearch.

One implementation (``product_search``, synchronous: httpx2 + the ORM) serves the API
view and, through the engine's product-search port (``queries.engine_ports``), the
agent pipeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx2
from django.conf import settings
from django.utils import timezone

from llmplatform.core.errors import ApplicationError
from llmplatform.core.logging import secrets_redact
from products.models import ProductSearch
from products.selectors import product_search_cached

logger = logging.getLogger(__name__)

CACHE_TTL = timedelta(hours=6)
MAX_QUERY_LENGTH = 200
MAX_RESULTS_CAP = 20
UNAVAILABLE_MESSAGE = "Product search is unavailable: set SERPAPI_KEY."
# SerpAPI reports a search Google has nothing for as an `error`; that is an empty
# result, not an outage, and must not make the agent apologise for a broken service.
_NO_RESULTS_MARKER = "hasn't returned any results"
_MAX_UPSTREAM_MESSAGE = 200


@dataclass(frozen=True)
class ProductSearchResult:
    query: str  # the normalised query that was searched (and is the cache key)
    available: bool
    cards: list[dict[str, Any]]
    cached: bool
    message: str


def product_query_normalise(query: str) -> str:
    """Lowercase with whitespace collapsed: the cache key and what SerpAPI is sent."""
    return " ".join(query.split()).lower()


def product_search(*, query: str, max_results: int | None = None) -> ProductSearchResult:
    """Search products, from the cache when fresh. Raises ApplicationError (400 invalid_query
    or invalid_limit; 502 product_search_failed when SerpAPI fails); no key is not an error."""
    normalised = product_query_normalise(query)
    if not normalised or len(normalised) > MAX_QUERY_LENGTH:
        raise ApplicationError(
            f"The product search query must be 1 to {MAX_QUERY_LENGTH} characters.",
            code="invalid_query",
            status=400,
            extra={"field": "q"},
        )
    limit = _result_limit(max_results)
    if not settings.SERPAPI_KEY:
        return ProductSearchResult(
            query=normalised, available=False, cards=[], cached=False, message=UNAVAILABLE_MESSAGE
        )

    entry = product_search_cached(query=normalised)
    if entry is not None:
        cards, cached = entry.results, True
    else:
        cards, cached = _serpapi_shopping_cards(normalised), False
        # Empty answers are not cached: SerpAPI's "no results" is sometimes transient.
        if cards:
            _cache_store(query=normalised, cards=cards)
    cards = cards[:limit]
    message = "" if cards else f'No products found for "{normalised}".'
    return ProductSearchResult(
        query=normalised, available=True, cards=cards, cached=cached, message=message
    )


def _result_limit(max_results: int | None) -> int:
    if max_results is None:
        return min(settings.PRODUCT_SEARCH_MAX_RESULTS, MAX_RESULTS_CAP)
    if max_results < 1:
        raise ApplicationError(
            "The product limit must be at least 1.", code="invalid_limit", status=400
        )
    return min(max_results, MAX_RESULTS_CAP)


def _cache_store(*, query: str, cards: list[dict[str, Any]]) -> ProductSearch:
    # Replacing expired entries; two concurrent misses may both store, which is harmless:
    # the selector reads the newest and the next refresh removes both.
    ProductSearch.objects.filter(search_query=query).delete()
    now = timezone.now()
    return ProductSearch.objects.create(
        search_query=query, results=cards, created_at=now, expires_at=now + CACHE_TTL
    )


def _failed(message: str, *, upstream_status: int | None = None) -> ApplicationError:
    details = {} if upstream_status is None else {"upstream_status": upstream_status}
    return ApplicationError(message, code="product_search_failed", status=502, extra=details)


def _redacted(text: str) -> str:
    # SerpAPI's messages do not echo the key today; this keeps it that way if one ever
    # does, pieces of it included.
    return secrets_redact(text)[:_MAX_UPSTREAM_MESSAGE]


def _serpapi_shopping_cards(query: str) -> list[dict[str, Any]]:
    """At most MAX_RESULTS_CAP cards from SerpAPI Google Shopping; raises _failed(...)."""
    timeout = httpx2.Timeout(
        settings.PROVIDER_READ_TIMEOUT, connect=settings.PROVIDER_CONNECT_TIMEOUT
    )
    url = f"{settings.SERPAPI_BASE_URL.rstrip('/')}/search.json"
    params = {"engine": "google_shopping", "q": query, "api_key": settings.SERPAPI_KEY}
    # The request URL carries the key, so neither the exception nor its URL is logged
    # or chained into the raised error: only the exception's type.
    try:
        with httpx2.Client(timeout=timeout) as client:
            response = client.get(url, params=params)
    except httpx2.TimeoutException as exc:
        logger.warning("SerpAPI timed out: %s", type(exc).__name__)
        raise _failed(
            f"SerpAPI did not answer within {settings.PROVIDER_READ_TIMEOUT:g} seconds."
        ) from None
    except httpx2.RequestError as exc:
        logger.warning("SerpAPI request failed: %s", type(exc).__name__)
        raise _failed("SerpAPI could not be reached.") from None

    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str) and _NO_RESULTS_MARKER in error:
        return []
    if status >= 500:
        raise _failed(f"SerpAPI failed with HTTP {status}.", upstream_status=status)
    if status == 429:
        raise _failed(
            "SerpAPI refused the search: rate limit or monthly search quota reached.",
            upstream_status=status,
        )
    if status in (401, 403):
        raise _failed("SerpAPI rejected the configured SERPAPI_KEY.", upstream_status=status)
    if status != 200 or error is not None:
        reason = _redacted(str(error)) if error is not None else f"HTTP {status}"
        raise _failed(f"SerpAPI refused the search: {reason}", upstream_status=status)
    if body is None:
        raise _failed("SerpAPI answered with invalid JSON.")
    if not isinstance(body, dict):
        raise _failed("SerpAPI answered with JSON that is not an object.")
    results = body.get("shopping_results", [])
    if not isinstance(results, list):
        raise _failed("SerpAPI answered with shopping_results that is not a list.")
    cards = [_card(item) for item in results if isinstance(item, dict) and item.get("title")]
    return cards[:MAX_RESULTS_CAP]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _card(item: dict[str, Any]) -> dict[str, Any]:
    reviews = item.get("reviews")
    return {
        "title": str(item["title"]),
        "price": item.get("price") if isinstance(item.get("price"), str) else None,
        "extracted_price": _number(item.get("extracted_price")),
        "url": item.get("product_link") or item.get("link"),
        "image": item.get("thumbnail"),
        "source": item.get("source"),
        "rating": _number(item.get("rating")),
        "reviews": reviews if isinstance(reviews, int) and not isinstance(reviews, bool) else None,
    }
