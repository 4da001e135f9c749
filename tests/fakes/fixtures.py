"""Pytest fixtures for the fake vendor servers; register with
``pytest_plugins = ["tests.fakes.fixtures"]``.

Each server starts once per session (starting one costs a thread and a socket) and is
reset after every test, so faults, recorded requests and settings never leak between tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.server import FakeVendorServer
from tests.fakes.wire import AnthropicWire, GoogleWire, OpenAIWire, OpenRouterWire, SerpAPIWire


def _session_server(adapter_name: str) -> FakeVendorServer:
    adapters = {
        "openai": OpenAIWire,
        "anthropic": AnthropicWire,
        "google": GoogleWire,
        "openrouter": OpenRouterWire,
        "serpapi": SerpAPIWire,
    }
    return FakeVendorServer(adapters[adapter_name]()).start()


@pytest.fixture(scope="session")
def _fake_servers() -> Iterator[dict[str, FakeVendorServer]]:
    servers: dict[str, FakeVendorServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


def _server(servers: dict[str, FakeVendorServer], name: str) -> Iterator[FakeVendorServer]:
    if name not in servers:
        servers[name] = _session_server(name)
    server = servers[name]
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def fake_openai(_fake_servers: dict[str, FakeVendorServer]) -> Iterator[FakeVendorServer]:
    yield from _server(_fake_servers, "openai")


@pytest.fixture
def fake_anthropic(_fake_servers: dict[str, FakeVendorServer]) -> Iterator[FakeVendorServer]:
    yield from _server(_fake_servers, "anthropic")


@pytest.fixture
def fake_google(_fake_servers: dict[str, FakeVendorServer]) -> Iterator[FakeVendorServer]:
    yield from _server(_fake_servers, "google")


@pytest.fixture
def fake_openrouter(_fake_servers: dict[str, FakeVendorServer]) -> Iterator[FakeVendorServer]:
    yield from _server(_fake_servers, "openrouter")


@pytest.fixture
def fake_serpapi(_fake_servers: dict[str, FakeVendorServer]) -> Iterator[FakeVendorServer]:
    yield from _server(_fake_servers, "serpapi")
