"""Where runs and background work execute, chosen once per process.

- ``CeleryDispatcher`` (REDIS_URL set): runs go to the ``agents`` queue, background work
  (summaries) to ``default``, periodic work (the sweeper) to Celery beat.
- ``InProcessDispatcher`` (the embedded default): runs execute on one event loop in a
  daemon thread of this process; background work on a worker thread, never on a
  request's path; periodic work on a scheduler thread started with the server.

This is the only place that decides between the two: the edges and the run owner call
``dispatcher()`` and never look at REDIS_URL.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.utils.module_loading import autodiscover_modules

if TYPE_CHECKING:
    from queries.models import Query

logger = logging.getLogger(__name__)


class Dispatcher(Protocol):
    # Whether a query is stored already ``running``: a run in this very process starts at
    # once, so its claim needs no write of its own (a worker's claim is a read and a write).
    starts_runs_at_once: bool

    def submit_run(self, query: Query) -> None:
        """Have ``query`` run (its status is pending). Raises nothing it can avoid."""
        ...

    def submit_background(self, task_name: str, *args: Any) -> None:
        """Run the Celery task ``task_name`` off the request's path."""
        ...

    def outcome(self, query: Query) -> Query:
        """``query`` as its run left it (called once its event log said ``done``)."""
        ...


def _task(name: str) -> Any:
    from llmplatform.celery import app

    if name not in app.tasks:
        # Outside a worker nothing has imported the apps' tasks modules yet.
        autodiscover_modules("tasks")
    return app.tasks[name]


class CeleryDispatcher:
    starts_runs_at_once = False

    def submit_run(self, query: Query) -> None:
        _task("queries.run_query").apply_async(args=[str(query.pk)], queue="agents")

    def submit_background(self, task_name: str, *args: Any) -> None:
        _task(task_name).apply_async(args=list(args), queue="default")

    def outcome(self, query: Query) -> Query:
        query.refresh_from_db()  # another process stored it
        return query


class InProcessDispatcher:
    starts_runs_at_once = True

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="query-runs", daemon=True
        )
        self._thread.start()
        # One at a time: background work must not compete with answers for the CPU.
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="background")
        self._periodic: threading.Thread | None = None

    def submit_run(self, query: Query) -> None:
        from queries.run import query_execute

        # The run stores its outcome on this very instance: no reload when it is done.
        future = asyncio.run_coroutine_threadsafe(
            query_execute(str(query.pk), query=query), self._loop
        )
        future.add_done_callback(_log_crash)

    def submit_background(self, task_name: str, *args: Any) -> None:
        future = self._background.submit(_task(task_name).apply, args=list(args))
        future.add_done_callback(_log_crash)

    def outcome(self, query: Query) -> Query:
        return query

    def start_periodic(self) -> None:
        """Run CELERY_BEAT_SCHEDULE here, as beat would (the embedded default has none)."""
        if self._periodic is not None:
            return
        self._periodic = threading.Thread(target=self._run_periodic, name="periodic", daemon=True)
        self._periodic.start()

    def _run_periodic(self) -> None:
        schedule = {
            entry["task"]: float(entry["schedule"])
            for entry in settings.CELERY_BEAT_SCHEDULE.values()
        }
        due = dict.fromkeys(schedule, time.monotonic())
        while True:
            now = time.monotonic()
            for name, every in schedule.items():
                if now >= due[name]:
                    due[name] = now + every
                    self.submit_background(name)
            time.sleep(max(0.05, min(due.values()) - time.monotonic()))


def _log_crash(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("background work crashed", exc_info=future.exception())


_celery = CeleryDispatcher()
_in_process: InProcessDispatcher | None = None
_lock = threading.Lock()


def dispatcher() -> Dispatcher:
    """The process's dispatcher: Celery with REDIS_URL, in-process without.

    Chosen from settings on every call, which costs nothing: tests switch REDIS_URL
    between tests, a real process never does. The in-process one, with its threads, is
    made once.
    """
    global _in_process
    if settings.REDIS_URL:
        return _celery
    with _lock:
        if _in_process is None:
            _in_process = InProcessDispatcher()
        return _in_process


def start_background_work() -> None:
    """Start periodic work where no Celery beat runs it (the server calls this)."""
    current = dispatcher()
    if isinstance(current, InProcessDispatcher):
        current.start_periodic()
