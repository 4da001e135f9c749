"""product_search: mapping, limits, the cache, no key, and every upstream failure."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from llmplatform.core.errors import ApplicationError
from llmplatform.core.logging import REDACTED
from products.models import ProductSearch
from products.services import (
    CACHE_TTL,
    UNAVAILABLE_MESSAGE,
    product_search,
)
from queries.engine_ports import CachedProductSearch
from tests.fakes.server import RecordedRequest
from tests.fakes.wire import SerpAPIWire
from tests.products.conftest import SERPAPI_TEST_KEY

pytestmark = pytest.mark.django_db


def _shopping_results(q: str) -> list[dict[str, Any]]:
    """What the fake SerpAPI answers for ``q`` (its default five results)."""
    request = RecordedRequest(
        "GET", "/search.json", {"engine": "google_shopping", "q": q}, {}, None
    )
    return SerpAPIWire().shopping_body(request)["shopping_results"]


def _search_failure(**kwargs: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        product_search(**kwargs)
    error = caught.value
    assert (error.code, error.status) == ("product_search_failed", 502)
    assert SERPAPI_TEST_KEY not in str(error.as_envelope())
    return error


# ----- mapping and limits -----


def test_cards_are_mapped_from_shopping_results(serpapi):
    result = product_search(query="  Running   SHOES ")

    raw = _shopping_results("running shoes")
    assert result.available is True
    assert result.cached is False
    assert result.message == ""
    assert result.query == "running shoes"
    assert result.cards == [
        {
            "title": item["title"],
            "price": item["price"],
            "extracted_price": item["extracted_price"],
            "url": item["product_link"],
            "image": item["thumbnail"],
            "source": item["source"],
            "rating": item["rating"],
            "reviews": item["reviews"],
        }
        for item in raw[:3]
    ]
    [request] = serpapi.requests
    assert request.path == "/search.json"
    assert request.query["engine"] == "google_shopping"
    assert request.query["q"] == "running shoes"
    assert request.query["api_key"] == SERPAPI_TEST_KEY


def test_default_limit_is_the_setting(serpapi, settings):
    settings.PRODUCT_SEARCH_MAX_RESULTS = 2
    assert len(product_search(query="kettle").cards) == 2


def test_max_results_overrides_the_setting(serpapi):
    assert len(product_search(query="kettle", max_results=4).cards) == 4
    assert len(product_search(query="toaster", max_results=1).cards) == 1


def test_max_results_is_capped_at_twenty(canned_serpapi):
    items = [
        {"title": f"Item {n}", "price": f"${n}.00", "link": f"https://s/{n}"} for n in range(25)
    ]
    canned_serpapi.answer(200, {"shopping_results": items})

    cards = product_search(query="lamp", max_results=50).cards

    assert [card["title"] for card in cards] == [f"Item {n}" for n in range(20)]


def test_max_results_below_one_is_a_400(serpapi):
    with pytest.raises(ApplicationError) as caught:
        product_search(query="lamp", max_results=0)
    assert (caught.value.code, caught.value.status) == ("invalid_limit", 400)
    assert serpapi.requests == []


@pytest.mark.parametrize("query", ["", "   ", "x" * 201])
def test_empty_or_long_query_is_a_400(serpapi, query):
    with pytest.raises(ApplicationError) as caught:
        product_search(query=query)
    assert (caught.value.code, caught.value.status) == ("invalid_query", 400)
    assert serpapi.requests == []


def test_card_falls_back_to_link_and_tolerates_missing_fields(canned_serpapi):
    canned_serpapi.answer(
        200,
        {
            "shopping_results": [
                {"title": "Bare", "link": "https://shop.example.com/bare", "price": "€5"},
                {"price": "$1.00"},  # no title: not a usable card
                "not an object",
            ]
        },
    )

    cards = product_search(query="bare", max_results=5).cards

    assert cards == [
        {
            "title": "Bare",
            "price": "€5",
            "extracted_price": None,
            "url": "https://shop.example.com/bare",
            "image": None,
            "source": None,
            "rating": None,
            "reviews": None,
        }
    ]


# ----- the cache -----


def test_cache_hit_makes_no_second_request(serpapi):
    first = product_search(query="Noise cancelling headphones", max_results=2)
    again = product_search(query="noise   CANCELLING headphones", max_results=2)

    assert len(serpapi.requests) == 1
    assert again.cached is True
    assert again.cards == first.cards
    assert ProductSearch.objects.filter(search_query="noise cancelling headphones").count() == 1


def test_cache_keeps_every_card_so_a_larger_limit_is_served_from_it(serpapi):
    product_search(query="desk", max_results=1)
    wider = product_search(query="desk", max_results=5)

    assert len(serpapi.requests) == 1
    assert wider.cached is True
    assert [card["title"] for card in wider.cards] == [
        item["title"] for item in _shopping_results("desk")
    ]


def test_cache_entry_expires_after_the_ttl(serpapi):
    product_search(query="desk")
    entry = ProductSearch.objects.get(search_query="desk")
    assert entry.expires_at - entry.created_at == CACHE_TTL


def test_expired_entry_is_refreshed_and_replaced(serpapi):
    product_search(query="desk")
    ProductSearch.objects.filter(search_query="desk").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    refreshed = product_search(query="desk")

    assert len(serpapi.requests) == 2
    assert refreshed.cached is False
    [entry] = ProductSearch.objects.filter(search_query="desk")
    assert entry.expires_at > timezone.now()


def test_failures_are_not_cached(serpapi):
    serpapi.fail_next("server_error")
    _search_failure(query="desk")
    assert not ProductSearch.objects.filter(search_query="desk").exists()

    assert product_search(query="desk").cached is False
    assert len(serpapi.requests) == 2


# ----- no key -----


def test_without_a_key_products_are_unavailable_and_nothing_is_sent(serpapi, settings):
    settings.SERPAPI_KEY = ""

    result = product_search(query="desk")

    assert result.available is False
    assert result.cards == []
    assert (
        result.message == UNAVAILABLE_MESSAGE == "Product search is unavailable: set SERPAPI_KEY."
    )
    assert serpapi.requests == []
    assert not ProductSearch.objects.exists()


# ----- upstream failures -----


def test_upstream_500_is_a_502(serpapi):
    serpapi.fail_next("server_error")
    error = _search_failure(query="desk")
    assert error.message == "SerpAPI failed with HTTP 500."
    assert error.extra == {"upstream_status": 500}


def test_upstream_429_is_a_502_saying_quota(serpapi):
    serpapi.fail_next("rate_limit", retry_after=1)
    error = _search_failure(query="desk")
    assert "quota" in error.message
    assert error.extra == {"upstream_status": 429}


def test_rejected_key_is_a_502_naming_the_setting(serpapi):
    serpapi.fail_next("auth")
    error = _search_failure(query="desk")
    assert error.message == "SerpAPI rejected the configured SERPAPI_KEY."


def test_upstream_timeout_is_a_502(serpapi, settings):
    settings.PROVIDER_READ_TIMEOUT = 0.2
    serpapi.fail_next("hang")
    error = _search_failure(query="desk")
    assert error.message == "SerpAPI did not answer within 0.2 seconds."


def test_unreachable_upstream_is_a_502(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.SERPAPI_KEY = SERPAPI_TEST_KEY
    settings.SERPAPI_BASE_URL = f"http://127.0.0.1:{port}"  # nothing listens there now
    error = _search_failure(query="desk")
    assert error.message == "SerpAPI could not be reached."


def test_invalid_json_is_a_502(canned_serpapi):
    canned_serpapi.answer(200, b'{"shopping_results": [{"title": "Lam')
    error = _search_failure(query="lamp")
    assert error.message == "SerpAPI answered with invalid JSON."


def test_non_list_results_are_a_502(canned_serpapi):
    canned_serpapi.answer(200, {"shopping_results": {"title": "Lamp"}})
    error = _search_failure(query="lamp")
    assert error.message == "SerpAPI answered with shopping_results that is not a list."


def test_serpapi_error_body_is_a_502_with_its_reason_and_never_the_key(canned_serpapi):
    canned_serpapi.answer(200, {"error": f"Your account ({SERPAPI_TEST_KEY}) is suspended."})
    error = _search_failure(query="lamp")
    assert error.message == f"SerpAPI refused the search: Your account ({REDACTED}) is suspended."


def test_no_results_from_google_is_an_empty_answer_not_a_failure(canned_serpapi):
    canned_serpapi.answer(200, {"error": "Google hasn't returned any results for this query."})

    result = product_search(query="zzqx gadget")
    again = product_search(query="zzqx gadget")

    assert result.available is True
    assert result.cards == []
    assert result.message == 'No products found for "zzqx gadget".'
    # Not cached: SerpAPI's "no results" is sometimes transient.
    assert again.cached is False
    assert len(canned_serpapi.paths) == 2


def test_the_key_never_reaches_the_logs(serpapi, caplog):
    # httpx2 logs every request URL (api_key included) at INFO; what leaves the process
    # goes through the project's JSON formatter, which must mask it.
    from llmplatform.core.logging import JsonFormatter

    # settings quiet httpx2 to WARNING; turn it up to prove the formatter masks the key.
    with caplog.at_level(logging.INFO, logger="httpx2"):
        product_search(query="desk")
        serpapi.fail_next("server_error")
        _search_failure(query="lamp")
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert any("search.json" in line for line in lines), "no request was logged: proves nothing"
    assert all(SERPAPI_TEST_KEY not in line for line in lines)


# ----- the engine's product-search port -----


@pytest.mark.django_db(transaction=True)
def test_the_engine_port_searches_through_the_cache(serpapi, settings):
    settings.PRODUCT_SEARCH_MAX_RESULTS = 2
    port = CachedProductSearch()
    first = asyncio.run(port.search(query="Desk Lamp"))
    again = asyncio.run(port.search(query="desk lamp"))

    assert first.available is True
    assert [card["title"] for card in first.cards] == ["Desk Lamp model 1", "Desk Lamp model 2"]
    assert again.cards == first.cards
    assert len(serpapi.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_the_engine_port_raises_the_same_error(serpapi):
    serpapi.fail_next("server_error")
    with pytest.raises(ApplicationError) as caught:
        asyncio.run(CachedProductSearch().search(query="desk"))
    assert caught.value.code == "product_search_failed"
