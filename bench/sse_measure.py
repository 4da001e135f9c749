"""The SSE benchmark's measurements: the sides it calls and the three things it measures.

A ``Target`` is one side (the fake upstream, a LiteLLM proxy, our SSE or websocket
endpoint); the measurements are time to first token over interleaved rounds, CPU per
stream over a sequential batch, and concurrent streams level by level, plus a harness
check (the fake server in this process vs a child). bench/sse_streams.py runs them and
bench/sse_report.py renders what they return; bench/openai_compat_ttft.py reuses them.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sse_client import Dialect, StreamResult, probe, stream, ws_stream
from sse_stack import FakeProcess, cpu_seconds, progress

MODEL = "gpt-4o-mini"
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


def ours_target(
    key: str, label: str, host: str, port: int, auth: dict[str, str], pids: dict[str, int], **kw
) -> Target:
    transport = kw.pop("transport", "sse")
    path = "/ws/chat/" if transport == "ws" else "/api/v1/query/stream"
    return Target(key, label, host, port, path, "ours", auth, transport=transport, pids=pids, **kw)


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
