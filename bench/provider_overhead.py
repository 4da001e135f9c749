"""What our provider layer adds over a bare OpenAI SDK call, against the same fake server.

Measures, side by side in one run and interleaved call by call (so drift on the machine
hits both sides alike):

* non-streaming latency: ``AsyncOpenAI.chat.completions.create`` vs
  ``get_chat_provider("openai").complete`` (registry + retries + mapping + pricing);
* streaming time to first token: the first content delta of the bare SDK stream vs the
  first text chunk of ``get_chat_provider("openai").stream``.

The fake OpenAI server (tests/fakes) runs in a child process so it does not compete with
the measured event loop for the GIL. Loopback only; bounded loops.

    .venv/bin/python bench/provider_overhead.py --iterations 1000 --write
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULT_FILE = ROOT / "bench" / "results" / "provider_overhead.md"
SERVER_SCRIPT = """
import sys, time
from tests.fakes.server import FakeVendorServer
from tests.fakes.wire import OpenAIWire
server = FakeVendorServer(OpenAIWire()).start()
server.chunk_count = int(sys.argv[1])
print(server.base_url, flush=True)
try:
    while True:
        time.sleep(3600)
        server.reset()  # recorded requests would otherwise grow without bound
        server.chunk_count = int(sys.argv[1])
except KeyboardInterrupt:
    pass
"""
MODEL = "gpt-4o-mini"
PROMPT = "Summarise the plot of Hamlet in one sentence."


def start_server(chunks: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(chunks)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http://127.0.0.1:"):
        process.kill()
        raise SystemExit(f"fake server did not start (got {base_url!r})")
    return process, base_url


def configure_django(base_url: str) -> None:
    from django.conf import settings

    settings.configure(
        OPENAI_API_KEY="sk-bench-not-a-real-key",
        OPENAI_BASE_URL=base_url,
        OPENAI_SEARCH_MODEL="gpt-4o-mini-search-preview",
        LOCAL_MODEL_ENABLED=False,
        PROVIDER_CONNECT_TIMEOUT=5.0,
        PROVIDER_READ_TIMEOUT=30.0,
        PROVIDER_MAX_RETRIES=2,
        PROVIDER_RETRY_BASE_DELAY=0.5,
        PROVIDER_FALLBACKS="",
    )


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def measure(iterations: int, warmup: int, base_url: str) -> dict[str, list[float]]:
    import openai

    from agents.providers.base import ChatMessage, ChatRequest
    from agents.providers.registry import get_chat_provider

    bare = openai.AsyncOpenAI(
        api_key="sk-bench-not-a-real-key",
        base_url=base_url,
        timeout=openai.Timeout(30.0, connect=5.0),
        max_retries=0,
    )
    ours = get_chat_provider("openai")
    messages = [{"role": "user", "content": PROMPT}]
    request = ChatRequest(model=MODEL, messages=(ChatMessage("user", PROMPT),))

    async def bare_complete() -> None:
        completion = await bare.chat.completions.create(model=MODEL, messages=messages)
        assert completion.choices[0].message.content

    async def ours_complete() -> None:
        result = await ours.complete(request)
        assert result.text

    async def bare_ttft() -> float:
        started = time.perf_counter()
        first = None
        stream = await bare.chat.completions.create(
            model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        )
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter()
        assert first is not None
        return (first - started) * 1000.0

    async def ours_ttft() -> float:
        started = time.perf_counter()
        first = None
        async for chunk in ours.stream(request):
            if first is None and chunk.text:
                first = time.perf_counter()
        assert first is not None
        return (first - started) * 1000.0

    async def timed(call: Callable[[], Awaitable[None]]) -> float:
        started = time.perf_counter()
        await call()
        return (time.perf_counter() - started) * 1000.0

    samples: dict[str, list[float]] = {
        "bare_complete": [],
        "ours_complete": [],
        "bare_ttft": [],
        "ours_ttft": [],
    }
    for round_index in range(warmup + iterations):
        # Alternate which side goes first so neither always gets the warmer connection.
        pairs = [
            ("bare_complete", lambda: timed(bare_complete)),
            ("ours_complete", lambda: timed(ours_complete)),
            ("bare_ttft", bare_ttft),
            ("ours_ttft", ours_ttft),
        ]
        if round_index % 2:
            pairs = [pairs[1], pairs[0], pairs[3], pairs[2]]
        for key, run_once in pairs:
            value = await run_once()
            if round_index >= warmup:
                samples[key].append(value)
    await bare.close()
    return samples


def render(samples: dict[str, list[float]], iterations: int, chunks: int, command: str) -> str:
    def row(label: str, bare_key: str, ours_key: str) -> str:
        bare, ours = samples[bare_key], samples[ours_key]
        b50, o50 = statistics.median(bare), statistics.median(ours)
        b99, o99 = percentile(bare, 99), percentile(ours, 99)
        return (
            f"| {label} | {b50:.3f} | {o50:.3f} | **{o50 - b50:+.3f}** "
            f"| {b99:.3f} | {o99:.3f} | {o99 - b99:+.3f} |"
        )

    return "\n".join(
        [
            "# Provider layer overhead",
            "",
            'Our provider layer (`get_chat_provider("openai")`: registry, retry wrapper,',
            "request/response mapping, stream-completeness check, pricing) against a bare",
            "`openai.AsyncOpenAI` call, both against the same fake OpenAI server",
            "(`tests/fakes`, in a child process) on 127.0.0.1. Calls are interleaved;",
            f"{iterations} measured calls per cell after warm-up; replies of {chunks} chunks.",
            "Goal: under 1 ms added at p50.",
            "",
            "| measure (ms) | bare SDK p50 | ours p50 | added p50 | bare SDK p99 | ours p99 "
            "| added p99 |",
            "|---|---:|---:|---:|---:|---:|---:|",
            row("non-streaming latency", "bare_complete", "ours_complete"),
            row("streaming time to first token", "bare_ttft", "ours_ttft"),
            "",
            f"Machine: {platform.platform()}, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs. Run on {time.strftime('%Y-%m-%d')}.",
            "",
            "Command:",
            "",
            "```",
            command,
            "```",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--chunks", type=int, default=8, help="streamed chunks per reply")
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE.name}")
    args = parser.parse_args()
    if not 1 <= args.iterations <= 100_000:
        raise SystemExit("--iterations must be between 1 and 100000")

    process, base_url = start_server(args.chunks)
    try:
        configure_django(base_url)
        samples = asyncio.run(measure(args.iterations, args.warmup, base_url))
    finally:
        process.terminate()
        process.wait(timeout=5)
    command = ".venv/bin/python bench/provider_overhead.py " + " ".join(sys.argv[1:])
    report = render(samples, args.iterations, args.chunks, command.strip())
    print(report)
    if args.write:
        RESULT_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULT_FILE.write_text(report)


if __name__ == "__main__":
    main()
