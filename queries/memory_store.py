"""The engine's MemoryStore port, implemented with Query and Summary.

Every read is scoped to one owner's end user (similar queries) or session (turns and
summary): two owners may use the same user_id and session_id and never see each other.

Similar queries come from ``$vectorSearch`` where the server has it and the vector index
was built for this model's dimensions; otherwise from exact cosine top-k over the user's
cached matrix (``files.vector_cache``), fused with BM25 over the past questions
(``files.hybrid_search``). Candidates are returned best first with no
threshold: the engine decides what counts as relevant.

Memory of one conversation only (``session_only``) ranks the same cached matrix with
its rows restricted to the session's completed queries (``hybrid_top_k``'s ``rows``),
so the other sessions' questions are never candidates and the cache stays per user. The
``$vectorSearch`` index does not declare ``session_id``, and a conversation's questions
are few, so that scope always ranks in the cache.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import numpy as np
from bson import ObjectId
from django.db import DatabaseError, connection

from agents.ports import MemoryHit, Scope, Turn
from files.hybrid_search import (
    CANDIDATES,
    cosine_of,
    hybrid_top_k,
    score_fusion_pipeline,
    server_fuses_scores,
)
from files.vector_cache import (
    CANDIDATES_PER_RESULT,
    UserVectors,
    VectorSource,
    user_vectors,
    vector_cache_add,
)
from llmplatform.core.bridge import to_thread
from queries.models import (
    TEXT_INDEX_NAME,
    VECTOR_INDEX_DIMENSIONS,
    VECTOR_INDEX_NAME,
    Query,
    Summary,
)

logger = logging.getLogger(__name__)

# recent_turns reads this many rows per turn asked for: alternatives it skips included.
ALTERNATIVES_READ_FACTOR = 3


def _owned_queries(owner_id: object, user_id: str, model: str):
    # The filter is exactly the queries_owner_user_memory index: equality on its first
    # four fields, a range on the fifth (indexed_at).
    return Query.objects.filter(
        owner_id=owner_id,
        user_id=user_id,
        embedding_model=model,
        status=Query.Status.COMPLETED,
    )


QUERY_VECTORS = VectorSource(
    name="queries",
    model=Query,
    stamp_field="indexed_at",
    rows=_owned_queries,
    # The lexical signal reads past questions (what the vector is of), not answers.
    text_field="query",
)


def memory_row_stored(query: Query) -> None:
    """A query this process has just stored completed with its embedding: into its end
    user's matrix at once, if held here (the next question's refresh fetches nothing for
    it). Exactly the rows ``_owned_queries`` lists; anything else is left to the read."""
    if query.status != Query.Status.COMPLETED or not query.embedding or not query.embedding_model:
        return
    vector_cache_add(
        owner_id=query.owner_id,
        user_id=query.user_id,
        model=query.embedding_model,
        dimensions=len(query.embedding),
        source=QUERY_VECTORS,
        rows=[{"pk": query.pk, "embedding": query.embedding, "query": query.query}],
    )


def uses_vector_search(dimensions: int) -> bool:
    return dimensions == VECTOR_INDEX_DIMENSIONS and bool(connection.features.supports_search)


def vector_search_pipeline(
    scope: Scope, *, vector: list[float], embedding_model: str, limit: int
) -> list[dict[str, Any]]:
    """The ``$vectorSearch`` aggregation for one end user's completed queries.

    The scope is filtered inside the search (the index declares these fields), so other
    owners' and unfinished queries never use up the result limit. One extra result is
    asked for because the running query may be among them and is dropped afterwards.
    """
    return [
        {
            "$vectorSearch": {
                "index": VECTOR_INDEX_NAME,
                "path": "embedding",
                "queryVector": vector,
                "numCandidates": (limit + 1) * CANDIDATES_PER_RESULT,
                "limit": limit + 1,
                "filter": {
                    "owner_id": ObjectId(scope.owner_id),
                    "user_id": scope.user_id,
                    "embedding_model": embedding_model,
                    "status": Query.Status.COMPLETED,
                },
            }
        },
        {"$project": {"_id": 1, "score": {"$meta": "vectorSearchScore"}}},
    ]


def _running_query_id(scope: Scope) -> ObjectId | None:
    return ObjectId(scope.query_id) if ObjectId.is_valid(scope.query_id) else None


def _hits_in_scope(scope: Scope, ranked: list[tuple[ObjectId, float]]) -> dict[ObjectId, Query]:
    """The ranked queries that still exist and belong to the scope, by primary key.

    Fetched by primary key alone (the database's cheapest read) and checked here: the
    ranking already came from the scope, this guards against a delete since then.
    """
    rows = Query.objects.filter(pk__in=[pk for pk, _ in ranked]).only(
        "owner_id", "user_id", "status", "query", "response", "session_id", "timestamp"
    )
    return {
        row.pk: row
        for row in rows
        if str(row.owner_id) == scope.owner_id
        and row.user_id == scope.user_id
        and row.status == Query.Status.COMPLETED
    }


def _aggregate(pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(connection.database[Query._meta.db_table].aggregate(pipeline))


def _vector_search(
    scope: Scope, vector: list[float], text: str, embedding_model: str, limit: int
) -> list[tuple[Query, float]]:
    fuse = bool(text) and server_fuses_scores()
    pipeline = vector_search_pipeline(
        scope,
        vector=vector,
        embedding_model=embedding_model,
        limit=max(limit, CANDIDATES) if fuse else limit,
    )
    running = _running_query_id(scope)
    if fuse:
        pipeline = score_fusion_pipeline(
            vector_search=pipeline[0],
            text_index=TEXT_INDEX_NAME,
            text_path="query",
            text=text,
            equals={
                "owner_id": ObjectId(scope.owner_id),
                "user_id": scope.user_id,
                "embedding_model": embedding_model,
                "status": Query.Status.COMPLETED,
            },
            limit=limit + 1,
        )
        hits = [
            (hit["_id"], cosine_of(hit.get("embedding"), vector)) for hit in _aggregate(pipeline)
        ]
    else:
        # Atlas reports cosine as (1 + cos) / 2; the port speaks plain cosine.
        hits = [(hit["_id"], 2 * hit["score"] - 1) for hit in _aggregate(pipeline)]
    ranked = [(pk, score) for pk, score in hits if pk != running][:limit]
    found = _hits_in_scope(scope, ranked)
    return [(found[pk], score) for pk, score in ranked if pk in found]


def _held_vectors(
    scope: Scope, embedding_model: str, dimensions: int, *, fresh_since: datetime | None = None
) -> UserVectors:
    return user_vectors(
        owner_id=ObjectId(scope.owner_id),
        user_id=scope.user_id,
        model=embedding_model,
        dimensions=dimensions,
        source=QUERY_VECTORS,
        fresh_since=fresh_since,
    )


def memory_refresh(
    scope: Scope, *, embedding_model: str, dimensions: int, fresh_since: datetime | None = None
) -> None:
    """The end user's matrix brought up to date ahead of its search (nothing to do where
    the server searches), unless a read that started at or after ``fresh_since`` did.
    Raises nothing: the search reads what this could not."""
    if uses_vector_search(dimensions):
        return
    try:
        _held_vectors(scope, embedding_model, dimensions, fresh_since=fresh_since)
    except DatabaseError as exc:
        logger.warning(
            "memory of %s could not be read ahead of its search (the search reads it): %s",
            scope.user_id,
            exc,
        )


def _session_query_ids(scope: Scope, embedding_model: str) -> set[ObjectId]:
    """The session's completed queries of this model (the owner + session_id index)."""
    return set(
        Query.objects.filter(
            owner_id=ObjectId(scope.owner_id),
            session_id=scope.session_id,
            user_id=scope.user_id,
            embedding_model=embedding_model,
            status=Query.Status.COMPLETED,
        ).values_list("pk", flat=True)
    )


def _rows_of(stored: UserVectors, pks: set[ObjectId]) -> np.ndarray:
    positions = [stored.positions[pk] for pk in pks if pk in stored.positions]
    return np.asarray(sorted(positions), dtype=np.int64)


def _exact_top_k(
    scope: Scope,
    vector: list[float],
    text: str,
    embedding_model: str,
    limit: int,
    session_only: bool = False,
    fresh_since: datetime | None = None,
) -> list[tuple[Query, float]]:
    stored = _held_vectors(scope, embedding_model, len(vector), fresh_since=fresh_since)
    session = _session_query_ids(scope, embedding_model) if session_only else None
    while True:
        rows = None if session is None else _rows_of(stored, session)
        if rows is not None and rows.size == 0:
            return []
        # The running query may already be stored as completed: never its own memory.
        ranked = hybrid_top_k(
            stored,
            vector=vector,
            text=text,
            limit=limit,
            rows=rows,
            excluded=_running_query_id(scope),
        )
        found = _hits_in_scope(scope, ranked)
        gone = [pk for pk, _ in ranked if pk not in found]
        if not gone:
            return [(found[pk], score) for pk, score in ranked]
        # Deleted (or no longer completed) since the matrix was read: prune, rank again.
        stored.drop(gone)


def _hit(query: Query, score: float) -> MemoryHit:
    return MemoryHit(
        query_id=str(query.pk), query=query.query, response=query.response, score=float(score)
    )


def similar_query_rows(
    scope: Scope,
    *,
    vector: list[float],
    embedding_model: str,
    limit: int,
    text: str = "",
    session_only: bool = False,
    fresh_since: datetime | None = None,
) -> list[tuple[Query, float]]:
    """The scope's completed queries closest to the question ``text`` and its ``vector``,
    with their cosine, best first (memory, and ``GET /api/v1/search``); only the scope's
    session's with ``session_only``. The matrix is not read again if a ``memory_refresh``
    that started at or after ``fresh_since`` did."""
    if limit <= 0 or not vector or not embedding_model:
        return []
    if uses_vector_search(len(vector)) and not session_only:
        return _vector_search(scope, vector, text, embedding_model, limit)
    return _exact_top_k(
        scope,
        vector,
        text,
        embedding_model,
        limit,
        session_only=session_only,
        fresh_since=fresh_since,
    )


def similar_queries(
    scope: Scope,
    *,
    vector: list[float],
    embedding_model: str,
    limit: int,
    text: str = "",
    session_only: bool = False,
    fresh_since: datetime | None = None,
) -> list[MemoryHit]:
    rows = similar_query_rows(
        scope,
        vector=vector,
        embedding_model=embedding_model,
        limit=limit,
        text=text,
        session_only=session_only,
        fresh_since=fresh_since,
    )
    return [_hit(query, score) for query, score in rows]


def recent_turns(scope: Scope, *, limit: int) -> list[Turn]:
    rows = Query.objects.filter(
        owner_id=ObjectId(scope.owner_id),
        session_id=scope.session_id,
        status=Query.Status.COMPLETED,
    )
    running = _running_query_id(scope)
    if running is not None:
        rows = rows.exclude(pk=running)
    # A regenerated or edited turn is its newest alternative: the earlier ones are not
    # the conversation any more (Query.metadata["alternative_of"] names the turn's first
    # query). Read a few more rows than asked for, to make up for those.
    newest_first = rows.order_by("-timestamp", "-pk").values_list(
        "pk", "query", "response", "metadata"
    )[: limit * ALTERNATIVES_READ_FACTOR]
    turns: list[Turn] = []
    answered: set[str] = set()
    for pk, question, answer, metadata in newest_first:
        turn_of = (metadata or {}).get("alternative_of") or str(pk)
        if turn_of in answered:
            continue
        answered.add(turn_of)
        turns.append(Turn(question=question, answer=answer))
        if len(turns) == limit:
            break
    return turns


def latest_summary(scope: Scope) -> str | None:
    summary = (
        Summary.objects.filter(owner_id=ObjectId(scope.owner_id), session_id=scope.session_id)
        .order_by("-pair_count")
        .values_list("summary", flat=True)
        .first()
    )
    return summary


class QueryMemoryStore:
    """``agents.ports.MemoryStore`` over the Query and Summary collections."""

    async def refresh(self, scope: Scope, *, embedding_model: str, dimensions: int) -> None:
        await to_thread(memory_refresh)(
            scope, embedding_model=embedding_model, dimensions=dimensions
        )

    async def similar(
        self,
        scope: Scope,
        *,
        vector: list[float],
        embedding_model: str,
        limit: int,
        text: str = "",
        session_only: bool = False,
        fresh_since: datetime | None = None,
    ) -> list[MemoryHit]:
        return await to_thread(similar_queries)(
            scope,
            vector=vector,
            embedding_model=embedding_model,
            limit=limit,
            text=text,
            session_only=session_only,
            fresh_since=fresh_since,
        )

    async def recent_turns(self, scope: Scope, *, limit: int) -> list[Turn]:
        return await to_thread(recent_turns)(scope, limit=limit)

    async def latest_summary(self, scope: Scope) -> str | None:
        return await to_thread(latest_summary)(scope)
