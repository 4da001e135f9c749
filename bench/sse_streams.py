"""SSE streaming: what our path adds over the fake upstream, side by side with a LiteLLM proxy.

In one run, against the same fake OpenAI server (tests/fakes, in a child process), every side
started up front and measured in the same interleaved rounds:

* direct: ``POST /v1/chat/completions`` (stream) on the fake server;
* ours, in-process (the embedded default: no REDIS_URL): ``POST /api/v1/query/stream`` on
  the project served by ``--server`` (and by every server in ``--servers``, one process
  each, for the ASGI server comparison), plus the chat websocket ``/ws/chat/`` on each;
* ours with REDIS_URL + a real Celery worker (``--pool threads``), served by ``--server``;
* the LiteLLM proxy (``litellm --config``, its own venv, a master key sent as a Bearer key).

Ours sends what a user sends: no ``use_memory`` (the API default, true: the query is
embedded and the user's memory searched before the answer), the model named like the
proxy's, a session kept for ``--session-turns`` questions. A ``use_memory: false`` side
(what earlier runs measured) is kept for comparison.

1. Time to first token (TTFT) added over direct, p50/p99, and its ratio to LiteLLM's.
2. CPU ms per stream per process (ASGI server, Celery worker, SecantusDB, LiteLLM, fake)
   over a batch of sequential streams per side (/proc utime+stime deltas).
3. Concurrent streams: levels started at once, stopping at the first that fails: every
   chunk of "Echo: <prompt>" must arrive, in order, with no gap between consecutive chunks
   over 2x the fake server's chunk interval.

One raw-asyncio client (bench/sse_client.py) for every SSE side, the ``websockets`` client for
ours; loopback only; every loop and wait bounded; every child process ended in a ``finally``.
Results: bench/results/sse_streams.md.

    .venv/bin/python bench/sse_streams.py --write
    .venv/bin/python bench/sse_streams.py --quick          # about a minute, smaller samples
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sse_client import Dialect, StreamResult, probe, stream, ws_stream  # noqa: E402
from sse_stack import (  # noqa: E402
    LITELLM_MASTER_KEY,
    LITELLM_SPEC,
    WORKDIR,
    Children,
    FakeProcess,
    LiteLLMUnavailable,
    cpu_seconds,
    ensure_litellm_venv,
    manage,
    progress,
    project_env,
    start_asgi_server,
    start_celery,
    start_database,
    start_litellm,
)

from tests.processes import ASGI_SERVERS, SERVED_WITH  # noqa: E402

RESULT_FILE = ROOT / "bench" / "results" / "sse_streams.md"
MODEL = "gpt-4o-mini"
REDIS_BENCH_URL = "redis://127.0.0.1:6379/14"
STREAM_TIMEOUT_S = 60.0
# Before each measured call: lets the previous query's bookkeeping after "done" (stored
# outcome, session counters) finish, so TTFT is that of an idle server, on every side alike.
SETTLE_S = 0.05
RUN_ID = uuid.uuid4().hex[:8]


# -- targets ---------------------------------------------------------------------------------


@dataclass
class Target:
    key: str
    label: str
    host: str
    port: int
    path: str
    dialect: Dialect
    headers: dict[str, str]
    transport: str = "sse"  # or "ws" (ours only)
    use_memory: bool | None = None  # None: not sent, the API default (true)
    session_turns: int = 1
    probe: bool = False  # also measure 401/400 responses (ours, SSE)
    pids: dict[str, int] = field(default_factory=dict)  # processes whose CPU time is reported
    calls: int = 0

    def body(self, prompt: str, session: str | None = None) -> dict:
        if self.dialect == "ours":
            if session is None:  # one conversation of session_turns questions, then the next
                session = f"{RUN_ID}-{self.key}-{self.calls // self.session_turns}"
                self.calls += 1
            body = {
                "user_id": f"bench-{self.key}",
                "session_id": session,
                "query": prompt,
                "model_provider": "openai",
                "model_name": MODEL,
            }
            if self.use_memory is not None:
                body["use_memory"] = self.use_memory
            return body
        return {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": prompt}]}

    async def run(self, prompt: str, session: str | None = None) -> StreamResult:
        common = {
            "host": self.host,
            "port": self.port,
            "path": self.path,
            "body": self.body(prompt, session),
            "headers": self.headers,
            "timeout": STREAM_TIMEOUT_S,
        }
        if self.transport == "ws":
            return await ws_stream(**common)
        return await stream(**common, dialect=self.dialect)


def openai_target(key: str, label: str, base_url: str, headers: dict[str, str]) -> Target:
    """An OpenAI-style streaming endpoint under ``base_url`` (``http://127.0.0.1:PORT/v1``)."""
    parts = urlsplit(base_url)
    return Target(
        key,
        label,
        parts.hostname or "127.0.0.1",
        parts.port or 80,
        f"{parts.path.rstrip('/')}/chat/completions",
        "openai",
        headers,
    )


def prompt_for(tag: str) -> str:
    # Longer than any chunk count used, so every reply splits into exactly chunk_count pieces.
    return f"Benchmark stream {tag}: explain server-sent events in one sentence."


def expected_text(prompt: str) -> str:
    return f"Echo: {prompt}"


# -- statistics ------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def p50(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


# -- 1. time to first token ------------------------------------------------------------------


@dataclass
class TtftSamples:
    ttft: dict[str, list[float]] = field(default_factory=dict)
    first_frame: dict[str, list[float]] = field(default_factory=dict)  # -> any data frame
    server_ttft: dict[str, list[float]] = field(default_factory=dict)  # ours: pipeline's own
    connect: dict[str, list[float]] = field(default_factory=dict)  # websocket handshake
    # ours: responses that stop early, to split the time before the response headers
    no_auth: dict[str, list[float]] = field(default_factory=dict)  # 401, no database call
    bad_body: dict[str, list[float]] = field(default_factory=dict)  # 400: key looked up, invalid
    failures: dict[str, list[str]] = field(default_factory=dict)

    def buckets(self) -> list[dict]:
        return [
            self.ttft,
            self.first_frame,
            self.server_ttft,
            self.connect,
            self.no_auth,
            self.bad_body,
            self.failures,
        ]


async def measure_ttft(
    targets: list[Target], iterations: int, warmup: int, probes: int
) -> TtftSamples:
    samples = TtftSamples()
    for target in targets:
        for bucket in samples.buckets():
            bucket[target.key] = []
    for round_index in range(warmup + iterations):
        if round_index % 25 == 0:
            progress(f"  round {round_index}/{warmup + iterations}")
        shift = round_index % len(targets)
        for target in targets[shift:] + targets[:shift]:
            prompt = prompt_for(f"ttft-{target.key}-{round_index}")
            await asyncio.sleep(SETTLE_S)
            result = await target.run(prompt)
            if result.error or result.text != expected_text(prompt):
                samples.failures[target.key].append(result.error or "wrong text")
                continue
            if round_index < warmup:
                continue
            samples.ttft[target.key].append(result.ttft_ms)
            samples.first_frame[target.key].append((result.first_frame_at - result.started) * 1000)
            if result.server_ttft_ms is not None:
                samples.server_ttft[target.key].append(result.server_ttft_ms)
            if result.connect_ms is not None:
                samples.connect[target.key].append(result.connect_ms)
    for target in targets:
        if target.probe:
            await _probe_ours(target, samples, probes)
    return samples


async def _probe_ours(target: Target, samples: TtftSamples, count: int) -> None:
    """Requests that end early, on an idle server: 401 (no key) and 400 (invalid body)."""
    common = {"host": target.host, "port": target.port, "method": "POST", "path": target.path}
    for _ in range(count):
        await asyncio.sleep(SETTLE_S)
        status, ms = await probe(**common, body=target.body("probe"), headers={})
        assert status == 401, status
        samples.no_auth[target.key].append(ms)
        await asyncio.sleep(SETTLE_S)
        status, ms = await probe(**common, body={"user_id": "bench"}, headers=target.headers)
        assert status == 400, status
        samples.bad_body[target.key].append(ms)


# -- 2. CPU per stream -----------------------------------------------------------------------


@dataclass
class CpuBatch:
    streams: int
    failed: int
    cpu_ms_per_stream: dict[str, float]
    wall_s: float


async def measure_cpu(target: Target, count: int, fake: FakeProcess) -> CpuBatch:
    """``count`` sequential streams; CPU each process used, per stream, including the work
    each query leaves behind after ``done`` (stored outcome, embedding, summaries)."""
    fake.reset()
    pids = {**target.pids, "fake": fake.process.pid}
    await asyncio.sleep(1.0)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    failed = 0
    for index in range(count):
        prompt = prompt_for(f"cpu-{target.key}-{index}")
        result = await target.run(prompt)
        failed += bool(result.error or result.text != expected_text(prompt))
    wall = time.perf_counter() - started
    await asyncio.sleep(1.5)  # the bookkeeping after the last "done"
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    return CpuBatch(count, failed, {n: s * 1000 / count for n, s in used.items()}, wall)


# -- 3. concurrent streams -------------------------------------------------------------------


@dataclass
class LevelResult:
    level: int
    ok: int
    lost: int  # streams with a missing, extra, reordered or failed chunk
    stalled: int  # streams with a gap between consecutive chunks over the limit
    max_gap_ms: float
    p99_gap_ms: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    peak_streaming: int  # most streams between their first and last chunk at one instant
    wall_s: float
    upstream: dict[str, int]
    errors: list[str]
    cpu_s: dict[str, float]  # CPU seconds each process used during the level
    trials: int = 1
    trials_passed: int = 0

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.stalled == 0


def merge_trials(runs: list[LevelResult]) -> LevelResult:
    """One row for several runs of a level: counts summed, worst gaps, median TTFT p50."""
    return LevelResult(
        level=runs[0].level,
        ok=sum(r.ok for r in runs),
        lost=sum(r.lost for r in runs),
        stalled=sum(r.stalled for r in runs),
        max_gap_ms=max(r.max_gap_ms for r in runs),
        p99_gap_ms=max(r.p99_gap_ms for r in runs),
        ttft_p50_ms=p50([r.ttft_p50_ms for r in runs]),
        ttft_p99_ms=max(r.ttft_p99_ms for r in runs),
        peak_streaming=min(r.peak_streaming for r in runs),
        wall_s=p50([r.wall_s for r in runs]),
        upstream={
            path: sum(r.upstream.get(path, 0) for r in runs) // len(runs)
            for path in runs[-1].upstream
        },
        errors=[e for r in runs for e in r.errors][:3],
        cpu_s={name: p50([r.cpu_s[name] for r in runs]) for name in runs[0].cpu_s},
        trials=len(runs),
        trials_passed=sum(r.passed for r in runs),
    )


def peak_overlap(spans: list[tuple[float, float]]) -> int:
    points = [(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans]
    current = peak = 0
    for _, delta in sorted(points, key=lambda p: (p[0], p[1])):
        current += delta
        peak = max(peak, current)
    return peak


async def run_level(
    target: Target, level: int, chunk_count: int, interval: float, fake: FakeProcess | None
) -> LevelResult:
    limit_ms = 2 * interval * 1000
    prompts = [prompt_for(f"c{level}-{target.key}-{index}") for index in range(level)]
    if fake is not None:
        fake.reset()
    pids = {**target.pids, **({"fake": fake.process.pid} if fake is not None else {})}
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    sessions = [f"{RUN_ID}-c{level}-{index}-{uuid.uuid4().hex[:6]}" for index in range(level)]
    results = await asyncio.gather(
        *(target.run(prompt, session) for prompt, session in zip(prompts, sessions, strict=True))
    )
    wall = time.perf_counter() - started
    ok = lost = stalled = 0
    errors: list[str] = []
    gaps: list[float] = []
    for prompt, result in zip(prompts, results, strict=True):
        good = (
            result.error is None
            and result.done
            and len(result.chunks) == chunk_count
            and result.text == expected_text(prompt)
        )
        if not good:
            lost += 1
            if len(errors) < 3:
                errors.append(
                    result.error or f"{len(result.chunks)} chunks, text {result.text[:60]!r}"
                )
            continue
        ok += 1
        gaps.append(result.max_gap_ms)
        if result.max_gap_ms > limit_ms:
            stalled += 1
    good_results = [r for r in results if r.chunk_times]
    ttfts = [r.ttft_ms for r in good_results]
    spans = [(r.chunk_times[0], r.chunk_times[-1]) for r in good_results]
    await asyncio.sleep(1.0)  # let the servers finish their bookkeeping after "done"
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    return LevelResult(
        trials_passed=int(lost == 0 and stalled == 0),
        level=level,
        ok=ok,
        lost=lost,
        stalled=stalled,
        max_gap_ms=max(gaps, default=float("nan")),
        p99_gap_ms=percentile(gaps, 99),
        ttft_p50_ms=p50(ttfts),
        ttft_p99_ms=percentile(ttfts, 99),
        peak_streaming=peak_overlap(spans),
        wall_s=wall,
        upstream=fake.requests_by_path() if fake is not None else {},
        errors=errors,
        cpu_s=cpu,
    )


async def measure_concurrency(
    target: Target,
    levels: list[int],
    chunk_count: int,
    interval: float,
    fake: FakeProcess | None,
    trials: int,
) -> list[LevelResult]:
    """Each level ``trials`` times; a level passes only if every trial passes."""
    outcomes = []
    for level in levels:
        runs = []
        for trial in range(trials):
            progress(f"  {target.key}: {level} concurrent streams, trial {trial + 1}/{trials} ...")
            run = await run_level(target, level, chunk_count, interval, fake)
            runs.append(run)
            progress(
                f"    {'pass' if run.passed else 'FAIL'}: ok {run.ok}, lost {run.lost}, "
                f"stalled {run.stalled}, max gap {run.max_gap_ms:.0f} ms, "
                f"TTFT p50 {run.ttft_p50_ms:.0f} ms"
            )
            if not run.passed:
                break  # the level has failed; more trials would not change that
        outcome = merge_trials(runs)
        outcomes.append(outcome)
        if not outcome.passed:
            break
    return outcomes


def max_passed(outcomes: list[LevelResult]) -> int:
    passed = [o.level for o in outcomes if o.passed]
    return max(passed, default=0)


# -- the harness check: fake server in this process vs a child process ------------------------


async def gil_check(
    child: Target,
    pace_child: Callable[[int, float], None],
    chunk_count: int,
    interval: float,
    samples: int,
    level: int,
) -> dict[str, dict[str, float]]:
    """Direct TTFT and one concurrency level with the fake in this process and in a child."""
    from sse_fake_server import BenchFakeOpenAI

    from tests.fakes.wire import OpenAIWire

    in_process = BenchFakeOpenAI(OpenAIWire()).start()

    def pace_local(count: int, pause: float) -> None:
        in_process.chunk_count, in_process.chunk_interval = count, pause

    try:
        local = openai_target("inproc", "in process", in_process.base_url, {})
        report: dict[str, dict[str, float]] = {}
        for name, target, pace in (
            ("bench process (threads)", local, pace_local),
            ("child process", child, pace_child),
        ):
            pace(chunk_count, 0.0)
            ttfts = []
            for index in range(samples + 10):
                result = await target.run(prompt_for(f"gil-{index}"))
                if index >= 10 and result.ttft_ms is not None:
                    ttfts.append(result.ttft_ms)
            pace(chunk_count, interval)
            outcome = await run_level(target, level, chunk_count, interval, None)
            report[name] = {
                "ttft_p50": p50(ttfts),
                "ttft_p99": percentile(ttfts, 99),
                "max_gap": outcome.max_gap_ms,
                "lost": outcome.lost,
            }
        return report
    finally:
        in_process.stop()


# -- report ----------------------------------------------------------------------------------


# -- report ----------------------------------------------------------------------------------


def machine_notes() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return (
        f"{platform.platform()}; {os.cpu_count()} CPUs ({model or 'unknown model'}); "
        f"Python {platform.python_version()}; load average before the run "
        f"{load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
    )


def fmt(value: float) -> str:
    return "—" if value != value else f"{value:.1f}"  # NaN check


def ratio_text(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs > 0 and ours == ours else "—"


def render(context: dict) -> str:
    args = context["args"]
    ttft: TtftSamples = context["ttft"]
    targets: dict[str, Target] = context["targets"]
    labels = {key: target.label for key, target in targets.items()}
    primary = context["primary"]
    direct = ttft.ttft.get("direct", [])
    lite = ttft.ttft.get("litellm", [])
    lite50 = p50(lite) - p50(direct) if lite else float("nan")
    lite99 = percentile(lite, 99) - percentile(direct, 99) if lite else float("nan")
    lines = [
        "# SSE streaming: our path vs the fake upstream and a LiteLLM proxy",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')} on this machine: {context['machine']}.",
        f"Total bench time {context['elapsed']:.0f} s. LiteLLM: {context['litellm_note']}.",
        "",
        "Command:",
        "",
        "```",
        context["command"],
        "```",
        "",
        "## 1. Time to first token",
        "",
        f"{args.iterations} measured rounds after {args.warmup} warm-up rounds; each round calls "
        "every side once, in rotating order, after a "
        f"{SETTLE_S * 1000:.0f} ms pause (so the previous query's post-answer bookkeeping does "
        "not overlap: this is the TTFT of an idle server). All sides run for the whole bench "
        "against one fake server and one SecantusDB. TTFT is request written → first content "
        "chunk parsed by the client (`choices[0].delta.content` for OpenAI-style streams, the "
        'first `{"type": "chunk"}` event for ours); SSE requests each open a fresh loopback '
        "connection; websocket TTFT is from the `query` message on an open socket (its "
        f"handshake is reported apart). The fake server replies in {args.chunk_count} chunks "
        "with no pacing here. Ours sends what a user sends: no `use_memory` (default true: "
        "the question is embedded through the fake's /v1/embeddings and the user's memory "
        f"searched before the answer), sessions of {args.session_turns} questions; the "
        "`use_memory: false` side is what earlier runs of this bench measured.",
        "",
        "| side | TTFT p50 (ms) | TTFT p99 (ms) | added p50 vs direct | added p99 vs direct "
        "| added p50 / LiteLLM's | added p99 / LiteLLM's | first event p50 | pipeline's own "
        "TTFT p50 | ws handshake p50 | failures |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in labels.items():
        values = ttft.ttft.get(key)
        if values is None:
            continue
        added50 = p50(values) - p50(direct)
        added99 = percentile(values, 99) - percentile(direct, 99)
        is_direct = key == "direct"
        lines.append(
            f"| {label} | {fmt(p50(values))} | {fmt(percentile(values, 99))} | "
            f"{'—' if is_direct else f'**{added50:+.1f}**'} | "
            f"{'—' if is_direct else f'{added99:+.1f}'} | "
            f"{'—' if is_direct or key == 'litellm' else ratio_text(added50, lite50)} | "
            f"{'—' if is_direct or key == 'litellm' else ratio_text(added99, lite99)} | "
            f"{fmt(p50(ttft.first_frame[key]))} | {fmt(p50(ttft.server_ttft[key]))} | "
            f"{fmt(p50(ttft.connect[key]))} | {len(ttft.failures[key])} |"
        )
    breakdown = [key for key, values in ttft.no_auth.items() if values]
    if breakdown:
        lines += [
            "",
            "Early answers on the idle server (p50, ms; "
            f"{args.probes} requests each after the rounds): a 401 costs the server and the "
            "consumer, no database; a 400 adds the API-key lookup and validation. The first "
            "event (`node`) adds `query_start`, the dispatch and the engine's start.",
            "",
            "| side | 401, no key | 400, bad body | first event | first chunk |",
            "|---|---:|---:|---:|---:|",
        ]
        for key in breakdown:
            lines.append(
                f"| {labels[key]} | {fmt(p50(ttft.no_auth[key]))} | "
                f"{fmt(p50(ttft.bad_body[key]))} | {fmt(p50(ttft.first_frame[key]))} | "
                f"{fmt(p50(ttft.ttft[key]))} |"
            )
    if primary in ttft.ttft and lite:
        ours50 = p50(ttft.ttft[primary]) - p50(direct)
        lines += [
            "",
            f"Headline, {labels[primary]} / LiteLLM, added TTFT at p50: {ours50:.1f} / "
            f"{lite50:.1f} ms = **{ratio_text(ours50, lite50)}** (goal ≤ 0.5x).",
        ]
    cpu: dict[str, CpuBatch] = context["cpu"]
    if cpu:
        names = sorted({name for batch in cpu.values() for name in batch.cpu_ms_per_stream})
        lines += [
            "",
            "## 2. CPU per stream",
            "",
            f"{args.cpu_batch} sequential streams per side ({args.chunk_count} chunks, no "
            "pacing), one side at a time; CPU time (user + system, all threads and child "
            "processes, from /proc/<pid>/stat) each process used from 1 s before the batch to "
            "1.5 s after its last stream, divided by the streams. The work a query leaves "
            "after `done` (stored outcome, embedding, summaries) is included.",
            "",
            "| side | " + " | ".join(f"{name} (ms)" for name in names) + " | total (ms) | failed |",
            "|---|" + "---:|" * (len(names) + 2),
        ]
        for key, batch in cpu.items():
            values = batch.cpu_ms_per_stream
            cells = " | ".join(fmt(values[name]) if name in values else "" for name in names)
            lines.append(
                f"| {labels[key]} | {cells} | {fmt(sum(values.values()))} | {batch.failed} |"
            )
    lines += [
        "",
        "## 3. Concurrent streams",
        "",
        f"N streams started at once (levels {', '.join(map(str, args.levels))}; a side stops at "
        f"its first failing level). The fake server sends {args.chunk_count} chunks "
        f"{args.chunk_interval * 1000:.0f} ms apart. A level passes when every stream gets all "
        f"{args.chunk_count} chunks of its own `Echo: <prompt>`, in order, and no gap between "
        f"two consecutive chunks exceeds {2 * args.chunk_interval * 1000:.0f} ms (2x the "
        f"interval). Each level is run up to {args.trials} times and passes only if every run "
        "passes; ok/lost/stalled are summed over the runs made, gaps are the worst run's, "
        "TTFT p50 and CPU the median run's. Each stream is its own session. TTFT under load "
        'is reported but is not a pass criterion. "peak streaming" is the fewest, over the '
        "runs, of the most streams between their first and last chunk at one instant. "
        "The direct side is run last, up to the highest level any other side reached.",
        "",
        "| side | streams | runs passed | ok | lost | stalled | max gap (ms) | p99 of per-stream "
        "max gap | TTFT p50 / p99 under load (ms) | peak streaming | wall (s) | CPU ms per "
        "stream | upstream calls |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---|---|",
    ]
    for key, outcomes in context["concurrency"].items():
        for o in outcomes:
            upstream = ", ".join(f"{path.rsplit('/', 1)[-1]} {n}" for path, n in o.upstream.items())
            cpu_cells = ", ".join(
                f"{name} {seconds * 1000 / o.level:.1f}" for name, seconds in o.cpu_s.items()
            )
            lines.append(
                f"| {labels[key]} | {o.level} | "
                f"{o.trials_passed}/{o.trials}{'' if o.passed else ' **FAIL**'} | {o.ok} | "
                f"{o.lost} | {o.stalled} | {fmt(o.max_gap_ms)} | {fmt(o.p99_gap_ms)} | "
                f"{fmt(o.ttft_p50_ms)} / {fmt(o.ttft_p99_ms)} | {o.peak_streaming} | "
                f"{o.wall_s:.1f} | {cpu_cells} | {upstream} |"
            )
    lines += ["", "Largest level passed:", ""]
    maxima = {key: max_passed(outcomes) for key, outcomes in context["concurrency"].items()}
    for key, value in maxima.items():
        lines.append(f"- {labels[key]}: **{value}**")
    if maxima.get("litellm"):
        for key, value in maxima.items():
            if key not in ("direct", "litellm"):
                lines.append(
                    f"- {labels[key]} / LiteLLM: {value / maxima['litellm']:.2f}x (goal ≥ 2x)"
                )
    errors = [
        f"- {labels[key]} at {o.level}: {'; '.join(o.errors)}"
        for key, outcomes in context["concurrency"].items()
        for o in outcomes
        if o.errors
    ]
    if errors:
        lines += ["", "First errors seen at failing levels:", "", *errors]
    gil = context.get("gil")
    if gil:
        lines += [
            "",
            "## Harness check: the fake server in the bench process or in a child process",
            "",
            "Direct streams only (no proxy), same client.",
            "",
            "| fake server runs in | direct TTFT p50 (ms) | p99 | max gap at "
            f"{args.gil_level} streams (ms) | lost |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, row in gil.items():
            lines.append(
                f"| {name} | {fmt(row['ttft_p50'])} | {fmt(row['ttft_p99'])} | "
                f"{fmt(row['max_gap'])} | {int(row['lost'])} |"
            )
        lines += ["", "Everything above used the child process."]
    lines += ["", "## Notes", "", *context["notes"], ""]
    return "\n".join(lines)


STANDING_NOTES = [
    '- The "ours" rows include SecantusDB, a MongoDB wire-protocol server written in Python '
    '(the embedded/test database), on the same 2 cores ("db" in the CPU columns). A real '
    "MongoDB was not measured here. The LiteLLM proxy runs without a database (no "
    "DATABASE_URL, spend logs off), so it stores nothing per request; ours stores the "
    "query, its answer and its embedding.",
    "- Each ASGI server runs as one process (granian: one worker), access log off as "
    "`manage.py serve` runs outside DEBUG; the LiteLLM proxy (uvicorn inside) logs its "
    "default access line. The fake server (bench/sse_fake_server.py) is the test fake with "
    "a listen backlog of 1024.",
    "- With EMBEDDING_PROVIDER=auto and an OpenAI key set (the production default), our "
    "queries call the fake's /v1/embeddings: before the answer with memory on, after it "
    "with `use_memory: false` (see the upstream calls column).",
    "- The bench client is one asyncio process (raw streams for SSE, `websockets` for the "
    "chat socket); the direct rows show what the client and fake server alone do.",
]


# -- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=150, help="measured TTFT rounds")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--levels",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 20, 30, 40, 60, 80, 100, 150, 200, 300, 500],
    )
    parser.add_argument("--chunk-count", type=int, default=20)
    parser.add_argument("--trials", type=int, default=2, help="runs per concurrency level")
    parser.add_argument("--chunk-interval", type=float, default=0.05)
    parser.add_argument(
        "--server", choices=ASGI_SERVERS, default=SERVED_WITH, help="serves the headline sides"
    )
    parser.add_argument(
        "--servers",
        type=lambda s: [x for x in s.split(",") if x],
        default=list(ASGI_SERVERS),
        help="in-process SSE + websocket sides, one per server (comma-separated; '' for none)",
    )
    parser.add_argument("--session-turns", type=int, default=4, help="questions per session")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--skip-redis", action="store_true", help="no REDIS_URL + Celery side")
    parser.add_argument("--skip-websocket", action="store_true")
    parser.add_argument("--skip-no-memory", action="store_true", help="no use_memory:false side")
    parser.add_argument(
        "--concurrency-sides",
        default="",
        help="only these side keys in the concurrency phase (comma-separated; default all)",
    )
    parser.add_argument("--cpu-batch", type=int, default=40, help="streams per side for CPU")
    parser.add_argument("--probes", type=int, default=50, help="401/400 requests per side")
    parser.add_argument(
        "--celery-concurrency",
        type=int,
        default=0,
        help="worker threads (default: the largest level)",
    )
    parser.add_argument("--embedding", choices=["auto", "local"], default="auto")
    parser.add_argument("--harness-check", action="store_true", help="fake in-process vs child")
    parser.add_argument("--gil-samples", type=int, default=100)
    parser.add_argument("--gil-level", type=int, default=200)
    parser.add_argument("--litellm-spec", default=LITELLM_SPEC)
    parser.add_argument(
        "--asgi-app",
        default="",
        help="serve this ASGI application instead (e.g. bench.asgi_levers:application)",
    )
    parser.add_argument(
        "--levers",
        default="",
        help="serve bench.asgi_levers with these BENCH_LEVERS (comma-separated)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="30 rounds, 10-stream CPU batches, 1 trial"
    )
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE.name}")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.warmup, args.cpu_batch, args.trials, args.probes = 30, 5, 10, 1, 10
    if args.levers and not args.asgi_app:
        args.asgi_app = "bench.asgi_levers:application"
    if args.server not in args.servers:
        args.servers = [args.server, *args.servers]
    return args


def ours_target(
    key: str, label: str, host: str, port: int, auth: dict[str, str], pids: dict[str, int], **kw
) -> Target:
    transport = kw.pop("transport", "sse")
    path = "/ws/chat/" if transport == "ws" else "/api/v1/query/stream"
    return Target(key, label, host, port, path, "ours", auth, transport=transport, pids=pids, **kw)


def main() -> None:
    args = parse_args()
    bench_started = time.monotonic()
    command = ".venv/bin/python bench/sse_streams.py " + shlex.join(sys.argv[1:])
    machine = machine_notes()
    children = Children()
    database = None
    notes: list[str] = list(STANDING_NOTES)
    targets: dict[str, Target] = {}
    concurrency: dict[str, list[LevelResult]] = {}
    cpu: dict[str, CpuBatch] = {}
    litellm_note = "not run (--skip-litellm)"
    gil = None
    WORKDIR.mkdir(parents=True, exist_ok=True)
    if args.asgi_app:
        notes.append(
            f"- Ours served `{args.asgi_app}` (a bench-only variant, levers "
            f"`{args.levers or 'none'}`), not the project's application as is."
        )
    try:
        progress("starting the fake OpenAI server (child process) ...")
        fake = FakeProcess(children)
        direct = openai_target("direct", "direct (fake server)", fake.base_url, {})
        targets["direct"] = direct

        if not args.skip_litellm:
            try:
                venv, version = ensure_litellm_venv(args.litellm_spec)
                progress(f"starting the LiteLLM proxy {version} ...")
                host, port, seconds, pid = start_litellm(children, venv, fake.base_url)
                litellm_target = openai_target(
                    "litellm",
                    f"LiteLLM proxy {version}",
                    f"http://{host}:{port}/v1",
                    {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"},
                )
                litellm_target.pids = {"litellm": pid}
                targets["litellm"] = litellm_target
                litellm_note = (
                    f"`{args.litellm_spec}` in var/bench-litellm-venv, `litellm --config` "
                    f"(uvicorn, 1 worker, master key required and sent), ready in {seconds:.1f} s"
                )
            except LiteLLMUnavailable as exc:
                litellm_note = f"**could not be run**: {exc}"
                progress(f"LiteLLM unavailable: {exc}")

        progress("starting a throw-away SecantusDB, migrating, creating an API key ...")
        mongodb_uri, database = start_database(children)
        env = project_env(
            fake_base_url=fake.base_url,
            mongodb_uri=mongodb_uri,
            redis_url=None,
            embedding=args.embedding,
        )
        env["BENCH_LEVERS"] = args.levers
        manage(env, "migrate", "--noinput")
        api_key = manage(env, "create_api_key", "--name", "bench").strip().splitlines()[-1]
        auth = {"Authorization": f"Bearer {api_key}"}

        turns = args.session_turns
        for server in args.servers:
            progress(f"starting {server} (in-process pipeline, no REDIS_URL) ...")
            host, port, seconds, pid = start_asgi_server(
                children, env, f"{server}-embedded", server
            )
            notes.append(
                f"- {server} (in-process) answered /api/v1/health {seconds:.1f} s after start."
            )
            pids = {server: pid, "db": database.pid}
            key = "ours" if server == args.server else f"ours-{server}"
            targets[key] = ours_target(
                key, f"ours: {server}, in-process", host, port, auth, pids,
                session_turns=turns, probe=True,
            )  # fmt: skip
            if server == args.server and not args.skip_no_memory:
                targets["ours-nomem"] = ours_target(
                    "ours-nomem", f"ours: {server}, in-process, `use_memory: false`",
                    host, port, auth, pids, session_turns=turns, use_memory=False,
                )  # fmt: skip
            if not args.skip_websocket:
                targets[f"ws-{server}"] = ours_target(
                    f"ws-{server}", f"ours: {server}, in-process, websocket",
                    host, port, auth, pids, session_turns=turns, transport="ws",
                )  # fmt: skip

        if not args.skip_redis:
            try:
                import redis

                redis.Redis.from_url(REDIS_BENCH_URL, socket_connect_timeout=2).flushdb()
            except Exception as exc:
                notes.append(f"- REDIS_URL configuration not run: Redis unreachable ({exc}).")
            else:
                worker_threads = args.celery_concurrency or max(args.levels)
                progress(f"starting a Celery worker ({worker_threads} threads) and {args.server} "
                         "with REDIS_URL ...")  # fmt: skip
                redis_env = project_env(
                    fake_base_url=fake.base_url,
                    mongodb_uri=mongodb_uri,
                    redis_url=REDIS_BENCH_URL,
                    embedding=args.embedding,
                )
                redis_env["BENCH_LEVERS"] = args.levers
                worker = start_celery(children, redis_env, worker_threads)
                host, port, seconds, pid = start_asgi_server(
                    children, redis_env, f"{args.server}-redis", args.server, app=args.asgi_app
                )
                targets["ours-redis"] = ours_target(
                    "ours-redis",
                    f"ours: {args.server} + Redis + Celery worker ({worker_threads} threads)",
                    host, port, auth,
                    {args.server: pid, "worker": worker.pid, "db": database.pid},
                    session_turns=turns, probe=True,
                )  # fmt: skip

        if args.harness_check:
            progress("harness check: fake server in this process vs a child process ...")
            gil = asyncio.run(
                gil_check(
                    direct,
                    fake.pace,
                    args.chunk_count,
                    args.chunk_interval,
                    args.gil_samples,
                    args.gil_level,
                )
            )

        sides = list(targets.values())
        progress(f"TTFT: {args.warmup} + {args.iterations} rounds over {len(sides)} sides ...")
        fake.pace(args.chunk_count, 0.0)
        ttft = asyncio.run(measure_ttft(sides, args.iterations, args.warmup, args.probes))

        progress(f"CPU: {args.cpu_batch} sequential streams per side ...")
        for target in sides:
            cpu[target.key] = asyncio.run(measure_cpu(target, args.cpu_batch, fake))

        progress("concurrent streams ...")
        fake.reset()
        fake.pace(args.chunk_count, args.chunk_interval)
        wanted = [k for k in args.concurrency_sides.split(",") if k] or list(targets)
        others = [t for t in sides if t.key != "direct" and t.key in wanted]
        for target in others:
            concurrency[target.key] = asyncio.run(
                measure_concurrency(
                    target, args.levels, args.chunk_count, args.chunk_interval, fake, args.trials
                )
            )
        if "direct" in wanted:
            reached = max((o.level for runs in concurrency.values() for o in runs), default=0)
            levels = [level for level in args.levels if level <= max(reached, args.levels[0])]
            concurrency["direct"] = asyncio.run(
                measure_concurrency(
                    direct, levels, args.chunk_count, args.chunk_interval, fake, args.trials
                )
            )
    finally:
        progress("stopping child processes ...")
        children.stop_all()
        if database is not None:
            database.stop()

    elapsed = time.monotonic() - bench_started
    concurrency = {key: concurrency[key] for key in targets if key in concurrency}
    report = render(
        {
            "args": args,
            "ttft": ttft,
            "targets": targets,
            "primary": "ours",
            "concurrency": concurrency,
            "cpu": cpu,
            "machine": machine,
            "elapsed": elapsed,
            "litellm_note": litellm_note,
            "command": command,
            "gil": gil,
            "notes": notes,
        }
    )
    print(report)
    if args.write:
        RESULT_FILE.write_text(report)
        progress(f"wrote {RESULT_FILE.relative_to(ROOT)}")


if __name__ == "__main__":
    threading.current_thread().name = "sse-bench"
    main()
