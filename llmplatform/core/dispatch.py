"""Where runs and background work execute, chosen once per process. Work is named, never
imported: a Celery task name and ids.

- ``CeleryDispatcher`` (REDIS_URL set): the name is sent to the broker; runs go to the
  ``agents`` queue, background work to ``default``, periodic work comes from Celery beat.
- ``InProcessDispatcher`` (the embedded default): a run executes on one event loop in a
  daemon thread, with the coroutine its app registered for the task's name
  (``register_runner``, from the app's ``ready()``); background work runs the Celery task
  of that name (Celery's own registry by name) on a worker thread, never on a request's
  path (long work, such as an ingestion, on a second one: ``register_long_background``);
  periodic work on a scheduler thread started with the server.

This is the only place that decides between the two, and it imports no app: the apps
name their work and register their runners, and never look at REDIS_URL.

A run carries the submitter's trace context (W3C ``traceparent``) as its keyword
``trace_context``, so that one question is one trace wherever it runs: a Celery task and
an in-process runner both get it (a task on another loop or thread would not inherit
the submitter's context otherwise). Background work carries it only when asked.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from django.conf import settings
from django.utils.module_loading import autodiscover_modules

from llmplatform.core.tracing import context_carrier

logger = logging.getLogger(__name__)

RUNS_QUEUE = "agents"
BACKGROUND_QUEUE = "default"

# ``runner(*ids, **handover)``: what a run of one task name is in this process.
Runner = Callable[..., Coroutine[Any, Any, None]]
_runners: dict[str, Runner] = {}


class _Stored(Protocol):
    def refresh_from_db(self) -> None: ...


StoredT = TypeVar("StoredT", bound=_Stored)


# In-process background work that can take minutes (a 500-page document's ingestion):
# it has a lane of its own, so the short work each answer queues (after_completion)
# never waits behind it. An app names its long work from ready().
_long_work: set[str] = set()


def register_long_background(task_name: str) -> None:
    """Run the in-process background work ``task_name`` on the lane for long work (an
    app's ``ready()`` calls it). Celery workers are unaffected: there every task of the
    ``default`` queue takes a worker of its own."""
    _long_work.add(task_name)


def register_runner(task_name: str, runner: Runner) -> None:
    """Have runs of ``task_name`` execute as ``runner`` in this process (an app's
    ``ready()`` calls it; the Celery task of the same name is what a worker runs)."""
    _runners[task_name] = runner


class Dispatcher(Protocol):
    # Whether a run starts at once in this very process, so that its record can be stored
    # already running (a worker's claim is a read and a write).
    starts_runs_at_once: bool

    def submit_run(self, task_name: str, *ids: str, **handover: Any) -> None:
        """Have the run ``task_name`` of ``ids`` execute. ``handover`` (objects this
        process holds, such as the stored record) reaches only an in-process runner: a
        worker reads by id. Raises LookupError in this process for a name no app
        registered (a bug), nothing else it can avoid."""
        ...

    def submit_background(
        self, task_name: str, *args: Any, trace_context: dict[str, str] | None = None
    ) -> None:
        """Run the Celery task ``task_name`` off the request's path; with
        ``trace_context``, the task gets it as its keyword ``trace_context``."""
        ...

    def outcome(self, stored: StoredT) -> StoredT:
        """``stored`` as its run left it (called once its event log said ``done``)."""
        ...


def _celery_app() -> Any:
    # The process's Celery app, looked up when work is sent rather than at import: it is
    # built by the composition root (which imports core). ``celery.current_app`` would
    # not do: it is per thread, and a request's thread would get Celery's bare default.
    from llmplatform.celery import app

    return app


def _task(name: str) -> Any:
    app = _celery_app()
    if name not in app.tasks:
        # Outside a worker nothing has imported the apps' tasks modules yet.
        autodiscover_modules("tasks")
    return app.tasks[name]


class CeleryDispatcher:
    starts_runs_at_once = False

    def submit_run(self, task_name: str, *ids: str, **handover: Any) -> None:
        _celery_app().send_task(
            task_name, args=list(ids), kwargs=_traced(context_carrier()), queue=RUNS_QUEUE
        )

    def submit_background(
        self, task_name: str, *args: Any, trace_context: dict[str, str] | None = None
    ) -> None:
        _celery_app().send_task(
            task_name, args=list(args), kwargs=_traced(trace_context), queue=BACKGROUND_QUEUE
        )

    def outcome(self, stored: StoredT) -> StoredT:
        stored.refresh_from_db()  # another process stored it
        return stored


class InProcessDispatcher:
    starts_runs_at_once = True

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="query-runs", daemon=True
        )
        self._thread.start()
        # One at a time per lane: background work must not compete with answers for the
        # CPU. Long work (register_long_background) has its own lane, one at a time too.
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="background")
        self._long_background = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="background-long"
        )
        self._periodic: threading.Thread | None = None

    def submit_run(self, task_name: str, *ids: str, **handover: Any) -> None:
        runner = _runners.get(task_name)
        if runner is None:
            raise LookupError(
                f"No in-process runner is registered for {task_name!r}: its app registers "
                "one in ready() (llmplatform.core.dispatch.register_runner)."
            )
        # The handover spares the runner a read of what this process already holds.
        run = runner(*ids, **_traced(context_carrier()), **handover)
        future = asyncio.run_coroutine_threadsafe(run, self._loop)
        future.add_done_callback(_log_crash)

    def submit_background(
        self, task_name: str, *args: Any, trace_context: dict[str, str] | None = None
    ) -> None:
        lane = self._long_background if task_name in _long_work else self._background
        future = lane.submit(_task(task_name).apply, args=list(args), kwargs=_traced(trace_context))
        future.add_done_callback(_log_crash)

    def outcome(self, stored: StoredT) -> StoredT:
        return stored  # the run stored its outcome on this very instance

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
                    try:
                        self.submit_background(name)
                    except RuntimeError:  # the lanes are shut down: this process is exiting
                        return
            time.sleep(max(0.05, min(due.values()) - time.monotonic()))


def _traced(carrier: dict[str, str] | None) -> dict[str, Any]:
    """The keywords that carry ``carrier`` to the work (none without a trace)."""
    return {"trace_context": carrier} if carrier else {}


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


def where_work_runs() -> str:
    """Where this process's dispatcher runs work, for a person to read (``serve``'s banner)."""
    return "Celery workers (REDIS_URL)" if settings.REDIS_URL else "in-process (no Redis)"


def start_background_work() -> None:
    """Start periodic work where no Celery beat runs it (the server calls this)."""
    current = dispatcher()
    if isinstance(current, InProcessDispatcher):
        current.start_periodic()
