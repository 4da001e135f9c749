"""What tracing adds to a question's time to first token: on vs off, interleaved, one run.

The project's ASGI application is called directly on this process's event loop for
``POST /api/v1/query/stream`` (as bench/ttft_profile.py does, with its driver), against a
throw-away SecantusDB and the fake OpenAI server (bench/sse_stack.py), with the embedded
defaults (in-process dispatcher and event log). One request at a time, the arms in
turn, their order rotated each round, so the machine's drift and the growing database
weigh on every arm alike:

    on         the platform's tracer, as deployed: every span made, buffered, and the
               trace stored by the writer thread (TRACE_SAMPLE_RATE=1);
    unsampled  the same spans, the trace dropped by the writer (TRACE_SAMPLE_RATE=0):
               what making the spans costs, without storing them;
    off        OpenTelemetry's no-op tracer in the platform's place: no span at all.

No setting turns tracing off (TRACE_SAMPLE_RATE=0 is the "unsampled" arm), so "off"
swaps the tracer in ``llmplatform.core.tracing`` for the duration of each of its
requests. After each request the writer is drained (outside the timing), so a request
pays only for what overlaps it: its own spans, and the storing of its ``query.start``
(a local root: stored while the run works towards the first token).

TTFT is the time from the request to the first ``chunk`` frame handed to the server.
Reported per arm: p50 and p95, their difference from "off", and the median of the
per-round differences (each request against the same round's "off" one).

    .venv/bin/python bench/tracing_overhead.py --requests 200 --warmup 20 --write
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sse_stack import (  # noqa: E402
    Children,
    in_process_project,
    progress,
)
from ttft_profile import MODEL, SETTLE_S, one_request  # noqa: E402

RESULT_FILE = ROOT / "bench" / "results" / "tracing_overhead.md"
ARMS = ("on", "unsampled", "off")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="per arm, after the warm-up")
    parser.add_argument("--warmup", type=int, default=20, help="rounds, not counted")
    parser.add_argument("--no-memory", action="store_true", help="send use_memory: false")
    parser.add_argument("--session-turns", type=int, default=4)
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE.name}")
    return parser.parse_args()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)), 1) - 1]


async def measure(
    app, headers, args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """TTFT (ms) per arm, the arms' order rotated round by round; and per round, each
    traced arm minus the same round's "off"."""
    from django.conf import settings
    from opentelemetry.trace import NoOpTracer

    from llmplatform.core import tracing
    from llmplatform.core.trace_store import traces_drain

    traced = tracing.tracer()
    untraced = NoOpTracer()
    sample_rate = settings.TRACE_SAMPLE_RATE
    run = uuid.uuid4().hex[:6]
    ttft: dict[str, list[float]] = {arm: [] for arm in ARMS}
    paired: dict[str, list[float]] = {arm: [] for arm in ARMS if arm != "off"}
    total = args.warmup + args.requests
    for index in range(total):
        if index % 20 == 0:
            progress(f"  round {index}/{total}")
        shift = index % len(ARMS)
        times: dict[str, float] = {}
        for arm in ARMS[shift:] + ARMS[:shift]:
            body = {
                "user_id": f"tracing-{arm}",
                "session_id": f"tracing-{arm}-{index // args.session_turns}-{run}",
                "query": f"Tracing request {index}: explain server-sent events in one sentence.",
                "model_provider": "openai",
                "model_name": MODEL,
            }
            if args.no_memory:
                body["use_memory"] = False
            await asyncio.sleep(SETTLE_S)
            tracing._tracer = untraced if arm == "off" else traced
            settings.TRACE_SAMPLE_RATE = 0.0 if arm == "unsampled" else sample_rate
            try:
                sample = await one_request(app, json.dumps(body).encode(), headers)
                await asyncio.sleep(SETTLE_S)  # the run ends under the same tracer
                # Its trace stored (or dropped) before the next request: what a request
                # pays is only what overlaps it (its own start's spans, stored while it runs).
                traces_drain()
            finally:
                tracing._tracer = traced
                settings.TRACE_SAMPLE_RATE = sample_rate
            first = sample["frames"].get("first chunk frame sent")
            if first is None:
                raise RuntimeError(f"no chunk frame in the {arm} request {index}")
            times[arm] = (first - sample["t0"]) * 1000
        if index >= args.warmup:
            for arm in ARMS:
                ttft[arm].append(times[arm])
            for arm in paired:
                paired[arm].append(times[arm] - times["off"])
    return ttft, paired


def stored_spans(user_id: str) -> tuple[int, int]:
    """(questions of this arm, spans stored for them)."""
    from llmplatform.core.models import TraceSpan
    from llmplatform.core.trace_store import traces_drain
    from queries.models import Query

    traces_drain()
    queries = list(Query.objects.filter(user_id=user_id).values_list("trace_id", flat=True))
    trace_ids = [trace_id for trace_id in queries if trace_id]
    return len(queries), TraceSpan.objects.filter(trace_id__in=trace_ids).count()


def report(
    args: argparse.Namespace,
    ttft: dict[str, list[float]],
    paired: dict[str, list[float]],
    spans: dict,
) -> str:
    memory = "false" if args.no_memory else "not sent (true)"
    lines = [
        "# Tracing overhead on the time to first token (in-process, no HTTP server)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')}; load average "
        f"{' / '.join(f'{load:.2f}' for load in os.getloadavg())} (1/5/15 min) at the end. "
        f"`{' '.join(['.venv/bin/python bench/tracing_overhead.py', *sys.argv[1:]])}`",
        "",
        f"{args.requests} requests per arm (after {args.warmup} warm-up rounds), one at a "
        f"time, the arms' order rotated each round; `use_memory` {memory}; sessions of "
        f"{args.session_turns} questions.",
        "",
        "| arm | TTFT p50 (ms) | TTFT p95 (ms) | added p50 (ms) | added p95 (ms) | "
        "paired added, median (p25 / p75) | questions | spans stored |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    off = ttft["off"]
    for arm in ARMS:
        asked, stored = spans[arm]
        p50, p95 = statistics.median(ttft[arm]), percentile(ttft[arm], 0.95)
        if arm == "off":
            added = "— | — | —"
        else:
            pairs = paired[arm]
            added = (
                f"**{p50 - statistics.median(off):+.2f}** | "
                f"{p95 - percentile(off, 0.95):+.2f} | {statistics.median(pairs):+.2f} "
                f"({percentile(pairs, 0.25):+.2f} / {percentile(pairs, 0.75):+.2f})"
            )
        lines.append(f"| {arm} | {p50:.2f} | {p95:.2f} | {added} | {asked} | {stored} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    children = Children()
    database = None
    try:
        # Every trace stored, whatever the environment says: the deployed default.
        database, application, headers = in_process_project(
            children, name="tracing", env={"TRACE_SAMPLE_RATE": "1.0"}
        )
        progress(f"{len(ARMS)} arms x ({args.warmup} + {args.requests}) requests ...")
        loop = asyncio.new_event_loop()
        ttft, paired = loop.run_until_complete(measure(application, headers, args))
        spans = {arm: stored_spans(f"tracing-{arm}") for arm in ARMS}
    finally:
        children.stop_all()
        if database is not None:
            database.stop()
    text = report(args, ttft, paired, spans)
    print(text)
    if args.write:
        RESULT_FILE.write_text(text)


if __name__ == "__main__":
    main()
