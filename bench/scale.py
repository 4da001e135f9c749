"""Reads as data grows: each read at N = 1k, 10k, 50k (200k) completed queries.

    .venv/bin/python bench/scale.py --sizes 1000 10000 50000 --write

One embedded SecantusDB (a throw-away directory, like ``make run``'s), grown in steps
with ``manage.py seed_demo_data`` (one owner, one end user, 10 queries and 10 events per
session, 384-float embeddings, 30 days). After each step every read is timed in-process
(Django test clients, no HTTP server): the median of 5 calls after one warm-up. The last
column is largest N / smallest N. Not a test: nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REPEAT = 5
DEEP_PAGE = 10


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _print_memory_report(pid: int, log_file: Path) -> None:
    """Ask the launcher for its memory report (SIGUSR1) and print it from its log."""
    start = log_file.stat().st_size
    os.kill(pid, signal.SIGUSR1)
    for _ in range(600):  # a tracemalloc snapshot of a big heap takes a while
        time.sleep(0.5)
        text = log_file.read_bytes()[start:].decode(errors="replace")
        if text.rstrip().endswith("}"):
            print(text, flush=True)
            return
    print("no memory report from the launcher", flush=True)


def _median_ms(call) -> float:
    call()  # warm-up (caches, first connection)
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _checked(response):
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.content[:300]!r}")
    return response


EXPERIMENT_KEY = "bench-pans"
EXPERIMENT_QUERIES = 500


def bench_experiment(owner):
    """An experiment holding the first EXPERIMENT_QUERIES queries loaded (same at every N)."""
    from queries.models import Query
    from sessions.models import Experiment, Session

    experiment, created = Experiment.objects.get_or_create(
        key=EXPERIMENT_KEY,
        defaults={
            "name": "Bench: pans",
            "status": Experiment.Status.RUNNING,
            "variants": [{"name": "control", "weight": 1}, {"name": "b", "weight": 1}],
        },
    )
    if created:
        rows = list(
            Query.objects.filter(owner=owner)
            .order_by("-timestamp", "-pk")
            .values_list("pk", "session_id")[:EXPERIMENT_QUERIES]
        )
        for variant, part in (("control", rows[0::2]), ("b", rows[1::2])):
            Query.objects.filter(pk__in=[pk for pk, _ in part]).update(
                experiments={EXPERIMENT_KEY: variant}, feedback_rating=1
            )
            Session.objects.filter(owner=owner, session_id__in={s for _, s in part}).update(
                experiments={EXPERIMENT_KEY: variant}
            )
    return experiment


def drop_experiment_indexes(experiment) -> None:
    """Measure the results read as it was: no index on the experiment's key."""
    from django.db import connection

    from analytics import services
    from queries.models import Query
    from sessions.models import Session

    name = services.experiment_index_name(experiment.key)
    for model in (Query, Session):
        collection = connection.database[model._meta.db_table]
        if name in collection.index_information():
            collection.drop_index(name)
    services._experiment_indexes.discard(experiment.key)


def measure(owner_name: str) -> dict[str, float]:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.test import APIClient

    from agents.ports import Scope
    from analytics.experiments import experiment_results
    from llmplatform.core.services import api_key_create
    from queries.memory_store import QueryMemoryStore
    from queries.models import Query
    from sessions.models import Session

    owner = get_user_model().objects.get(username=owner_name)
    _, raw_key = api_key_create(owner=owner, name="bench")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    operator, _ = get_user_model().objects.get_or_create(
        username="bench-operator", defaults={"is_staff": True, "is_superuser": True}
    )
    admin = Client()
    admin.force_login(operator)

    newest = Query.objects.filter(owner=owner).order_by("-timestamp", "-pk").defer("embedding")[0]
    session = Session.objects.filter(owner=owner).order_by("-start_t", "-pk")[0]
    user_id = newest.user_id
    # A cursor page deep in the user's history: follow DEEP_PAGE "next" links once.
    url = f"/api/v1/query/history?user_id={user_id}&limit=20"
    for _ in range(DEEP_PAGE):
        url = _checked(api.get(url)).json()["next"] or url
    deep_url = url
    store = QueryMemoryStore()
    scope = Scope(
        owner_id=str(owner.pk),
        user_id=user_id,
        session_id=session.session_id,
        query_id=str(newest.pk),
    )
    vector = Query.objects.values_list("embedding", flat=True).get(pk=newest.pk)

    experiment = bench_experiment(owner)
    drop_experiment_indexes(experiment)

    async def memory_step():
        await asyncio.gather(
            store.similar(scope, vector=vector, embedding_model=newest.embedding_model, limit=3),
            store.recent_turns(scope, limit=3),
            store.latest_summary(scope),
        )

    reads = {
        "`GET /api/v1/query/{id}`": lambda: _checked(api.get(f"/api/v1/query/{newest.pk}")),
        "history by `user_id`, first page": lambda: _checked(
            api.get(f"/api/v1/query/history?user_id={user_id}&limit=20")
        ),
        f"history by `user_id`, page {DEEP_PAGE + 1} (cursor)": lambda: _checked(api.get(deep_url)),
        "history by `session_id`, first page": lambda: _checked(
            api.get(f"/api/v1/query/history?session_id={session.session_id}&limit=20")
        ),
        "`GET /api/v1/session/{id}`": lambda: _checked(
            api.get(f"/api/v1/session/{session.session_id}")
        ),
        "`GET /api/v1/analytics/summary` (7 days)": lambda: _checked(
            api.get("/api/v1/analytics/summary")
        ),
        "admin dashboard (30 days)": lambda: _checked(admin.get("/admin/dashboard/?days=30")),
        "admin query list": lambda: _checked(admin.get("/admin/queries/query/")),
        "admin session list": lambda: _checked(admin.get("/admin/chat_sessions/session/")),
        "admin event list": lambda: _checked(admin.get("/admin/chat_sessions/event/")),
        "admin summary list": lambda: _checked(admin.get("/admin/queries/summary/")),
        "admin file list": lambda: _checked(admin.get("/admin/files/file/")),
        "memory step (similar + turns + summary, warm cache)": lambda: asyncio.run(memory_step()),
        f"experiment results ({EXPERIMENT_QUERIES} queries in it), no index": lambda: (
            experiment_results(experiment=experiment)
        ),
        # The page ensures the experiments.<key> index (its warm-up call builds it).
        "admin experiment results page (indexed)": lambda: _checked(
            admin.get(f"/admin/chat_sessions/experiment/{experiment.pk}/results/")
        ),
    }
    return {name: _median_ms(call) for name, call in reads.items()}


def _format(value: float, unit: str) -> str:
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def table(sizes: list[int], results: dict[int, dict[str, float]]) -> str:
    head = [
        "read",
        *[f"{n // 1000}k" for n in sizes],
        f"{sizes[-1] // 1000}k / {sizes[0] // 1000}k",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in results[sizes[0]]:
        unit = "MB" if name.startswith("SecantusDB") else "ms"
        values = [results[n][name] for n in sizes]
        ratio = values[-1] / values[0] if values[0] else float("nan")
        lines.append(
            "| " + " | ".join([name, *[_format(v, unit) for v in values], f"{ratio:.1f}x"]) + " |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--write", action="store_true", help="write bench/results/scale.md")
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="start SecantusDB with --trace-memory (its report then names Python lines)",
    )
    parser.add_argument(
        "--launcher-args",
        default="",
        help='more launcher options, e.g. "--malloc-arenas 0 --trim-interval 0" (glibc '
        "defaults, as before the memory bound)",
    )
    args = parser.parse_args()
    sizes = sorted(args.sizes)

    from llmplatform.embedded.server import spawn_server

    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    server = spawn_server(
        storage_path=str(workdir / "data"),
        ready_file=workdir / "server.json",
        log_file=workdir / "secantus.log",
        exit_with_parent=True,
        extra_args=(["--trace-memory"] if args.trace_memory else []) + args.launcher_args.split(),
    )
    os.environ["MONGODB_URI"] = server.uri
    os.environ["LLMPLATFORM_SKIP_DOTENV"] = "1"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmplatform.settings")
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        results: dict[int, dict[str, float]] = {}
        loaded = 0
        for n in sizes:
            started = time.perf_counter()
            call_command("seed_demo_data", queries=n - loaded, owner="bench", seed=n)
            loaded = n
            print(f"loaded {n} in {time.perf_counter() - started:.0f} s", flush=True)
            results[n] = measure("bench")
            results[n]["SecantusDB resident memory"] = _rss_mb(server.pid)
            _print_memory_report(server.pid, workdir / "secantus.log")
            print(table(sizes[: len(results)], results), flush=True)
        output = table(sizes, results)
        print(output)
        if args.write:
            command = " ".join(["bench/scale.py --sizes", *map(str, sizes), "--write"])
            results_file = ROOT / "bench" / "results" / "scale.md"
            # Sections after the table ("## ...": notes, memory_scale.py's) are kept.
            previous = results_file.read_text() if results_file.exists() else ""
            kept = previous[previous.index("\n## ") :] if "\n## " in previous else "\n"
            results_file.write_text(
                "# Reads as data grows (embedded SecantusDB)\n\n"
                f"`.venv/bin/python {command}`"
                f" on this 2-core machine, {time.strftime('%Y-%m-%d')}. Median of {REPEAT} "
                "calls after a warm-up, in-process (Django test clients). One owner, one end "
                "user, 10 queries and 10 events per session, 384-d embeddings, 30 days.\n\n"
                + output
                + "\n"
                + kept
            )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
