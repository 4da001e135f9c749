"""The fake OpenAI server (tests/fakes) as a child process of the SSE benchmark.

Run as ``python bench/sse_fake_server.py``: prints its base URL, then obeys one command per
line on stdin and answers each with one line on stdout:

    pace COUNT INTERVAL   chunks per reply and seconds between them   -> ok
    stats                 requests per path since the last reset      -> {"/v1/...": n}
    reset                 forget recorded requests (memory stays flat) -> ok

It exits when stdin closes, so it never outlives the benchmark. A child process, because in
the benchmark's own process its threads would compete with the measuring event loop for the
GIL (``sse_streams.py`` measures that effect and reports it).

The one change to the test fake: a listen backlog of 1024 instead of socketserver's 5, so
a burst of 500 connections is not met with SYN drops (a 1 s client retransmit) that would
be blamed on whichever proxy sits in front.
"""

from __future__ import annotations

import collections
import json
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.server import FakeVendorServer, _Handler  # noqa: E402
from tests.fakes.wire import OpenAIWire  # noqa: E402

LISTEN_BACKLOG = 1024


class _DeepBacklogServer(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


class BenchFakeOpenAI(FakeVendorServer):
    """``FakeVendorServer`` with a deep listen backlog; everything else is the test fake."""

    def start(self) -> BenchFakeOpenAI:
        handler = type("BoundHandler", (_Handler,), {"fake": self})
        self._httpd = _DeepBacklogServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="bench-fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self


def main() -> None:
    server = BenchFakeOpenAI(OpenAIWire()).start()
    print(server.base_url, flush=True)
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "pace":
                server.chunk_count = int(words[1])
                server.chunk_interval = float(words[2])
                print("ok", flush=True)
            elif words[0] == "stats":
                paths = collections.Counter(request.path for request in server.chat_requests)
                print(json.dumps(paths), flush=True)
            elif words[0] == "reset":
                count, interval = server.chunk_count, server.chunk_interval
                server.reset()
                server.chunk_count, server.chunk_interval = count, interval
                print("ok", flush=True)
            else:
                print(f"error unknown command {words[0]!r}", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
