"""A question is one OpenTelemetry trace of its steps, stored once it ends.

Runs go through the in-process dispatcher (the embedded default) against the fake vendor
servers, which fail on purpose where a test needs a retry, a fallback or a stall. The
spans are read back from the built-in store, as the trace endpoint and the admin do.
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import ClassVar

import pytest
from django.utils import timezone
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agents.providers.registry import reset_registry
from llmplatform.core import trace_store
from llmplatform.core.models import TraceSpan
from llmplatform.core.trace_store import traces_drain
from queries.models import Query
from queries.run import queries_sweep
from tests.core.trace_reading import SpanTree
from tests.queries.test_cancel_and_sweep import cancel_at, node, start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"


def ask(api, text="Tell me about otters", **extra):
    body = {"user_id": "u1", "session_id": "s1", "query": text, **extra}
    return api.post("/api/v1/query/", body, format="json")


def trace_of(query_id: str, *, expect_run: bool = True) -> SpanTree:
    """The stored trace, once its run's spans are stored: the run ends (and hands its
    spans to the writer) just after its ``done`` event, which is what a client waits for."""
    query = Query.objects.get(pk=query_id)
    deadline = time.monotonic() + 10
    while True:
        traces_drain()
        spans = list(TraceSpan.objects.filter(trace_id=query.trace_id))
        if not expect_run or any(span.name == "query.run" for span in spans):
            return SpanTree(spans)
        assert time.monotonic() < deadline, f"no query.run span in {[s.name for s in spans]}"
        time.sleep(0.05)


def test_a_question_is_one_trace_of_every_step(api):
    body = ask(api, model_provider="openai").json()
    tree = trace_of(body["query_id"])
    # Start (in the request) and run (on the dispatcher's loop): one trace, one tree.
    assert tree.parent("query.run") == tree.one("query.start")
    assert tree.parent("query.admission") == tree.one("query.start")
    assert tree.parent("query.session") == tree.one("query.start")
    # The conversation's answer settings are read beside the session, not after it.
    assert tree.parent("session.answer_settings") == tree.one("query.start")
    run = tree.one("query.run")
    assert run.attributes["llmplatform.query_id"] == body["query_id"]
    assert run.attributes["llmplatform.status"] == "completed"
    for agent in ("CoordinatorAgent", "MemoryAgent", "WriterAgent"):
        assert tree.parent(f"agent {agent}") == run
    memory = tree.one("agent MemoryAgent")
    for step in ("embeddings", "memory.vector_search"):
        assert tree.parent(step) == memory
    # The start read the recent turns (to reserve for them), the summary and what changed
    # in the user's vectors, and handed them to the run: it makes none of those reads.
    for step in ("memory.recent_turns", "memory.summary", "memory.refresh"):
        assert tree.parent(step) == tree.one("query.start")
    assert tree.parent("query.store_outcome") == run
    # The vendor call, in the GenAI conventions, with what the user was billed.
    [attempt] = tree.named("chat gpt-4o-mini")
    assert tree.parent_of(attempt) == tree.one("agent WriterAgent")
    attributes = attempt.attributes
    assert attributes["gen_ai.system"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.usage.input_tokens"] == body["usage"]["input_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == body["usage"]["output_tokens"]
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["llmplatform.cost_usd"] == pytest.approx(body["usage"]["cost_usd"])
    assert 0 < attributes["llmplatform.ttft_ms"] <= attempt.duration_ms
    assert all(span.status != "error" for span in tree.spans)


def test_retries_and_a_fallback_are_each_their_own_span(api, fakes, vendor_settings):
    vendor_settings.PROVIDER_FALLBACKS = "openai->anthropic"
    reset_registry()
    fakes["openai"].fail_next("server_error", times=3)  # the first try and both retries
    body = ask(api, model_provider="openai", use_memory=False).json()
    assert body["status"] == "completed"
    tree = trace_of(body["query_id"])
    writer = tree.one("agent WriterAgent")
    primary, fallback = tree.children_of(writer)
    assert primary.name == "provider openai" and primary.status == "error"
    assert fallback.name == "provider anthropic" and fallback.status != "error"
    failed = tree.children_of(primary)
    assert [span.attributes["llmplatform.attempt"] for span in failed] == [1, 2, 3]
    assert {span.attributes["error.type"] for span in failed} == {"provider_error"}
    assert all(span.status == "error" for span in failed)
    [answered] = tree.children_of(fallback)
    assert answered.attributes["gen_ai.system"] == "anthropic"
    assert answered.attributes["gen_ai.usage.output_tokens"] == body["usage"]["output_tokens"]


def test_a_cancelled_run_ends_every_span_marked_cancelled(owner, fakes):
    fakes["openai"].fail_next("hang")
    query = start(owner[0], "Tell me about otters", model_provider="openai", use_memory=False)
    cancel_at(owner, query, node("WriterAgent"))
    tree = trace_of(str(query.pk))
    assert tree.one("query.run").attributes["llmplatform.cancelled"] is True
    assert tree.one("agent WriterAgent").attributes["llmplatform.cancelled"] is True
    [attempt] = tree.named("chat gpt-4o-mini")
    assert attempt.attributes["llmplatform.cancelled"] is True
    assert "gen_ai.usage.output_tokens" not in attempt.attributes


def test_an_incoming_traceparent_is_the_parent_of_the_question(api):
    traceparent = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"
    response = api.post(
        "/api/v1/query/",
        {"user_id": "u1", "session_id": "s1", "query": "Hello", "use_memory": False},
        format="json",
        HTTP_TRACEPARENT=traceparent,
    )
    body = response.json()
    assert body["trace_id"] == CLIENT_TRACE_ID
    tree = trace_of(body["query_id"])
    assert tree.one("query.start").parent_id == CLIENT_SPAN_ID
    assert tree.one("query.run").trace_id == CLIENT_TRACE_ID


def test_without_trace_content_no_prompt_or_answer_text_is_stored(api, settings):
    settings.TRACE_CONTENT = False
    body = ask(api, "Which otters hold hands while sleeping", use_memory=False).json()
    tree = trace_of(body["query_id"])
    stored = repr([(span.name, span.attributes) for span in tree.spans])
    assert "otters" not in stored
    assert body["response"][:20] not in stored


def test_with_trace_content_prompts_are_kept_and_secrets_redacted(api, settings):
    settings.TRACE_CONTENT = True
    canary = settings.OPENAI_API_KEY
    body = ask(api, f"Which otters hold hands? My key is {canary}", use_memory=False).json()
    tree = trace_of(body["query_id"])
    [attempt] = tree.named("chat gpt-4o-mini")
    assert "Which otters hold hands?" in attempt.attributes["gen_ai.input.messages"]
    assert attempt.attributes["gen_ai.output.messages"].startswith("Echo: Which otters")
    stored = repr([span.attributes for span in tree.spans])
    assert canary not in stored and "[REDACTED]" in stored


def test_sampled_out_traces_are_not_stored_but_failures_always_are(api, settings, fakes):
    settings.TRACE_SAMPLE_RATE = 0.0
    kept_out = ask(api, use_memory=False).json()
    time.sleep(0.5)  # the run's end, were it kept
    assert trace_of(kept_out["query_id"], expect_run=False).spans == []
    fakes["openai"].fail_next("auth", times=5)
    failed = ask(api, use_memory=False)
    assert failed.status_code == 502, failed.content
    tree = trace_of(failed.json()["error"]["details"]["query_id"])
    assert tree.one("query.run").status == "error"
    assert tree.one("query.run").attributes["error.type"] == "provider_auth_failed"


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP collector: decodes each export as the protobuf it is."""

    received: ClassVar[list[ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == "/v1/traces":
            self.received.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector(settings) -> Iterator[list[ExportTraceServiceRequest]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Collector.received = []
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = f"http://127.0.0.1:{server.server_port}"
    yield _Collector.received
    server.shutdown()


def test_spans_are_exported_over_otlp_http_when_an_endpoint_is_set(api, collector):
    body = ask(api, use_memory=False).json()
    stored = trace_of(body["query_id"])
    traces_drain()  # each batch is stored, then exported: both are done now
    exported = {
        span.name: span
        for request in collector
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
        if span.trace_id.hex() == body["trace_id"]
    }
    # (The summary that follows the answer may be stored and exported meanwhile.)
    assert {span.name for span in stored.spans} <= set(exported)
    assert {"query.start", "query.run", "agent WriterAgent", "chat gpt-4o-mini"} <= set(exported)
    run = exported["query.run"]
    assert run.parent_span_id == exported["query.start"].span_id
    attributes = {a.key: a.value for a in run.attributes}
    assert attributes["llmplatform.query_id"].string_value == body["query_id"]
    service = {
        a.key: a.value.string_value for a in collector[0].resource_spans[0].resource.attributes
    }
    assert service["service.name"] == "llmplatform"


def test_a_run_whose_worker_died_ends_its_trace_with_an_error_span(owner, settings):
    settings.QUERY_TIMEOUT_S = 20  # heartbeat 1 s, dead after 4 s
    trace_id = "5" * 32
    dead = Query.objects.create(
        owner=owner[0],
        user_id="u1",
        session_id="s1",
        query="q",
        model_provider="openai",
        model_name="m",
        status=Query.Status.RUNNING,
        heartbeat_at=timezone.now() - timedelta(seconds=60),
        trace_id=trace_id,
    )
    assert queries_sweep() == 1
    traces_drain()
    [lost] = TraceSpan.objects.filter(trace_id=trace_id)
    assert lost.name == "query.worker_lost" and lost.status == "error"
    assert lost.attributes["error.type"] == "worker_lost"
    assert lost.query_id == str(dead.pk)


def test_a_questions_spans_are_stored_together_after_its_run_not_during_it(api, monkeypatch):
    # query.start ends while the run goes on towards the first token: its batch is held
    # back, so storing it never competes with the run's own reads, and the trace is
    # written with its run's. (Held longer here than the 1 s default, so a
    # slow machine's run still ends inside the window.)
    monkeypatch.setattr(trace_store, "WRITE_AFTER_S", 30.0)
    body = ask(api, model_provider="openai", use_memory=False).json()
    trace_id = Query.objects.get(pk=body["query_id"]).trace_id
    assert not TraceSpan.objects.filter(trace_id=trace_id).exists()
    deadline = time.monotonic() + 10
    while not TraceSpan.objects.filter(trace_id=trace_id, name="query.run").exists():
        assert time.monotonic() < deadline, "the held trace was never stored"
        traces_drain()  # what shutdown and tests call: everything held is stored now
    names = set(TraceSpan.objects.filter(trace_id=trace_id).values_list("name", flat=True))
    assert {"query.start", "query.run"} <= names
