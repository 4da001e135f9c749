from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from llmplatform.core.services import api_key_create
from llmplatform.core.trace_store import traces_drain

# Fake vendor servers (OpenAI, Anthropic, Gemini, OpenRouter, SerpAPI) on 127.0.0.1.
pytest_plugins = ["tests.fakes.fixtures", "tests.live_services"]


@pytest.fixture
def make_owner(db):
    """Create an owner (a Django user) with an API key; returns (user, raw_key)."""
    counter = {"n": 0}

    def make(username: str | None = None):
        counter["n"] += 1
        user = get_user_model().objects.create(username=username or f"owner{counter['n']}")
        _, raw_key = api_key_create(owner=user, name="test")
        return user, raw_key

    return make


@pytest.fixture
def owner(make_owner):
    return make_owner("alice")


@pytest.fixture
def api(owner) -> APIClient:
    """An API client authenticated as ``owner``."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {owner[1]}")
    return client


@pytest.fixture
def other_api(make_owner) -> APIClient:
    """An API client of a second, unrelated owner."""
    _, raw_key = make_owner("mallory")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _traces_stored_within_their_test():
    """The trace writer holds a trace's batches for a second before storing them: a
    test's are stored before its database is torn down, never into the next test's."""
    yield
    traces_drain()


@pytest.fixture(autouse=True)
def _own_cache_namespace(settings):
    """Each test counts (wrong keys, sign-in failures) in a cache namespace of its own.

    Nothing leaks from one test into the next, and no test flushes the Redis database that
    the live worker's queues and the event logs share.
    """
    settings.CACHES = {
        name: {**config, "KEY_PREFIX": f"{config.get('KEY_PREFIX', '')}t-{uuid.uuid4().hex}"}
        for name, config in settings.CACHES.items()
    }
