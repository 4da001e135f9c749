"""Semantic search over an end user's past queries and document passages
(``GET /api/v1/search``).

It reads across two apps (queries' memory store, files' chunk store), so it sits above
both, as an edge of its own; it stores nothing.
"""

from __future__ import annotations

import heapq
import itertools

from agents.documents import passage_snippet
from agents.ports import Scope
from agents.providers.embeddings import get_embedder
from files.charges import embedding_charged, payer_for
from files.document_store import search_chunks
from llmplatform.core.bridge import run_sync
from llmplatform.core.models import ApiKey
from queries.memory_store import similar_query_rows

SCOPES = ("all", "queries", "documents")


def semantic_search(
    *, owner, api_key: ApiKey | None, user_id: str, q: str, scope: str, limit: int
) -> list[dict]:
    """The end user's queries and/or document passages closest in meaning to ``q``, best
    first, at most ``limit``.

    Embedding ``q`` is admitted against ``api_key``'s limits (none: the owner's account)
    and settled after. Raises ApplicationError (429) and ProviderError (503 when the
    embedder fails).
    """
    embedder = get_embedder()
    with embedding_charged(
        payer=payer_for(owner=owner, api_key=api_key, user_id=user_id),
        model=embedder.model,
        texts=[q],
    ):
        [vector] = run_sync(embedder.embed([q]))
    queries: list[dict] = []
    documents: list[dict] = []
    if scope in ("all", "queries"):
        rows = similar_query_rows(
            Scope(owner_id=str(owner.pk), user_id=user_id, session_id="", query_id=""),
            vector=vector,
            embedding_model=embedder.model,
            limit=limit,
            text=q,
        )
        queries.extend(
            {
                "type": "query",
                "score": round(score, 4),
                "snippet": passage_snippet(query.query, q),
                "query_id": str(query.pk),
                "session_id": query.session_id,
                "timestamp": query.timestamp,
            }
            for query, score in rows
        )
    if scope in ("all", "documents"):
        hits = search_chunks(
            owner_id=owner.pk,
            user_id=user_id,
            vector=vector,
            embedding_model=embedder.model,
            file_ids=None,
            limit=limit,
            text=q,
        )
        documents.extend(
            {
                "type": "document",
                "score": round(hit.score, 4),
                "snippet": passage_snippet(hit.chunk.text, q),
                "file_id": str(hit.chunk.file_id),
                "title": hit.title,
                "page": hit.chunk.page,
                "url": f"/api/v1/files/{hit.chunk.file_id}/content",
            }
            for hit in hits
        )
    # Each half comes ranked by both signals (``files.hybrid_search``), so it is kept in
    # its order; the halves are merged by the cosine of their heads, so a passage the
    # words found keeps its place instead of being re-sorted below by its cosine alone.
    merged = heapq.merge(queries, documents, key=lambda result: -result["score"])
    return list(itertools.islice(merged, limit))
