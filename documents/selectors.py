"""Semantic search over the caller's past queries and documents (``GET /api/v1/search``)."""

from __future__ import annotations

from agents.documents import passage_snippet
from agents.ports import Scope
from agents.providers.embeddings import get_embedder
from llmplatform.core.bridge import run_sync
from queries.document_store import search_chunks
from queries.memory_store import similar_query_rows

SCOPES = ("all", "queries", "documents")


def semantic_search(*, owner, user_id: str, q: str, scope: str, limit: int) -> list[dict]:
    """The end user's queries and/or document passages closest in meaning to ``q``, best
    first, at most ``limit``. Raises ProviderError (503) when the embedder fails."""
    embedder = get_embedder()
    [vector] = run_sync(embedder.embed([q]))
    results: list[dict] = []
    if scope in ("all", "queries"):
        rows = similar_query_rows(
            Scope(owner_id=str(owner.pk), user_id=user_id, session_id="", query_id=""),
            vector=vector,
            embedding_model=embedder.model,
            limit=limit,
        )
        results.extend(
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
        )
        results.extend(
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
    results.sort(key=lambda result: result["score"], reverse=True)
    return results[:limit]
