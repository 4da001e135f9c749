"""Exact cosine top-k over the caller's own vectors, for databases without ``$vectorSearch``.

The memory agent scores a query vector against every stored vector of one user (and one
embedding model): a matrix-vector product and a partial sort, no index. See
``bench/memory_topk.py`` for what it costs at 10k and 100k vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def cosine_top_k(
    query: Sequence[float] | np.ndarray,
    vectors: np.ndarray | Sequence[Sequence[float]],
    k: int,
    *,
    assume_unit_rows: bool = False,
) -> list[tuple[int, float]]:
    """The ``k`` rows of ``vectors`` most cosine-similar to ``query``, best first.

    Returns ``(row index, cosine similarity)`` pairs. Rows of zero length score 0.
    ``assume_unit_rows`` skips computing row norms when the caller knows every row already
    has length 1 (both embedders here return unit vectors); it saves one pass over the matrix.
    Raises ValueError for a negative ``k`` or when the query and rows differ in dimension
    (which is what vectors of two different embedding models look like).
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}.")
    matrix = np.asarray(vectors)
    if matrix.dtype.kind != "f":
        matrix = matrix.astype(np.float32)
    if matrix.size == 0 and matrix.ndim < 2:
        return []
    if matrix.ndim != 2:
        raise ValueError(
            f"vectors must be a 2-D matrix (rows of floats), got shape {matrix.shape}."
        )
    q = np.asarray(query, dtype=matrix.dtype)
    if q.ndim != 1 or q.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"The query has {q.shape[-1] if q.ndim else 0} dimensions but the stored vectors have "
            f"{matrix.shape[1]}: they come from different embedding models and cannot be compared."
        )
    rows = matrix.shape[0]
    if k == 0 or rows == 0:
        return []

    scores = np.vecdot(matrix, q)
    q_norm = float(np.linalg.norm(q))
    if q_norm == 0.0:
        scores = np.zeros(rows, dtype=matrix.dtype)
    elif assume_unit_rows:
        scores /= q_norm
    else:
        # vecdot computes every row's squared length in one pass without a temporary matrix
        # (measured faster than einsum and far faster than np.linalg.norm(axis=1)).
        row_norms = np.sqrt(np.vecdot(matrix, matrix))
        row_norms *= q_norm
        np.divide(scores, row_norms, out=scores, where=row_norms > 0)
        scores[row_norms == 0] = 0.0

    if k >= rows:
        best = np.argsort(-scores, kind="stable")
    else:
        # argpartition finds the k best in linear time; only those k are then sorted.
        candidates = np.argpartition(-scores, k - 1)[:k]
        best = candidates[np.argsort(-scores[candidates], kind="stable")]
    return [(int(index), float(scores[index])) for index in best]
