"""The event log of each query: replay from an id, expiry of finished logs, cancel flags."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest
import redis

from llmplatform.core.event_log import EVENT_LOG_TTL_S, MemoryEventLog, RedisEventLog

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


def test_memory_log_replays_after_an_id_and_never_twice():
    log = MemoryEventLog()
    ids = [log.append("q", {"type": "chunk", "content": str(n)}) for n in range(3)]
    assert [e["content"] for _, e in log.read("q", after=None)] == ["0", "1", "2"]
    assert [e["content"] for _, e in log.read("q", after=ids[0])] == ["1", "2"]
    assert log.read("q", after=ids[-1]) == []


def test_the_memory_sweep_drops_expired_logs_and_keeps_live_ones():
    log = MemoryEventLog()
    log.append("old", {"type": "done"})
    log.request_cancel("old")
    log.append("live", {"type": "chunk", "content": "x"})
    log._expires["old"] = time.monotonic() - 1  # its hour is up
    log._next_expiry_sweep = 0.0  # sweep on the next append
    log.append("new", {"type": "node", "node": "WriterAgent"})
    assert not log.exists("old")
    assert not asyncio.run(log.acancel_requested("old"))
    assert log.exists("live")
    assert [e["content"] for _, e in log.read("live", after=None)] == ["x"]


def test_memory_log_keeps_a_log_for_its_time_to_live():
    log = MemoryEventLog()
    log.append("q", {"type": "done"})
    remaining = log._expires["q"] - time.monotonic()
    assert EVENT_LOG_TTL_S - 5 < remaining <= EVENT_LOG_TTL_S


@pytest.fixture
def redis_log():
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"These tests need Redis at {REDIS_URL} (start redis-server).")
    query_id = f"test-{uuid.uuid4().hex}"
    yield RedisEventLog(REDIS_URL), query_id, client
    client.delete(f"llmplatform:query:{query_id}:events", f"llmplatform:query:{query_id}:cancel")


def test_redis_streams_expire_whichever_way_they_are_written(redis_log):
    log, query_id, client = redis_log
    key = f"llmplatform:query:{query_id}:events"
    log.append(query_id, {"type": "node", "node": "CoordinatorAgent"})
    assert 0 < client.ttl(key) <= EVENT_LOG_TTL_S
    client.persist(key)
    asyncio.run(log.aappend(query_id, {"type": "done"}))
    assert 0 < client.ttl(key) <= EVENT_LOG_TTL_S


def test_redis_log_replays_after_an_id_and_cancel_flags_expire(redis_log):
    log, query_id, client = redis_log
    first = log.append(query_id, {"type": "chunk", "content": "a"})
    log.append(query_id, {"type": "chunk", "content": "b"})
    assert [e["content"] for _, e in log.read(query_id, after=first)] == ["b"]
    assert not asyncio.run(log.acancel_requested(query_id))
    log.request_cancel(query_id)
    assert asyncio.run(log.acancel_requested(query_id))
    assert 0 < client.ttl(f"llmplatform:query:{query_id}:cancel") <= EVENT_LOG_TTL_S


def test_a_redis_read_may_block_longer_than_redis_pys_default_socket_timeout(redis_log):
    # redis-py times a socket out after 5 s by default; a quiet stream (a slow first
    # token, the 15 s SSE heartbeat) must come back empty, not as an error.
    log, query_id, _ = redis_log
    assert log.read(query_id, after=None, block_ms=6000) == []
    assert asyncio.run(log.aread(query_id, after=None, block_ms=6000)) == []
