"""The per-user matrix as a data structure: appends keep every row and its position, and
a large matrix grows by a quarter, not by doubling (a 200k-row user held 594 MB in every
process for 307 MB of vectors)."""

from __future__ import annotations

import numpy as np
from bson import ObjectId

from files.user_vectors import GROWTH, UserVectors

DIMS = 8


def rows(count: int, rng: np.random.Generator) -> list[tuple[ObjectId, list[float]]]:
    vectors = rng.normal(size=(count, DIMS)).astype(np.float32)
    return [(ObjectId(), vector.tolist()) for vector in vectors]


def test_a_large_matrix_grows_by_a_quarter_and_keeps_every_row():
    rng = np.random.default_rng(0)
    held = UserVectors(dimensions=DIMS)
    first = rows(4000, rng)
    held.append(first)  # exactly as many rows as it holds: no spare capacity yet
    assert held.buffer.shape[0] == 4000

    later = rows(1, rng)
    held.append(later)

    assert held.buffer.shape[0] == 4000 + int(4000 * GROWTH)  # 5,000, not 8,000
    for pk, vector in [*first, *later]:
        assert np.allclose(held.row_vector(pk), vector)
    assert held.matrix.shape == (4001, DIMS)

    # Appends fill the spare rows without another copy until they run out.
    buffer = held.buffer
    held.append(rows(999, rng))
    assert held.buffer is buffer
    held.append(rows(1, rng))
    assert held.buffer is not buffer
    assert held.buffer.shape[0] == 5000 + int(5000 * GROWTH)
