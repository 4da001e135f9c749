"""Document ingestion throughput: pages per second on a generated 200-page PDF.

    .venv/bin/python bench/documents_ingest.py --pages 200 --write

One PDF of ``--pages`` pages (fpdf2; generating it is not timed), stored as an upload on
a throw-away embedded SecantusDB, then ingested the way the background task does it
(``files.ingestion.document_ingest``: read the bytes, pypdf text page by page, chunk to
the local embedder's window, embed with all-MiniLM-L6-v2 on the CPU, write the chunks).
Then each stage alone on the same input, to say where the time goes. ``--repeat`` runs
the whole ingestion that many times (median). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time

from documents_common import (
    RESULTS,
    document_pages,
    make_pdf,
    planted_facts,
    stamp,
    start_django,
    store_pdf,
)

RESULT_FILE = RESULTS / "documents_ingest.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE}")
    args = parser.parse_args()

    start_django("bench-documents-ingest-")
    import os

    from django.contrib.auth import get_user_model

    from agents.providers.embeddings import get_embedder
    from files.chunking import chunk_pages
    from files.config import documents_config
    from files.extraction import extract_pages
    from files.ingestion import document_ingest
    from files.models import DocumentChunk, File
    from llmplatform.core.bridge import run_sync

    owner, _ = get_user_model().objects.get_or_create(username="ingest-bench")
    facts = planted_facts(args.pages, pages_per_document=args.pages)
    data = make_pdf(document_pages(facts, 0, args.pages, seed=1))
    embedder = get_embedder()
    run_sync(embedder.embed(["warm up the model"]))  # loading the model is not ingestion

    totals = []
    for attempt in range(args.repeat):
        file = store_pdf(owner, "u1", f"report-{attempt}.pdf", data)
        started = time.perf_counter()
        document_ingest(file_id=str(file.pk))
        totals.append(time.perf_counter() - started)
        file.refresh_from_db()
        if file.ingestion_status != File.Ingestion.READY:
            raise SystemExit(f"ingestion failed: {file.ingestion_error}")
    chunks = DocumentChunk.objects.filter(file_id=file.pk).count()

    deadline = time.monotonic() + documents_config().ingest_timeout_s
    started = time.perf_counter()
    pages = extract_pages(
        data=data, content_type="application/pdf", max_pages=10_000, deadline=deadline
    )
    extract_s = time.perf_counter() - started
    started = time.perf_counter()
    passages = list(chunk_pages(pages, model=embedder.model))
    chunk_s = time.perf_counter() - started
    started = time.perf_counter()
    for offset in range(0, len(passages), 64):
        run_sync(embedder.embed([p.text for p in passages[offset : offset + 64]]))
    embed_s = time.perf_counter() - started
    total = statistics.median(totals)
    rest = max(0.0, total - extract_s - chunk_s - embed_s)

    rows = [
        ("whole ingestion (document_ingest)", total),
        ("pypdf text extraction", extract_s),
        ("chunking (WordPiece counting)", chunk_s),
        ("embedding (all-MiniLM-L6-v2, batches of 64)", embed_s),
        ("the rest: reading bytes, progress writes, storing chunks", rest),
    ]
    lines = [
        f"{args.pages}-page PDF ({len(data) / 1024:.0f} KiB), {chunks} chunks, "
        f"{os.cpu_count()} CPUs shared with other work (load average "
        f"{os.getloadavg()[0]:.1f} at the end). The embedder reads each ~240-word-piece "
        "passage in full: it is the cost, and it scales with the CPU.",
        "",
        "| stage | seconds | pages/s |",
        "|---|---|---|",
        *(f"| {name} | {sec:.2f} | {args.pages / sec:.1f} |" for name, sec in rows if sec > 0),
    ]
    output = "\n".join(lines)
    print(output)
    if args.write:
        RESULT_FILE.write_text(
            "# Document ingestion throughput (bench/documents_ingest.py)\n\n"
            f"`.venv/bin/python bench/documents_ingest.py --pages {args.pages} "
            f"--repeat {args.repeat} --write`, {stamp()}, embedded SecantusDB, local "
            "embedder on the CPU.\n\n" + output + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
