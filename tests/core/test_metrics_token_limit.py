"""Wrong /metrics tokens count as failed key attempts of the client's address, in the same
counter as wrong API keys: guessing the token is limited, a right token never refused."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-limit-0123456789"


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.API_KEY_FAILURES_PER_MINUTE = 3


def scrape(address: str, token: str) -> int:
    client = Client(REMOTE_ADDR=address)
    return client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").status_code


def test_wrong_tokens_are_limited_per_address():
    assert [scrape("198.51.100.20", "guess") for _ in range(5)] == [401, 401, 401, 429, 429]
    response = Client(REMOTE_ADDR="198.51.100.20").get(
        "/metrics", HTTP_AUTHORIZATION="Bearer guess"
    )
    assert response.json()["error"]["code"] == "rate_limited"
    assert response["Retry-After"] == "60"
    # The right token is never refused, and another address is not affected.
    assert scrape("198.51.100.20", TOKEN) == 200
    assert scrape("198.51.100.21", "guess") == 401


def test_token_and_api_key_guesses_add_up():
    for _ in range(3):
        assert scrape("198.51.100.22", "guess") == 401
    api = Client(REMOTE_ADDR="198.51.100.22")
    assert api.get("/api/v1/status", HTTP_AUTHORIZATION="Bearer wrong-key-01234").status_code == (
        429
    )


def test_a_scrape_without_a_token_is_not_a_guess():
    assert [Client(REMOTE_ADDR="198.51.100.23").get("/metrics").status_code for _ in range(5)] == [
        401
    ] * 5
