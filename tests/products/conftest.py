"""Fixtures for the product search tests: the fake SerpAPI and settings pointing at it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.fakes.fixtures import _fake_servers, fake_serpapi  # noqa: F401
from tests.fakes.server import FakeVendorServer

# Distinctive so a test can prove no error message or log line ever contains it.
SERPAPI_TEST_KEY = "serp-test-SECRET-0123456789abcdef"


@pytest.fixture
def serpapi(settings: Any, fake_serpapi: FakeVendorServer) -> FakeVendorServer:  # noqa: F811
    """The fake SerpAPI, configured as the upstream with a key; fast timeouts."""
    settings.SERPAPI_KEY = SERPAPI_TEST_KEY
    settings.SERPAPI_BASE_URL = fake_serpapi.base_url
    settings.PRODUCT_SEARCH_MAX_RESULTS = 3
    settings.PROVIDER_CONNECT_TIMEOUT = 2.0
    settings.PROVIDER_READ_TIMEOUT = 5.0
    return fake_serpapi


class CannedServer:
    """Answers every GET with one canned (status, raw body): the shapes the shared fake
    cannot produce for SerpAPI (invalid JSON, an `error` body with 200, odd results)."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"{}"
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.paths.append(self.path)
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def canned_serpapi(settings: Any) -> Iterator[CannedServer]:
    server = CannedServer()
    settings.SERPAPI_KEY = SERPAPI_TEST_KEY
    settings.SERPAPI_BASE_URL = server.base_url
    settings.PRODUCT_SEARCH_MAX_RESULTS = 3
    settings.PROVIDER_CONNECT_TIMEOUT = 2.0
    settings.PROVIDER_READ_TIMEOUT = 5.0
    yield server
    server.stop()
