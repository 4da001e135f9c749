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
Results: bench/results/sse_streams.md. This file runs the sides; the measurements are
bench/sse_measure.py's, the report bench/sse_report.py's.

    .venv/bin/python bench/sse_streams.py --write
    .venv/bin/python bench/sse_streams.py --quick          # about a minute, smaller samples
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sse_measure import (  # noqa: E402
    CpuBatch,
    LevelResult,
    Target,
    gil_check,
    measure_concurrency,
    measure_cpu,
    measure_ttft,
    openai_target,
    ours_target,
)
from sse_report import STANDING_NOTES, machine_notes, render  # noqa: E402
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
    start_celery,
    start_database,
    start_litellm,
)

from tests.processes import ASGI_SERVERS, SERVED_WITH  # noqa: E402

RESULT_FILE = ROOT / "bench" / "results" / "sse_streams.md"
REDIS_BENCH_URL = "redis://127.0.0.1:6379/14"


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
