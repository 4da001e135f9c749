"""Prometheus series of the platform and the small functions that record them.

Every series is defined here, once, with its labels; callers use the ``record_*``
functions, never the metric objects. Labels stay bounded: routes are URL patterns (never
raw paths), owners are API-key owners' ids (a handful per deployment), providers and
models come from the model catalogue (``model_catalogue_register``; anything else is
``other``, since clients choose model names), task names from Celery's registry. End-user
ids, session ids and query ids are never labels.

Processes:

- one web process: ``GET /metrics`` (``llmplatform.core.metrics_http``) serves this
  process's registry, plus the Celery queue depths read from Redis at scrape time;
- several processes (uvicorn/granian workers, a Celery prefork pool): set
  ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory shared by those processes (the
  client library reads it when it is imported, so it must be in the environment before
  start); every process writes its samples there and any of them serves the sum;
- a Celery worker serves its own on ``METRICS_WORKER_PORT`` (``worker_init``); with the
  prefork pool that needs ``PROMETHEUS_MULTIPROC_DIR`` too, since tasks run in children.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

logger = logging.getLogger(__name__)

PREFIX = "llmplatform"
UNMATCHED_ROUTE = "<unmatched>"
# The label of a provider or model that is not in the model catalogue.
OTHER = "other"
# The queues the dispatcher sends to (llmplatform.core.dispatch): runs and background work.
# Not imported from there: the dispatcher reaches the Celery app, which imports this module.
CELERY_QUEUES = ("agents", "default")
# Celery tasks that are "summary and ingestion" work, by task name -> job label. A new
# ingestion task is measured by adding its name here.
BACKGROUND_JOBS = {"queries.after_completion": "summary"}

# Seconds. HTTP requests: mostly fast JSON, some long-polling answers (up to the budget).
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Time to first token and whole answers: model calls, tenths of a second to minutes.
_LLM_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 30, 60, 120, 300)


def multiprocess_dir() -> str | None:
    # prometheus_client's own variable, read by the library when it is imported (it picks
    # its value storage then), so it is read from the environment here too, not settings.
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


HTTP_REQUEST_SECONDS = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "HTTP requests by route pattern, method and status code",
    ["route", "method", "status"],
    buckets=_HTTP_BUCKETS,
)
QUERIES = Counter(
    f"{PREFIX}_queries_total",
    "Finished query runs by provider, model and status (completed, cancelled, failed)",
    ["provider", "model", "status"],
)
TTFT_SECONDS = Histogram(
    f"{PREFIX}_time_to_first_token_seconds",
    "Time from the run's start to the first answer token",
    ["provider", "model"],
    buckets=_LLM_BUCKETS,
)
QUERY_SECONDS = Histogram(
    f"{PREFIX}_query_duration_seconds",
    "Whole query runs, start to stored outcome",
    ["provider", "model"],
    buckets=_LLM_BUCKETS,
)
TOKENS = Counter(
    f"{PREFIX}_tokens_total",
    "Tokens billed, by provider, model, owner (API-key owner id) and direction",
    ["provider", "model", "owner", "direction"],
)
COST_USD = Counter(
    f"{PREFIX}_cost_usd_total",
    "Cost in US dollars, by provider, model and owner (API-key owner id)",
    ["provider", "model", "owner"],
)
PROVIDER_ERRORS = Counter(
    f"{PREFIX}_provider_errors_total",
    "Provider call failures by provider and error code (rate_limited, provider_timeout, ...)",
    ["provider", "code"],
)
PROVIDER_RETRIES = Counter(
    f"{PREFIX}_provider_retries_total", "Provider calls retried", ["provider"]
)
PROVIDER_FALLBACKS = Counter(
    f"{PREFIX}_provider_fallbacks_total",
    "Answers handed from a failed provider to the next of its fallback chain",
    ["from_provider", "to_provider"],
)
ACTIVE_STREAMS = Gauge(
    f"{PREFIX}_active_streams",
    "Open answer streams: SSE responses and websocket connections",
    ["kind"],
    multiprocess_mode="livesum",
)
CELERY_TASKS = Counter(
    f"{PREFIX}_celery_tasks_total",
    "Celery task outcomes (success, failure, retry) by task name",
    ["task", "outcome"],
)
CELERY_TASK_SECONDS = Histogram(
    f"{PREFIX}_celery_task_duration_seconds",
    "Celery task run time by task name",
    ["task"],
    buckets=_LLM_BUCKETS,
)
BACKGROUND_JOBS_DONE = Counter(
    f"{PREFIX}_background_jobs_total",
    "Summary and ingestion work: job (summary, ...) and outcome (written, not_due, failure, retry)",
    ["job", "outcome"],
)

STREAM_KINDS = ("sse", "websocket")
for _kind in STREAM_KINDS:
    ACTIVE_STREAMS.labels(kind=_kind)  # present at 0 before the first stream


# ----- recording -----


def _label(value: Any, fallback: str = "unknown") -> str:
    return str(value) if value not in (None, "") else fallback


# (provider, lower-cased model) pairs a model label may name, supplied by the layer that
# knows them (agents.providers.catalogue, registered in agents.apps): core imports no app.
_model_catalogue: Callable[[], frozenset[tuple[str, str]]] | None = None


def model_catalogue_register(catalogue: Callable[[], frozenset[tuple[str, str]]]) -> None:
    """Name the known (provider, model) pairs; called once at start-up, read per record."""
    global _model_catalogue
    _model_catalogue = catalogue


def model_labels(provider: str | None, model: str | None) -> tuple[str, str]:
    """The (provider, model) labels: catalogue names as they are, anything else ``other``.

    Clients choose model names (REST accepts any, and the vendor may refuse it); without
    this every new name would add a family of series. Before a catalogue is registered,
    every model is ``other``: bounded, never unbounded.
    """
    known = _model_catalogue() if _model_catalogue is not None else frozenset()
    provider, model = _label(provider), _label(model).lower()
    if (provider, model) in known:
        return provider, model
    return (provider if any(p == provider for p, _ in known) else OTHER), OTHER


def record_request(*, route: str | None, method: str, status: int, seconds: float) -> None:
    HTTP_REQUEST_SECONDS.labels(
        route=route or UNMATCHED_ROUTE, method=method, status=str(status)
    ).observe(seconds)


def record_query_finished(
    *,
    provider: str,
    model: str,
    owner: str,
    status: str,
    ttft_ms: float | None,
    total_ms: float | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cost_usd: float | None,
) -> None:
    """One finished run (any status). ``owner`` is the API-key owner's id, never a user_id;
    a model outside the catalogue is counted as ``other``."""
    (provider, model), owner = model_labels(provider, model), _label(owner)
    QUERIES.labels(provider=provider, model=model, status=_label(status)).inc()
    if ttft_ms:
        TTFT_SECONDS.labels(provider=provider, model=model).observe(ttft_ms / 1000)
    if total_ms is not None:
        QUERY_SECONDS.labels(provider=provider, model=model).observe(total_ms / 1000)
    for direction, tokens in (("input", input_tokens), ("output", output_tokens)):
        if tokens:
            TOKENS.labels(provider=provider, model=model, owner=owner, direction=direction).inc(
                tokens
            )
    if cost_usd:
        COST_USD.labels(provider=provider, model=model, owner=owner).inc(cost_usd)


def record_provider_error(provider: str, code: str) -> None:
    PROVIDER_ERRORS.labels(provider=_label(provider), code=_label(code, "error")).inc()


def record_retry(provider: str) -> None:
    PROVIDER_RETRIES.labels(provider=_label(provider)).inc()


def record_fallback(from_: str, to: str) -> None:
    PROVIDER_FALLBACKS.labels(from_provider=_label(from_), to_provider=_label(to)).inc()


def stream_opened(kind: str) -> None:
    ACTIVE_STREAMS.labels(kind=kind).inc()


def stream_closed(kind: str) -> None:
    ACTIVE_STREAMS.labels(kind=kind).dec()


@contextmanager
def stream_active(kind: str) -> Iterator[None]:
    """Counts a stream as open for the block, however the block ends."""
    stream_opened(kind)
    try:
        yield
    finally:
        stream_closed(kind)


def record_task_outcome(task: str, outcome: str, *, result: Any = None) -> None:
    CELERY_TASKS.labels(task=task, outcome=outcome).inc()
    job = BACKGROUND_JOBS.get(task)
    if job is None:
        return
    if outcome == "success" and job == "summary":
        # queries.after_completion returns the summary's id when one was due.
        outcome = "written" if result else "not_due"
    BACKGROUND_JOBS_DONE.labels(job=job, outcome=outcome).inc()


# ----- Celery -----

_task_started: dict[str, float] = {}
_task_started_lock = threading.Lock()


def _task_name(sender: Any) -> str:
    return _label(getattr(sender, "name", None) or sender)


def _on_task_prerun(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    if task_id is not None:
        with _task_started_lock:
            _task_started[task_id] = time.perf_counter()


def _on_task_postrun(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    with _task_started_lock:
        started = _task_started.pop(task_id, None) if task_id is not None else None
    if started is not None:
        CELERY_TASK_SECONDS.labels(task=_task_name(sender)).observe(time.perf_counter() - started)


def _on_task_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    record_task_outcome(_task_name(sender), "success", result=result)


def _on_task_failure(sender: Any = None, **_: Any) -> None:
    record_task_outcome(_task_name(sender), "failure")


def _on_task_retry(sender: Any = None, **_: Any) -> None:
    record_task_outcome(_task_name(sender), "retry")


def _on_worker_init(**_: Any) -> None:
    from django.conf import settings

    port = settings.METRICS_WORKER_PORT
    if not port:
        return
    if multiprocess_dir() is None:
        logger.warning(
            "METRICS_WORKER_PORT is set without PROMETHEUS_MULTIPROC_DIR: a prefork pool's "
            "children record tasks the port will not show (use --pool=solo or threads, or "
            "set the directory)."
        )
    start_http_server(port, addr=settings.METRICS_WORKER_ADDR, registry=scrape_registry())
    logger.info("Celery metrics on %s:%d", settings.METRICS_WORKER_ADDR, port)


def _on_worker_process_shutdown(pid: int | None = None, **_: Any) -> None:
    if multiprocess_dir() is not None:
        mark_process_dead(pid or os.getpid())


def connect_celery_signals() -> None:
    """Record task outcomes and durations, and serve a worker's metrics (idempotent)."""
    from celery import signals

    for signal, receiver in (
        (signals.task_prerun, _on_task_prerun),
        (signals.task_postrun, _on_task_postrun),
        (signals.task_success, _on_task_success),
        (signals.task_failure, _on_task_failure),
        (signals.task_retry, _on_task_retry),
        (signals.worker_init, _on_worker_init),
        (signals.worker_process_shutdown, _on_worker_process_shutdown),
    ):
        signal.connect(receiver, weak=False, dispatch_uid=f"metrics-{receiver.__name__}")


# ----- scraping -----


class CeleryQueueDepthCollector:
    """``llmplatform_celery_queue_length``: LLEN of each queue in Redis, read at scrape time."""

    def __init__(self) -> None:
        self._client: Any = None
        self._url: str | None = None

    def _redis(self, url: str) -> Any:
        if self._client is None or self._url != url:
            import redis

            # A scrape must answer even when Redis does not: short explicit timeouts.
            self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            self._url = url
        return self._client

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.conf import settings

        family = GaugeMetricFamily(
            f"{PREFIX}_celery_queue_length",
            "Tasks waiting in each Celery queue (Redis LLEN at scrape time)",
            labels=["queue"],
        )
        if settings.REDIS_URL:
            import redis

            prefix = settings.CELERY_KEY_PREFIX
            try:
                client = self._redis(settings.REDIS_URL)
                for queue in CELERY_QUEUES:
                    family.add_metric([queue], client.llen(f"{prefix}{queue}"))
            except redis.RedisError as exc:
                logger.warning("metrics: Celery queue depth unavailable: %s", exc)
        yield family


class _Scrape:
    """Several collectors read as one registry (``generate_latest`` calls ``collect``)."""

    def __init__(self, *sources: Any) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Any]:
        for source in self.sources:
            yield from source.collect()


queue_depth = CeleryQueueDepthCollector()


def scrape_registry() -> Any:
    """What a scrape shows: this process (or every process, in multiprocess mode) and
    the queue depths."""
    directory = multiprocess_dir()
    if directory is None:
        return _Scrape(REGISTRY, queue_depth)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return _Scrape(registry, queue_depth)
