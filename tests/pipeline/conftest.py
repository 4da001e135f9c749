"""A real Celery worker (subprocess) wired to the fake vendor servers and the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection

from agents.providers.registry import reset_registry
from tests.fakes.fixtures import _session_server
from tests.fakes.server import FakeVendorServer

ROOT = Path(__file__).resolve().parents[2]
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
def vendor_settings(settings, vendor_env):
    for name, value in vendor_env.items():
        setattr(settings, name, _typed(name, value))
    reset_registry()
    yield settings
    reset_registry()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, vendor_env) -> Iterator[subprocess.Popen]:
    """One real worker for the session, on the test database, consuming both queues."""
    with django_db_blocker.unblock():
        database_name = connection.settings_dict["NAME"]
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()  # no stale tasks of earlier runs
    env = {
        **os.environ,
        **vendor_env,
        "MONGO_DB": database_name,
        "LLMPLATFORM_SKIP_DOTENV": "1",
    }
    log = open(ROOT / "var" / "test-celery-worker.log", "w")  # noqa: SIM115 (closed below)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "llmplatform",
            "worker",
            "-Q",
            "default,agents",
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "--loglevel",
            "INFO",
            "-n",
            "test@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    from llmplatform.celery import app

    deadline = time.monotonic() + 60
    while not (app.control.inspect(timeout=0.5).ping() or {}):
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            log.close()
            pytest.fail("The Celery worker did not start: see var/test-celery-worker.log")
    yield worker
    worker.terminate()
    try:
        worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        worker.kill()
    log.close()
