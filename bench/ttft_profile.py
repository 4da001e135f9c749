"""Where our time to first token goes, step by step, in-process (no HTTP server).

The project's ASGI application is called directly on this process's event loop (as an ASGI
server would call it) for ``POST /api/v1/query/stream``, against a throw-away SecantusDB
and the fake OpenAI server (child processes, as in bench/sse_streams.py), with the
embedded defaults (no REDIS_URL: the in-process dispatcher and event log). The functions
on the path are wrapped with timestamps (``time.perf_counter``), one request at a time:

    API-key lookup, validation, query_start (session_start, experiment choices, Query
    insert, dispatch), the hop to the runs loop, claim, coordinator, memory (embedding,
    vector search, recent turns, summary), the provider call to its first token, the
    event-log append, and the SSE frame handed to the server.

The request is what a user sends (no ``use_memory``: true by default), as in
bench/sse_streams.py; ``--no-memory`` sends ``use_memory: false``.

``--lever NAME`` (repeatable) applies a candidate speed-up by monkeypatching, so its gain
is measured on the same path; see bench/ttft_levers.py. Nothing here changes the project's files.

    .venv/bin/python bench/ttft_profile.py --requests 200 --write
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pymongo import monitoring  # noqa: E402
from sse_stack import (  # noqa: E402
    Children,
    in_process_project,
    progress,
)
from ttft_levers import LEVERS, reset_levers  # noqa: E402

RESULT_FILE = ROOT / "bench" / "results" / "ttft_profile.md"
MODEL = "gpt-4o-mini"
SETTLE_S = 0.05

# One request at a time: the steps of the request in flight.
CURRENT: dict[str, list[tuple[float, float]]] = defaultdict(list)
MARKS: dict[str, float] = {}
RUN = uuid.uuid4().hex[:6]


def mark(name: str) -> None:
    MARKS.setdefault(name, time.perf_counter())


def timed_sync(name: str, func: Callable) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            CURRENT[name].append((started, time.perf_counter()))

    wrapper.__wrapped__ = func  # type: ignore[attr-defined]
    return wrapper


def timed_async(name: str, func: Callable) -> Callable:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await func(*args, **kwargs)
        finally:
            CURRENT[name].append((started, time.perf_counter()))

    wrapper.__wrapped__ = func  # type: ignore[attr-defined]
    return wrapper


class _TimedStream:
    """A provider stream that records when it was asked for and when its first chunk came."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._started = time.perf_counter()
        self._first = True

    def __aiter__(self) -> _TimedStream:
        return self

    async def __anext__(self) -> Any:
        item = await self._inner.__anext__()
        if self._first and getattr(item, "text", None):
            self._first = False
            CURRENT["provider call → first token"].append((self._started, time.perf_counter()))
        return item

    async def aclose(self) -> None:
        await self._inner.aclose()


class _TimedProvider:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def stream(self, request: Any) -> _TimedStream:
        return _TimedStream(self._inner.stream(request))


class _CommandListener(monitoring.CommandListener):
    """pymongo command monitoring: every database round trip of the request in flight."""

    def started(self, event: Any) -> None:
        collection = event.command.get(event.command_name)
        where = collection if isinstance(collection, str) else ""
        COMMANDS.append((time.perf_counter(), f"{event.command_name} {where}".strip()))

    def succeeded(self, event: Any) -> None:
        DURATIONS.append((time.perf_counter(), event.command_name, event.duration_micros))

    def failed(self, event: Any) -> None:
        pass


COMMANDS: list[tuple[float, str]] = []
DURATIONS: list[tuple[float, str, int]] = []  # every command, for --db-totals


def instrument() -> None:
    """Wrap the steps of the TTFT path (after django.setup())."""
    import agents.engine
    import agents.memory
    import agents.writer
    import queries.consumers
    import queries.run
    import queries.start
    from llmplatform.core.dispatch import InProcessDispatcher, register_runner
    from llmplatform.core.event_log import MemoryEventLog
    from queries.engine_ports import ENGINE_PORTS
    from queries.models import Query

    consumers, run, start = queries.consumers, queries.run, queries.start
    consumers.api_key_for_scope = timed_sync("API-key lookup", consumers.api_key_for_scope)
    # The validation step's name changed with the consumers' rewrite: wrap whichever exists.
    for name in ("_query_params", "_parse_request"):
        if hasattr(consumers, name):
            setattr(consumers, name, timed_sync("validation", getattr(consumers, name)))
    consumers.query_start = timed_sync("query_start (whole)", consumers.query_start)
    # The run's start is being reshaped: wrap what exists, skip what does not.
    steps = (
        ("session_for_query", "  session_start"),
        ("_answer_settings_traced", "  answer settings (read beside the session)"),
        ("_choices", "  choices"),
        ("_admit", "  admission (limits)"),
        ("session_query_record", "  session count"),
        # The memory reads the start begins beside its choices (queries.start._memory_reads).
        ("_recent_turns_traced", "  recent turns (read at the start)"),
        ("_latest_summary_traced", "  latest summary (read at the start)"),
        ("_memory_refresh_traced", "  matrix refresh (started at the start)"),
    )
    for name, label in steps:
        if hasattr(start, name):
            setattr(start, name, timed_sync(label, getattr(start, name)))
    # In-process the insert runs beside the run (queries.start._run_beside_insert).
    save, timed_insert = Query.save, timed_sync("  Query insert", Query.save)
    Query.save = lambda self, *a, **kw: (timed_insert if kw.get("force_insert") else save)(
        self, *a, **kw
    )
    InProcessDispatcher.submit_run = timed_sync(
        "  dispatch (submit)", InProcessDispatcher.submit_run
    )
    original_execute = run.query_execute

    async def execute(query_id: str, **kwargs: Any) -> None:
        mark("run started")
        await original_execute(query_id, **kwargs)

    register_runner(start.RUN_TASK, execute)
    if hasattr(run, "_claim"):
        run._claim = timed_sync("claim (status update)", run._claim)
    for name in ("CoordinatorAgent", "MemoryAgent", "WriterAgent"):
        agents.engine.AGENTS[name] = timed_async(name, agents.engine.AGENTS[name])
    agents.memory.embed_query = timed_async(
        "  embedding (fake /v1/embeddings)", agents.memory.embed_query
    )
    memory = ENGINE_PORTS.memory
    memory.refresh = timed_async("  matrix refresh (beside the embedding)", memory.refresh)
    memory.similar = timed_async("  vector search", memory.similar)
    # Inside the vector search (a thread): the matrix brought up to date, the ranking,
    # and the hits read by primary key.
    import queries.memory_store as memory_store

    for name, label in (
        ("user_vectors", "    matrix (held, or refreshed)"),
        ("hybrid_top_k", "    ranking"),
        ("_hits_in_scope", "    hits by id"),
    ):
        setattr(memory_store, name, timed_sync(label, getattr(memory_store, name)))
    memory.recent_turns = timed_async("  recent turns", memory.recent_turns)
    memory.latest_summary = timed_async("  latest summary", memory.latest_summary)
    original_provider = agents.writer.get_chat_provider
    agents.writer.get_chat_provider = lambda name: _TimedProvider(original_provider(name))
    original_append = MemoryEventLog.append

    def append(self: Any, query_id: str, event: dict) -> str:
        started = time.perf_counter()
        try:
            return original_append(self, query_id, event)
        finally:
            if event.get("type") == "chunk" and "first chunk appended" not in MARKS:
                MARKS["first chunk appended"] = time.perf_counter()
                CURRENT["event-log append (first chunk)"].append((started, time.perf_counter()))
            if event.get("type") == "node" and "first node appended" not in MARKS:
                MARKS["first node appended"] = time.perf_counter()

    MemoryEventLog.append = append


# -- the driver --------------------------------------------------------------------------------


async def one_request(app: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> dict:
    """Call the ASGI app for one SSE request; timestamps of the first frames it sends."""
    CURRENT.clear()
    MARKS.clear()
    COMMANDS.clear()
    disconnected = asyncio.Event()
    delivered = False
    result: dict[str, float] = {}
    done = asyncio.Event()

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        now = time.perf_counter()
        if message["type"] == "http.response.start":
            result.setdefault("headers sent", now)
            return
        data = message.get("body", b"")
        if b'"type": "node"' in data:
            result.setdefault("first event (node) sent", now)
        if b'"type": "chunk"' in data:
            result.setdefault("first chunk frame sent", now)
        if b'"type": "done"' in data or not message.get("more_body", False):
            done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/query/stream",
        "raw_path": b"/api/v1/query/stream",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    started = time.perf_counter()
    task = asyncio.ensure_future(app(scope, receive, send))
    await asyncio.wait_for(done.wait(), timeout=30)
    disconnected.set()
    await asyncio.wait_for(task, timeout=10)
    steps = {name: spans for name, spans in CURRENT.items()}
    first_chunk = result.get("first chunk frame sent", float("inf"))
    before = [name for at, name in COMMANDS if started <= at < first_chunk]
    return {
        "t0": started,
        "frames": result,
        "marks": dict(MARKS),
        "steps": steps,
        "commands": before,
    }


def summarise(samples: list[dict]) -> list[tuple[str, float, float, int]]:
    """(step, p50 start offset from t0, p50 duration, calls per request)."""
    rows: dict[str, tuple[list[float], list[float], list[int]]] = {}
    for sample in samples:
        t0 = sample["t0"]
        for name, spans in sample["steps"].items():
            starts, durations, counts = rows.setdefault(name, ([], [], []))
            starts.append((spans[0][0] - t0) * 1000)
            durations.append(sum(end - start for start, end in spans) * 1000)
            counts.append(len(spans))
        for name, at in {**sample["marks"], **sample["frames"]}.items():
            starts, durations, counts = rows.setdefault(name, ([], [], []))
            starts.append((at - t0) * 1000)
            durations.append(float("nan"))
            counts.append(1)
    table = [
        (
            name,
            statistics.median(starts),
            statistics.median(durations) if durations[0] == durations[0] else float("nan"),
            round(statistics.median(counts)),
        )
        for name, (starts, durations, counts) in rows.items()
    ]
    return sorted(table, key=lambda row: row[1])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--no-memory", action="store_true", help="send use_memory: false")
    parser.add_argument("--session-turns", type=int, default=4)
    parser.add_argument("--lever", action="append", default=[], choices=sorted(LEVERS))
    parser.add_argument("--compare", action="store_true", help="baseline, then each lever alone")
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE.name}")
    return parser.parse_args()


async def measure(
    app: Any, headers: list, args: argparse.Namespace, plans: list[tuple[str, list[str]]]
) -> dict[str, list[dict]]:
    """Every plan once per round, in rotating order, each on the instrumented path plus
    its levers: the database grows (and the machine's load drifts) for all plans alike."""
    samples: dict[str, list[dict]] = {title: [] for title, _ in plans}
    for index in range(args.warmup + args.requests):
        if index % 20 == 0:
            progress(f"  round {index}/{args.warmup + args.requests}")
        shift = index % len(plans)
        for title, levers in plans[shift:] + plans[:shift]:
            tag = title.replace(" ", "-")
            session = f"profile-{tag}-{index // args.session_turns}-{RUN}"
            body = {
                "user_id": f"profile-{tag}",
                "session_id": session,
                "query": f"Profile request {index}: explain server-sent events in one sentence.",
                "model_provider": "openai",
                "model_name": MODEL,
            }
            if args.no_memory:
                body["use_memory"] = False
            for name in levers:
                LEVERS[name]()
            try:
                await asyncio.sleep(SETTLE_S)
                sample = await one_request(app, json.dumps(body).encode(), headers)
            finally:
                reset_levers()
            if index >= args.warmup:
                samples[title].append(sample)
    return samples


def render_table(title: str, samples: list[dict]) -> list[str]:
    lines = [
        f"### {title}",
        "",
        "| step (indented: part of the step above) | starts at, p50 (ms after the request) | "
        "takes, p50 (ms) | calls |",
        "|---|---:|---:|---:|",
    ]
    for name, start, duration, calls in summarise(samples):
        took = "—" if duration != duration else f"{duration:.2f}"
        lines.append(f"| {name} | {start:.2f} | {took} | {calls} |")
    return lines


def main() -> None:
    args = parse_args()
    children = Children()
    database = None
    try:
        database, application, headers = in_process_project(
            children,
            name="profile",
            before_setup=lambda: monitoring.register(_CommandListener()),  # before any client
        )
        instrument()
        reset_levers()  # takes the snapshot that each plan starts from
        loop = asyncio.new_event_loop()
        plans: list[tuple[str, list[str]]] = [("baseline", [])]
        if args.compare:
            plans += [(name, [name]) for name in sorted(LEVERS)]
            plans.append(("all levers", sorted(LEVERS)))
        elif args.lever:
            plans = [("+ " + ", ".join(args.lever), args.lever)]
        progress(f"{len(plans)} plans x ({args.warmup} + {args.requests}) requests ...")
        runs = loop.run_until_complete(measure(application, headers, args, plans))
    finally:
        children.stop_all()
        if database is not None:
            database.stop()
    memory = "false" if args.no_memory else "not sent (true)"
    lines = [
        "# Time to first token, step by step (in-process, no HTTP server)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')}; load average {os.getloadavg()[0]:.2f}. "
        f"`{' '.join(['.venv/bin/python bench/ttft_profile.py', *sys.argv[1:]])}`",
        "",
        f"{args.requests} requests per plan (after {args.warmup} warm-up rounds), one at a "
        "time, the plans interleaved round by round, "
        f"{SETTLE_S * 1000:.0f} ms apart; `use_memory` {memory}; "
        f"sessions of {args.session_turns} questions.",
        "",
    ]
    for title, samples in runs.items():
        lines += render_table(title, samples)
        chunk = [
            (s["frames"]["first chunk frame sent"] - s["t0"]) * 1000
            for s in samples
            if "first chunk frame sent" in s["frames"]
        ]
        lines += ["", f"First chunk frame p50: **{statistics.median(chunk):.2f} ms**.", ""]
        counts = [len(sample["commands"]) for sample in samples]
        kinds: dict[str, int] = defaultdict(int)
        for sample in samples:
            for name in sample["commands"]:
                kinds[name] += 1
        listed = ", ".join(
            f"{name} x{count / len(samples):.1f}"
            for name, count in sorted(kinds.items(), key=lambda kv: -kv[1])
        )
        lines += [
            f"Database round trips before the first chunk frame: p50 "
            f"{statistics.median(counts):.0f} per request ({listed}).",
            "",
        ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        RESULT_FILE.write_text(report)


if __name__ == "__main__":
    main()
