"""Fixtures for the provider tests: fake vendor servers and settings pointing at them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fakes.server import FakeVendorServer

# Distinctive so a test can prove no error message ever contains them.
SECRET_KEYS = {
    "openai": "sk-test-openai-SECRET-0123456789abcdef",
    "anthropic": "sk-ant-test-SECRET-0123456789abcdef",
    "google": "AIzaTestGoogleSECRET0123456789abcdef",
    "openrouter": "sk-or-test-SECRET-0123456789abcdef",
}
VENDORS = ("openai", "anthropic", "google", "openrouter")


def run[T](coro: Coroutine[Any, Any, T]) -> T:
    """Run one test's async body on its own loop (pytest-asyncio is not installed)."""
    return asyncio.run(coro)


@dataclass
class FakeVendors:
    servers: dict[str, FakeVendorServer]

    def __getitem__(self, name: str) -> FakeVendorServer:
        return self.servers[name]


@pytest.fixture
def fakes(request: pytest.FixtureRequest) -> FakeVendors:
    """The four chat vendors' fake servers by provider name."""
    return FakeVendors({name: request.getfixturevalue(f"fake_{name}") for name in VENDORS})


@pytest.fixture
def provider_settings(settings: Any, fakes: FakeVendors) -> Iterator[Any]:
    """Every cloud vendor configured against its fake; no local model; fast retries."""
    from agents.providers.registry import reset_registry

    settings.OPENAI_API_KEY = SECRET_KEYS["openai"]
    settings.OPENAI_BASE_URL = fakes["openai"].base_url
    settings.OPENAI_SEARCH_MODEL = "gpt-4o-mini-search-preview"
    settings.ANTHROPIC_API_KEY = SECRET_KEYS["anthropic"]
    settings.ANTHROPIC_BASE_URL = fakes["anthropic"].base_url
    settings.GOOGLE_API_KEY = SECRET_KEYS["google"]
    settings.GOOGLE_BASE_URL = fakes["google"].base_url
    settings.OPENROUTER_API_KEY = SECRET_KEYS["openrouter"]
    settings.OPENROUTER_BASE_URL = fakes["openrouter"].base_url
    settings.OPENROUTER_APP_URL = "https://chat.example.test"
    settings.OPENROUTER_APP_TITLE = "LLM Platform Tests"
    settings.LOCAL_MODEL_ENABLED = False
    settings.PROVIDER_CONNECT_TIMEOUT = 2.0
    settings.PROVIDER_READ_TIMEOUT = 5.0
    settings.PROVIDER_MAX_RETRIES = 2
    settings.PROVIDER_RETRY_BASE_DELAY = 0.001
    settings.PROVIDER_FALLBACKS = ""
    reset_registry()
    yield settings
    reset_registry()
