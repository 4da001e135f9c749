"""`manage.py serve` closes requests that arrive too slowly or too large: the uvicorn server
it starts (its own options, `uvicorn_options`) on a free port, fed half requests over raw
sockets. Each test waits for the server to close the socket, at most the documented limit
plus a generous margin: the bound is asserted, never the speed."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
import uvloop
from django.test import override_settings

from llmplatform.core.management.commands.serve import uvicorn_options
from tests.processes import free_port

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
MAX_HEADER_BYTES = 4096
# Far above any limit here: a loaded CI machine is slow, never this slow.
MARGIN_S = 15.0


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    port = free_port()
    with override_settings(
        SERVER_HEADER_TIMEOUT_S=HEADER_TIMEOUT_S,
        SERVER_BODY_TIMEOUT_S=BODY_TIMEOUT_S,
        SERVER_MAX_HEADER_BYTES=MAX_HEADER_BYTES,
    ):
        options = uvicorn_options(host="127.0.0.1", port=port)
    uv = uvicorn.Server(uvicorn.Config(**options))
    # uvloop as `serve` uses it, on this thread's own loop (no process-wide policy change).
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(uv.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield "127.0.0.1", port
    uv.should_exit = True
    thread.join(timeout=30)
    loop.close()


def connect(server: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(server, timeout=5)
    return sock


def read_until_closed(sock: socket.socket, *, within: float) -> bytes:
    """Everything the server sends until it closes; fails if it is still open after
    ``within`` seconds."""
    received = b""
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"the server still held the connection after {within:g} s")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def test_a_half_sent_request_line_and_headers_are_closed_with_a_408(server):
    with connect(server) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nX-Half: ")
        answer = read_until_closed(sock, within=HEADER_TIMEOUT_S + MARGIN_S)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_connection_that_sends_nothing_is_closed(server):
    with connect(server) as sock:
        assert read_until_closed(sock, within=HEADER_TIMEOUT_S + MARGIN_S).startswith(
            b"HTTP/1.1 408 "
        )


def test_headers_dripped_a_byte_at_a_time_do_not_reset_the_clock(server):
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"X-Slow: " + b"a" * 10_000
    with connect(server) as sock:
        closed = False
        started = time.monotonic()
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            # A slow client's pace (not synchronisation): well under the header limit.
            time.sleep(0.1)
            if time.monotonic() - started > HEADER_TIMEOUT_S + MARGIN_S:
                break
        if not closed:
            read_until_closed(sock, within=1.0)


def test_a_body_that_stops_arriving_is_closed(server):
    with connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/query/ HTTP/1.1\r\nHost: localhost\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"query": "he'
        )
        answer = read_until_closed(sock, within=BODY_TIMEOUT_S + MARGIN_S)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_headers_over_the_size_limit_are_refused_with_a_431(server):
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * MAX_HEADER_BYTES)
        answer = read_until_closed(sock, within=MARGIN_S)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_whole_requests_are_answered_on_a_kept_alive_connection(server):
    with connect(server) as sock:
        for _ in range(2):
            sock.sendall(b"GET /no/such/page HTTP/1.1\r\nHost: localhost\r\n\r\n")
            sock.settimeout(MARGIN_S)
            head = sock.recv(65536)
            assert head.startswith(b"HTTP/1.1 404 "), head[:100]
            # Longer than the header limit: an idle kept-alive connection is not a slow
            # request (uvicorn's keep-alive timeout, SERVER_KEEP_ALIVE_S, governs it).
            time.sleep(HEADER_TIMEOUT_S * 1.5)
            assert b"408" not in head


def test_the_serve_command_documents_host_and_port(capsys):
    from django.core.management import call_command

    with pytest.raises(SystemExit):
        call_command("serve", "--help")
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal
    assert "--host" in out and "HOST environment variable" in out
    assert "--port" in out and "PORT environment variable" in out
    assert "SERVER_HEADER_TIMEOUT_S" in out


def test_the_limits_come_from_settings(settings):
    settings.SERVER_HEADER_TIMEOUT_S = 7.0
    settings.SERVER_KEEP_ALIVE_S = 9
    options = uvicorn_options(host="127.0.0.1", port=1)
    assert options["http"].limits.header_timeout_s == 7.0
    assert options["timeout_keep_alive"] == 9
    assert options["proxy_headers"] is False


def _read_until_closed(sock: socket.socket) -> None:
    """Read until the peer closes (a failed assertion) or the socket times out."""
    while True:
        assert sock.recv(65536), "the server closed the websocket"


@pytest.mark.django_db
def test_an_upgraded_websocket_is_not_on_the_request_clock(server, owner):
    handshake = (
        f"GET /ws/chat/?api_key={owner[1]} HTTP/1.1\r\nHost: localhost\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with connect(server) as sock:
        sock.sendall(handshake.encode())
        sock.settimeout(MARGIN_S)
        assert sock.recv(65536).startswith(b"HTTP/1.1 101 ")
        # Past both request limits, the socket is still open (a recv that times out); a
        # request timer left running would have closed it.
        sock.settimeout(HEADER_TIMEOUT_S + BODY_TIMEOUT_S + 1)
        with pytest.raises(TimeoutError):
            _read_until_closed(sock)
