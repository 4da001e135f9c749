"""Retrieval quality: recall@5 on questions whose answers are facts planted on known pages.

    .venv/bin/python bench/documents_recall.py --facts 200 --write

``--facts`` facts (10 sentence templates x 20 places, each with its own number), one per
page, among generated report-like filler, in PDFs of ``--pages-per-document`` pages. The
PDFs go through the real ingestion (pypdf, chunking, all-MiniLM-L6-v2) on a throw-away
embedded SecantusDB; each question (worded differently from its fact: "How many EV
chargers are in the Lima car park?" for "The parking garage in Lima offers 12 charging
stations for electric cars.") is searched with ``files.document_store.search_chunks``
over all of the user's documents, as ``use_documents`` does. A hit: one of the 5 best
passages is from the fact's document and page and contains the fact.

Misses are listed by template, with what ranked first instead. Not a test.
"""

from __future__ import annotations

import argparse
import collections
import time

from documents_common import (
    RESULTS,
    TEMPLATES,
    document_pages,
    make_pdf,
    planted_facts,
    stamp,
    start_django,
    store_pdf,
)

RESULT_FILE = RESULTS / "documents_recall.md"
K = 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=200)
    parser.add_argument("--pages-per-document", type=int, default=40)
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE}")
    args = parser.parse_args()

    start_django("bench-documents-recall-")
    from django.contrib.auth import get_user_model

    from agents.providers.embeddings import get_embedder
    from files.document_store import search_chunks
    from files.ingestion import document_ingest
    from files.models import File
    from llmplatform.core.bridge import run_sync

    owner, _ = get_user_model().objects.get_or_create(username="recall-bench")
    facts = planted_facts(args.facts, pages_per_document=args.pages_per_document)
    documents = sorted({f.document for f in facts})
    file_ids = {}
    started = time.perf_counter()
    for document in documents:
        pages = document_pages(facts, document, args.pages_per_document, seed=3)
        file = store_pdf(owner, "u1", f"report-{document}.pdf", make_pdf(pages))
        document_ingest(file_id=str(file.pk))
        file.refresh_from_db()
        if file.ingestion_status != File.Ingestion.READY:
            raise SystemExit(f"ingestion failed: {file.ingestion_error}")
        file_ids[document] = file.pk
    ingest_s = time.perf_counter() - started
    print(f"ingested {len(documents)} documents in {ingest_s:.0f} s", flush=True)

    embedder = get_embedder()
    vectors = run_sync(embedder.embed([f.question for f in facts]))
    hits, ranks = 0, []
    misses: dict[str, list[str]] = collections.defaultdict(list)
    for fact, vector in zip(facts, vectors, strict=True):
        found = search_chunks(
            owner_id=owner.pk,
            user_id="u1",
            vector=vector,
            embedding_model=embedder.model,
            file_ids=None,
            limit=K,
        )
        position = next(
            (
                rank
                for rank, hit in enumerate(found, start=1)
                if hit.chunk.file_id == file_ids[fact.document]
                and hit.chunk.page == fact.page
                and fact.fact in " ".join(hit.chunk.text.split())
            ),
            None,
        )
        template = TEMPLATES[fact.template][0]
        if position is None:
            first = " ".join(found[0].chunk.text.split())
            instead = next((f.fact for f in facts if f.fact in first), None)
            misses[template].append(
                f"{fact.question} → first hit holds "
                + (f"another fact: {instead!r}" if instead else "only filler")
            )
        else:
            hits += 1
            ranks.append(position)
    recall = hits / len(facts)
    mrr = sum(1 / r for r in ranks) / len(facts)
    lines = [
        f"{len(facts)} questions over {len(documents)} PDFs of {args.pages_per_document} pages "
        f"(one planted fact per page), embedder {embedder.model}.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| recall@{K} | **{recall:.3f}** ({hits}/{len(facts)}) |",
        f"| recall@1 | {sum(r == 1 for r in ranks) / len(facts):.3f} |",
        f"| mean reciprocal rank | {mrr:.3f} |",
        "",
        "Misses by fact template (the question is always worded differently from its fact):",
        "",
    ]
    for template, missed in sorted(misses.items(), key=lambda item: -len(item[1])):
        lines.append(f"- `{template}`: {len(missed)}")
        lines.extend(f"  - {line}" for line in missed[:3])
    if not misses:
        lines.append("- none")
    output = "\n".join(lines)
    print(output)
    if args.write:
        RESULT_FILE.write_text(
            "# Retrieval quality (bench/documents_recall.py)\n\n"
            f"`.venv/bin/python bench/documents_recall.py --facts {args.facts} "
            f"--pages-per-document {args.pages_per_document} --write`, {stamp()}.\n\n"
            + output
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
