"""Document search latency at 10k and 100k chunks for one end user.

    .venv/bin/python bench/documents_search.py --sizes 10000 100000 --write

One end user's ready documents (100 files) holding N chunks of 384-float unit vectors
(random: latency does not depend on what they say) and report-like text (for BM25),
written through the ORM into a throw-away embedded SecantusDB. Timed, per size, with
``files.document_store.search_chunks`` (what the DocumentsAgent and ``GET /api/v1/search``
call; the query is already embedded):

- cold: the first search in the process with no snapshot (the user's chunk matrix is
  read from the database, in pages);
- after a restart: the first search in a process that finds the snapshot the cold read
  wrote (``files.vector_snapshots``);
- warm, all documents (``use_documents``): p50 and p99 over ``--searches`` searches;
- warm, one named document (``documents: [id]``): the matrix masked to its rows;
- the ranking alone (numpy over the matrix), for scale.

``--users 100 --per-user 10000`` (issue #25 target 6: 1M chunks across 100 users) loads
that many end users instead, each with their own files and chunks, then times, with all
of them in the database:

- the cold read of every user (which writes each user's snapshot), with progress;
- the first search after a restart for a sample of users;
- searches for users picked at random: with 1M chunks the matrices (1.5 GB) do not fit
  the process's ``MAX_CACHED_BYTES`` (256 MB), so this is the bounded cache's hit and
  miss mix, a miss restoring the user's snapshot;
- the resident memory of this process and of SecantusDB, and the database's size on disk.

The embedded server has no ``$vectorSearch``: this is the exact-cosine path. Not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import numpy as np
from documents_common import RESULTS, filler, percentile, stamp, start_django

RESULT_FILE = RESULTS / "documents_search.md"
DIMENSIONS = 384
MODEL = "all-MiniLM-L6-v2"
FILES = 100
BATCH = 1000
# Searched with its text too (BM25 over the chunks, fused with the vectors); the filler's
# common words make long postings, the worst case for the lexical half.
QUESTION = "What does part XK-123 say about the quarterly budget?"


def load(
    owner, files, *, start: int, count: int, rng: np.random.Generator, user_id: str = "u1"
) -> None:
    from django.utils import timezone

    from files.models import DocumentChunk

    words = random.Random(start)
    for offset in range(start, start + count, BATCH):
        size = min(BATCH, start + count - offset)
        vectors = rng.normal(size=(size, DIMENSIONS)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        now = timezone.now()
        DocumentChunk.objects.bulk_create(
            DocumentChunk(
                owner=owner,
                user_id=user_id,
                file=files[(offset + i) % len(files)],
                index=offset + i,
                page=(offset + i) % 300 + 1,
                char_start=0,
                char_end=120,
                text=f"{filler(words, 6)} Part XK-{offset + i} is listed on this page.",
                embedding=vector.tolist(),
                embedding_model=MODEL,
                created_at=now,
            )
            for i, vector in enumerate(vectors)
        )


def searched(owner, user_id: str, vector: list[float], file_ids=None) -> None:
    """One search as the DocumentsAgent makes it (the query already embedded), checked."""
    from files.document_store import search_chunks

    hits = search_chunks(
        owner_id=owner.pk,
        user_id=user_id,
        vector=vector,
        text=QUESTION,
        embedding_model=MODEL,
        file_ids=file_ids,
        limit=5,
    )
    if len(hits) != 5:
        raise RuntimeError(f"{user_id}: {len(hits)} hits")


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_files(owner, user_id: str, count: int) -> list:
    from files.models import File

    return [
        File.objects.create(
            owner=owner,
            user_id=user_id,
            filename=f"report-{n}.pdf",
            content_type="application/pdf",
            size=1,
            sha256="0" * 64,
            storage_path=f"bench/{user_id}/{n}.pdf",
            ingestion_status=File.Ingestion.READY,
            embedding_model=MODEL,
        )
        for n in range(count)
    ]


def many_users(args, server) -> int:
    """1M chunks across 100 users (``--users``, ``--per-user``): see the module doc."""
    from django.contrib.auth import get_user_model

    from files import vector_cache

    owner, _ = get_user_model().objects.get_or_create(username="search-bench")
    users = [f"u{n}" for n in range(args.users)]
    total = args.users * args.per_user
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for done, user_id in enumerate(users, 1):
        files = make_files(owner, user_id, args.files_per_user)
        load(owner, files, start=0, count=args.per_user, rng=rng, user_id=user_id)
        elapsed = time.perf_counter() - started
        print(
            f"loaded {done}/{len(users)} users, {done * args.per_user:,} of {total:,} chunks "
            f"in {elapsed:.0f} s ({done * args.per_user / elapsed:.0f} chunks/s)",
            flush=True,
        )
    load_s = time.perf_counter() - started
    queries = rng.normal(size=(args.searches, DIMENSIONS)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    def search(user_id: str, vector) -> None:
        searched(owner, user_id, vector.tolist())

    vector_cache.clear_vector_cache()
    cold = []
    for done, user_id in enumerate(users, 1):
        cold.append(timed(lambda u=user_id: search(u, queries[0])))
        while any(entry.saving for entry in vector_cache._cache.values()):
            time.sleep(0.05)  # the user's snapshot, written by the cold read
        if done % 10 == 0:
            print(f"cold read {done}/{len(users)} users", flush=True)
    sample = users[:: max(1, len(users) // args.sample)][: args.sample]
    restarts = []
    for user_id in sample:
        vector_cache.clear_vector_cache(snapshots=False)  # a new process
        restarts.append(timed(lambda u=user_id: search(u, queries[0])))
    vector_cache.clear_vector_cache(snapshots=False)
    picker = random.Random(1)
    mixed = [timed(lambda v=v: search(picker.choice(users), v)) for v in queries]
    one = users[0]
    search(one, queries[0])
    same_user = [timed(lambda v=v: search(one, v)) for v in queries]
    held = sum(entry.matrix.nbytes for entry in vector_cache._cache.values())
    data_dir = Path(os.environ["VECTOR_SNAPSHOT_DIR"]).parent / "data"  # start_django's
    disk = sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file())
    results = {
        "chunks loaded (users x chunks each)": f"{total:,} ({args.users} x {args.per_user:,})",
        "loading through the ORM": f"{load_s:.0f} s ({total / load_s:.0f} chunks/s)",
        "cold read per user (matrix from the database): p50 / max": (
            f"{percentile(cold, 50):.0f} / {max(cold):.0f} ms"
        ),
        f"first search after a restart (snapshot on disk), {len(sample)} users: p50 / max": (
            f"{percentile(restarts, 50):.0f} / {max(restarts):.0f} ms"
        ),
        f"searches for users at random ({args.searches}): p50 / p99": (
            f"{percentile(mixed, 50):.1f} / {percentile(mixed, 99):.1f} ms"
        ),
        f"one user, warm ({args.searches}): p50 / p99": (
            f"{percentile(same_user, 50):.1f} / {percentile(same_user, 99):.1f} ms"
        ),
        "matrices held in the process (bounded by MAX_CACHED_BYTES)": (
            f"{held / 2**20:.0f} MB, {len(vector_cache._cache)} users"
        ),
        "this process resident": f"{rss_mb(os.getpid()):.0f} MB",
        "SecantusDB resident": f"{rss_mb(server.pid):.0f} MB",
        "database on disk": f"{disk / 2**30:.1f} GB",
    }
    output = "\n".join(
        ["| search_chunks, many users | result |", "|---|---|"]
        + [f"| {name} | {value} |" for name, value in results.items()]
    )
    print(output)
    if args.write:
        command = (
            f"`.venv/bin/python bench/documents_search.py --users {args.users} "
            f"--per-user {args.per_user} --write`"
        )
        section = f"\n## {total:,} chunks across {args.users} users\n\n{command}, {stamp()}\n\n"
        with RESULT_FILE.open("a") as out:
            out.write(section + output + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--users", type=int, help="many users instead of one: how many")
    parser.add_argument("--per-user", type=int, default=10_000, help="chunks per user")
    parser.add_argument("--files-per-user", type=int, default=10)
    parser.add_argument("--sample", type=int, default=10, help="users timed after a restart")
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE}")
    args = parser.parse_args()

    server = start_django("bench-documents-search-")
    if args.users:
        return many_users(args, server)
    from django.contrib.auth import get_user_model

    from agents.providers.similarity import cosine_top_k
    from files import vector_cache

    owner, _ = get_user_model().objects.get_or_create(username="search-bench")
    files = make_files(owner, "u1", FILES)
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(args.searches, DIMENSIONS)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    queries = [q.tolist() for q in queries]

    def search(vector, file_ids=None):
        searched(owner, "u1", vector, file_ids)

    rows: dict[str, dict[int, str]] = {}
    loaded = 0
    for size in sorted(args.sizes):
        started = time.perf_counter()
        load(owner, files, start=loaded, count=size - loaded, rng=rng)
        loaded = size
        print(f"loaded {size} chunks in {time.perf_counter() - started:.0f} s", flush=True)
        vector_cache.clear_vector_cache()  # its snapshot too
        cold = timed(lambda: search(queries[0]))
        while any(entry.saving for entry in vector_cache._cache.values()):
            time.sleep(0.05)  # the snapshot the cold read writes
        restarts = []
        for _ in range(3):
            vector_cache.clear_vector_cache(snapshots=False)  # a new process
            restarts.append(timed(lambda: search(queries[0])))
        warm = [timed(lambda v=v: search(v)) for v in queries]
        one = str(files[0].pk)
        named = [timed(lambda v=v, one=one: search(v, [one])) for v in queries]
        matrix = next(iter(vector_cache._cache.values())).matrix
        ranking = [
            timed(lambda v=v, m=matrix: cosine_top_k(v, m, 5, assume_unit_rows=True))
            for v in queries
        ]
        results = {
            "cold (matrix read from the database)": f"{cold / 1000:.1f} s",
            "first search after a restart (snapshot on disk), median of 3": (
                f"{sorted(restarts)[1]:.0f} ms"
            ),
            "warm, all documents: p50": f"{percentile(warm, 50):.1f} ms",
            "warm, all documents: p99": f"{percentile(warm, 99):.1f} ms",
            "warm, one named document: p50": f"{percentile(named, 50):.1f} ms",
            "warm, one named document: p99": f"{percentile(named, 99):.1f} ms",
            "ranking alone (numpy): p50": f"{percentile(ranking, 50):.1f} ms",
            "matrix held in the process": f"{matrix.nbytes / 2**20:.0f} MB",
        }
        for name, value in results.items():
            rows.setdefault(name, {})[size] = value
        print(results, flush=True)

    sizes = sorted(args.sizes)
    head = ["search_chunks, one user, k=5", *[f"{n // 1000}k chunks" for n in sizes]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([name, *(v[n] for n in sizes)]) + " |" for name, v in rows.items()]
    output = "\n".join(lines)
    print(output)
    if args.write:
        RESULT_FILE.write_text(
            "# Document search latency (bench/documents_search.py)\n\n"
            f"`.venv/bin/python bench/documents_search.py --sizes {' '.join(map(str, sizes))} "
            f"--searches {args.searches} --write`, {stamp()}, embedded SecantusDB (exact "
            f"cosine; no `$vectorSearch`), {FILES} files, 384-d vectors.\n\n" + output + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
