"""Memory retrieval for one end user as their vectors grow: 1k, 10k, 50k, 200k.

    .venv/bin/python bench/memory_scale.py --sizes 1000 10000 50000 200000 --write

The MemoryAgent step of one question (``QueryMemoryStore.similar`` + ``recent_turns`` +
``latest_summary``, run together as the engine runs them) against one embedded
SecantusDB (a throw-away directory), for ONE end user holding every vector: the worst
case for the exact top-k path. Vectors are 384 floats (the local embedder's), loaded
through the ORM (``Query.objects.bulk_create``) in batches, 10 queries per session.

Per size:

- rows arrived while warm (every size after the first): the matrix was read before this
  size's rows were loaded, with completed_at spread over the past 30 days as an import
  writes them. The first step reads them (``rows missing`` must be 0); the steps within
  REREAD_MARGIN (30 s) of the load re-list the rows stamped in it by id; the steps after
  it list nothing old;
- cold: the per-user matrix is dropped (``clear_vector_cache``, its snapshot too) and
  built again from the database: every row is listed and its embedding read (in pages
  and batches);
- after a restart: the matrix is dropped from memory but its snapshot (written after the
  cold read, ``files.vector_snapshots``) is on disk, as a new process finds it: the step
  loads it and reads only what changed since;
- warm: the matrix is held, REREAD_MARGIN after the load; the step re-lists only the
  rows written within REREAD_MARGIN of the previous step;
- +10 new: 10 queries were completed since the last step; the step reads exactly those
  10 embeddings (``rows read`` shows how many it read);
- the SecantusDB process's resident memory after the step, and the matrix's bytes in
  this process.

Cold: median of 3 calls up to 10k, one call above. Warm: median of 5. ``--topk-only N``
also times the ranking alone over N synthetic vectors. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DIMENSIONS = 384
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
USER_ID = "memory-user"
BATCH = 1000
QUERIES_PER_SESSION = 10
COLD_REPEAT_UP_TO = 10_000
# The question's text, for the lexical half of the ranking (BM25 over past questions).
QUESTION = "How long should I cook eggs in a cast iron pan?"
RESULTS = ROOT / "bench" / "results" / "scale.md"
SECTION = "## Memory retrieval for one end user (bench/memory_scale.py)"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(owner, *, start: int, count: int, rng: np.random.Generator, completed_at=None) -> None:
    """``count`` completed queries of the one end user, numbered from ``start``."""
    from django.utils import timezone

    from queries.models import Query

    now = timezone.now()
    for first in range(start, start + count, BATCH):
        last = min(first + BATCH, start + count)
        vectors = rng.normal(size=(last - first, DIMENSIONS))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows = []
        for offset, index in enumerate(range(first, last)):
            # Spread over the past 30 days, oldest first; new rows land now.
            at = completed_at or now - timedelta(days=30) + timedelta(seconds=10 * index)
            rows.append(
                Query(
                    owner=owner,
                    user_id=USER_ID,
                    session_id=f"memory-s{index // QUERIES_PER_SESSION}",
                    query=f"Question {index}: which pan is best for eggs?",
                    response="A non-stick pan with a heavy base. " * 8,
                    embedding=vectors[offset].tolist(),
                    embedding_model=EMBEDDING_MODEL,
                    model_provider="openai",
                    model_name="gpt-4o-mini",
                    status=Query.Status.COMPLETED,
                    timestamp=at - timedelta(seconds=2),
                    completed_at=at,
                )
            )
        Query.objects.bulk_create(rows)


def topk_alone_ms(matrix: np.ndarray, vector: list[float]) -> float:
    from agents.providers.similarity import cosine_top_k

    samples = []
    for _ in range(5):
        started = time.perf_counter()
        cosine_top_k(vector, matrix, 4, assume_unit_rows=True)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def synthetic_topk_ms(rows: int) -> float:
    """The ranking alone over ``rows`` random unit vectors (no database)."""
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(rows, DIMENSIONS)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return topk_alone_ms(matrix, matrix[0].tolist())


def measure(
    owner, loaded: int, rng: np.random.Generator, server_pid: int, *, arrived_warm: bool
) -> dict[str, float]:
    from django.utils import timezone

    from agents.ports import Scope
    from files import vector_cache
    from queries.memory_store import QueryMemoryStore
    from queries.models import Query, Summary

    loaded_at = time.monotonic()
    newest = Query.objects.filter(owner=owner, user_id=USER_ID).order_by("-timestamp", "-pk")[0]
    Summary.objects.get_or_create(
        owner=owner,
        session_id=newest.session_id,
        pair_count=4,
        defaults={"summary": "The user cooks eggs and wants a pan."},
    )
    scope = Scope(
        owner_id=str(owner.pk),
        user_id=USER_ID,
        session_id=newest.session_id,
        query_id=str(newest.pk),
    )
    question = rng.normal(size=DIMENSIONS)
    vector = (question / np.linalg.norm(question)).tolist()
    store = QueryMemoryStore()

    async def gathered():
        return await asyncio.gather(
            store.similar(
                scope, vector=vector, text=QUESTION, embedding_model=EMBEDDING_MODEL, limit=3
            ),
            store.recent_turns(scope, limit=3),
            store.latest_summary(scope),
        )

    def step() -> float:
        started = time.perf_counter()
        hits, turns, summary = asyncio.run(gathered())
        elapsed = (time.perf_counter() - started) * 1000
        if len(hits) != 3 or not turns or summary is None:
            raise RuntimeError(f"unexpected memory step: {len(hits)} hits, {len(turns)} turns")
        return elapsed

    def cached_rows() -> int:
        return sum(len(entry.ids) for entry in vector_cache._cache.values())

    def cold() -> float:
        vector_cache.clear_vector_cache()  # the snapshots on disk too
        return step()

    def after_restart() -> float:
        # A new process: nothing in memory, the snapshot the cold read wrote on disk.
        deadline = time.monotonic() + 600
        while any(entry.saving for entry in vector_cache._cache.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("the snapshot was never written")
            time.sleep(0.05)
        vector_cache.clear_vector_cache(snapshots=False)
        return step()

    nan = float("nan")
    arrival = {
        "first step after the rows arrived while warm (reads them)": nan,
        "warm, within REREAD_MARGIN of the arrival": nan,
        "warm, REREAD_MARGIN after the arrival": nan,
        "rows missing from the warm matrix": nan,
    }
    if arrived_warm:
        # The matrix was read before this size's rows were loaded (older completed_at,
        # as an import writes them): the next steps must hold every row, and then flatten.
        arrival["first step after the rows arrived while warm (reads them)"] = step()
        arrival["rows missing from the warm matrix"] = (
            Query.objects.filter(owner=owner, user_id=USER_ID).count() - cached_rows()
        )
        arrival["warm, within REREAD_MARGIN of the arrival"] = statistics.median(
            step() for _ in range(5)
        )
        time.sleep(
            max(
                0.0,
                vector_cache.REREAD_MARGIN.total_seconds() + 1 - (time.monotonic() - loaded_at),
            )
        )
        step()  # its read started past the margin; the next one lists no old rows
        arrival["warm, REREAD_MARGIN after the arrival"] = statistics.median(
            step() for _ in range(5)
        )

    step()  # warm-up: connections, imports (and the matrix, read once more below)
    # A cold build reads every row: at 50k+ one call is minutes on the embedded server.
    cold_ms = statistics.median(cold() for _ in range(3 if loaded <= COLD_REPEAT_UP_TO else 1))
    rss_cold = _rss_mb(server_pid)
    restart_ms = statistics.median(after_restart() for _ in range(3))
    # Warm means past the load's REREAD_MARGIN: rows written within it are listed again.
    time.sleep(
        max(0.0, vector_cache.REREAD_MARGIN.total_seconds() + 1 - (time.monotonic() - loaded_at))
    )
    step()
    warm_ms = statistics.median(step() for _ in range(5))
    held = cached_rows()
    load(owner, start=loaded, count=10, rng=rng, completed_at=timezone.now())
    new_ms = step()
    read = cached_rows() - held
    matrix_mb = sum(entry.nbytes for entry in vector_cache._cache.values()) / 2**20
    matrix = next(iter(vector_cache._cache.values())).matrix
    topk_ms = topk_alone_ms(matrix, vector)
    return {
        **arrival,
        "cold (matrix built from the database)": cold_ms,
        "first step after a restart (snapshot on disk)": restart_ms,
        "warm": warm_ms,
        "warm, 10 new rows": new_ms,
        "rows read by the +10 call": read,
        "top-k over the matrix alone (numpy)": topk_ms,
        "matrix in the web process (MB, with spare capacity)": matrix_mb,
        "SecantusDB resident memory after the cold steps (MB)": rss_cold,
    }


def _format(name: str, value: float) -> str:
    if value != value:  # NaN: not measured at this size
        return "n/a"
    if "MB" in name:
        return f"{value:,.0f}"
    if name.startswith("rows"):
        return f"{value:.0f}"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def table(sizes: list[int], results: dict[int, dict[str, float]]) -> str:
    head = ["memory step, one user", *[f"{n // 1000}k vectors" for n in sizes]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in results[sizes[0]]:
        values = [_format(name, results[n][name]) for n in sizes]
        lines.append("| " + " | ".join([name, *values]) + " |")
    return "\n".join(lines)


def write_section(command: str, output: str) -> None:
    """Replace (or add) this bench's section of bench/results/scale.md."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Reads as data grows\n"
    section = (
        f"{SECTION}\n\n`.venv/bin/python {command}` on this 2-core machine, "
        f"{time.strftime('%Y-%m-%d')}. Exact cosine top-k (the embedded server has no "
        "`$vectorSearch`).\n\n" + output + "\n"
    )
    if SECTION in text:
        before, _, after = text.partition(SECTION)
        rest = after.split("\n## ", 1)
        text = before + section + ("\n## " + rest[1] if len(rest) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000, 200000])
    parser.add_argument(
        "--topk-only",
        type=int,
        nargs="*",
        default=[],
        help="also time the ranking alone over this many synthetic vectors (e.g. 200000)",
    )
    parser.add_argument("--write", action="store_true", help=f"write its section of {RESULTS}")
    args = parser.parse_args()
    sizes = sorted(args.sizes)

    from llmplatform.embedded.server import spawn_server

    workdir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    server = spawn_server(
        storage_path=str(workdir / "data"),
        ready_file=workdir / "server.json",
        log_file=workdir / "secantus.log",
        exit_with_parent=True,
    )
    os.environ["MONGODB_URI"] = server.uri
    os.environ["VECTOR_SNAPSHOT_DIR"] = str(workdir / "vectors")
    os.environ["LLMPLATFORM_SKIP_DOTENV"] = "1"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmplatform.settings")
    try:
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        owner, _ = get_user_model().objects.get_or_create(username="memory-bench")
        rng = np.random.default_rng(0)
        results: dict[int, dict[str, float]] = {}
        loaded = 0
        for n in sizes:
            started = time.perf_counter()
            # After the first size the matrix is warm: these rows arrive while it is.
            load(owner, start=loaded, count=n - loaded, rng=rng)
            print(f"loaded {n} in {time.perf_counter() - started:.0f} s", flush=True)
            results[n] = measure(owner, n, rng, server.pid, arrived_warm=bool(results))
            loaded = n + 10
            print(table(sizes[: len(results)], results), flush=True)
        output = table(sizes, results)
        for rows in args.topk_only:
            output += (
                f"\n\nTop-k alone over {rows:,} synthetic vectors (numpy, no database): "
                f"{synthetic_topk_ms(rows):.1f} ms."
            )
        print(output)
        if args.write:
            write_section(
                " ".join(
                    [
                        "bench/memory_scale.py --sizes",
                        *map(str, sizes),
                        *(["--topk-only", *map(str, args.topk_only)] if args.topk_only else []),
                        "--write",
                    ]
                ),
                output,
            )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
