"""A minimal streaming HTTP/1.1 + SSE client on raw asyncio streams, for the SSE benchmark,
and a websocket client (the ``websockets`` library) for our ``/ws/chat/``.

One client for every side (the fake server, our ASGI server, the LiteLLM proxy), so the
comparison is not skewed by client libraries; and raw streams because at 500 concurrent
streams a full HTTP client's per-chunk overhead in the measuring process would be the
first thing to saturate. Each stream opens its own connection (``Connection: close``) and
records when every content chunk arrived (``time.perf_counter``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Literal

Dialect = Literal["openai", "ours"]


@dataclass
class StreamResult:
    started: float  # request about to be written
    status: int = 0
    headers_at: float | None = None
    first_frame_at: float | None = None  # any SSE data frame (ours: the first "node")
    chunk_times: list[float] = field(default_factory=list)
    chunks: list[str] = field(default_factory=list)
    done: bool = False
    ended_at: float | None = None
    error: str | None = None
    server_ttft_ms: float | None = None  # ours: latency.time_to_first_token_ms in "final"
    connect_ms: float | None = None  # websocket: the handshake, before ``started``

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def ttft_ms(self) -> float | None:
        return None if not self.chunk_times else (self.chunk_times[0] - self.started) * 1000

    @property
    def max_gap_ms(self) -> float:
        times = self.chunk_times
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0) * 1000


class _SseParser:
    """Feeds bytes, yields the ``data`` payload of each complete event."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[str]:
        self._buffer += data.replace(b"\r\n", b"\n")
        events = []
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                return events
            block, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            lines = [line for line in block.split(b"\n") if line.startswith(b"data:")]
            if lines:
                events.append(b"\n".join(line[5:].lstrip(b" ") for line in lines).decode())


def _apply(result: StreamResult, payload: str, dialect: Dialect, now: float) -> bool:
    """Record one SSE data payload; True when the stream says it is complete."""
    if result.first_frame_at is None:
        result.first_frame_at = now
    if dialect == "openai":
        if payload == "[DONE]":
            return True
        event = json.loads(payload)
        if "error" in event:
            result.error = f"upstream error: {event['error']}"
            return True
        for choice in event.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                result.chunks.append(content)
                result.chunk_times.append(now)
        return False
    event = json.loads(payload)
    kind = event.get("type")
    if kind == "chunk":
        result.chunks.append(event["content"])
        result.chunk_times.append(now)
    elif kind == "final":
        result.server_ttft_ms = (event.get("latency") or {}).get("time_to_first_token_ms")
    elif kind == "error":
        result.error = f"error event: {event.get('error')}"
        return True
    elif kind == "done":
        return True
    return False


async def stream(
    *,
    host: str,
    port: int,
    path: str,
    body: dict,
    headers: dict[str, str],
    dialect: Dialect,
    timeout: float,
) -> StreamResult:
    """POST ``body`` and read the SSE answer to its end; never raises (errors are recorded)."""
    result = StreamResult(started=time.perf_counter())
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            payload = json.dumps(body).encode()
            head = [
                f"POST {path} HTTP/1.1",
                f"Host: {host}:{port}",
                "Content-Type: application/json",
                "Accept: text/event-stream",
                f"Content-Length: {len(payload)}",
                "Connection: close",
                *(f"{name}: {value}" for name, value in headers.items()),
            ]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            await writer.drain()
            status_line = await reader.readline()
            if not status_line:
                result.error = "connection closed before a response"
                return result
            result.status = int(status_line.split()[1])
            response_headers: dict[str, str] = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                response_headers[name.strip().lower()] = value.strip()
            result.headers_at = time.perf_counter()
            if result.status != 200:
                rest = await reader.read(2000)
                result.error = f"HTTP {result.status}: {rest[:300]!r}"
                return result
            chunked = "chunked" in response_headers.get("transfer-encoding", "").lower()
            parser = _SseParser()
            while not result.done:
                if chunked:
                    size_line = await reader.readline()
                    if not size_line:
                        break
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        break
                    data = await reader.readexactly(size)
                    await reader.readexactly(2)
                else:
                    data = await reader.read(65536)
                    if not data:
                        break
                now = time.perf_counter()
                for event_data in parser.feed(data):
                    if _apply(result, event_data, dialect, now):
                        result.done = True
                        break
            if not result.done and result.error is None:
                result.error = "stream ended before its last event"
    except TimeoutError:
        result.error = f"timed out after {timeout:.0f} s"
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.ended_at = time.perf_counter()
        if writer is not None:
            writer.close()
    return result


async def probe(
    *, host: str, port: int, method: str, path: str, body: dict | None, headers: dict[str, str]
) -> tuple[int, float]:
    """One non-streaming request: (status, ms until the response headers were read)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(STREAM_PROBE_TIMEOUT_S):
            payload = json.dumps(body).encode() if body is not None else b""
            head = [
                f"{method} {path} HTTP/1.1",
                f"Host: {host}:{port}",
                "Content-Type: application/json",
                f"Content-Length: {len(payload)}",
                "Connection: close",
                *(f"{name}: {value}" for name, value in headers.items()),
            ]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            await writer.drain()
            status_line = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            elapsed = (time.perf_counter() - started) * 1000
            await reader.read()  # drain to EOF so the server finishes its side
            return int(status_line.split()[1]), elapsed
    finally:
        writer.close()


STREAM_PROBE_TIMEOUT_S = 30.0


async def ws_stream(
    *, host: str, port: int, path: str, body: dict, headers: dict[str, str], timeout: float
) -> StreamResult:
    """Open ``/ws/chat/``, send one ``query`` message and read events to ``done``.

    ``started`` is when the message is sent on the open socket (a chat UI keeps its socket
    open between questions); the handshake is ``connect_ms``. Never raises.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import WebSocketException

    opening = time.perf_counter()
    result = StreamResult(started=opening)
    try:
        async with asyncio.timeout(timeout):
            async with connect(
                f"ws://{host}:{port}{path}",
                additional_headers=headers,
                open_timeout=timeout,
                compression=None,
                ping_interval=None,
            ) as socket:
                result.started = time.perf_counter()
                result.connect_ms = (result.started - opening) * 1000
                result.headers_at = result.started
                await socket.send(json.dumps({"type": "query", **body}))
                while not result.done:
                    message = await socket.recv()
                    if _apply(result, message, "ours", time.perf_counter()):
                        result.done = True
    except TimeoutError:
        result.error = f"timed out after {timeout:.0f} s"
    except (OSError, WebSocketException, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.ended_at = time.perf_counter()
    if result.error is None and not result.done:
        result.error = "socket closed before done"
    return result
