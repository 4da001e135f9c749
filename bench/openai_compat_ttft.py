"""What /v1/chat/completions (the OpenAI-compatible API) adds to the time to first token,
beside /api/v1/query/stream and a LiteLLM proxy, in one run against one fake OpenAI server.

Sides, all started up front and measured in the same interleaved rounds (the measuring
loop, client, targets and statistics are bench/sse_measure.py's; the processes are
bench/sse_stack.py's):

* direct: ``POST /v1/chat/completions`` (stream) on the fake server;
* LiteLLM: the proxy (``litellm --config``, its own venv) in front of the fake server;
* ours, /api/v1/query/stream: the project's SSE, ``use_memory: false``;
* ours, /v1/chat/completions: the same run through the OpenAI-compatible edge, model
  ``openai/gpt-4o-mini``, ``stream: true`` (no platform memory: /v1's default).

``--tools`` adds LiteLLM and our /v1 again with two function tools in the request
(``tool_choice: auto``), as an agent framework sends them; the fake server answers text, so
what is measured is the cost of carrying and translating the tools.

Both of ours are served by one ``--server`` process (in-process runs, no REDIS_URL), on
one throw-away SecantusDB. TTFT is request written → first content chunk parsed.

    .venv/bin/python bench/openai_compat_ttft.py --write
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sse_measure import (  # noqa: E402
    MODEL,
    Target,
    TtftSamples,
    measure_ttft,
    openai_target,
    ours_target,
    p50,
    percentile,
)
from sse_stack import (  # noqa: E402
    LITELLM_MASTER_KEY,
    LITELLM_SPEC,
    WORKDIR,
    Children,
    FakeProcess,
    LiteLLMUnavailable,
    ensure_litellm_venv,
    manage,
    progress,
    project_env,
    start_asgi_server,
    start_database,
    start_litellm,
)

from tests.processes import ASGI_SERVERS, SERVED_WITH  # noqa: E402

RESULT_FILE = ROOT / "bench" / "results" / "openai_compat_ttft.md"
V1_MODEL = f"openai/{MODEL}"
BENCH_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_orders",
            "description": "Find a customer's orders by status.",
            "parameters": {
                "type": "object",
                "properties": {"status": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["status"],
            },
        },
    },
]


@dataclass
class V1Target(Target):
    """Our /v1/chat/completions: OpenAI's request, with the model named provider/model."""

    def body(self, prompt: str, session: str | None = None) -> dict:
        return {**super().body(prompt, session), "model": V1_MODEL}


@dataclass
class WithTools(Target):
    """The same OpenAI-style request with function tools, as an agent framework sends it."""

    def body(self, prompt: str, session: str | None = None) -> dict:
        return {**super().body(prompt, session), "tools": BENCH_TOOLS, "tool_choice": "auto"}


@dataclass
class V1WithTools(WithTools, V1Target):
    pass


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=100, help="measured rounds")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--chunk-count", type=int, default=20)
    parser.add_argument("--server", choices=ASGI_SERVERS, default=SERVED_WITH)
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--tools", action="store_true", help="also measure requests with tools")
    parser.add_argument("--litellm-spec", default=LITELLM_SPEC)
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE.name}")
    return parser.parse_args()


def render(
    *, args: argparse.Namespace, targets: list[Target], samples: TtftSamples, notes: list[str]
) -> str:
    direct = samples.ttft["direct"]
    base50, base99 = p50(direct), percentile(direct, 99)
    added = {
        t.key: (p50(samples.ttft[t.key]) - base50, percentile(samples.ttft[t.key], 99) - base99)
        for t in targets
        if samples.ttft[t.key]
    }
    litellm = added.get("litellm")
    lines = [
        "# /v1/chat/completions: time to first token beside /api/v1/query/stream and LiteLLM",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')} on 2 shared cores; load average before the "
        f"run {os.getloadavg()[0]:.2f}.",
        "",
        "```",
        ".venv/bin/python bench/openai_compat_ttft.py " + shlex.join(sys.argv[1:]),
        "```",
        "",
        f"{args.iterations} measured rounds after {args.warmup} warm-up rounds; each round "
        "calls every side once, in rotating order, 50 ms apart, each on a fresh loopback "
        f"connection. The fake server answers in {args.chunk_count} unpaced chunks. Ours: "
        f"{args.server}, in-process runs (no REDIS_URL), `use_memory: false` on both edges.",
        "",
        "| side | TTFT p50 (ms) | TTFT p99 (ms) | added p50 vs direct | added p99 vs direct "
        "| added p50 / LiteLLM's (same request) | failures |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for target in targets:
        ttft = samples.ttft[target.key]
        failures = len(samples.failures[target.key])
        if not ttft:
            lines.append(f"| {target.label} | — | — | — | — | — | {failures} |")
            continue
        if target.key == "direct":
            lines.append(
                f"| {target.label} | {base50:.1f} | {base99:.1f} | — | — | — | {failures} |"
            )
            continue
        a50, a99 = added[target.key]
        # Each side against LiteLLM carrying the same request: with tools against with tools.
        peer = added.get("litellm-tools") if target.key.endswith("-tools") else litellm
        ratio = f"{a50 / peer[0]:.2f}x" if peer and not target.key.startswith("litellm") else "—"
        lines.append(
            f"| {target.label} | {p50(ttft):.1f} | {percentile(ttft, 99):.1f} | **+{a50:.1f}** "
            f"| +{a99:.1f} | {ratio} | {failures} |"
        )
    if "v1" in added and "query" in added:
        edge = added["v1"][0] - added["query"][0]
        lines += [
            "",
            f"The OpenAI-compatible edge over /api/v1/query/stream, same run: **{edge:+.1f} ms** "
            "at p50 (request translation, the model catalogue, Django's middleware and DRF "
            "in front of the same query_start and event log that the SSE consumer follows).",
        ]
    for target in targets:
        if samples.failures[target.key]:
            notes.append(f"- {target.label}: first failure: {samples.failures[target.key][0]}")
    lines += ["", "Notes:", "", *notes, ""]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    children = Children()
    database = None
    notes: list[str] = []
    targets: list[Target] = []
    WORKDIR.mkdir(parents=True, exist_ok=True)
    try:
        progress("starting the fake OpenAI server (child process) ...")
        fake = FakeProcess(children)
        fake.pace(args.chunk_count, 0.0)
        targets.append(openai_target("direct", "direct (fake server)", fake.base_url, {}))
        if not args.skip_litellm:
            try:
                venv, version = ensure_litellm_venv(args.litellm_spec)
                progress(f"starting the LiteLLM proxy {version} ...")
                host, port, seconds, pid = start_litellm(children, venv, fake.base_url)
                litellm = openai_target(
                    "litellm",
                    f"LiteLLM proxy {version}",
                    f"http://{host}:{port}/v1",
                    {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"},
                )
                targets.append(litellm)
                if args.tools:
                    label = f"LiteLLM proxy {version}, with tools"
                    targets.append(
                        WithTools(**{**vars(litellm), "key": "litellm-tools", "label": label})
                    )
                notes.append(f"- LiteLLM: `{args.litellm_spec}`, ready in {seconds:.1f} s.")
            except LiteLLMUnavailable as exc:
                notes.append(f"- LiteLLM **could not be run**: {exc}")
                progress(f"LiteLLM unavailable: {exc}")
        progress("starting a throw-away SecantusDB, migrating, creating an API key ...")
        mongodb_uri, database = start_database(children)
        env = project_env(
            fake_base_url=fake.base_url, mongodb_uri=mongodb_uri, redis_url=None, embedding="auto"
        )
        manage(env, "migrate", "--noinput")
        api_key = manage(env, "create_api_key", "--name", "bench").strip().splitlines()[-1]
        auth = {"Authorization": f"Bearer {api_key}"}
        progress(f"starting {args.server} (in-process pipeline) ...")
        host, port, seconds, pid = start_asgi_server(children, env, "openai-compat", args.server)
        notes.append(f"- {args.server} answered /api/v1/health {seconds:.1f} s after start.")
        pids = {args.server: pid, "db": database.pid}
        targets.append(
            ours_target(
                "query", "ours: /api/v1/query/stream", host, port, auth, pids, use_memory=False
            )
        )
        targets.append(
            V1Target(
                "v1",
                "ours: /v1/chat/completions",
                host,
                port,
                "/v1/chat/completions",
                "openai",
                auth,
                pids=pids,
            )
        )
        if args.tools:
            targets.append(
                V1WithTools(
                    "v1-tools",
                    "ours: /v1/chat/completions, with tools",
                    host,
                    port,
                    "/v1/chat/completions",
                    "openai",
                    auth,
                    pids=pids,
                )
            )
        progress(f"{len(targets)} sides x ({args.warmup} + {args.iterations}) rounds ...")
        samples = asyncio.run(measure_ttft(targets, args.iterations, args.warmup, probes=0))
    finally:
        children.stop_all()
        if database is not None:
            database.stop()
    report = render(args=args, targets=targets, samples=samples, notes=notes)
    print(report)
    if args.write:
        RESULT_FILE.write_text(report)


if __name__ == "__main__":
    main()
