"""The chunk store: the engine's DocumentStore port (and the search endpoint's document
half), over ``files.DocumentChunk``.

Every read is scoped to one owner's end user, and to that user's *ready* documents
embedded with the query's model: a deleted file, one being re-ingested, or one of
another owner or end user is never seen. Passages come from ``$vectorSearch`` where the
server has it and the index fits the model's dimensions; otherwise from exact cosine
over the user's chunk matrix in ``files.vector_cache`` (the same cache memory uses),
fused with BM25 over the same chunks' text (``files.hybrid_search``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from bson import ObjectId
from django.db import connection

from agents.ports import DocumentPassage, Scope
from files.hybrid_search import (
    CANDIDATES,
    cosine_of,
    hybrid_top_k,
    score_fusion_pipeline,
    server_fuses_scores,
)
from files.models import (
    CHUNK_TEXT_INDEX_NAME,
    CHUNK_VECTOR_INDEX_DIMENSIONS,
    CHUNK_VECTOR_INDEX_NAME,
    DocumentChunk,
    File,
)
from files.vector_cache import CANDIDATES_PER_RESULT, VectorSource, group_vectors
from llmplatform.core.bridge import to_thread


def _owned_chunks(owner_id: object, user_id: str, model: str):
    # Read by file (``group_vectors``) through the chunks_owner_user_vectors index's
    # equality fields; chunks are written with their embedding and never changed.
    return DocumentChunk.objects.filter(owner_id=owner_id, user_id=user_id, embedding_model=model)


# Read with ``group_vectors`` (by file); the stamp is there for ``user_vectors`` only.
CHUNK_VECTORS = VectorSource(
    name="chunks",
    model=DocumentChunk,
    stamp_field="created_at",
    rows=_owned_chunks,
    group_field="file_id",
    text_field="text",
)


@dataclass(frozen=True)
class ChunkHit:
    chunk: DocumentChunk
    title: str
    score: float


def _uses_vector_search(dimensions: int) -> bool:
    return dimensions == CHUNK_VECTOR_INDEX_DIMENSIONS and bool(connection.features.supports_search)


@dataclass(frozen=True)
class _Document:
    status: str
    embedding_model: str
    filename: str
    # Changes with every ingestion: the cache re-reads a file's chunks when it does.
    version: object


def _user_documents(owner_id: ObjectId, user_id: str) -> dict[ObjectId, _Document]:
    """The end user's documents by primary key (one small read per search)."""
    rows = (
        File.objects.filter(owner_id=owner_id, user_id=user_id)
        .exclude(ingestion_status=File.Ingestion.NONE)
        .values_list(
            "pk", "ingestion_status", "embedding_model", "filename", "ingestion_finished_at"
        )
    )
    return {pk: _Document(*fields) for pk, *fields in rows}


def chunk_vector_search_pipeline(
    *,
    owner_id: ObjectId,
    user_id: str,
    vector: list[float],
    embedding_model: str,
    file_ids: list[ObjectId],
    limit: int,
) -> list[dict[str, Any]]:
    """``$vectorSearch`` over the allowed files' chunks (the filter runs inside the search,
    so other users' chunks never use up the limit)."""
    return [
        {
            "$vectorSearch": {
                "index": CHUNK_VECTOR_INDEX_NAME,
                "path": "embedding",
                "queryVector": vector,
                "numCandidates": limit * CANDIDATES_PER_RESULT,
                "limit": limit,
                "filter": {
                    "owner_id": owner_id,
                    "user_id": user_id,
                    "embedding_model": embedding_model,
                    "file_id": {"$in": file_ids},
                },
            }
        },
        {"$project": {"_id": 1, "score": {"$meta": "vectorSearchScore"}}},
    ]


def _chunks_by_pk(pks: list[ObjectId], allowed: set[ObjectId]) -> dict[ObjectId, DocumentChunk]:
    rows = DocumentChunk.objects.filter(pk__in=pks).only(
        "file_id", "page", "text", "char_start", "char_end", "index"
    )
    return {row.pk: row for row in rows if row.file_id in allowed}


def _aggregate(pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(connection.database[DocumentChunk._meta.db_table].aggregate(pipeline))


def _atlas(owner_id, user_id, vector, text, model, allowed: set[ObjectId], limit: int):
    file_ids = sorted(allowed)
    pipeline = chunk_vector_search_pipeline(
        owner_id=owner_id,
        user_id=user_id,
        vector=vector,
        embedding_model=model,
        file_ids=file_ids,
        limit=max(limit, CANDIDATES) if text and server_fuses_scores() else limit,
    )
    if text and server_fuses_scores():
        pipeline = score_fusion_pipeline(
            vector_search=pipeline[0],
            text_index=CHUNK_TEXT_INDEX_NAME,
            text_path="text",
            text=text,
            equals={"owner_id": owner_id, "user_id": user_id, "embedding_model": model},
            within={"file_id": file_ids},
            limit=limit,
        )
        ranked = [
            (hit["_id"], cosine_of(hit.get("embedding"), vector)) for hit in _aggregate(pipeline)
        ]
    else:
        # Atlas reports cosine as (1 + cos) / 2; the port speaks plain cosine.
        ranked = [(hit["_id"], 2 * hit["score"] - 1) for hit in _aggregate(pipeline)]
    found = _chunks_by_pk([pk for pk, _ in ranked], allowed)
    return [(found[pk], score) for pk, score in ranked if pk in found]


def _exact(owner_id, user_id, vector, text, model, allowed: set[ObjectId], versions, limit):
    # The matrix holds every ready document of the user (a named subset is a mask), so
    # questions about different files share it.
    stored = group_vectors(
        owner_id=owner_id,
        user_id=user_id,
        model=model,
        dimensions=len(vector),
        source=CHUNK_VECTORS,
        versions=versions,
    )
    while True:
        if stored.matrix is None:
            return []
        rows = np.flatnonzero(stored.group_mask(allowed))
        if rows.size == 0:
            return []
        ranked = hybrid_top_k(stored, vector=vector, text=text, limit=limit, rows=rows)
        found = _chunks_by_pk([pk for pk, _ in ranked], allowed)
        gone = [pk for pk, _ in ranked if pk not in found]
        if not gone:
            return [(found[pk], score) for pk, score in ranked]
        stored.drop(gone)  # deleted since the matrix was read: prune, rank again


def search_chunks(
    *,
    owner_id: object,
    user_id: str,
    vector: list[float],
    embedding_model: str,
    file_ids: list[str] | None,
    limit: int,
    text: str = "",
) -> list[ChunkHit]:
    """The best ``limit`` chunks of the end user's ready documents (of ``file_ids`` only,
    when given) for the question ``text`` and its ``vector``, best first (both signals,
    ``files.hybrid_search``). Raises nothing for unknown ids (they are simply not
    searched)."""
    if limit <= 0 or not vector or not embedding_model:
        return []
    owner = ObjectId(str(owner_id))
    documents = _user_documents(owner, user_id)
    ready = {
        pk: document.version
        for pk, document in documents.items()
        if document.status == File.Ingestion.READY and document.embedding_model == embedding_model
    }
    allowed = set(ready)
    if file_ids is not None:
        wanted = {ObjectId(f) for f in file_ids if ObjectId.is_valid(f)}
        allowed &= wanted
    if not allowed:
        return []
    if _uses_vector_search(len(vector)):
        ranked = _atlas(owner, user_id, vector, text, embedding_model, allowed, limit)
    else:
        ranked = _exact(owner, user_id, vector, text, embedding_model, allowed, ready, limit)
    return [
        ChunkHit(chunk=chunk, title=documents[chunk.file_id].filename, score=float(score))
        for chunk, score in ranked
    ]


class ChunkDocumentStore:
    """``agents.ports.DocumentStore`` over the document_chunks collection."""

    async def search(
        self,
        scope: Scope,
        *,
        vector: list[float],
        embedding_model: str,
        file_ids: list[str] | None,
        limit: int,
        text: str = "",
    ) -> list[DocumentPassage]:
        hits = await to_thread(search_chunks)(
            owner_id=scope.owner_id,
            user_id=scope.user_id,
            vector=vector,
            embedding_model=embedding_model,
            file_ids=file_ids,
            limit=limit,
            text=text,
        )
        return [
            DocumentPassage(
                chunk_id=str(hit.chunk.pk),
                file_id=str(hit.chunk.file_id),
                title=hit.title,
                page=hit.chunk.page,
                text=hit.chunk.text,
                score=hit.score,
            )
            for hit in hits
        ]
