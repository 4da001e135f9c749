"""SSE streaming: what our path adds over the fake upstream, side by side with a LiteLLM proxy.

In one run, against the same fake OpenAI server (tests/fakes, in a child process):

1. Time to first token (TTFT), measured by the client to the first content chunk:
   * direct: ``POST /v1/chat/completions`` (stream) on the fake server;
   * ours: ``POST /api/v1/query/stream`` (``use_memory: false``) on a real daphne serving the
     project, in-process pipeline (no REDIS_URL), and, unless ``--skip-redis``, a second
     daphne with REDIS_URL + a Celery worker (``--pool threads``);
   * litellm: ``POST /v1/chat/completions`` on ``litellm --config`` (its own venv).
   Calls are interleaved round by round (rotating order) so drift hits every side alike.
2. Concurrent streams: 50, 100, 200, 500 (``--levels``) started at once, stopping at the
   first level that fails: every chunk of "Echo: <prompt>" must arrive, in order, and no
   gap between consecutive chunks may exceed 2x the fake server's chunk interval.

One raw-asyncio client (bench/sse_client.py) for every side; loopback only; every loop and
wait bounded; every child process ended in a ``finally``. Results: bench/results/sse_streams.md.

    .venv/bin/python bench/sse_streams.py --write
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

from sse_client import Dialect, StreamResult, probe, stream  # noqa: E402
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
    start_celery,
    start_daphne,
    start_database,
    start_litellm,
)

RESULT_FILE = ROOT / "bench" / "results" / "sse_streams.md"
MODEL = "gpt-4o-mini"
REDIS_BENCH_URL = "redis://127.0.0.1:6379/14"
STREAM_TIMEOUT_S = 60.0
# Before each measured call: lets the previous query's bookkeeping after "done" (stored
# outcome, session counters) finish, so TTFT is that of an idle server, on every side alike.
SETTLE_S = 0.05
PROBE_SAMPLES = 100


# -- targets ---------------------------------------------------------------------------------


@dataclass
class Target:
    key: str
    host: str
    port: int
    path: str
    dialect: Dialect
    headers: dict[str, str]
    pids: dict[str, int] = field(default_factory=dict)  # processes whose CPU time is reported

    def body(self, prompt: str) -> dict:
        if self.dialect == "ours":
            return {
                "user_id": "bench",
                # One session per query: no history grows, no summarisation is triggered.
                "session_id": f"bench-{uuid.uuid4().hex[:12]}",
                "query": prompt,
                "use_memory": False,
                "model_provider": "openai",
                "model_name": MODEL,
            }
        return {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": prompt}]}

    async def run(self, prompt: str) -> StreamResult:
        return await stream(
            host=self.host,
            port=self.port,
            path=self.path,
            body=self.body(prompt),
            headers=self.headers,
            dialect=self.dialect,
            timeout=STREAM_TIMEOUT_S,
        )


def openai_target(key: str, base_url: str, headers: dict[str, str]) -> Target:
    """An OpenAI-style streaming endpoint under ``base_url`` (``http://127.0.0.1:PORT/v1``)."""
    parts = urlsplit(base_url)
    return Target(
        key,
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
    headers: dict[str, list[float]] = field(default_factory=dict)  # request -> response headers
    first_frame: dict[str, list[float]] = field(default_factory=dict)  # -> any data frame
    server_ttft: dict[str, list[float]] = field(default_factory=dict)  # ours: pipeline's own
    # ours: responses that stop early, to split the time before the response headers
    no_auth: dict[str, list[float]] = field(default_factory=dict)  # 401, no database call
    bad_body: dict[str, list[float]] = field(default_factory=dict)  # 400: key looked up, invalid
    failures: dict[str, list[str]] = field(default_factory=dict)


async def measure_ttft(targets: list[Target], iterations: int, warmup: int) -> TtftSamples:
    samples = TtftSamples()
    for target in targets:
        for bucket in (
            samples.ttft,
            samples.headers,
            samples.first_frame,
            samples.server_ttft,
            samples.no_auth,
            samples.bad_body,
        ):
            bucket[target.key] = []
        samples.failures[target.key] = []
    for round_index in range(warmup + iterations):
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
            samples.headers[target.key].append((result.headers_at - result.started) * 1000)
            samples.first_frame[target.key].append((result.first_frame_at - result.started) * 1000)
            if result.server_ttft_ms is not None:
                samples.server_ttft[target.key].append(result.server_ttft_ms)
    for target in targets:
        if target.dialect == "ours":
            await _probe_ours(target, samples)
    return samples


async def _probe_ours(target: Target, samples: TtftSamples) -> None:
    """Requests that end early, on an idle server: 401 (no key) and 400 (invalid body)."""
    common = {"host": target.host, "port": target.port, "method": "POST", "path": target.path}
    for _ in range(PROBE_SAMPLES):
        await asyncio.sleep(SETTLE_S)
        status, ms = await probe(**common, body=target.body("probe"), headers={})
        assert status == 401, status
        samples.no_auth[target.key].append(ms)
        await asyncio.sleep(SETTLE_S)
        status, ms = await probe(**common, body={"user_id": "bench"}, headers=target.headers)
        assert status == 400, status
        samples.bad_body[target.key].append(ms)


# -- 2. concurrent streams -------------------------------------------------------------------


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
    results = await asyncio.gather(*(target.run(prompt) for prompt in prompts))
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
        local = openai_target("inproc", in_process.base_url, {})
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


def render(context: dict) -> str:
    args = context["args"]
    ttft: TtftSamples = context["ttft"]
    labels: dict[str, str] = context["labels"]
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
        "every side once, in rotating order, each call on a fresh loopback connection after a "
        f"{SETTLE_S * 1000:.0f} ms pause (so the previous query's post-answer bookkeeping does "
        "not overlap: this is the TTFT of an idle server). TTFT is "
        "request written → first content chunk parsed by the client (`choices[0].delta.content` "
        'for OpenAI-style streams, the first `{"type": "chunk"}` frame for ours). The fake '
        f"server replies in {args.chunk_count} chunks with no pacing during this phase. Ours is "
        "called with `use_memory: false`.",
        "",
        "| side | TTFT p50 (ms) | TTFT p99 (ms) | added p50 vs direct | added p99 vs direct "
        "| first SSE frame p50 | failures |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    direct = ttft.ttft.get("direct", [])
    for key, label in labels.items():
        values = ttft.ttft.get(key)
        if values is None:
            continue
        added50 = p50(values) - p50(direct)
        added99 = percentile(values, 99) - percentile(direct, 99)
        lines.append(
            f"| {label} | {fmt(p50(values))} | {fmt(percentile(values, 99))} | "
            f"{'—' if key == 'direct' else '**' + f'{added50:+.1f}' + '**'} | "
            f"{'—' if key == 'direct' else f'{added99:+.1f}'} | "
            f"{fmt(p50(ttft.first_frame[key]))} | {len(ttft.failures[key])} |"
        )
    breakdown = [key for key, values in ttft.no_auth.items() if values]
    if breakdown:
        lines += [
            "",
            "Where our time goes before the first chunk (p50, ms). The 401 and 400 columns are "
            f"{PROBE_SAMPLES} separate requests each on the idle server after the rounds above; "
            "the other columns come from the rounds. daphne sends the response headers together "
            "with the first body bytes, so the first SSE frame is also when the client first "
            "hears anything.",
            "",
            "| side | 401, no key (daphne + consumer, no DB) | 400, bad body (+ API-key lookup, "
            "validation) | first SSE frame, `node` (+ `query_start`, dispatch, pipeline start) "
            "| first chunk | pipeline's own TTFT (`latency.time_to_first_token_ms`) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for key in breakdown:
            lines.append(
                f"| {labels[key]} | {fmt(p50(ttft.no_auth[key]))} | "
                f"{fmt(p50(ttft.bad_body[key]))} | {fmt(p50(ttft.first_frame[key]))} | "
                f"{fmt(p50(ttft.ttft[key]))} | {fmt(p50(ttft.server_ttft[key]))} |"
            )
    if "ours" in ttft.ttft and "litellm" in ttft.ttft and direct:
        ours_added = p50(ttft.ttft["ours"]) - p50(direct)
        lite_added = p50(ttft.ttft["litellm"]) - p50(direct)
        ratio = ours_added / lite_added if lite_added > 0 else float("nan")
        lines += [
            "",
            f"Added TTFT, ours (in-process) / LiteLLM at p50: {ours_added:.1f} / "
            f"{lite_added:.1f} ms = **{ratio:.2f}x**. Goal for ours: ≤ 10 ms added at p50.",
        ]
    lines += [
        "",
        "## 2. Concurrent streams",
        "",
        f"N streams started at once (levels {', '.join(map(str, args.levels))}; a side stops at "
        f"its first failing level). The fake server sends {args.chunk_count} chunks "
        f"{args.chunk_interval * 1000:.0f} ms apart. A level passes when every stream gets all "
        f"{args.chunk_count} chunks of its own `Echo: <prompt>`, in order, and no gap between "
        f"two consecutive chunks exceeds {2 * args.chunk_interval * 1000:.0f} ms (2x the "
        "interval). Each level is run up to "
        f"{args.trials} times and passes only if every run passes (with one run per level the "
        "verdict flipped between bench runs); ok/lost/stalled are summed over the runs made, "
        "gaps are the worst run's, TTFT p50 and CPU the median run's. TTFT under load is "
        'reported but is not a pass criterion. "peak streaming" is the fewest, over the runs, '
        "of the most streams between their first and last chunk at one instant (checks the "
        "level really was concurrent).",
        "",
        "| side | streams | runs passed | ok | lost | stalled | max gap (ms) | p99 of per-stream "
        "max gap | TTFT p50 / p99 under load (ms) | peak streaming | wall (s) | CPU ms per "
        "stream | upstream calls |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---|---|",
    ]
    for key, outcomes in context["concurrency"].items():
        for o in outcomes:
            upstream = ", ".join(f"{path.rsplit('/', 1)[-1]} {n}" for path, n in o.upstream.items())
            cpu = ", ".join(
                f"{name} {seconds * 1000 / o.level:.1f}" for name, seconds in o.cpu_s.items()
            )
            lines.append(
                f"| {labels[key]} | {o.level} | "
                f"{o.trials_passed}/{o.trials}{'' if o.passed else ' **FAIL**'} | {o.ok} | "
                f"{o.lost} | {o.stalled} | {fmt(o.max_gap_ms)} | {fmt(o.p99_gap_ms)} | "
                f"{fmt(o.ttft_p50_ms)} / {fmt(o.ttft_p99_ms)} | {o.peak_streaming} | "
                f"{o.wall_s:.1f} | {cpu} | {upstream} |"
            )
    lines += ["", "Largest level passed:", ""]
    maxima = {key: max_passed(outcomes) for key, outcomes in context["concurrency"].items()}
    direct_outcomes = context["concurrency"].get("direct", [])
    ceiling = next((o.level for o in direct_outcomes if not o.passed), None)
    if ceiling is not None:
        lines += [
            f"(The harness itself — bench client and fake server, no proxy — fails the criterion "
            f"at {ceiling} streams on this machine, so no side can be shown to pass {ceiling} "
            "here.)",
            "",
        ]
    for key, value in maxima.items():
        lines.append(f"- {labels[key]}: **{value}**")
    if "ours" in maxima and "litellm" in maxima and maxima["litellm"]:
        lines.append(
            f"- ratio ours (in-process) / LiteLLM: {maxima['ours'] / maxima['litellm']:.2f}x"
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
        lines += [
            "",
            "Everything above used the child process (the bench process also runs the client "
            "that measures every side).",
        ]
    lines += ["", "## Notes", "", *context["notes"], ""]
    return "\n".join(lines)


STANDING_NOTES = [
    '- The "ours" rows include SecantusDB, a MongoDB wire-protocol server written in Python '
    '(the embedded/test database), on the same 2 cores: its CPU per stream ("db" above) is '
    "larger than daphne's own. A real MongoDB was not measured here. The LiteLLM "
    "proxy runs without a database (no DATABASE_URL, spend logs off).",
    "- daphne and the LiteLLM proxy each run as one process (no workers); both log one access "
    "line per request, as by default. The fake server (bench/sse_fake_server.py) is the test "
    "fake with a listen backlog of 1024.",
    "- With EMBEDDING_PROVIDER=auto and an OpenAI key set (the production default), each of "
    "our queries also calls the fake's /v1/embeddings after the answer (`use_memory: false` "
    "only skips retrieval); see the upstream calls column.",
    "- The bench client is one asyncio process with raw streams (bench/sse_client.py); the "
    "harness check above shows what the client and fake server alone do at the same load.",
]


# -- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200, help="measured TTFT rounds")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--levels",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 20, 50, 100, 200, 500],
    )
    parser.add_argument("--chunk-count", type=int, default=20)
    parser.add_argument("--trials", type=int, default=3, help="runs per concurrency level")
    parser.add_argument("--chunk-interval", type=float, default=0.05)
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--skip-redis", action="store_true", help="no REDIS_URL + Celery config")
    parser.add_argument(
        "--celery-concurrency",
        type=int,
        default=0,
        help="worker threads (default: the largest level)",
    )
    parser.add_argument("--embedding", choices=["auto", "local"], default="auto")
    parser.add_argument("--gil-samples", type=int, default=100)
    parser.add_argument("--gil-level", type=int, default=200)
    parser.add_argument("--litellm-spec", default=LITELLM_SPEC)
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE.name}")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    bench_started = time.monotonic()
    command = ".venv/bin/python bench/sse_streams.py " + shlex.join(sys.argv[1:])
    machine = machine_notes()
    children = Children()
    database = None
    notes: list[str] = list(STANDING_NOTES)
    labels: dict[str, str] = {"direct": "direct (fake server)"}
    concurrency: dict[str, list[LevelResult]] = {}
    litellm_note = "not run (--skip-litellm)"
    gil = None
    WORKDIR.mkdir(parents=True, exist_ok=True)
    try:
        progress("starting the fake OpenAI server (child process) ...")
        fake = FakeProcess(children)
        direct = openai_target("direct", fake.base_url, {})
        targets = [direct]

        litellm_target = None
        if not args.skip_litellm:
            try:
                venv, version = ensure_litellm_venv(args.litellm_spec)
                progress(f"starting the LiteLLM proxy {version} ...")
                host, port, seconds, pid = start_litellm(children, venv, fake.base_url)
                labels["litellm"] = f"LiteLLM proxy {version}"
                litellm_target = openai_target(
                    "litellm",
                    f"http://{host}:{port}/v1",
                    {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"},
                )
                litellm_target.pids = {"litellm": pid}
                litellm_note = (
                    f"`{args.litellm_spec}` in var/bench-litellm-venv, `litellm --config` "
                    f"(uvicorn, 1 worker), ready in {seconds:.1f} s"
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
        manage(env, "migrate", "--noinput")
        api_key = manage(env, "create_api_key", "--name", "bench").strip().splitlines()[-1]
        auth = {"Authorization": f"Bearer {api_key}"}

        progress("starting daphne (in-process pipeline, no REDIS_URL) ...")
        host, port, seconds, pid = start_daphne(children, env, "daphne-embedded")
        labels["ours"] = "ours: daphne, in-process pipeline"
        ours = Target(
            "ours",
            host,
            port,
            "/api/v1/query/stream",
            "ours",
            auth,
            pids={"daphne": pid, "db": database.pid},
        )
        targets.append(ours)
        if litellm_target is not None:
            targets.append(litellm_target)
        notes.append(
            f"- daphne (in-process pipeline) answered /api/v1/health {seconds:.1f} s after start."
        )

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

        progress(f"TTFT: {args.warmup} + {args.iterations} rounds over {len(targets)} sides ...")
        fake.pace(args.chunk_count, 0.0)
        ttft = asyncio.run(measure_ttft(targets, args.iterations, args.warmup))
        fake.reset()

        progress("concurrent streams ...")
        fake.pace(args.chunk_count, args.chunk_interval)
        for target in targets:
            concurrency[target.key] = asyncio.run(
                measure_concurrency(
                    target, args.levels, args.chunk_count, args.chunk_interval, fake, args.trials
                )
            )

        if not args.skip_redis:
            try:
                import redis

                redis.Redis.from_url(REDIS_BENCH_URL, socket_connect_timeout=2).flushdb()
            except Exception as exc:
                notes.append(f"- REDIS_URL configuration not run: Redis unreachable ({exc}).")
            else:
                worker_threads = args.celery_concurrency or max(args.levels)
                progress(
                    f"starting a Celery worker ({worker_threads} threads) and daphne with "
                    "REDIS_URL ..."
                )
                redis_env = {**env, "REDIS_URL": REDIS_BENCH_URL}
                worker = start_celery(children, redis_env, worker_threads)
                host, port, seconds, pid = start_daphne(children, redis_env, "daphne-redis")
                labels["ours_redis"] = (
                    f"ours: daphne + Redis + Celery worker ({worker_threads} threads)"
                )
                ours_redis = Target(
                    "ours_redis",
                    host,
                    port,
                    "/api/v1/query/stream",
                    "ours",
                    auth,
                    pids={"daphne": pid, "worker": worker.pid, "db": database.pid},
                )
                progress("TTFT with REDIS_URL ...")
                fake.pace(args.chunk_count, 0.0)
                redis_ttft = asyncio.run(
                    measure_ttft([direct, ours_redis], args.iterations, args.warmup)
                )
                for bucket_name in (
                    "ttft",
                    "headers",
                    "first_frame",
                    "server_ttft",
                    "no_auth",
                    "bad_body",
                    "failures",
                ):
                    getattr(ttft, bucket_name)["ours_redis"] = getattr(redis_ttft, bucket_name)[
                        "ours_redis"
                    ]
                direct_again = p50(redis_ttft.ttft["direct"])
                notes.append(
                    f"- During the REDIS_URL TTFT rounds, direct TTFT p50 was {direct_again:.1f} "
                    "ms (its own interleaved baseline); the table subtracts the first phase's "
                    "direct p50."
                )
                fake.reset()
                fake.pace(args.chunk_count, args.chunk_interval)
                concurrency["ours_redis"] = asyncio.run(
                    measure_concurrency(
                        ours_redis,
                        args.levels,
                        args.chunk_count,
                        args.chunk_interval,
                        fake,
                        args.trials,
                    )
                )
    finally:
        progress("stopping child processes ...")
        children.stop_all()
        if database is not None:
            database.stop()

    elapsed = time.monotonic() - bench_started
    order = ["direct", "ours", "ours_redis", "litellm"]
    labels = {key: labels[key] for key in order if key in labels}
    concurrency = {key: concurrency[key] for key in order if key in concurrency}
    report = render(
        {
            "args": args,
            "ttft": ttft,
            "labels": labels,
            "concurrency": concurrency,
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
