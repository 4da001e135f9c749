"""Ranking one end user's cached rows by two signals: vector similarity and BM25.

Both stores (memory's past questions, the documents' passages) rank the same way over a
``files.user_vectors.UserVectors`` entry: the best ``CANDIDATES`` rows of each signal
are fused by relative score fusion (each list's scores scaled to [0, 1] between its
worst and best candidate, then a weighted sum, as Weaviate's ``relativeScoreFusion``
and MongoDB's ``$scoreFusion`` with ``minMaxScaler`` do). Reciprocal rank fusion was
tried first and measured worse: with 40 passages that differ only in a part code, the
passage with the asked code ranked first in 35 of 40 by vectors alone, 40 of 40 by BM25
alone, and still 35 of 40 with RRF, because a rank cannot say that BM25's first place
was decisive and the vector's was a near tie; score fusion ranks it first in 40 of 40
(``tests/files/test_hybrid_search.py``, ``bench/documents_recall.py``). The cosine of
every returned row is reported, whichever signal found it, because the engine's
relevance floors are cosine floors.

On a server with ``$scoreFusion`` (MongoDB 8.2+ with Atlas Search) the database runs the
same fusion (``score_fusion_pipeline``) over the ``$vectorSearch`` and ``$search``
indexes that ``setup_indexes`` creates.

Each signal can be switched off per deployment (``RETRIEVAL_VECTOR``,
``RETRIEVAL_LEXICAL``); with one off the other ranks alone. The lexical signal needs
the question's text; without it (or with no lexicon) the vector ranking is returned.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bson import ObjectId
from django.conf import settings
from django.db import connection

from agents.providers.similarity import cosine_top_k
from files.user_vectors import UserVectors

# The vector signal's share of the fused score; the words have the rest. Measured on
# bench/documents_recall.py (recall@5 / recall@1, paraphrased and entity questions):
# 0.5 gave 0.995/0.900 and 1.000/0.855; 0.45 gives 0.990/0.870 and 1.000/0.960; 0.4
# gave 0.980/0.870 and 1.000/0.975. 0.45 is the best worst case.
VECTOR_WEIGHT = 0.45
# Rows taken from each signal before fusion (at least; more when more are asked for).
CANDIDATES = 20


def fused_ranking(
    by_vector: list[tuple[ObjectId, float]], by_text: list[tuple[ObjectId, float]]
) -> list[ObjectId]:
    """Keys ordered by relative score fusion of the two rankings (``(key, score)``, each
    best first): each list's scores are scaled to [0, 1] between its lowest and highest
    candidate, then weighted and summed; a key missing from a list gets 0 from it. Equal
    scores get equal shares, so a signal that cannot tell rows apart (the same words in
    each) does not reorder them. Ties keep the vector order."""
    fused: dict[ObjectId, float] = {}
    for ranking, weight in ((by_vector, VECTOR_WEIGHT), (by_text, 1.0 - VECTOR_WEIGHT)):
        if not ranking:
            continue
        high, low = ranking[0][1], min(score for _, score in ranking)
        for key, score in ranking:
            share = (score - low) / (high - low) if high > low else 1.0
            fused[key] = fused.get(key, 0.0) + weight * share
    return sorted(fused, key=lambda key: -fused[key])


def hybrid_top_k(
    stored: UserVectors,
    *,
    vector: list[float],
    text: str,
    limit: int,
    rows: np.ndarray | None = None,
    excluded: ObjectId | None = None,
) -> list[tuple[ObjectId, float]]:
    """The best ``limit`` rows as ``(pk, cosine)``, best first.

    ``rows``: the matrix positions that may be returned (None: all of them);
    ``excluded``: a key never returned (the running query)."""
    matrix = stored.matrix
    if matrix is None or limit <= 0:
        return []
    wanted = max(limit, CANDIDATES) + (excluded is not None)
    if rows is not None and rows.size == len(stored.ids):
        rows = None  # every row is allowed
    if rows is None:
        candidates, positions = matrix, None
    else:
        # Fancy indexing copies only the allowed rows.
        candidates, positions = matrix[rows], rows
    by_vector = [
        (stored.ids[int(row if positions is None else positions[row])], score)
        for row, score in cosine_top_k(vector, candidates, wanted, assume_unit_rows=True)
    ]
    by_vector = [(pk, score) for pk, score in by_vector if pk != excluded]
    lexicon = stored.lexicon
    if lexicon is None or not text or not settings.RETRIEVAL_LEXICAL:
        return by_vector[:limit]
    # The rows a subset allows, by key (a named document's few chunks; None: all).
    only = None if rows is None else [stored.ids[int(row)] for row in rows]
    by_text = lexicon.top_k(text, wanted, only=only, exclude=excluded)
    cosine = dict(by_vector)
    if settings.RETRIEVAL_VECTOR:
        order = fused_ranking(by_vector, by_text)
    else:
        order = [pk for pk, _ in by_text] + [pk for pk, _ in by_vector]
    query = np.asarray(vector, dtype=np.float32)
    ranked = []
    for pk in dict.fromkeys(order):
        if pk not in cosine:
            row = stored.row_vector(pk)
            if row is None:
                continue
            cosine[pk] = float(row @ query)
        ranked.append((pk, cosine[pk]))
        if len(ranked) == limit:
            break
    return ranked


def server_fuses_scores() -> bool:
    """Whether the database runs the same fusion itself: ``$scoreFusion`` (MongoDB 8.2+)
    over ``$vectorSearch`` and ``$search`` (Atlas Search indexes). The embedded server
    has neither and ranks in ``hybrid_top_k``."""
    features = connection.features
    return (
        bool(features.supports_search)
        and features.mongodb_version >= (8, 2)
        and settings.RETRIEVAL_LEXICAL
        and settings.RETRIEVAL_VECTOR
    )


def score_fusion_pipeline(
    *,
    vector_search: dict[str, Any],
    text_index: str,
    text_path: str,
    text: str,
    equals: dict[str, Any],
    within: dict[str, list[Any]] | None = None,
    limit: int,
) -> list[dict[str, Any]]:
    """The server-side twin of ``hybrid_top_k``: ``$scoreFusion`` of ``vector_search`` (a
    ``$vectorSearch`` stage) and an Atlas Search ``$search`` for ``text`` on
    ``text_path``, both min-max scaled and weighted as here; each hit with its embedding,
    so the caller reports its cosine as the local path does.

    ``equals``/``within``: the same scope as the vector search's filter, as Atlas Search
    ``equals``/``in`` clauses (every path is declared in ``text_index``).
    """
    candidates = max(limit, CANDIDATES)
    scope = [{"equals": {"path": path, "value": value}} for path, value in equals.items()]
    scope += [{"in": {"path": path, "value": values}} for path, values in (within or {}).items()]
    text_search = {
        "$search": {
            "index": text_index,
            "compound": {"must": [{"text": {"query": text, "path": text_path}}], "filter": scope},
        }
    }
    return [
        {
            "$scoreFusion": {
                "input": {
                    "pipelines": {
                        "vector": [vector_search],
                        "text": [text_search, {"$limit": candidates}],
                    },
                    "normalization": "minMaxScaler",
                },
                "combination": {"weights": {"vector": VECTOR_WEIGHT, "text": 1.0 - VECTOR_WEIGHT}},
            }
        },
        {"$limit": limit},
        {"$project": {"_id": 1, "embedding": 1}},
    ]


def cosine_of(embedding: list[float] | None, vector: list[float]) -> float:
    """The cosine of a hit's stored embedding and the question's vector (0 without one)."""
    if not embedding:
        return 0.0
    a, b = np.asarray(embedding, dtype=np.float32), np.asarray(vector, dtype=np.float32)
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norms if norms else 0.0
