"""MemoryAgent: the query's embedding, the caller's relevant past queries, the session summary.

Retrieval never crosses owners, end users or embedding models: vectors of two models
are not comparable. ``$vectorSearch`` is used where the server has it and the index was
built for this model's dimensions; exact cosine top-k over the caller's vectors otherwise.
"""

from __future__ import annotations

import logging

from bson import ObjectId
from django.db import connection

from agents.providers.base import ProviderError
from agents.providers.embeddings import get_embedder
from agents.providers.similarity import cosine_top_k
from agents.state import PipelineState
from agents.vector_cache import user_vectors
from llmplatform.core.db_threads import db_async
from queries.models import VECTOR_INDEX_DIMENSIONS, VECTOR_INDEX_NAME, Query, Summary

logger = logging.getLogger(__name__)

TOP_K = 3
# Below this cosine similarity a past query is noise rather than memory.
MIN_SCORE = 0.35
HISTORY_TURNS = 3
MEMORY_TEXT_LIMIT = 600


def _memory_item(query: Query, score: float) -> dict[str, object]:
    return {
        "query_id": str(query.pk),
        "query": query.query,
        "response": query.response[:MEMORY_TEXT_LIMIT],
        "score": round(float(score), 4),
    }


def _exact_top_k(state: PipelineState, vector: list[float]) -> list[dict[str, object]]:
    stored = user_vectors(
        owner_id=state.owner_id,
        user_id=state.user_id,
        model=state.embedding_model,
        dimensions=len(vector),
    )
    if stored.matrix is None:
        return []
    # Both embedders return unit vectors, so the dot product is the cosine.
    ranked = [
        (stored.ids[i], s)
        for i, s in cosine_top_k(vector, stored.matrix, TOP_K, assume_unit_rows=True)
        if s >= MIN_SCORE
    ]
    by_pk = Query.objects.in_bulk([pk for pk, _ in ranked])
    return [_memory_item(by_pk[pk], score) for pk, score in ranked if pk in by_pk]


def _vector_search(state: PipelineState, vector: list[float]) -> list[dict[str, object]]:
    pipeline = [
        {
            "$vectorSearch": {
                "index": VECTOR_INDEX_NAME,
                "path": "embedding",
                "queryVector": vector,
                "numCandidates": TOP_K * 20,
                "limit": TOP_K + 1,
                "filter": {
                    "owner_id": state.owner_id,
                    "user_id": state.user_id,
                    "embedding_model": state.embedding_model,
                    "status": Query.Status.COMPLETED,
                },
            }
        },
        {"$project": {"_id": 1, "score": {"$meta": "vectorSearchScore"}}},
    ]
    hits = [
        hit
        for hit in connection.database[Query._meta.db_table].aggregate(pipeline)
        if hit["_id"] != ObjectId(state.query_id)
    ]
    by_pk = Query.objects.in_bulk([hit["_id"] for hit in hits])
    # Atlas maps cosine to (1 + cos) / 2; convert back so one threshold serves both paths.
    return [
        _memory_item(by_pk[hit["_id"]], 2 * hit["score"] - 1)
        for hit in hits[:TOP_K]
        if hit["_id"] in by_pk and 2 * hit["score"] - 1 >= MIN_SCORE
    ]


def uses_vector_search(dimensions: int) -> bool:
    return dimensions == VECTOR_INDEX_DIMENSIONS and bool(connection.features.supports_search)


def _load_context(state: PipelineState, vector: list[float], dimensions: int) -> None:
    search = _vector_search if uses_vector_search(dimensions) else _exact_top_k
    state.memory_items = search(state, vector)
    summary = (
        Summary.objects.filter(owner_id=state.owner_id, session_id=state.session_id)
        .order_by("-pair_count")
        .first()
    )
    state.summary = summary.summary if summary else None
    recent = (
        Query.objects.filter(
            owner_id=state.owner_id, session_id=state.session_id, status=Query.Status.COMPLETED
        )
        .exclude(pk=ObjectId(state.query_id))
        .order_by("-timestamp")
        .values_list("query", "response")[:HISTORY_TURNS]
    )
    state.history = list(reversed(list(recent)))


async def embed_query(state: PipelineState) -> bool:
    """Embed the query text (stored with the query for future retrieval); False if it failed."""
    embedder = get_embedder()
    try:
        [vector] = await embedder.embed([state.text])
    except ProviderError as exc:
        # Memory is an aid: without an embedding the question is still answered.
        logger.warning("embedding failed, answering without memory: %s", exc.message)
        state.embedding_model = ""
        return False
    state.embedding = vector
    state.embedding_model = embedder.model
    return True


async def run(state: PipelineState) -> None:
    if state.embedding is None and not await embed_query(state):
        return
    await db_async(_load_context)(state, state.embedding, len(state.embedding))
