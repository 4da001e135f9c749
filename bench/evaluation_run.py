"""An evaluation of N items x 2 targets x 1 LLM judge through the real run path, against
the fake vendor servers: wall time, and the overhead per item beyond the provider calls.

The stack is the embedded default (as bench/ttft_profile.py starts it): a throw-away
SecantusDB child process, no REDIS_URL (the in-process dispatcher and event log), and the
fake vendors of tests/fakes in a child process (bench/evaluation_fakes.py): OpenAI for the
two targets (gpt-4o-mini and gpt-4o), Anthropic for the judge, which is scripted to answer
a verdict. The run is what ``POST /api/v1/evaluations`` queues and the worker (or
``manage.py run_evaluation``) executes: ``evaluation_create`` then ``evaluation_execute``,
each answer through ``query_start`` + ``query_wait`` (the run entry of every question),
scored by the judge, stored, resumable.

**Provider time**, measured two ways and both reported:

- *client side*: every call into our provider layer (``ChatProvider.stream`` from the
  first request to the last chunk, ``complete``, and ``EmbeddingProvider.embed``) is
  wrapped with ``time.perf_counter``: the vendor SDK, HTTP on loopback and the fake.
- *server side*: the fakes sum their own handling time per request (request read to
  response written), which is the part a real vendor's latency replaces.

Overhead per item = (wall time - provider time) / items, an item being one dataset row
asked of both targets and judged twice; per answer is half of it. Calls are sequential
(a run asks one cell at a time), so the times add up. A warm-up run of ``--warmup`` items
goes first (imports, connection pools, the first SecantusDB collections) and is not counted.

    .venv/bin/python bench/evaluation_run.py --items 200 --write
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pymongo import monitoring  # noqa: E402
from sse_stack import Children, progress, project_env, start_database  # noqa: E402

RESULT_FILE = ROOT / "bench" / "results" / "evaluation_run.md"
TARGETS = [
    {"name": "mini", "overrides": {"model_provider": "openai", "model_name": "gpt-4o-mini"}},
    {"name": "4o", "overrides": {"model_provider": "openai", "model_name": "gpt-4o"}},
]
JUDGE = {
    "type": "judge",
    "provider": "anthropic",
    "rubric": "Score 1 when the answer is correct and to the point, 0 when it is wrong.",
}
# Client-side provider time, by kind of call.
PROVIDER_S: dict[str, list[float]] = defaultdict(list)
# Database commands while measuring: "command collection" -> [count, total microseconds].
DATABASE: dict[str, list[int]] = defaultdict(lambda: [0, 0])
# Per "command collection", the slowest one's command (its filter or pipeline), to name
# what grows.
SLOWEST: dict[str, tuple[int, str]] = {}
# When each answer of the measured run was stored (perf_counter), to see growth.
ANSWERED_AT: list[float] = []


class _DatabaseCommands(monitoring.CommandListener):
    """pymongo command monitoring: where the overhead goes (round trips to SecantusDB)."""

    recording = False

    def __init__(self) -> None:
        self._started: dict[int, tuple[str, Any]] = {}

    def started(self, event: Any) -> None:
        if self.recording:
            collection = event.command.get(event.command_name)
            where = collection if isinstance(collection, str) else ""
            shape = event.command.get("pipeline") or event.command.get("filter")
            self._started[event.request_id] = (f"{event.command_name} {where}".strip(), shape)

    def succeeded(self, event: Any) -> None:
        name, shape = self._started.pop(event.request_id, (None, None))
        if self.recording and name is not None:
            totals = DATABASE[name]
            totals[0] += 1
            totals[1] += event.duration_micros
            if event.duration_micros > SLOWEST.get(name, (0, ""))[0]:
                SLOWEST[name] = (event.duration_micros, str(shape)[:400])

    def failed(self, event: Any) -> None:
        self._started.pop(event.request_id, None)


class FakeVendors:
    """bench/evaluation_fakes.py as a child process."""

    def __init__(self, children: Children) -> None:
        self.process = children.popen(
            "fake-vendors",
            [sys.executable, str(ROOT / "bench" / "evaluation_fakes.py")],
            log=None,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_urls = json.loads(self._line())

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def command(self, text: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        return self._line()

    def stats(self) -> dict[str, Any]:
        return json.loads(self.command("stats"))

    def reset(self) -> None:
        assert self.command("reset") == "ok"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200, help="dataset items (default 200)")
    parser.add_argument("--warmup", type=int, default=5, help="items of an uncounted first run")
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE.name}")
    return parser.parse_args()


def instrument() -> None:
    """Time every provider call client side (after django.setup())."""
    from agents.providers.anthropic_provider import AnthropicProvider
    from agents.providers.base import ChatProvider, EmbeddingProvider
    from agents.providers.embeddings import LocalEmbeddings, OpenAIEmbeddings
    from agents.providers.openai_provider import OpenAIProvider

    def timed_stream(original):
        async def stream(self, request):
            started = time.perf_counter()
            try:
                async for chunk in original(self, request):
                    yield chunk
            finally:
                PROVIDER_S["chat stream"].append(time.perf_counter() - started)

        return stream

    def timed_complete(original):
        async def complete(self, request):
            started = time.perf_counter()
            try:
                return await original(self, request)
            finally:
                PROVIDER_S["chat complete"].append(time.perf_counter() - started)

        return complete

    def timed_embed(original):
        async def embed(self, texts):
            started = time.perf_counter()
            try:
                return await original(self, texts)
            finally:
                PROVIDER_S["embeddings"].append(time.perf_counter() - started)

        return embed

    # The vendor classes themselves, inside the retry/fallback wrapper (ReliableProvider):
    # a retry's back-off counts as ours, the calls as the provider's.
    for cls in (OpenAIProvider, AnthropicProvider):
        assert issubclass(cls, ChatProvider)
        cls.stream = timed_stream(cls.stream)
        # A complete() inherited from ChatProvider collects stream(): timed there already.
        if "complete" in cls.__dict__:
            cls.complete = timed_complete(cls.complete)
    for cls in (OpenAIEmbeddings, LocalEmbeddings):
        assert issubclass(cls, EmbeddingProvider)
        cls.embed = timed_embed(cls.embed)


def drain_background() -> float:
    """Seconds until the in-process background queue is empty.

    Each answer queues ``queries.after_completion`` (is a session summary due?) on the
    dispatcher's one background thread; some are still queued when the run returns. They
    are part of the cost per answer, so the run is not over until they are done. (The
    executor is private: a bench may look inside, the project does not.)
    """
    from llmplatform.core.dispatch import dispatcher

    started = time.perf_counter()
    # One worker, first in first out: when this no-op runs, everything before it has.
    dispatcher()._background.submit(lambda: None).result(timeout=600)
    return time.perf_counter() - started


def evaluate(owner, *, items: int, label: str) -> tuple[Any, float]:
    """Create a dataset of ``items`` questions and run 2 targets x the judge over it."""
    from evaluations.datasets import dataset_create, dataset_items_add
    from evaluations.services import evaluation_create, evaluation_execute

    dataset = dataset_create(owner=owner, name=f"bench-{label}-{uuid.uuid4().hex[:6]}")
    dataset_items_add(
        dataset=dataset,
        items=[
            {"input": f"Question {n}: what is {n} plus {n}?", "reference": str(2 * n)}
            for n in range(items)
        ],
    )
    run = evaluation_create(
        owner=owner,
        api_key=None,
        dataset=dataset,
        targets=TARGETS,
        scorers=[JUDGE],
        repeats=1,
        in_background=False,
    )
    done = [0]

    def tick(current) -> None:
        ANSWERED_AT.append(time.perf_counter())
        done[0] = current.done + current.failed
        if done[0] % 50 == 0:
            progress(f"{label}: {done[0]}/{current.total} answers")

    ANSWERED_AT.clear()
    started = time.perf_counter()
    ANSWERED_AT.append(started)
    finished = evaluation_execute(run_id=str(run.pk), progress=tick)
    wall = time.perf_counter() - started
    return finished, wall


def main() -> None:
    args = parse_args()
    children = Children()
    database = None
    try:
        fakes = FakeVendors(children)
        mongodb_uri, database = start_database(children)
        os.environ.update(
            project_env(
                fake_base_url=fakes.base_urls["openai"],
                mongodb_uri=mongodb_uri,
                redis_url=None,
                embedding="auto",
            )
        )
        os.environ.update(
            {
                "MONGO_DB": "evaluation_bench",
                "ANTHROPIC_API_KEY": "sk-ant-bench-not-a-real-key",
                "ANTHROPIC_BASE_URL": fakes.base_urls["anthropic"],
            }
        )
        os.environ.pop("REDIS_URL", None)
        os.environ["DJANGO_SETTINGS_MODULE"] = "llmplatform.settings"
        import django

        listener = _DatabaseCommands()
        monitoring.register(listener)  # before any client exists
        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from evaluations.selectors import evaluation_report

        call_command("migrate", interactive=False, verbosity=0)
        owner = get_user_model().objects.create_user(username=f"bench-{uuid.uuid4().hex[:6]}")
        instrument()
        if args.warmup:
            progress(f"warm-up: {args.warmup} items x 2 targets")
            evaluate(owner, items=args.warmup, label="warm-up")
            drain_background()
        PROVIDER_S.clear()
        fakes.reset()
        load_before = os.getloadavg()
        progress(f"measured: {args.items} items x 2 targets x 1 judge")
        listener.recording = True
        run, execute_s = evaluate(owner, items=args.items, label="measured")
        drain_s = drain_background()
        listener.recording = False
        load_after = os.getloadavg()
        server = fakes.stats()
        report_started = time.perf_counter()
        report = evaluation_report(run=run)
        report_s = time.perf_counter() - report_started
    finally:
        children.stop_all()
        if database is not None:
            database.stop()
    lines = render(
        args, run, (execute_s, drain_s), server, report, report_s, load_before, load_after
    )
    print("\n".join(lines))
    if args.write:
        RESULT_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULT_FILE.write_text("\n".join(lines) + "\n")
        progress(f"wrote {RESULT_FILE}")


def render(args, run, times, server, report, report_s, load_before, load_after) -> list[str]:
    items = args.items
    execute_s, drain_s = times
    wall = execute_s + drain_s
    answers = run.done + run.failed
    client_s = sum(sum(values) for values in PROVIDER_S.values())
    server_s = sum(vendor["server_s"] for vendor in server.values())
    requests = sum(vendor["requests"] for vendor in server.values())
    judge_means = [
        target["scorers"].get("judge", {}).get("mean") for target in report.get("targets", [])
    ]
    lines = [
        "# Evaluation run: items x 2 targets x 1 LLM judge, through the real run path",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')} UTC on this 2-core shared machine; load average "
        f"(1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after. "
        f"`{' '.join(['.venv/bin/python bench/evaluation_run.py', *sys.argv[1:]])}`",
        "",
        "Embedded stack (SecantusDB child process, in-process dispatcher, no Redis); fake "
        "OpenAI (targets) and Anthropic (judge) servers in a child process. Method: see the "
        "docstring of bench/evaluation_run.py.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| run status | {run.status}: {run.done} answers done, {run.failed} failed "
        f"(of {run.total}) |",
        f"| judge mean per target | {', '.join(str(mean) for mean in judge_means)} |",
        f"| wall time: `evaluation_execute` + draining the background work it queued | "
        f"**{wall:.1f} s** = {execute_s:.1f} + {drain_s:.1f} s ({wall / items * 1000:.0f} ms "
        f"per item, {wall / max(answers, 1) * 1000:.0f} ms per answer) |",
    ]
    for kind, values in sorted(PROVIDER_S.items()):
        lines.append(
            f"| provider calls, client side: {kind} | {len(values)} calls, {sum(values):.2f} s "
            f"({sum(values) / max(len(values), 1) * 1000:.1f} ms each) |"
        )
    for name, vendor in sorted(server.items()):
        paths = ", ".join(f"{path} {n}" for path, n in sorted(vendor["paths"].items()))
        lines.append(
            f"| fake {name}, server side | {vendor['requests']} requests ({paths}), "
            f"{vendor['server_s'] * 1000:.0f} ms handling |"
        )
    commands = sum(count for count, _ in DATABASE.values())
    database_s = sum(micros for _, micros in DATABASE.values()) / 1e6
    busiest = sorted(DATABASE.items(), key=lambda kv: -kv[1][1])[:6]
    lines.append(
        f"| database commands (SecantusDB; round trips as pymongo times them, summed over "
        f"threads, which overlap) | {commands} "
        f"({commands / max(answers, 1):.1f} per answer), {database_s:.1f} s "
        f"({database_s / wall * 100:.0f}% of the wall time); most time: "
        + ", ".join(f"{name} {count}x {micros / 1e6:.1f} s" for name, (count, micros) in busiest)
        + " |"
    )
    steps = [later - earlier for earlier, later in itertools.pairwise(ANSWERED_AT)]
    if len(steps) >= 40:
        tenth = len(steps) // 10
        first, last = steps[:tenth], steps[-tenth:]
        lines.append(
            f"| time per answer (ask + judge + store), first vs last {tenth} answers | "
            f"{sum(first) / tenth * 1000:.0f} ms vs {sum(last) / tenth * 1000:.0f} ms |"
        )
    if busiest:
        name = busiest[0][0]
        micros, shape = SLOWEST.get(name, (0, ""))
        lines.append(
            f"| the slowest `{name}` ({micros / 1000:.0f} ms) | `{shape.replace('|', '/')}` |"
        )
    lines += [
        f"| **overhead per item** beyond the provider calls (client side) | "
        f"**{(wall - client_s) / items * 1000:.0f} ms** "
        f"({(wall - client_s) / max(answers, 1) * 1000:.0f} ms per answer) |",
        f"| overhead per item beyond the fakes' own time (server side) | "
        f"{(wall - server_s) / items * 1000:.0f} ms ({requests} requests) |",
        f"| provider share of the wall time (client side) | {client_s / wall * 100:.1f}% |",
        f"| `evaluation_report` (the results read) | {report_s * 1000:.0f} ms |",
    ]
    return lines


if __name__ == "__main__":
    main()
