"""GET /api/v1/products/search: response shape, bad input, auth, upstream failure."""

from __future__ import annotations

import json

import pytest

from tests.products.conftest import SERPAPI_TEST_KEY

pytestmark = pytest.mark.django_db

URL = "/api/v1/products/search"


def _error(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def test_search_returns_products(api, serpapi):
    response = api.get(URL, {"q": "Running Shoes", "limit": 2})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"query", "available", "cached", "products", "message"}
    assert body["query"] == "running shoes"
    assert body["available"] is True
    assert body["cached"] is False
    assert body["message"] == ""
    assert [p["title"] for p in body["products"]] == [
        "Running Shoes model 1",
        "Running Shoes model 2",
    ]
    first = body["products"][0]
    assert set(first) == {
        "title",
        "price",
        "extracted_price",
        "url",
        "image",
        "source",
        "rating",
        "reviews",
    }
    assert first["price"] == f"${first['extracted_price']:.2f}"
    assert first["url"].startswith("https://www.google.com/shopping/product/")
    assert serpapi.requests[0].query["q"] == "running shoes"


def test_default_limit_and_cache_through_the_api(api, serpapi):
    first = api.get(URL, {"q": "kettle"}).json()
    again = api.get(URL, {"q": "KETTLE"}).json()

    assert len(first["products"]) == 3  # PRODUCT_SEARCH_MAX_RESULTS in the fixture
    assert again["cached"] is True
    assert again["products"] == first["products"]
    assert len(serpapi.requests) == 1


def test_without_a_key_the_api_says_unavailable(api, serpapi, settings):
    settings.SERPAPI_KEY = ""

    response = api.get(URL, {"q": "kettle"})

    assert response.status_code == 200
    assert response.json() == {
        "query": "kettle",
        "available": False,
        "cached": False,
        "products": [],
        "message": "Product search is unavailable: set SERPAPI_KEY.",
    }
    assert serpapi.requests == []


@pytest.mark.parametrize(
    "params",
    [{}, {"q": ""}, {"q": "   "}, {"q": "x" * 201}],
    ids=["missing", "empty", "blank", "too-long"],
)
def test_bad_q_is_a_400_naming_q(api, serpapi, params):
    error = _error(api.get(URL, params), 400)
    assert error["code"] == "validation_error"
    assert error["message"].startswith("The request is invalid: q: ")
    assert set(error["details"]["fields"]) == {"q"}
    assert serpapi.requests == []


@pytest.mark.parametrize("limit", ["0", "21", "many"])
def test_bad_limit_is_a_400_naming_limit(api, serpapi, limit):
    error = _error(api.get(URL, {"q": "kettle", "limit": limit}), 400)
    assert error["message"].startswith("The request is invalid: limit: ")
    assert set(error["details"]["fields"]) == {"limit"}
    assert serpapi.requests == []


def test_q_of_200_characters_is_accepted(api, serpapi):
    assert api.get(URL, {"q": "x" * 200}).status_code == 200


def test_anonymous_is_401(anon, serpapi):
    error = _error(anon.get(URL, {"q": "kettle"}), 401)
    assert error["code"] == "not_authenticated"
    assert serpapi.requests == []


@pytest.mark.parametrize("fault", ["server_error", "rate_limit", "auth"])
def test_upstream_failure_is_a_502_envelope_without_the_key(api, serpapi, fault):
    serpapi.fail_next(fault)

    response = api.get(URL, {"q": "kettle"})

    error = _error(response, 502)
    assert error["code"] == "product_search_failed"
    assert error["message"].startswith("SerpAPI ")
    assert SERPAPI_TEST_KEY not in response.content.decode()


def test_upstream_timeout_is_a_502_envelope(api, serpapi, settings):
    settings.PROVIDER_READ_TIMEOUT = 0.2
    serpapi.fail_next("hang")

    response = api.get(URL, {"q": "kettle"})

    error = _error(response, 502)
    assert error["code"] == "product_search_failed"
    assert "did not answer" in error["message"]
    assert SERPAPI_TEST_KEY not in response.content.decode()


def test_malformed_upstream_json_is_a_502_envelope(api, canned_serpapi):
    canned_serpapi.answer(200, b'{"shopping_results": [')

    response = api.get(URL, {"q": "kettle"})

    error = _error(response, 502)
    assert error == {
        "code": "product_search_failed",
        "message": "SerpAPI answered with invalid JSON.",
        "details": {},
    }


def test_openapi_documents_the_parameters(api):
    schema = json.loads(api.get("/openapi.json", {"format": "json"}).content)
    operation = schema["paths"]["/api/v1/products/search"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["q"]["required"] is True
    assert params["limit"]["schema"]["type"] == "integer"
