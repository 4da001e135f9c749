"""The fake vendors of the evaluation benchmark, in a child process: OpenAI (the targets)
and Anthropic (the judge, scripted to answer a verdict), from tests/fakes.

Run as ``python bench/evaluation_fakes.py``: prints ``{"openai": URL, "anthropic": URL}``,
then obeys one command per line on stdin, each answered with one line on stdout:

    stats    per vendor since the last reset: requests per path and the server's own time
             handling them (request read to response written), in seconds -> JSON
    reset    forget recorded requests and times                              -> ok

It exits when stdin closes. A child process so that its threads do not compete with the
measured run for the GIL; the server-side time shows what the fakes themselves cost, which
is what a real vendor's latency would replace.
"""

from __future__ import annotations

import collections
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.server import FakeVendorServer, _Handler, _QuietHTTPServer  # noqa: E402
from tests.fakes.wire import AnthropicWire, OpenAIWire  # noqa: E402

JUDGE_REPLY = '{"score": 0.8, "reason": "Answers the question; a little verbose."}'


class _TimedHandler(_Handler):
    def _serve(self, method: str) -> None:
        started = time.perf_counter()
        try:
            super()._serve(method)
        finally:
            self.fake.handled(time.perf_counter() - started)


class TimedFake(FakeVendorServer):
    """The test fake, with the time it spends on each request summed up."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.handled_s: list[float] = []

    def handled(self, seconds: float) -> None:
        with self._lock:
            self.handled_s.append(seconds)

    def start(self) -> TimedFake:
        handler = type("BoundHandler", (_TimedHandler,), {"fake": self})
        self._httpd = _QuietHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"bench-fake-{self.adapter.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stats(self) -> dict:
        with self._lock:
            paths = collections.Counter(request.path for request in self.requests)
            handled = list(self.handled_s)
        return {"paths": dict(paths), "requests": len(handled), "server_s": sum(handled)}

    def forget(self) -> None:
        reply_text = self.reply_text
        self.reset()
        with self._lock:
            self.handled_s.clear()
        self.reply_text = reply_text


def main() -> None:
    servers = {"openai": TimedFake(OpenAIWire()).start(), "anthropic": TimedFake(AnthropicWire())}
    servers["anthropic"].start()
    servers["anthropic"].reply_text = JUDGE_REPLY
    print(json.dumps({name: server.base_url for name, server in servers.items()}), flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                print(json.dumps({n: s.stats() for n, s in servers.items()}), flush=True)
            elif command == "reset":
                for server in servers.values():
                    server.forget()
                print("ok", flush=True)
            elif command:
                print(f"error unknown command {command!r}", flush=True)
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
