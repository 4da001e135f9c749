"""The one bridge between sync and async code.

- ``to_thread(func)``: a blocking call (the ORM, a Celery publish) as an awaitable. It runs
  on a small pool, not ``sync_to_async``'s single shared thread, where every stream's
  database work queued behind all the others' (time to first token grew to seconds at 50
  streams; see bench/results/sse_streams.md). Each pool thread keeps its own Django
  connection.
- ``started_beside(func, ...)``: a blocking call started on a thread while the (blocking)
  caller does another, collected with ``.result()``: two round trips at once.
- ``run_sync(coroutine)``: a coroutine from sync code (Celery tasks, the in-process
  dispatcher's thread), on this thread's own event loop, kept between calls: SDK clients
  and their connection pools belong to the loop that opened them, and a loop per call
  would open new ones every time.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async

DB_THREADS = 8
_pool = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="db")
# A pool of its own: a caller on ``_pool`` waiting for its side call can never wait on a
# task queued behind itself.
_beside_pool = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="db-beside")
_thread = threading.local()


def to_thread[**P, R](func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``func`` as an awaitable that runs on the blocking-call thread pool."""
    return sync_to_async(func, thread_sensitive=False, executor=_pool)


def started_beside[**P, R](func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Future[R]:
    """``func(*args, **kwargs)`` started on another thread, in the caller's context (its
    trace span), while the caller goes on; ``.result()`` collects it."""
    return _beside_pool.submit(contextvars.copy_context().run, func, *args, **kwargs)


def thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop, made on first use and kept."""
    loop = getattr(_thread, "loop", None)
    if loop is None or loop.is_closed():
        loop = _thread.loop = asyncio.new_event_loop()
    return loop


def run_sync[R](coroutine: Coroutine[Any, Any, R]) -> R:
    """Run ``coroutine`` to completion on this thread's kept event loop."""
    return thread_loop().run_until_complete(coroutine)
