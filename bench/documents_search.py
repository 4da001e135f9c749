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

The embedded server has no ``$vectorSearch``: this is the exact-cosine path. Not a test.
"""

from __future__ import annotations

import argparse
import random
import time

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


def load(owner, files, *, start: int, count: int, rng: np.random.Generator) -> None:
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
                user_id="u1",
                file=files[(offset + i) % FILES],
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


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE}")
    args = parser.parse_args()

    start_django("bench-documents-search-")
    from django.contrib.auth import get_user_model

    from agents.providers.similarity import cosine_top_k
    from files import vector_cache
    from files.document_store import search_chunks
    from files.models import File

    owner, _ = get_user_model().objects.get_or_create(username="search-bench")
    files = [
        File.objects.create(
            owner=owner,
            user_id="u1",
            filename=f"report-{n}.pdf",
            content_type="application/pdf",
            size=1,
            sha256="0" * 64,
            storage_path=f"bench/{n}.pdf",
            ingestion_status=File.Ingestion.READY,
            embedding_model=MODEL,
        )
        for n in range(FILES)
    ]
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(args.searches, DIMENSIONS)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    queries = [q.tolist() for q in queries]

    def search(vector, file_ids=None):
        hits = search_chunks(
            owner_id=owner.pk,
            user_id="u1",
            vector=vector,
            text=QUESTION,
            embedding_model=MODEL,
            file_ids=file_ids,
            limit=5,
        )
        if len(hits) != 5:
            raise RuntimeError(f"{len(hits)} hits")

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
