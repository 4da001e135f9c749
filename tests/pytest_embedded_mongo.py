"""Pytest plugin: an isolated throw-away SecantusDB and the test environment.

Loaded with ``-p`` (see pyproject.toml) so it runs before pytest-django reads the
settings, which take MONGODB_URI at import time. The suite never uses the shared
embedded server of ``var/mongo`` (``llmplatform.embedded``): each run starts its
own in-memory server, which stops with the run (``exit_with_parent``) and is handed to
the run's daphne and Celery processes through MONGODB_URI.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest

_server = None


def _require_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise pytest.UsageError(
            f"The tests need Redis at {url} ({type(exc).__name__}). Start it with "
            "`redis-server --daemonize yes --port 6379 --save '' --appendonly no`, "
            "or point TEST_REDIS_URL at one."
        ) from exc


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    global _server
    from llmplatform.embedded.server import spawn_server

    os.environ["LLMPLATFORM_SKIP_DOTENV"] = "1"  # a developer's .env must not leak in
    os.environ["ENVIRONMENT"] = "test"
    os.environ["LOG_FILE"] = ""
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    for name in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GOOGLE_API_KEY",
        "OPENROUTER_API_KEY",
        "SERPAPI_KEY",
        "MONGO_DB",
    ):
        os.environ.pop(name, None)
    _require_redis(os.environ["REDIS_URL"])
    # Vector snapshots of this run (and of the servers and workers it starts) stay in it.
    os.environ["VECTOR_SNAPSHOT_DIR"] = tempfile.mkdtemp(prefix="llmplatform-test-vectors-")
    # Concurrent test runs share Redis: each run's workers take only its own tasks.
    os.environ["CELERY_KEY_PREFIX"] = f"test-{os.getpid()}:"
    if "TEST_MONGODB_URI" in os.environ:
        os.environ["MONGODB_URI"] = os.environ["TEST_MONGODB_URI"]
    else:
        workdir = Path(tempfile.mkdtemp(prefix="llmplatform-test-mongo-"))
        _server = spawn_server(
            storage_path=":memory:",
            ready_file=workdir / "server.json",
            log_file=workdir / "secantus.log",
            exit_with_parent=True,
        )
        os.environ["MONGODB_URI"] = _server.uri
    return (yield)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _server is not None:
        _server.stop()
