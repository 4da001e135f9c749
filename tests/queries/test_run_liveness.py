"""A live run is never swept as dead, and a dead one handed out again is failed, not rerun.

The embedded default (pipeline in-process, events in memory) against the fake vendors.
QUERY_TIMEOUT_S=20 makes the heartbeat 1 s and a run dead after 4 s without one; a 7 s
answer outlives that threshold, with slack for a loaded machine. The sweeper is called directly, as
its periodic thread (or Celery beat) would call it.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from llmplatform.core.config import run_config
from llmplatform.core.event_log import event_log
from queries.models import Query
from queries.question import QuestionParams
from queries.run import queries_sweep
from queries.start import query_start
from queries.tasks import run_query

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]


def _running(owner, *, heartbeat_age_s: float) -> Query:
    return Query.objects.create(
        owner=owner,
        user_id="u1",
        session_id="s1",
        query="Tell me about otters",
        model_provider="openai",
        model_name="gpt-4o-mini",
        status=Query.Status.RUNNING,
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age_s),
        request={"use_memory": False, "temperature": 0.7, "max_tokens": 100},
    )


def events_of(query: Query) -> list[dict]:
    return [event for _, event in event_log().read(str(query.pk), after=None)]


def test_a_redelivered_run_whose_worker_died_is_failed_worker_lost(owner, fakes, settings):
    settings.QUERY_TIMEOUT_S = 20  # heartbeat 1 s, dead after 4 s
    dead = _running(owner[0], heartbeat_age_s=60)
    run_query.apply(args=[str(dead.pk)])  # the broker hands the run to a worker again
    dead.refresh_from_db()
    assert dead.status == Query.Status.FAILED
    assert dead.error["code"] == "worker_lost"
    events = events_of(dead)
    assert [e["type"] for e in events] == ["error", "done"]
    assert events[0]["error"]["code"] == "worker_lost"
    # Its answer was already streamed once: it is not asked again.
    assert fakes["openai"].chat_requests == []


def test_a_redelivered_run_with_a_live_heartbeat_is_left_to_its_worker(owner, fakes, settings):
    settings.QUERY_TIMEOUT_S = 20
    alive = _running(owner[0], heartbeat_age_s=0.5)
    run_query.apply(args=[str(alive.pk)])
    alive.refresh_from_db()
    assert alive.status == Query.Status.RUNNING
    assert events_of(alive) == []
    assert fakes["openai"].chat_requests == []


def test_a_run_longer_than_the_stale_threshold_is_not_swept_while_it_is_alive(
    owner, fakes, settings
):
    settings.QUERY_TIMEOUT_S = 20
    budget = run_config().budget
    assert (budget.heartbeat_s, budget.stale_after_s) == (1.0, 4.0)
    fakes["openai"].chunk_count = 28
    fakes["openai"].chunk_interval = 0.25  # about 7 s of answer
    query = query_start(
        owner=owner[0],
        params=QuestionParams(
            user_id="u1",
            session_id="s1",
            query="Tell me a long story about otters",
            model_provider="openai",
            use_memory=False,
        ),
    )
    started = time.monotonic()
    log, after, seen, swept, last_sweep_s = event_log(), None, [], 0, 0.0
    deadline = started + 60
    while not seen or seen[-1]["type"] != "done":
        assert time.monotonic() < deadline, f"the run did not end: {seen}"
        for entry_id, event in log.read(str(query.pk), after=after, block_ms=250):
            after = entry_id
            seen.append(event)
        swept += queries_sweep()  # as the sweeper does, every heartbeat
        last_sweep_s = time.monotonic() - started
    types = [event["type"] for event in seen]
    assert swept == 0, f"a live run was swept as dead: {seen[-2:]}"
    assert "error" not in types
    assert types[-2:] == ["final", "done"]
    # The sweeper looked well after a run without heartbeats would have counted as dead.
    assert last_sweep_s > budget.stale_after_s + 2 * budget.heartbeat_s
    query.refresh_from_db()
    assert query.status == Query.Status.COMPLETED
    assert query.response == fakes["openai"].replies[-1].text
