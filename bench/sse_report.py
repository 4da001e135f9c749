"""The SSE benchmark's report: bench/results/sse_streams.md, in Markdown, from what
bench/sse_measure.py measured (``render``), with the machine it ran on."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from sse_measure import SETTLE_S, CpuBatch, Target, TtftSamples, max_passed, p50, percentile


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
