"""How long a stop takes: from ``POST /api/v1/query/{id}/cancel`` to the stream's ``done``.

The provider accepts the request and never sends a token (the tests' fake OpenAI server with
a "hang" fault), so the stop must reach a stalled call, not a loop between chunks. The
project is served by the ASGI server ``manage.py serve`` uses, on the embedded defaults
(in-process runs), against a throw-away SecantusDB. Target (issue 10): p99 within 1 s.

    .venv/bin/python bench/cancel_latency.py --stops 50 --write
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx2  # noqa: E402
from sse_stack import (  # noqa: E402
    Children,
    manage,
    progress,
    project_env,
    start_asgi_server,
    start_database,
)

from tests.fakes.server import FakeVendorServer  # noqa: E402
from tests.fakes.wire import OpenAIWire  # noqa: E402
from tests.processes import SERVED_WITH  # noqa: E402

RESULT_FILE = ROOT / "bench" / "results" / "cancel_latency.md"


def one_stop(base: str, auth: dict[str, str], fake: FakeVendorServer, n: int) -> float:
    """Seconds from the cancel request to ``done`` on the stream of a stalled answer."""
    fake.fail_next("hang")
    body = {"user_id": "bench", "session_id": f"stop-{n}", "query": "Tell me a story"}
    body["use_memory"] = False
    with httpx2.stream(
        "POST", f"{base}/api/v1/query/stream", json=body, headers=auth, timeout=60
    ) as response:
        query_id, sent_at = None, None
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            query_id = query_id or event.get("query_id")
            if event.get("node") == "WriterAgent" and sent_at is None:
                time.sleep(0.2)  # the provider call is under way and stalled
                sent_at = time.perf_counter()
                httpx2.post(f"{base}/api/v1/query/{query_id}/cancel", headers=auth, timeout=10)
            if event.get("type") == "done":
                if event.get("message") != "Query cancelled":
                    raise RuntimeError(f"the run ended without being stopped: {event}")
                return time.perf_counter() - sent_at
    raise RuntimeError("the stream ended without done")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=50)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    children = Children()
    fake = FakeVendorServer(OpenAIWire(), hang_seconds=30).start()
    try:
        progress("starting a throw-away SecantusDB, migrating, creating an API key ...")
        mongodb_uri, _ = start_database(children)
        env = project_env(
            fake_base_url=fake.base_url, mongodb_uri=mongodb_uri, redis_url=None, embedding="local"
        )
        manage(env, "migrate", "--noinput")
        api_key = manage(env, "create_api_key", "--name", "bench").strip().splitlines()[-1]
        auth = {"Authorization": f"Bearer {api_key}"}
        host, port, _, _ = start_asgi_server(children, env, "cancel-bench", SERVED_WITH)
        base = f"http://{host}:{port}"
        one_stop(base, auth, fake, -1)  # warm-up
        seconds = []
        for n in range(args.stops):
            seconds.append(one_stop(base, auth, fake, n))
            fake.reset()
        ms = [s * 1000 for s in seconds]
        table = [
            "| stops | p50 | p99 | max | target |",
            "|---|---|---|---|---|",
            f"| {len(ms)} | {statistics.median(ms):.0f} ms | {percentile(ms, 0.99):.0f} ms "
            f"| {max(ms):.0f} ms | p99 ≤ 1000 ms |",
        ]
        text = "\n".join(
            [
                "# Stop latency: cancel request to the stream's `done`, provider stalled",
                "",
                f"Command: `.venv/bin/python bench/cancel_latency.py --stops {args.stops}"
                f"{' --write' if args.write else ''}`; served with {SERVED_WITH}, in-process "
                "runs, QUERY_CANCEL_POLL_S at its default (0.1 s).",
                "",
                *table,
                "",
            ]
        )
        print(text)
        if args.write:
            RESULT_FILE.write_text(text)
    finally:
        fake.stop()
        children.stop_all()


if __name__ == "__main__":
    main()
