"""The process's event log follows the REDIS_URL setting, also when it changes.

With REDIS_URL an event appended here is readable by every other process (a second
client of the same Redis stands in for one); without it the log is this process's memory
and nothing reaches Redis. Switching the setting (as tests and a reconfigured process
do) switches the log, both ways.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis

from llmplatform.core.event_log import MemoryEventLog, RedisEventLog, event_log

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def query_id():
    client = redis.Redis.from_url(REDIS_URL)
    name = f"test-backend-{uuid.uuid4().hex}"
    yield name
    client.delete(f"llmplatform:query:{name}:events", f"llmplatform:query:{name}:cancel")


def seen_by_another_process(query_id: str) -> list[dict]:
    return [event for _, event in RedisEventLog(REDIS_URL).read(query_id, after=None)]


def test_switching_redis_url_switches_the_event_log_both_ways(settings, query_id):
    settings.REDIS_URL = None
    local = event_log()
    assert isinstance(local, MemoryEventLog)
    local.append(query_id, {"type": "chunk", "content": "kept in this process"})
    assert seen_by_another_process(query_id) == []

    settings.REDIS_URL = REDIS_URL
    shared = event_log()
    assert isinstance(shared, RedisEventLog)
    shared.append(query_id, {"type": "chunk", "content": "shared"})
    assert seen_by_another_process(query_id) == [{"type": "chunk", "content": "shared"}]

    settings.REDIS_URL = None
    again = event_log()
    assert isinstance(again, MemoryEventLog)
    again.append(query_id, {"type": "done"})
    assert seen_by_another_process(query_id) == [{"type": "chunk", "content": "shared"}]


def test_the_same_setting_keeps_the_same_log(settings, query_id):
    settings.REDIS_URL = None
    log = event_log()
    log.append(query_id, {"type": "chunk", "content": "a"})
    # Events written earlier in this process are still there: not a new, empty log.
    assert [e["content"] for _, e in event_log().read(query_id, after=None)] == ["a"]
