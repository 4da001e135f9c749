"""The realtime event log of each query: what the pipeline emitted, replayable by id.

The pipeline appends every event (``node``, ``chunk``, ``final``, ``error``, ``done``);
the JSON endpoint, SSE and websocket consumers read from an offset. Events outlive the
connection: a client that reconnects with its last event id gets the rest, none twice.

- With REDIS_URL: one Redis Stream per query (ids like ``1732512345678-0``), kept
  EVENT_LOG_TTL_S after the query ends; any process (web, worker) can read and write.
- Without it (embedded default): an in-memory log in this process, ids ``1``, ``2``, ...

A cancel request travels the same way (a flag next to the stream), so a worker in another
process sees a stop that a web process received.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings

EVENT_LOG_TTL_S = 3600
# Redis clients answer within this; a blocking read waits at most BLOCK_LIMIT_S of it.
# (redis-py's default socket timeout, 5 s, would cut a 5 s or 15 s block short.)
REDIS_SOCKET_TIMEOUT_S = 30.0
BLOCK_LIMIT_S = REDIS_SOCKET_TIMEOUT_S - 5
TERMINAL_TYPES = frozenset({"done"})

Event = dict[str, Any]
Entry = tuple[str, Event]


def _stream_key(query_id: str) -> str:
    return f"llmplatform:query:{query_id}:events"


def _cancel_key(query_id: str) -> str:
    return f"llmplatform:query:{query_id}:cancel"


class RedisEventLog:
    # Redis Stream ids: milliseconds-sequence.
    event_id_pattern = re.compile(r"^\d{1,20}-\d{1,20}$")

    def __init__(self, url: str) -> None:
        import redis
        import redis.asyncio

        self._url = url
        self._sync = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=REDIS_SOCKET_TIMEOUT_S
        )
        self._async_module = redis.asyncio
        # One async client per event loop: a client is bound to the loop that made it.
        self._async_clients: dict[int, tuple[asyncio.AbstractEventLoop, Any]] = {}

    def _async(self) -> Any:
        loop = asyncio.get_running_loop()
        known = self._async_clients.get(id(loop))
        if known is not None and known[0] is loop:
            return known[1]
        # Celery runs each task in a fresh loop: forget clients of loops that are gone.
        for key, (old_loop, _) in list(self._async_clients.items()):
            if old_loop.is_closed():
                del self._async_clients[key]
        client = self._async_module.Redis.from_url(
            self._url, decode_responses=True, socket_timeout=REDIS_SOCKET_TIMEOUT_S
        )
        self._async_clients[id(loop)] = (loop, client)
        return client

    @staticmethod
    def _decode(entries: Iterable[tuple[str, dict[str, str]]]) -> list[Entry]:
        return [(entry_id, json.loads(fields["data"])) for entry_id, fields in entries]

    def append(self, query_id: str, event: Event) -> str:
        key = _stream_key(query_id)
        entry_id = self._sync.xadd(key, {"data": json.dumps(event)})
        self._sync.expire(key, EVENT_LOG_TTL_S)
        return entry_id

    async def aappend(self, query_id: str, event: Event) -> str:
        client = self._async()
        key = _stream_key(query_id)
        async with client.pipeline(transaction=False) as pipe:
            pipe.xadd(key, {"data": json.dumps(event)})
            pipe.expire(key, EVENT_LOG_TTL_S)
            entry_id, _ = await pipe.execute()
        return entry_id

    def read(self, query_id: str, *, after: str | None, block_ms: int = 0) -> list[Entry]:
        key = _stream_key(query_id)
        block = min(block_ms, int(BLOCK_LIMIT_S * 1000)) or None
        result = self._sync.xread({key: after or "0-0"}, block=block, count=500)
        return self._decode(result[0][1]) if result else []

    async def aread(self, query_id: str, *, after: str | None, block_ms: int = 0) -> list[Entry]:
        key = _stream_key(query_id)
        block = min(block_ms, int(BLOCK_LIMIT_S * 1000)) or None
        result = await self._async().xread({key: after or "0-0"}, block=block, count=500)
        return self._decode(result[0][1]) if result else []

    async def alast(self, query_id: str) -> Entry | None:
        """The query's latest event, or None when its log is empty or gone."""
        result = await self._async().xrevrange(_stream_key(query_id), count=1)
        return self._decode(result)[0] if result else None

    async def ahas(self, query_id: str, entry_id: str) -> bool:
        """Whether ``entry_id`` is an event of this query's log."""
        key = _stream_key(query_id)
        return bool(await self._async().xrange(key, min=entry_id, max=entry_id, count=1))

    @staticmethod
    def id_order(entry_id: str) -> tuple[int, int]:
        """Sort key of a valid id (event_id_pattern): later events sort higher."""
        milliseconds, _, sequence = entry_id.partition("-")
        return int(milliseconds), int(sequence)

    def exists(self, query_id: str) -> bool:
        return bool(self._sync.exists(_stream_key(query_id)))

    async def aexists(self, query_id: str) -> bool:
        return bool(await self._async().exists(_stream_key(query_id)))

    def request_cancel(self, query_id: str) -> None:
        self._sync.set(_cancel_key(query_id), "1", ex=EVENT_LOG_TTL_S)

    async def acancel_requested(self, query_id: str) -> bool:
        return bool(await self._async().exists(_cancel_key(query_id)))


class MemoryEventLog:
    """Single-process log for the embedded default; same interface as RedisEventLog."""

    # Positions in the log: 1, 2, ...
    event_id_pattern = re.compile(r"^\d{1,12}$")

    def __init__(self) -> None:
        self._events: dict[str, list[Entry]] = {}
        self._expires: dict[str, float] = {}
        self._next_expiry_sweep = 0.0
        self._cancelled: set[str] = set()
        self._changed = threading.Condition()
        # Async readers waiting for a query's next event, woken from any thread.
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}

    def _expire_old(self) -> None:
        now = time.monotonic()
        if now < self._next_expiry_sweep:
            return
        self._next_expiry_sweep = now + 60  # a sweep looks at every query: once a minute
        for query_id in [q for q, at in self._expires.items() if at < now]:
            self._events.pop(query_id, None)
            self._expires.pop(query_id, None)
            self._cancelled.discard(query_id)

    def append(self, query_id: str, event: Event) -> str:
        with self._changed:
            self._expire_old()
            entries = self._events.setdefault(query_id, [])
            entry_id = str(len(entries) + 1)
            entries.append((entry_id, event))
            self._expires[query_id] = time.monotonic() + EVENT_LOG_TTL_S
            self._changed.notify_all()
            waiters = self._waiters.pop(query_id, [])
        for loop, future in waiters:
            loop.call_soon_threadsafe(_wake, future)
        return entry_id

    async def aappend(self, query_id: str, event: Event) -> str:
        return self.append(query_id, event)

    def _after(self, query_id: str, after: str | None) -> list[Entry]:
        entries = self._events.get(query_id, [])
        start = int(after) if after and after.isdigit() else 0
        return entries[start:]

    def read(self, query_id: str, *, after: str | None, block_ms: int = 0) -> list[Entry]:
        deadline = time.monotonic() + block_ms / 1000
        with self._changed:
            while True:
                found = self._after(query_id, after)
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return found
                self._changed.wait(remaining)

    async def aread(self, query_id: str, *, after: str | None, block_ms: int = 0) -> list[Entry]:
        loop = asyncio.get_running_loop()
        with self._changed:
            found = self._after(query_id, after)
            if found or block_ms <= 0:
                return found
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(query_id, []).append((loop, future))
        try:
            await asyncio.wait_for(future, timeout=block_ms / 1000)
        except TimeoutError:
            with self._changed:
                waiters = self._waiters.get(query_id, [])
                if (loop, future) in waiters:
                    waiters.remove((loop, future))
        with self._changed:
            return self._after(query_id, after)

    async def alast(self, query_id: str) -> Entry | None:
        with self._changed:
            entries = self._events.get(query_id)
            return entries[-1] if entries else None

    async def ahas(self, query_id: str, entry_id: str) -> bool:
        with self._changed:
            return 1 <= int(entry_id) <= len(self._events.get(query_id, []))

    @staticmethod
    def id_order(entry_id: str) -> tuple[int, int]:
        return int(entry_id), 0

    def exists(self, query_id: str) -> bool:
        with self._changed:
            return query_id in self._events

    async def aexists(self, query_id: str) -> bool:
        return self.exists(query_id)

    def request_cancel(self, query_id: str) -> None:
        with self._changed:
            self._cancelled.add(query_id)

    async def acancel_requested(self, query_id: str) -> bool:
        return query_id in self._cancelled


async def wait_for_cancel(
    log: RedisEventLog | MemoryEventLog, query_id: str, *, poll_s: float
) -> None:
    """Return once a stop was requested for ``query_id`` (checked every ``poll_s``)."""
    while not await log.acancel_requested(query_id):
        await asyncio.sleep(poll_s)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_event_log: RedisEventLog | MemoryEventLog | None = None
_event_log_url: str | None = None
_lock = threading.Lock()


def event_log() -> RedisEventLog | MemoryEventLog:
    """The process's event log, following settings.REDIS_URL."""
    global _event_log, _event_log_url
    with _lock:
        if _event_log is None or _event_log_url != settings.REDIS_URL:
            url = settings.REDIS_URL
            _event_log = RedisEventLog(url) if url else MemoryEventLog()
            _event_log_url = url
        return _event_log
