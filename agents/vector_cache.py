"""Each end user's stored vectors as one float32 matrix, kept between queries.

Exact cosine top-k is cheap (a few ms at 10k vectors); rebuilding the matrix from the
documents' float lists on every query is not (about 0.4 s at 10k x 1536, see
bench/results/memory_topk.md). The matrix is kept per (owner, end user, embedding model)
and extended with the queries completed since it was last read. Least recently used
matrices are dropped beyond MAX_USERS.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from bson import ObjectId

from queries.models import Query

MAX_USERS = 64
REREAD_MARGIN = timedelta(minutes=5)


@dataclass
class UserVectors:
    dimensions: int
    ids: list[ObjectId] = field(default_factory=list)
    matrix: np.ndarray | None = None
    seen: set[ObjectId] = field(default_factory=set)
    # Completed-at of the newest row read; re-read inclusively, so rows completed in the
    # same millisecond as the last read are not missed (``seen`` drops the repeats).
    read_until: datetime | None = None

    def extend(self, rows: list[tuple[ObjectId, list[float] | None, datetime]]) -> None:
        new_ids, new_vectors = [], []
        for pk, embedding, completed_at in rows:
            if self.read_until is None or completed_at > self.read_until:
                self.read_until = completed_at
            if pk in self.seen or not embedding or len(embedding) != self.dimensions:
                continue
            self.seen.add(pk)
            new_ids.append(pk)
            new_vectors.append(embedding)
        if not new_ids:
            return
        block = np.asarray(new_vectors, dtype=np.float32)
        self.matrix = block if self.matrix is None else np.vstack([self.matrix, block])
        self.ids.extend(new_ids)


_cache: OrderedDict[tuple[str, str, str, int], UserVectors] = OrderedDict()
_lock = threading.Lock()


def user_vectors(*, owner_id: object, user_id: str, model: str, dimensions: int) -> UserVectors:
    """The end user's completed queries' vectors of ``model``, brought up to date."""
    key = (str(owner_id), user_id, model, dimensions)
    with _lock:
        entry = _cache.pop(key, None) or UserVectors(dimensions=dimensions)
        _cache[key] = entry
        while len(_cache) > MAX_USERS:
            _cache.popitem(last=False)
    rows = Query.objects.filter(
        owner_id=owner_id,
        user_id=user_id,
        embedding_model=model,
        status=Query.Status.COMPLETED,
        completed_at__isnull=False,
    )
    if entry.read_until is not None:
        # completed_at is stamped before the save, so a query can land after a later one
        # was read (concurrent tabs, workers): re-read a margin; ``seen`` drops repeats.
        rows = rows.filter(completed_at__gte=entry.read_until - REREAD_MARGIN)
    fetched = list(rows.order_by("completed_at").values_list("pk", "embedding", "completed_at"))
    with _lock:
        entry.extend(fetched)
    return entry


def clear_vector_cache() -> None:
    with _lock:
        _cache.clear()
