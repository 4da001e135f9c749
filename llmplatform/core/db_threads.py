"""Database calls from async code (the pipeline, SSE and websocket consumers).

``sync_to_async``'s default runs every call on one shared thread, so with many streams
each query's database work queued behind all the others' (time to first token grew to
seconds at 50 streams; see bench/results/sse_streams.md). These calls share nothing but
the connection settings, so they run on a small pool instead; each pool thread keeps its
own Django connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async

DB_THREADS = 8
_pool = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="db")


def db_async[**P, R](func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``func`` as an awaitable that runs on the database thread pool."""
    return sync_to_async(func, thread_sensitive=False, executor=_pool)
