"""How the tests and the benchmarks start the project's own processes.

Plain Python, no Django: bench/ scripts import it outside pytest.
"""

from __future__ import annotations

import os
import socket
import sys

ASGI_APPLICATION = "config.asgi:application"
ASGI_SERVERS = ("daphne", "uvicorn", "granian")
# The server `manage.py serve` and the Docker image run; tests use it unless
# LLMPLATFORM_TEST_ASGI_SERVER names another of ASGI_SERVERS.
SERVED_WITH = "uvicorn"
TEST_SERVER_ENV = "LLMPLATFORM_TEST_ASGI_SERVER"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def live_asgi_server() -> str:
    """The ASGI server the live tests start: SERVED_WITH unless the environment says."""
    server = os.environ.get(TEST_SERVER_ENV) or SERVED_WITH
    if server not in ASGI_SERVERS:
        raise ValueError(f"{TEST_SERVER_ENV}={server!r}: use one of {', '.join(ASGI_SERVERS)}")
    return server


def asgi_server_command(
    server: str, *, port: int, access_log: bool = True, app: str = ASGI_APPLICATION
) -> list[str]:
    """A command serving the project on 127.0.0.1:``port`` with ``server``, one process.

    None of them trusts X-Forwarded-For: client addresses are resolved by
    llmplatform.core.client_address (TRUSTED_PROXIES). uvicorn would otherwise believe
    it from 127.0.0.1, so it is told not to. Channels' router has no lifespan handler.
    """
    if server == "daphne":
        log = [] if access_log else ["--access-log", os.devnull]
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *log,
                app]  # fmt: skip
    if server == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--ws",
            "websockets-sansio",
            "--lifespan",
            "off",
            "--no-proxy-headers",
            "--access-log" if access_log else "--no-access-log",
            app,
        ]
    if server == "granian":
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asginl",  # ASGI without lifespan
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "1",
            "--ws",
            "--access-log" if access_log else "--no-access-log",
            app,
        ]
    raise ValueError(f"unknown ASGI server {server!r}: use one of {', '.join(ASGI_SERVERS)}")


def daphne_command(*, port: int) -> list[str]:
    return asgi_server_command("daphne", port=port)


def celery_worker_command(*, name: str, concurrency: int) -> list[str]:
    """A worker on both queues, as `make worker` runs it, with threads (cheap to start)."""
    return [
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
        str(concurrency),
        "--loglevel",
        "INFO",
        "-n",
        f"{name}@%h",
    ]
