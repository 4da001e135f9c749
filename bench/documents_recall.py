"""Retrieval quality: recall@5 and recall@1 on questions whose answers are facts planted on
known pages, for each ranking (vectors + BM25, vectors only, BM25 only).

    .venv/bin/python bench/documents_recall.py --facts 200 --write

Two question sets of ``--facts`` facts each, one fact per page among generated
report-like filler, in PDFs of ``--pages-per-document`` pages:

- ``paraphrase``: 10 sentence templates x 20 places, each question worded differently
  from its fact ("How many EV chargers are in the Lima car park?" for "The parking
  garage in Lima offers 12 charging stations for electric cars.");
- ``entities``: 10 templates x 20 entities of one form (part codes, clauses, people,
  invoices, servers, tickets...), each question naming its entity ("What is the maximum
  pressure of pump XK-4471?"): what the embedder blurs and the words catch.

The PDFs go through the real ingestion (pypdf, chunking, all-MiniLM-L6-v2) on a
throw-away embedded SecantusDB; each question is searched with
``files.document_store.search_chunks`` over all of the set's documents, as
``use_documents`` does, once per ranking (``RETRIEVAL_VECTOR`` / ``RETRIEVAL_LEXICAL``,
cache cleared between). A hit: one of the 5 best passages is from the fact's document and
page and contains the fact. The hybrid ranking's misses are listed with what ranked first
instead. Not a test.
"""

from __future__ import annotations

import argparse
import collections
import time

from documents_common import (
    ENTITY_TEMPLATES,
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
QUESTION_SETS = ("paraphrase", "entities")


CONFIGURATIONS = [
    ("hybrid (vectors + BM25)", {"RETRIEVAL_VECTOR": True, "RETRIEVAL_LEXICAL": True}),
    ("vectors only", {"RETRIEVAL_VECTOR": True, "RETRIEVAL_LEXICAL": False}),
    ("BM25 only", {"RETRIEVAL_VECTOR": False, "RETRIEVAL_LEXICAL": True}),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=200)
    parser.add_argument("--pages-per-document", type=int, default=40)
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE}")
    args = parser.parse_args()

    start_django("bench-documents-recall-")
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from agents.providers.embeddings import get_embedder
    from files.document_store import search_chunks
    from files.ingestion import document_ingest
    from files.models import File
    from files.vector_cache import clear_vector_cache
    from llmplatform.core.bridge import run_sync

    owner, _ = get_user_model().objects.get_or_create(username="recall-bench")
    embedder = get_embedder()
    sets = {}
    for question_set in QUESTION_SETS:
        facts = planted_facts(
            args.facts, pages_per_document=args.pages_per_document, question_set=question_set
        )
        file_ids = {}
        started = time.perf_counter()
        for document in sorted({f.document for f in facts}):
            pages = document_pages(facts, document, args.pages_per_document, seed=3)
            name = f"{question_set}-{document}.pdf"
            file = store_pdf(owner, question_set, name, make_pdf(pages))
            document_ingest(file_id=str(file.pk))
            file.refresh_from_db()
            if file.ingestion_status != File.Ingestion.READY:
                raise SystemExit(f"ingestion failed: {file.ingestion_error}")
            file_ids[document] = file.pk
        print(
            f"{question_set}: ingested {len(file_ids)} documents in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        vectors = run_sync(embedder.embed([f.question for f in facts]))
        sets[question_set] = (facts, file_ids, vectors)

    def measure(question_set: str) -> tuple[list[int | None], dict[str, list[str]]]:
        facts, file_ids, vectors = sets[question_set]
        positions: list[int | None] = []
        misses: dict[str, list[str]] = collections.defaultdict(list)
        for fact, vector in zip(facts, vectors, strict=True):
            found = search_chunks(
                owner_id=owner.pk,
                user_id=question_set,
                vector=vector,
                text=fact.question,
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
            positions.append(position)
            if position is None:
                first = " ".join(found[0].chunk.text.split())
                instead = next((f.fact for f in facts if f.fact in first), None)
                templates = TEMPLATES if question_set == "paraphrase" else ENTITY_TEMPLATES
                misses[templates[fact.template][0]].append(
                    f"{fact.question} → first hit holds "
                    + (f"another fact: {instead!r}" if instead else "only filler")
                )
        return positions, misses

    lines = [
        f"{args.facts} questions per set over PDFs of {args.pages_per_document} pages (one "
        f"planted fact per page), embedder {embedder.model}. `paraphrase`: each question "
        "worded differently from its fact; `entities`: each question names a code, name or "
        "number that only its fact holds, among 19 facts of the same form.",
        "",
        f"| question set | ranking | recall@{K} | recall@1 | MRR |",
        "|---|---|---|---|---|",
    ]
    hybrid_misses = {}
    for label, overrides in CONFIGURATIONS:
        for name, value in overrides.items():
            setattr(settings, name, value)
        for question_set in QUESTION_SETS:
            clear_vector_cache()
            positions, misses = measure(question_set)
            if label.startswith("hybrid"):
                hybrid_misses[question_set] = misses
            hits = [p for p in positions if p is not None]
            total = len(positions)
            lines.append(
                f"| {question_set} | {label} | **{len(hits) / total:.3f}** | "
                f"{sum(p == 1 for p in hits) / total:.3f} | "
                f"{sum(1 / p for p in hits) / total:.3f} |"
            )
            print(lines[-1], flush=True)
    for question_set, misses in hybrid_misses.items():
        lines += ["", f"Hybrid misses in `{question_set}`, by fact template:", ""]
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
