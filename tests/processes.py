"""How the tests and the benchmarks start the project's own processes.

Plain Python, no Django: bench/ scripts import it outside pytest.
"""

from __future__ import annotations

import socket
import sys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daphne_command(*, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "llmplatform.asgi:application",
    ]


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
