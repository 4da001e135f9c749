"""What exact cosine top-k costs for vector memory without ``$vectorSearch``.

``agents.providers.similarity.cosine_top_k`` against the plainest numpy top-k,
``np.argsort(-(M @ q))[:k]`` on rows that are already unit length, at 10k and 100k stored
vectors of 384 (local all-MiniLM-L6-v2) and 1536 (OpenAI text-embedding-3-small) float32
dimensions, k=5. Calls are interleaved (reference, ours, ours with ``assume_unit_rows``)
so drift on the machine hits every side alike. Bounded repeats; no network.

Also measured once per size: turning Python lists (what a document store hands back) into
the float32 matrix, which the memory agent pays unless it caches the matrix.

    .venv/bin/python bench/memory_topk.py --write
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.providers.similarity import cosine_top_k  # noqa: E402

RESULT_FILE = ROOT / "bench" / "results" / "memory_topk.md"
K = 5
# (rows, dims, measured repeats): fewer repeats where one call scans 600 MB.
CASES = [(10_000, 384, 400), (10_000, 1536, 300), (100_000, 384, 100), (100_000, 1536, 40)]
GOAL_RATIO = 2.0


def _percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples), q))


def _blas_description() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return (
            f"{config.get('name')} {config.get('version')} (threadpoolctl not installed: "
            "runtime kernel not shown)"
        )
    pools = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return "; ".join(
        f"{pool.get('internal_api')} {pool.get('version')} kernel={pool.get('architecture')} "
        f"threads={pool.get('num_threads')}"
        for pool in pools
    )


def _measure(
    calls: dict[str, Callable[[], object]], repeats: int, warmup: int
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for index in range(warmup + repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            elapsed = (time.perf_counter() - started) * 1000.0
            if index >= warmup:
                samples[name].append(elapsed)
    return samples


def run_case(rows: int, dims: int, repeats: int, rng: np.random.Generator) -> dict[str, object]:
    matrix = rng.standard_normal((rows, dims), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    queries = rng.standard_normal((8, dims), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    turn = {"i": 0}

    def next_query() -> np.ndarray:
        turn["i"] += 1
        return queries[turn["i"] % len(queries)]

    # Same answer first: a benchmark of a wrong result is worthless.
    for query in queries:
        reference = np.argsort(-(matrix @ query))[:K].tolist()
        assert [index for index, _ in cosine_top_k(query, matrix, K)] == reference
        fast = cosine_top_k(query, matrix, K, assume_unit_rows=True)
        assert [index for index, _ in fast] == reference

    calls: dict[str, Callable[[], object]] = {
        "numpy": lambda: np.argsort(-(matrix @ next_query()))[:K],
        "ours": lambda: cosine_top_k(next_query(), matrix, K),
        "ours_unit": lambda: cosine_top_k(next_query(), matrix, K, assume_unit_rows=True),
    }
    samples = _measure(calls, repeats, warmup=max(3, repeats // 20))

    # Lists -> matrix, once per size on a 2,000-row slice (scaled: the cost is linear).
    as_lists = matrix[:2000].tolist()
    started = time.perf_counter()
    np.asarray(as_lists, dtype=np.float32)
    to_matrix_ms = (time.perf_counter() - started) * 1000.0 * rows / 2000
    return {
        "rows": rows,
        "dims": dims,
        "repeats": repeats,
        "stats": {
            name: (_percentile(values, 50), _percentile(values, 99))
            for name, values in samples.items()
        },
        "lists_to_matrix_ms": to_matrix_ms,
    }


def render(results: list[dict[str, object]], command: str) -> str:
    lines = [
        "# Memory top-k: exact cosine over the caller's vectors",
        "",
        "`cosine_top_k(query, M, k=5)` (agents/providers/similarity.py) against the plain",
        "numpy top-k `np.argsort(-(M @ q))[:5]` on pre-normalised float32 rows. `ours` computes",
        "each row's norm (true cosine for any rows); `ours_unit` is `assume_unit_rows=True`",
        "(rows known to be unit length, which both embedders return). Calls interleaved; p50",
        "and p99 over the measured repeats after warm-up; the results were checked equal",
        f"before timing. Goal: within {GOAL_RATIO:g}x of the plain numpy top-k.",
        "",
        "| stored vectors | dims | repeats | numpy p50 | ours p50 | ours_unit p50 "
        "| numpy p99 | ours p99 | ours_unit p99 | ours / numpy (p50) | ours_unit / numpy (p50) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        stats = result["stats"]
        assert isinstance(stats, dict)
        numpy_p50, numpy_p99 = stats["numpy"]
        ours_p50, ours_p99 = stats["ours"]
        unit_p50, unit_p99 = stats["ours_unit"]
        lines.append(
            f"| {result['rows']:,} | {result['dims']} | {result['repeats']} "
            f"| {numpy_p50:.3f} ms | {ours_p50:.3f} ms | {unit_p50:.3f} ms "
            f"| {numpy_p99:.3f} ms | {ours_p99:.3f} ms | {unit_p99:.3f} ms "
            f"| **{ours_p50 / numpy_p50:.2f}x** | **{unit_p50 / numpy_p50:.2f}x** |"
        )
    lines += [
        "",
        "Building the float32 matrix from Python lists (what a document store returns),",
        "which a caller pays per query unless it keeps the matrix:",
        "",
        "| stored vectors | dims | lists -> matrix |",
        "|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result['rows']:,} | {result['dims']} | "
            f"{float(result['lists_to_matrix_ms']):.1f} ms (est.) |"
        )
    lines += [
        "",
        "What follows for the memory agent: the scan itself is cheap (milliseconds at 10k);",
        "rebuilding the matrix from lists costs 40-200x more. Keep each user's matrix (per",
        "embedding model) cached, or store vectors as float32 bytes (`np.frombuffer` is free),",
        "and pass `assume_unit_rows=True` for vectors from our embedders (unit length).",
    ]
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    l2_size = os.environ.get("OPENBLAS_L2_SIZE")
    lines += [
        "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, {os.cpu_count()} CPUs. "
        f"Run on {datetime.date.today().isoformat()}; load average at the end {load} (the",
        "machine was shared with other work, so p99 is noisy).",
        f"BLAS: {_blas_description()}.",
        f"OPENBLAS_CORETYPE={coretype!r}, OPENBLAS_L2_SIZE={l2_size!r} in this run. On some "
        "machines of this workplace OPENBLAS_CORETYPE is set (older OpenBLAS builds compute "
        "wrong results on their processors); it slows current numpy and is left as it is, "
        "in tests, CI and here: both sides of every comparison run under the same setting.",
        "",
        "Command:",
        "",
        "```",
        command,
        "```",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE}")
    parser.add_argument("--quick", action="store_true", help="10k rows only, few repeats")
    args = parser.parse_args()
    rng = np.random.default_rng(20261125)
    cases = [(rows, dims, 30) for rows, dims, _ in CASES[:2]] if args.quick else CASES
    results = []
    for rows, dims, repeats in cases:
        print(f"measuring {rows:,} x {dims} ...", file=sys.stderr, flush=True)
        results.append(run_case(rows, dims, repeats, rng))
    command = ".venv/bin/python bench/memory_topk.py" + (" --quick" if args.quick else "")
    command += " --write" if args.write else ""
    report = render(results, command)
    print(report)
    if args.write:
        RESULT_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULT_FILE.write_text(report)


if __name__ == "__main__":
    main()
