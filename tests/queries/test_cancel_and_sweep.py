"""A stop ends the whole run at any stage, and no query stays running when its worker died.

The run goes through the in-process dispatcher against fake vendors that accept the
request and then send nothing. Were the cancel not to reach the stalled call, the call
would time out and the query would end ``failed``, not ``cancelled``.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from llmplatform.core.event_log import event_log
from queries.models import Query
from queries.question import QuestionParams
from queries.run import queries_sweep
from queries.start import query_start
from queries.streams import query_cancel, query_wait
from tests.queries.test_query_pipeline import PNG

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]


def start(owner, text, **extra) -> Query:
    params = QuestionParams(user_id="u1", session_id="s1", query=text, **extra)
    return query_start(owner=owner, params=params)


def wait_for_event(query_id: str, predicate, timeout_s: float = 20.0) -> list[dict]:
    log, deadline, events = event_log(), time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        events = [event for _, event in log.read(query_id, after=None, block_ms=200)]
        if any(predicate(event) for event in events):
            return events
    raise AssertionError(f"no such event in {events}")


def node(name):
    return lambda event: event.get("type") == "node" and event.get("node") == name


def cancel_at(owner, query: Query, stage) -> Query:
    query_id = str(query.pk)
    wait_for_event(query_id, stage)
    time.sleep(0.3)  # the stage's vendor call is under way and stalled
    _, requested = query_cancel(query=query)
    assert requested
    finished = query_wait(query=query)
    events = [event for _, event in event_log().read(query_id, after=None)]
    assert events[-1] == {"type": "done", "message": "Query cancelled"}
    finished.refresh_from_db()
    assert finished.status == Query.Status.CANCELLED
    return finished


def test_a_stalled_first_token_is_cancelled(owner, fakes):
    fakes["openai"].fail_next("hang")
    query = start(owner[0], "Tell me about otters", model_provider="openai", use_memory=False)
    cancelled = cancel_at(owner, query, node("WriterAgent"))
    assert cancelled.response == ""
    assert cancelled.agents_used == ["CoordinatorAgent"]


def test_a_stream_stopped_midway_keeps_the_partial_answer_and_estimates_usage(owner, fakes):
    fakes["openai"].chunk_count = 10
    fakes["openai"].chunk_interval = 0.5  # a slow stream: the stop lands mid-answer
    query = start(owner[0], "Tell me about otters", model_provider="openai", use_memory=False)
    query_id = str(query.pk)
    cancelled = cancel_at(owner, query, lambda event: event.get("type") == "chunk")
    events = [event for _, event in event_log().read(query_id, after=None)]
    streamed = "".join(e["content"] for e in events if e["type"] == "chunk")
    assert cancelled.response == streamed != ""
    assert streamed != fakes["openai"].replies[-1].text  # it was cut short
    assert cancelled.usage["estimated"] is True
    assert cancelled.usage["cost_usd"] is None
    assert cancelled.usage["output_tokens"] >= 1


def test_a_stalled_classifier_is_cancelled(owner, fakes):
    fakes["openai"].fail_next("hang")
    # "recommend" without a product: the rules are unsure and the model classifies.
    query = start(owner[0], "Recommend something", model_provider="openai", use_memory=False)
    cancelled = cancel_at(owner, query, node("CoordinatorAgent"))
    assert cancelled.agents_used == []


def test_stalled_embeddings_are_cancelled(owner, fakes, settings):
    settings.EMBEDDING_PROVIDER = "openai"
    fakes["openai"].fail_next("hang")
    query = start(owner[0], "Hello there", model_provider="openai")
    cancelled = cancel_at(owner, query, node("MemoryAgent"))
    assert cancelled.agents_used == ["CoordinatorAgent"]


def test_stalled_vision_is_cancelled(owner, fakes):
    fakes["openai"].fail_next("hang")
    image = "data:image/png;base64," + PNG
    query = start(
        owner[0], "What is this?", model_provider="openai", use_memory=False, attachments=[image]
    )
    cancelled = cancel_at(owner, query, node("VisionAgent"))
    assert "VisionAgent" not in cancelled.agents_used


def test_stalled_product_search_is_cancelled(owner, fakes):
    fakes["serpapi"].fail_next("hang")
    query = start(owner[0], "Buy headphones under $200", model_provider="openai", use_memory=False)
    cancelled = cancel_at(owner, query, node("ProductAgent"))
    assert "ProductAgent" not in cancelled.agents_used


def test_a_cancel_before_the_run_starts_ends_it_at_once(owner, fakes):
    fakes["openai"].fail_next("hang")
    query = start(owner[0], "Tell me about otters", model_provider="openai", use_memory=False)
    query_cancel(query=query)
    finished = query_wait(query=query)
    finished.refresh_from_db()
    assert finished.status == Query.Status.CANCELLED


def _running(owner, *, heartbeat_age_s: float) -> Query:
    return Query.objects.create(
        owner=owner,
        user_id="u1",
        session_id="s1",
        query="q",
        model_provider="openai",
        model_name="m",
        status=Query.Status.RUNNING,
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age_s),
    )


def test_the_sweeper_fails_runs_whose_heartbeat_stopped_and_ends_their_streams(owner, settings):
    settings.QUERY_TIMEOUT_S = 20  # heartbeat 1 s, dead after 4 s
    dead = _running(owner[0], heartbeat_age_s=60)
    alive = _running(owner[0], heartbeat_age_s=0.5)
    assert queries_sweep() == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == Query.Status.FAILED
    assert dead.error["code"] == "worker_lost"
    assert alive.status == Query.Status.RUNNING
    events = [event for _, event in event_log().read(str(dead.pk), after=None)]
    assert [e["type"] for e in events] == ["error", "done"]
    assert events[0]["error"]["code"] == "worker_lost"
    assert queries_sweep() == 0  # a failed run is left alone


def test_the_sweeper_fails_runs_no_worker_ever_took(owner, settings):
    settings.QUERY_TIMEOUT_S = 20
    budget_s = 20 * 10  # far past the redelivery window
    stuck = Query.objects.create(
        owner=owner[0],
        user_id="u1",
        session_id="s1",
        query="q",
        model_provider="openai",
        model_name="m",
        timestamp=timezone.now() - timedelta(seconds=budget_s),
    )
    fresh = Query.objects.create(
        owner=owner[0], user_id="u1", session_id="s1", query="q", model_provider="o", model_name="m"
    )
    assert queries_sweep() == 1
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert (stuck.status, fresh.status) == (Query.Status.FAILED, Query.Status.PENDING)
