"""uvicorn's HTTP protocol (httptools) with limits on how long and how large a request may
arrive: what ``manage.py serve`` runs.

uvicorn bounds only the idle time between keep-alive requests (``timeout_keep_alive``).
A client that sends half a request line or half its headers, or stops in the middle of a
body, holds its socket (a file descriptor and a parser) for as long as it likes; with
httptools nothing bounds the size of the headers either (``h11_max_incomplete_event_size``
applies only to h11). These limits close such connections:

- the request line and headers must arrive within ``header_timeout_s`` of the connection
  opening or of the request's first byte (a total, so a byte every few seconds does not
  reset it), and must not exceed ``max_header_bytes``;
- a body must arrive within ``body_timeout_s`` of the end of its headers.

A request cut short is answered ``408`` (too slow) or ``431`` (headers too large) when no
response has started, and closed. Websockets, once upgraded, are not affected.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True)
class ServerLimits:
    header_timeout_s: float
    body_timeout_s: float
    keep_alive_s: int
    max_header_bytes: int


def _plain_response(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


_TOO_SLOW = _plain_response(408, "Request Timeout", "The request did not arrive in time.")
_TOO_LARGE = _plain_response(
    431, "Request Header Fields Too Large", "The request line and headers are too large."
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that closes requests arriving too slowly or too large (see the
    module docstring). Use ``guarded_protocol(limits)`` for a class with its limits."""

    limits: ClassVar[ServerLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._header_bytes = 0

    # -- the clock ----------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _response_pending(self) -> bool:
        """Whether nothing has been written for the current request: a status line may go."""
        cycle = self.cycle
        return cycle is None or cycle.response_complete or not cycle.response_started

    def _refuse(self, response: bytes) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        if self._response_pending():
            self.transport.write(response)
        self.transport.close()

    def _too_slow(self) -> None:
        self._read_deadline = None
        self._refuse(_TOO_SLOW)

    def _headers_begin(self) -> None:
        if not self._in_headers:
            self._in_headers = True
            self._header_bytes = 0
            self._arm(self.limits.header_timeout_s)

    # -- uvicorn's protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never sends a byte is on the header clock too.
        self._headers_begin()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Counted only while the headers are still incomplete after this data: a body that
        # arrived with the last header line is not header bytes.
        if self._in_headers and self._header_bytes > self.limits.max_header_bytes:
            self._refuse(_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._headers_begin()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._arm(self.limits.body_timeout_s)  # disarmed when the body is complete

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._in_headers = False
        self._disarm()
        super().handle_websocket_upgrade()


def guarded_protocol(limits: ServerLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to give uvicorn (``http=``), bound to ``limits``."""
    return type("BoundGuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
