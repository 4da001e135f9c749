"""The shared core of the fake vendor servers: a real HTTP server on 127.0.0.1.

One threaded stdlib server per vendor; what differs between vendors (paths, JSON shapes,
SSE framing, error bodies) lives in a ``WireAdapter`` (see ``tests.fakes.wire``). The core
owns what every vendor shares: recording requests, the deterministic reply, chunk pacing
and fault injection. Tests point a real SDK's base URL here, so the SDK's own HTTP stack,
parsing and error classes are what gets exercised.
"""

from __future__ import annotations

import base64
import collections
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from tests.fakes.wire import WireAdapter

# end_early: the stream ends cleanly (proper HTTP framing) but before the vendor's finish
# event — what a misbehaving proxy produces; it must not pass for a short answer.
# echo_key: a 400 whose message quotes the API key the request carried, encoded as
# ``Fault.encoding`` says (see ``encode_key``), as a careless vendor or proxy might.
FaultKind = Literal[
    "rate_limit", "server_error", "auth", "hang", "cut", "end_early", "malformed", "echo_key"
]
# How an echo_key fault writes the key: whole, percent-encoded (every byte), base64 at each
# of the three alignments (after 0, 1 or 2 other bytes), as JSON \uXXXX escapes (the text
# itself holds the backslashes), or cut into 7-character pieces.
KeyEncoding = Literal["plain", "percent", "base64", "base64+1", "base64+2", "json", "pieces7"]
KEY_ENCODINGS: tuple[KeyEncoding, ...] = (
    "plain",
    "percent",
    "base64",
    "base64+1",
    "base64+2",
    "json",
    "pieces7",
)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None for an empty body

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    retry_after: float | None = None  # seconds, for "rate_limit"
    after_chunks: int = 1  # for "cut" and "malformed" streams: good chunks sent first
    encoding: KeyEncoding = "plain"  # for "echo_key"


@dataclass
class Reply:
    """What the fake model answers; adapters render it in their vendor's wire format."""

    model: str
    chunks: list[str]
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    citations: list[tuple[str, str]] = field(default_factory=list)  # (url, title)
    # Scripted function calls (name, arguments); when set the answer is these calls.
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Gemini: the thoughtSignature (base64) sent on the first functionCall part.
    thought_signature: str | None = None
    # OpenAI: the alternatives per token asked for with logprobs (None: not asked).
    top_logprobs: int | None = None

    @property
    def text(self) -> str:
        return "".join(self.chunks)


@dataclass(frozen=True)
class Operation:
    """What an adapter recognised in a request path."""

    kind: Literal["chat", "embeddings", "shopping"]
    stream: bool = False
    model: str = ""


def encode_key(key: str, encoding: KeyEncoding) -> str:
    """``key`` written as ``encoding`` (KEY_ENCODINGS), as the echo_key fault quotes it."""
    if encoding == "percent":
        return "".join(f"%{byte:02X}" for byte in key.encode())
    if encoding.startswith("base64"):
        offset = int(encoding.partition("+")[2] or 0)
        return base64.b64encode(b"\x00\xff"[:offset] + key.encode()).decode()
    if encoding == "json":
        return "".join(f"\\u{ord(char):04x}" for char in key)
    if encoding == "pieces7":
        return " ".join(key[start : start + 7] for start in range(0, len(key), 7))
    return key


def request_key(request: RecordedRequest) -> str:
    """The API key a request carried, however its vendor sends it."""
    bearer = (request.header("authorization") or "").removeprefix("Bearer ").strip()
    return (
        request.header("x-api-key")
        or request.header("x-goog-api-key")
        or request.query.get("key")
        or bearer
    )


def echo_reply_text(prompt: str) -> str:
    """The deterministic answer to ``prompt``; tests compute the expected text with this."""
    return f"Echo: {prompt}"


def split_into_chunks(text: str, count: int) -> list[str]:
    """``text`` cut into ``count`` non-empty pieces (fewer if the text is shorter)."""
    count = max(1, min(count, len(text)))
    size, extra = divmod(len(text), count)
    pieces, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


class _QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-stream (a cancel, a timeout test) is expected here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeVendorServer:
    """A fake vendor API on an ephemeral loopback port. Use as a context manager or
    call ``start()``/``stop()``. Configure with attributes, inject faults with
    ``fail_next``, inspect ``requests``, and ``reset()`` between tests."""

    def __init__(self, adapter: WireAdapter, *, hang_seconds: float = 30.0) -> None:
        self.adapter = adapter
        self.hang_seconds = hang_seconds
        self.requests: list[RecordedRequest] = []
        self.replies: list[Reply] = []
        self._faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        # Set on reset/stop so a "hang" ends at once and leaves no thread behind.
        self._release_hangs = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._reset_config()

    def _reset_config(self) -> None:
        self.chunk_count = 3
        # A predicate on the requested model: True answers 404 "model not found".
        self.refuses_model: Callable[[str], bool] | None = None
        self.chunk_interval = 0.0  # seconds between streamed chunks
        # Scripted answers: tool calls (name, arguments) instead of text, and/or a fixed
        # text instead of the echo (e.g. a JSON answer for structured-output tests).
        self.tool_calls: list[tuple[str, dict[str, Any]]] = []
        self.reply_text: str | None = None
        # A scripted answer per prompt (the last user text); None falls back to the above
        # (e.g. a judge that grades some answers higher than others).
        self.reply_for: Callable[[str], str | None] | None = None
        self.thought_signature: str | None = None
        self.cached_tokens = 0
        self.reasoning_tokens = 0
        self.citations: list[tuple[str, str]] = [
            ("https://example.com/a", "Source A"),
            ("https://example.org/b", "Source B"),
        ]

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeVendorServer:
        handler = type("BoundHandler", (_Handler,), {"fake": self})
        self._httpd = _QuietHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-{self.adapter.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release_hangs.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeVendorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """The value to configure as the vendor's base URL (SDK-specific suffix included)."""
        return self.origin + self.adapter.base_path

    # -- test controls ---------------------------------------------------------------------

    def fail_next(
        self,
        kind: FaultKind,
        *,
        times: int = 1,
        retry_after: float | None = None,
        after_chunks: int = 1,
        encoding: KeyEncoding = "plain",
    ) -> None:
        """Make the next ``times`` requests fail with ``kind``; later requests succeed."""
        with self._lock:
            for _ in range(times):
                self._faults.append(Fault(kind, retry_after, after_chunks, encoding))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.replies.clear()
            self._faults.clear()
        self._release_hangs.set()
        self._release_hangs = threading.Event()
        self._reset_config()

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]

    # -- used by the handler ---------------------------------------------------------------

    def _record_and_take_fault(self, request: RecordedRequest) -> Fault | None:
        with self._lock:
            self.requests.append(request)
            return self._faults.popleft() if self._faults else None

    def build_reply(self, *, model: str, prompt: str, input_words: int, search: bool) -> Reply:
        text = self.reply_for(prompt) if self.reply_for is not None else None
        if text is None:
            text = echo_reply_text(prompt) if self.reply_text is None else self.reply_text
        reply = Reply(
            model=model,
            chunks=split_into_chunks(text, self.chunk_count),
            # Token counts are word counts: deterministic, and different for each field so a
            # test notices when two of them are swapped.
            input_tokens=input_words,
            output_tokens=len(text.split()),
            cached_tokens=self.cached_tokens,
            reasoning_tokens=self.reasoning_tokens,
            citations=list(self.citations) if search else [],
            tool_calls=list(self.tool_calls),
            thought_signature=self.thought_signature,
        )
        with self._lock:
            self.replies.append(reply)
        return reply


class _Handler(BaseHTTPRequestHandler):
    fake: FakeVendorServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
    disable_nagle_algorithm = True  # small SSE writes must not wait for delayed ACKs

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test output stays readable; requests are recorded instead

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake = self.fake
        adapter = fake.adapter
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send_json(400, adapter.error_body(400, "request body is not valid JSON"))
            return
        request = RecordedRequest(
            method=method,
            path=parts.path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        fault = fake._record_and_take_fault(request)
        operation = adapter.route(method, parts.path, query)
        if operation is None:
            self._send_json(404, adapter.error_body(404, f"no route for {method} {parts.path}"))
            return
        operation = adapter.resolve(operation, request)
        refuses = fake.refuses_model
        if operation.kind == "chat" and refuses is not None and refuses(operation.model):
            message = f"The model `{operation.model}` does not exist or you do not have access."
            self._send_json(404, adapter.error_body(404, message))
            return
        if fault is not None and fault.kind == "echo_key":
            key = encode_key(request_key(request), fault.encoding)
            self._send_json(400, adapter.error_body(400, f"Invalid request for key {key}."))
            return
        if fault is not None and self._apply_fault_before_body(fault):
            return
        if operation.kind == "embeddings":
            self._send_json(200, adapter.embeddings_body(request))
            return
        if operation.kind == "shopping":
            if not query.get("api_key"):
                self._send_json(401, adapter.error_body(401, "Invalid API key."))
                return
            body = adapter.shopping_body(request)
            self._send_json(400 if "error" in body else 200, body)
            return
        reply = adapter.build_reply(fake, operation, request)
        if operation.stream:
            self._send_stream(reply, fault)
        elif fault is not None and fault.kind == "cut":
            self._send_cut_json(adapter.completion_body(reply, request))
        elif fault is not None and fault.kind == "malformed":
            self._send_raw(200, b'{"id": "broken", "choices": [{"index": 0, "mess', "json")
        else:
            self._send_json(200, adapter.completion_body(reply, request))

    # -- faults ------------------------------------------------------------------------------

    def _apply_fault_before_body(self, fault: Fault) -> bool:
        """Answer with the fault if it replaces the whole response; False when it acts
        on the body (cut, malformed)."""
        adapter = self.fake.adapter
        if fault.kind == "rate_limit":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = _format_seconds(fault.retry_after)
            self._send_json(429, adapter.error_body(429, "Rate limit reached."), headers)
            return True
        if fault.kind == "server_error":
            self._send_json(500, adapter.error_body(500, "The server had an error."))
            return True
        if fault.kind == "auth":
            self._send_json(*adapter.auth_error())
            return True
        if fault.kind == "hang":
            # Say nothing until the client gives up (or the test ends).
            self.fake._release_hangs.wait(self.fake.hang_seconds)
            self.close_connection = True
            return True
        return False

    # -- writers -----------------------------------------------------------------------------

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(body).encode(), "json", headers)

    def _send_raw(
        self,
        status: int,
        payload: bytes,
        kind: Literal["json"],
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_cut_json(self, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self._drop_connection()

    def _send_stream(self, reply: Reply, fault: Fault | None) -> None:
        adapter = self.fake.adapter
        frames = adapter.stream_frames(reply)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        # Frames before the first text chunk (e.g. message_start) do not count as chunks.
        leading = adapter.leading_frames
        interval = self.fake.chunk_interval
        for index, frame in enumerate(frames):
            if fault is not None and index == leading + fault.after_chunks:
                if fault.kind == "cut":
                    self._drop_connection()
                    return
                if fault.kind == "end_early":
                    self._end_chunked()
                    return
                if fault.kind == "malformed":
                    self._write_chunk(adapter.malformed_frame())
                    self._end_chunked()
                    return
            if interval and index > 0:
                time.sleep(interval)
            self._write_chunk(frame)
        self._end_chunked()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _drop_connection(self) -> None:
        # An abrupt close with the body incomplete: what a dropped upstream looks like.
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
