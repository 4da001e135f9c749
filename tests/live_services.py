"""Live services shared by the integration tests (registered in tests/conftest.py):
every fake vendor server, settings pointing at them, a real Celery worker, and real daphne
processes (with Redis and the worker, and in-process), all on the test database.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from django.conf import settings as django_settings
from django.db import connection

from agents.providers.registry import reset_registry
from tests.fakes.fixtures import _session_server
from tests.fakes.server import FakeVendorServer
from tests.processes import (
    asgi_server_command,
    celery_worker_command,
    free_port,
    live_asgi_server,
)

ROOT = Path(__file__).resolve().parents[1]
KEYS = {
    "OPENAI_API_KEY": "sk-test-openai-pipeline",
    "ANTHROPIC_API_KEY": "sk-ant-test-pipeline",
    "GOOGLE_API_KEY": "AIzaTestPipeline",
    "OPENROUTER_API_KEY": "sk-or-test-pipeline",
    "SERPAPI_KEY": "serp-test-pipeline",
}


@pytest.fixture(scope="session")
def fakes(_fake_servers) -> dict[str, FakeVendorServer]:
    """Every fake vendor server, started once for the session."""
    for name in ("openai", "anthropic", "google", "openrouter", "serpapi"):
        if name not in _fake_servers:
            _fake_servers[name] = _session_server(name)
    return _fake_servers


@pytest.fixture(scope="session")
def vendor_env(fakes) -> dict[str, str]:
    """Settings (as environment strings) that point every vendor at its fake server."""
    servers = fakes
    return {
        **KEYS,
        "OPENAI_BASE_URL": servers["openai"].base_url,
        "ANTHROPIC_BASE_URL": servers["anthropic"].base_url,
        "GOOGLE_BASE_URL": servers["google"].base_url,
        "OPENROUTER_BASE_URL": servers["openrouter"].base_url,
        "SERPAPI_BASE_URL": servers["serpapi"].origin,
        "PROVIDER_RETRY_BASE_DELAY": "0.05",
        "PROVIDER_READ_TIMEOUT": "5",
        "PROVIDER_MAX_RETRIES": "2",
        "MEMORY_SUMMARY_INTERVAL": "2",
        "SSE_HEARTBEAT_SECONDS": "0.5",
        "PRODUCT_SEARCH_MAX_RESULTS": "3",
        "LOCAL_MODEL_ENABLED": "false",
        # Real semantic vectors for memory tests; the fake OpenAI embeddings are arbitrary.
        "EMBEDDING_PROVIDER": "local",
        # Uploads must be readable by the worker process too.
        "UPLOAD_DIR": tempfile.mkdtemp(prefix="llmplatform-test-uploads-"),
    }


def _typed(name: str, value: str):
    current = getattr(django_settings, name, None)
    if isinstance(current, bool):
        return value == "true"
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, Path):
        return Path(value)
    return value


@pytest.fixture
def vendor_settings(settings, vendor_env, fakes):
    """Settings pointing at the fake vendors, which start each test with no faults or
    recorded requests."""
    for name, value in vendor_env.items():
        setattr(settings, name, _typed(name, value))
    for server in fakes.values():
        server.reset()
    reset_registry()
    yield settings
    reset_registry()


@pytest.fixture
def in_process(vendor_settings, fakes):
    """The embedded default: no Redis, the pipeline in-process, events in memory."""
    vendor_settings.REDIS_URL = None
    return fakes


@pytest.fixture(scope="session")
def child_env(django_db_setup, django_db_blocker, vendor_env) -> dict[str, str]:
    """The environment of every process the tests start: the test database, the fakes."""
    with django_db_blocker.unblock():
        database_name = connection.settings_dict["NAME"]
    return {
        **os.environ,
        **vendor_env,
        "MONGO_DB": database_name,
        "LLMPLATFORM_SKIP_DOTENV": "1",
    }


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def celery_worker(child_env) -> Iterator[subprocess.Popen]:
    """One real worker for the session, on the test database, consuming both queues."""
    log_path = ROOT / "var" / "test-celery-worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            celery_worker_command(name=f"test-{os.getpid()}", concurrency=4),
            cwd=ROOT,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    from llmplatform.celery import app

    deadline = time.monotonic() + 60
    while not (app.control.inspect(timeout=0.5).ping() or {}):
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            pytest.fail(f"The Celery worker did not start: see {log_path}")
    yield worker
    stop_process(worker)


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen


def _answers(url: str) -> bool:
    """Whether anything answers HTTP at ``url`` (any status counts)."""
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start_daphne(env: dict[str, str], log_path: Path) -> LiveServer:
    """The project's ASGI server (as served: SERVED_WITH, unless LLMPLATFORM_TEST_ASGI_SERVER
    names another: tests/processes.py); returns once it answers HTTP (any status)."""
    port = free_port()
    server = live_asgi_server()
    with log_path.open("w") as log:  # the child keeps its own copy of the handle
        process = subprocess.Popen(
            asgi_server_command(server, port=port),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not _answers(f"{url}/api/v1/health"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{server} did not start: see {log_path}")
        time.sleep(0.2)
    return LiveServer(url=url, process=process)


@pytest.fixture(scope="session")
def live_daphne(celery_worker, child_env) -> Iterator[LiveServer]:
    """daphne with REDIS_URL: the production path (Celery worker, Redis Streams)."""
    server = start_daphne(child_env, ROOT / "var" / "test-daphne.log")
    yield server
    stop_process(server.process)


@pytest.fixture(scope="session")
def live_daphne_in_process(child_env) -> Iterator[LiveServer]:
    """daphne without REDIS_URL: the embedded default (pipeline on daphne's loop, events in
    memory)."""
    env = {**child_env, "REDIS_URL": ""}
    server = start_daphne(env, ROOT / "var" / "test-daphne-in-process.log")
    yield server
    stop_process(server.process)


@pytest.fixture(params=["redis", "in-process"])
def daphne(request) -> LiveServer:
    """Each streaming test runs against both deployments of the event log and runner."""
    name = "live_daphne" if request.param == "redis" else "live_daphne_in_process"
    return request.getfixturevalue(name)


@dataclass
class SseFrame:
    id: str | None
    event: dict | None  # None for a comment (heartbeat)


# A stream that is still open after this long has hung (keep-alives forever): fail.
SSE_DEADLINE_S = 60.0


def sse_frames(
    response: httpx2.Response, *, deadline_s: float = SSE_DEADLINE_S
) -> Iterator[SseFrame]:
    """Parse an SSE body as it arrives: ``id:`` and ``data:`` lines, blank line ends a frame.
    Fails the test once ``deadline_s`` has passed (silence is cut by the read timeout)."""
    deadline = time.monotonic() + deadline_s
    frame_id, data = None, None
    for line in response.iter_lines():
        if time.monotonic() > deadline:
            pytest.fail(f"the SSE stream did not end within {deadline_s} s")
        if line == "":
            if data is not None:
                yield SseFrame(frame_id, json.loads(data))
            frame_id, data = None, None
        elif line.startswith(":"):
            yield SseFrame(None, None)
        elif line.startswith("id: "):
            frame_id = line[4:]
        elif line.startswith("data: "):
            data = line[6:]
