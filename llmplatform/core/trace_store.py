"""Where finished spans go: buffered per trace, then stored once by a writer thread.

A span that ends is kept in memory with its trace's other spans. When a local root ends
(a span without a parent in this process: ``query.start``, ``query.run``, a background
task), that trace's buffered spans are handed to one writer thread. It holds a trace's
batches for ``WRITE_AFTER_S`` (so the question's ``query.start`` and an in-process
``query.run`` are stored together, after the run's first steps), then decides whether to
keep them and, if so, stores them in MongoDB (``TraceSpan``, capped per trace, removed by
a TTL index after TRACE_RETENTION_DAYS) and sends them to the OTLP collector when
OTEL_EXPORTER_OTLP_ENDPOINT is set. The writing never happens on a request's or an
answer's path.

Kept: a trace with an error, or whose local root took TRACE_SLOW_MS or more, always;
otherwise TRACE_SAMPLE_RATE of traces, decided from the trace id, so that every process
decides the same for one trace.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from time import monotonic
from typing import Any

from django.conf import settings
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode

logger = logging.getLogger(__name__)

# Traces whose spans wait for their local root; the oldest is dropped beyond this (a
# root that never ends must not grow the buffer for ever).
MAX_BUFFERED_TRACES = 1000
_TRACE_ID_BOUND = 1 << 64


def trace_kept(spans: list[ReadableSpan], *, sample_rate: float, slow_ms: float) -> bool:
    """Whether a batch of one trace's spans is kept (see the module's docstring)."""
    if any(s.status.status_code == StatusCode.ERROR for s in spans):
        return True
    roots = [s for s in spans if s.parent is None or s.parent.is_remote]
    if any(_duration_ms(s) >= slow_ms for s in roots):
        return True
    if sample_rate >= 1.0:
        return True
    trace_id = spans[0].context.trace_id
    return (trace_id & (_TRACE_ID_BOUND - 1)) < sample_rate * _TRACE_ID_BOUND


def _duration_ms(span: ReadableSpan) -> float:
    if span.start_time is None or span.end_time is None:
        return 0.0
    return (span.end_time - span.start_time) / 1e6


def _time(nanoseconds: int | None) -> datetime | None:
    if nanoseconds is None:
        return None
    return datetime.fromtimestamp(nanoseconds / 1e9, tz=UTC)


def span_row(span: ReadableSpan) -> dict[str, Any]:
    """The stored form of ``span`` (the fields of ``TraceSpan``)."""
    attributes = {k: list(v) if isinstance(v, tuple) else v for k, v in span.attributes.items()}
    parent = span.parent
    return {
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "parent_id": format(parent.span_id, "016x") if parent is not None else "",
        "name": span.name,
        "query_id": str(attributes.get("llmplatform.query_id", "")),
        "started_at": _time(span.start_time),
        "ended_at": _time(span.end_time),
        "duration_ms": round(_duration_ms(span), 3),
        "attributes": attributes,
        "status": span.status.status_code.name.lower(),
        "status_message": span.status.description or "",
    }


# A trace's batches are stored together this long after the first one arrives: the
# question's ``query.start`` batch ends while its run goes on towards the first token, and
# storing it then would compete with the run's reads on the database. One write per
# trace, too, instead of one per batch.
WRITE_AFTER_S = 1.0
# Handed to the writer by ``drain``: store everything held back, now.
_FLUSH: list[ReadableSpan] = []


class _Writer:
    """One daemon thread per process that stores and exports kept batches."""

    def __init__(self) -> None:
        self.batches: queue.Queue[list[ReadableSpan]] = queue.Queue()
        self._pid = 0
        self._lock = threading.Lock()
        self._ttl_ensured = False
        self._otlp: Any = None
        self._draining = 0  # drains waiting: nothing is held back meanwhile

    def submit(self, batch: list[ReadableSpan]) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use, or a worker forked from its parent
                self._pid = os.getpid()
                self.batches = queue.Queue()
                threading.Thread(target=self._run, name="trace-writer", daemon=True).start()
        self.batches.put(batch)

    def drain(self) -> None:
        """Block until every batch handed over so far is stored (tests, shutdown)."""
        if self._pid == os.getpid():
            with self._lock:
                self._draining += 1
            try:
                self.batches.put(_FLUSH)
                self.batches.join()
            finally:
                with self._lock:
                    self._draining -= 1

    def _run(self) -> None:
        batches = self.batches
        held: dict[int, tuple[float, list[ReadableSpan], int]] = {}  # trace: due, spans, batches
        while True:
            due = min((entry[0] for entry in held.values()), default=None)
            try:
                batch = batches.get(timeout=None if due is None else max(due - monotonic(), 0))
            except queue.Empty:
                batch = None
            if batch:
                trace_id = batch[0].context.trace_id
                first_due, spans, count = held.get(trace_id, (monotonic() + WRITE_AFTER_S, [], 0))
                held[trace_id] = (first_due, spans + batch, count + 1)
            flush_all, now = batch is _FLUSH or self._draining > 0, monotonic()
            for trace_id in [t for t, entry in held.items() if flush_all or entry[0] <= now]:
                _, spans, count = held.pop(trace_id)
                try:
                    self._write(spans)
                except Exception:  # a trace is an aid: losing one must not stop the next
                    logger.exception("a trace could not be stored")
                for _ in range(count):
                    batches.task_done()
            if batch is _FLUSH:
                batches.task_done()

    def _write(self, batch: list[ReadableSpan]) -> None:
        if not trace_kept(
            batch, sample_rate=settings.TRACE_SAMPLE_RATE, slow_ms=settings.TRACE_SLOW_MS
        ):
            return
        self._store(batch)
        self._export(batch)

    def _store(self, batch: list[ReadableSpan]) -> None:
        from llmplatform.core.models import TraceSpan

        self._ensure_ttl(TraceSpan)
        trace_id = format(batch[0].context.trace_id, "032x")
        room = settings.TRACE_MAX_SPANS - TraceSpan.objects.filter(trace_id=trace_id).count()
        if room <= 0:
            return
        expires_at = datetime.now(tz=UTC) + timedelta(days=settings.TRACE_RETENTION_DAYS)
        rows = [TraceSpan(**span_row(s), expires_at=expires_at) for s in batch[:room]]
        TraceSpan.objects.bulk_create(rows)

    def _ensure_ttl(self, model: Any) -> None:
        if self._ttl_ensured:
            return
        from django.db import connection

        connection.database[model._meta.db_table].create_index(
            [("expires_at", 1)], expireAfterSeconds=0, name="trace_spans_expires_ttl"
        )
        self._ttl_ensured = True

    def _export(self, batch: list[ReadableSpan]) -> None:
        endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT
        if not endpoint:
            return
        if self._otlp is None or self._otlp_endpoint != endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # The other OTEL_EXPORTER_OTLP_* variables (headers, timeout) are read by the
            # exporter itself, as everywhere else.
            self._otlp = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
            self._otlp_endpoint = endpoint
        self._otlp.export(batch)


_writer = _Writer()


def traces_drain() -> None:
    """Wait until every trace that ended in this process is stored or dropped."""
    _writer.drain()


class BufferingSpanProcessor(SpanProcessor):
    """Buffers ended spans per trace; hands a trace's batch over when a local root ends."""

    def __init__(self) -> None:
        self._buffer: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        trace_id = span.context.trace_id
        local_root = span.parent is None or span.parent.is_remote
        with self._lock:
            batch = self._buffer.setdefault(trace_id, [])
            batch.append(span)
            if not local_root:
                while len(self._buffer) > MAX_BUFFERED_TRACES:
                    self._buffer.popitem(last=False)
                return
            del self._buffer[trace_id]
        _writer.submit(batch)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        _writer.drain()
        return True
