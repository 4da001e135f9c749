"""Traces of every step of a question, on OpenTelemetry: the one facade the apps use.

A question is one trace: ``query.start`` (admission, session) in the process that took
it, ``query.run`` (the agents, each provider attempt, storing the outcome) wherever the
dispatcher ran it, and the background work it caused. The dispatcher carries the W3C
context with the work (``context_carrier`` / ``continued``), and an incoming
``traceparent`` header becomes the parent of a request's spans (``TraceContextMiddleware``).

Attributes follow the GenAI semantic conventions (``gen_ai.*``). Prompts, completions and
passages are recorded only with TRACE_CONTENT, truncated and redacted (``content``).

Spans are buffered in memory and stored once their local root ends, by a writer thread
(``llmplatform.core.trace_store``): nothing is written per span while a run works.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from django.conf import settings
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llmplatform.core.logging import mask_secrets
from llmplatform.core.trace_store import BufferingSpanProcessor

# Marks a span its task was cancelled in (a stop or the deadline): not an error.
CANCELLED = "llmplatform.cancelled"
QUERY_ID = "llmplatform.query_id"
# Characters of one piece of content (a prompt, a completion, a passage) kept in a span.
CONTENT_MAX_CHARS = 4000

_PROPAGATOR = TraceContextTextMapPropagator()
_lock = threading.Lock()
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None


def _tracer_provider() -> TracerProvider:
    """This process's provider, made on first use (after a worker's fork).

    Every span is recorded (ALWAYS_ON): sampling is decided when a trace is stored, so
    errors and slow runs are kept whatever TRACE_SAMPLE_RATE says.
    """
    global _provider
    if _provider is None:
        with _lock:
            if _provider is None:
                provider = TracerProvider(
                    sampler=ALWAYS_ON,
                    resource=Resource.create({"service.name": settings.OTEL_SERVICE_NAME}),
                )
                provider.add_span_processor(BufferingSpanProcessor())
                _provider = provider
    return _provider


def tracer() -> trace.Tracer:
    global _tracer
    if _tracer is None:  # made once: getting a tracer is not free, and spans are many
        _tracer = _tracer_provider().get_tracer("llmplatform")
    return _tracer


def _settable(value: Any) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return str(value)


def set_attributes(span: Span, attributes: Mapping[str, Any]) -> None:
    """Set the attributes that have a value (None is left out, not stored as "None")."""
    for key, value in attributes.items():
        if value is not None:
            span.set_attribute(key, _settable(value))


def current_span() -> Span:
    return trace.get_current_span()


def annotate(**attributes: Any) -> None:
    """Set attributes on the current span (dots are written as ``__``)."""
    set_attributes(current_span(), {k.replace("__", "."): v for k, v in attributes.items()})


def content_enabled() -> bool:
    """Whether spans record content (TRACE_CONTENT): callers skip assembling it if not."""
    return bool(settings.TRACE_CONTENT)


def content(text: str | None) -> str | None:
    """``text`` as a span may record it: None unless TRACE_CONTENT, else truncated to
    CONTENT_MAX_CHARS and with every configured secret redacted."""
    if text is None or not settings.TRACE_CONTENT:
        return None
    clipped = text if len(text) <= CONTENT_MAX_CHARS else text[:CONTENT_MAX_CHARS] + "…"
    return mask_secrets(clipped)


def record_content(span: Span, key: str, text: str | None) -> None:
    """Record ``text`` under ``key`` if content tracing is on (see ``content``)."""
    kept = content(text)
    if kept is not None:
        span.set_attribute(key, kept)


def end_span(span: Span, error: BaseException | None = None) -> None:
    """End ``span``, marked by how its work ended: cancelled, failed (with the error's
    ``code`` as ``error.type``) or fine."""
    if isinstance(error, asyncio.CancelledError):
        span.set_attribute(CANCELLED, True)
    elif isinstance(error, GeneratorExit):  # its consumer stopped reading: not a failure
        span.set_attribute("llmplatform.consumer_left", True)
    elif error is not None:
        mark_error(span, error)
    span.end()


def mark_error(span: Span, error: BaseException) -> None:
    """Mark ``span`` failed by ``error`` (its ``code``, if it has one, is ``error.type``).

    A refusal of the caller's request (a 4xx ApplicationError) is named but is not the
    platform's error, as for HTTP server spans: a client's flood of 429s must not make
    every one of its traces kept."""
    span.set_attribute("error.type", getattr(error, "code", None) or type(error).__name__)
    if getattr(error, "status", 500) < 500:
        return
    span.set_status(Status(StatusCode.ERROR, str(getattr(error, "message", error))[:300]))


def start_span(name: str, attributes: Mapping[str, Any] | None = None) -> Span:
    """A span child of the current one, not made current: for work that yields (a
    stream), where an attached context would leak into the consumer between chunks."""
    span = tracer().start_span(name)
    set_attributes(span, attributes or {})
    return span


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A span around a block, current inside it, ended by how the block ended."""
    opened = tracer().start_span(name)
    set_attributes(opened, attributes or {})
    token = otel_context.attach(trace.set_span_in_context(opened))
    try:
        yield opened
    except BaseException as error:
        end_span(opened, error)
        raise
    else:
        end_span(opened)
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def within(opened: Span) -> Iterator[None]:
    """``opened`` current inside the block (which must not yield to a consumer)."""
    token = otel_context.attach(trace.set_span_in_context(opened))
    try:
        yield
    finally:
        otel_context.detach(token)


async def next_within[T](opened: Span, items: AsyncIterator[T]) -> T:
    """The next item of ``items``, produced with ``opened`` current (so the spans the
    producer starts are its children). Raises what ``anext`` raises."""
    with within(opened):
        return await anext(items)


@contextlib.contextmanager
def span_in_trace(
    trace_id: str, name: str, attributes: Mapping[str, Any] | None = None
) -> Iterator[Span]:
    """A span added to the stored trace ``trace_id`` from outside it (its parent there is
    unknown): how a run that died with its process still ends with a span saying so."""
    parent = trace.SpanContext(
        trace_id=int(trace_id, 16),
        span_id=random.getrandbits(64) or 1,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(parent)))
    try:
        with span(name, attributes) as opened:
            yield opened
    finally:
        otel_context.detach(token)


def trace_id_of(opened: Span) -> str:
    """The 32-hex-digit trace id of ``opened`` ("" for a span that records nothing)."""
    span_context = opened.get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""


def context_carrier() -> dict[str, str]:
    """The current context as W3C headers (``traceparent``), to send with work."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


@contextlib.contextmanager
def continued(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Inside the block, spans continue the trace ``carrier`` names (nothing without one)."""
    if not carrier or "traceparent" not in carrier:
        yield
        return
    token = otel_context.attach(_PROPAGATOR.extract(dict(carrier)))
    try:
        yield
    finally:
        otel_context.detach(token)


class TraceContextMiddleware:
    """A request's ``traceparent`` header (W3C) is the parent of the spans it starts, so
    a client's trace continues through the platform (REST, SSE and /v1 alike)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        traceparent = request.headers.get("traceparent")
        if not traceparent:
            return self.get_response(request)
        carrier = {"traceparent": traceparent}
        if request.headers.get("tracestate"):
            carrier["tracestate"] = request.headers["tracestate"]
        with continued(carrier):
            return self.get_response(request)
