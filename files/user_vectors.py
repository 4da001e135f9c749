"""One end user's vectors of one source as a float32 matrix with spare capacity, and
what travels with each row: its group (a chunk's file) and, when the lexical signal is
on, its text in a BM25 index. ``files.vector_cache`` keeps one per (owner, end user,
model, dimensions, source) and brings it up to date; this module is only the data
structure (append, drop, masks, restore from a snapshot)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from bson import ObjectId

from files.lexical_index import LexicalIndex

INITIAL_CAPACITY = 64
# Spare capacity a full matrix grows by, as a share of the rows it holds: appends stay
# amortised O(1) (a copy every 1/4 more rows), while a large user's matrix carries at
# most a quarter spare. Doubling left a 200k-row user at 594 MB in every process for
# 307 MB of vectors (bench/memory_scale.py).
GROWTH = 0.25
# The group code of rows without one (queries).
NO_GROUP = -1


@dataclass
class UserVectors:
    dimensions: int
    # Rows carry a group (``VectorSource.group_field``).
    grouped: bool = False
    # The lexical index over the rows' text, when the source has one and it is on.
    lexicon: LexicalIndex | None = None
    ids: list[ObjectId] = field(default_factory=list)
    # Rows [0, len(ids)) are live; the rest is spare capacity for appends.
    buffer: np.ndarray | None = None
    positions: dict[ObjectId, int] = field(default_factory=dict)
    # When the last read started, by this process's clock; the next read lists the rows
    # stamped from REREAD_MARGIN before it. None until the first (cold) read.
    read_until: datetime | None = None
    # Per row, the code of its group (``group_codes``), parallel to ``buffer``.
    groups: np.ndarray | None = None
    group_codes: dict[object, int] = field(default_factory=dict)
    # Codes are never reused: a dropped group's code may still sit in a stale mask.
    next_group_code: int = 0
    # Sources read by group (``group_vectors``): the version each held group was read at.
    group_versions: dict[object, object] = field(default_factory=dict)
    # Rows appended or dropped so far, and as of the last snapshot (files.vector_snapshots).
    changes: int = 0
    saved_changes: int = 0
    saved_at: float = 0.0
    saving: bool = False
    snapshot_tried: bool = False

    def restore(
        self,
        *,
        ids: list[ObjectId],
        matrix: np.ndarray,
        groups: np.ndarray,
        group_codes: dict[object, int],
        next_group_code: int,
        group_versions: dict[object, object],
        read_until: datetime | None,
        lexicon: LexicalIndex | None,
    ) -> None:
        """Take the state of a snapshot (``files.vector_snapshots.snapshot_load``). The
        loaded arrays become the buffers as they are (no spare capacity: the first append
        grows them), so a restore copies nothing."""
        self.buffer = np.ascontiguousarray(matrix, dtype=np.float32)
        self.groups = np.ascontiguousarray(groups, dtype=np.int32)
        self.ids = ids
        self.positions = {pk: position for position, pk in enumerate(ids)}
        self.group_codes = group_codes
        self.next_group_code = next_group_code
        self.group_versions = group_versions
        self.read_until = read_until
        self.lexicon = lexicon

    @property
    def matrix(self) -> np.ndarray | None:
        """The live rows (a view, no copy); None while the user has no vectors."""
        if not self.ids or self.buffer is None:
            return None
        return self.buffer[: len(self.ids)]

    @property
    def nbytes(self) -> int:
        vectors = 0 if self.buffer is None else self.buffer.nbytes
        return vectors + (0 if self.lexicon is None else self.lexicon.nbytes)

    def row_vector(self, pk: ObjectId) -> np.ndarray | None:
        position = self.positions.get(pk)
        return None if position is None else self.buffer[position]

    def _group_code(self, group: object) -> int:
        if group is None:
            return NO_GROUP
        if group not in self.group_codes:
            self.group_codes[group] = self.next_group_code
            self.next_group_code += 1
        return self.group_codes[group]

    def append(self, rows: Iterable[Sequence]) -> None:
        """Add rows not held yet, read as ``VectorSource.row_fields``: ``(pk, embedding)``,
        then the group when ``grouped``, then the text when there is a ``lexicon``."""
        fresh = []
        texts = []
        for pk, embedding, *rest in rows:
            if pk in self.positions or not embedding or len(embedding) != self.dimensions:
                continue
            fresh.append((pk, embedding, rest[0] if self.grouped else None))
            if self.lexicon is not None:
                texts.append((pk, rest[-1]))
        if not fresh:
            return
        self.changes += len(fresh)
        if self.lexicon is not None:
            self.lexicon.add_many(texts)
        needed = len(self.ids) + len(fresh)
        if self.buffer is None or needed > self.buffer.shape[0]:
            held = 0 if self.buffer is None else len(self.buffer)
            capacity = max(INITIAL_CAPACITY, needed, held + int(held * GROWTH))
            grown = np.empty((capacity, self.dimensions), dtype=np.float32)
            grown_groups = np.full(capacity, NO_GROUP, dtype=np.int32)
            if self.ids:
                grown[: len(self.ids)] = self.buffer[: len(self.ids)]
                grown_groups[: len(self.ids)] = self.groups[: len(self.ids)]
            self.buffer = grown
            self.groups = grown_groups
        start = len(self.ids)
        self.buffer[start:needed] = np.asarray([e for _, e, _ in fresh], dtype=np.float32)
        self.groups[start:needed] = [self._group_code(g) for _, _, g in fresh]
        for offset, (pk, _, _) in enumerate(fresh):
            self.positions[pk] = start + offset
            self.ids.append(pk)

    def group_mask(self, groups: Iterable[object]) -> np.ndarray:
        """A boolean per live row: whether its group is one of ``groups``."""
        codes = [self.group_codes[g] for g in groups if g in self.group_codes]
        live = self.groups[: len(self.ids)] if self.groups is not None else np.empty(0)
        return np.isin(live, np.asarray(codes, dtype=np.int32))

    def drop_groups(self, groups: Iterable[object]) -> None:
        """Remove every row of ``groups`` (a deleted or re-ingested file)."""
        doomed = set(groups)
        if not doomed or self.groups is None:
            return
        mask = self.group_mask(doomed)
        self.drop([self.ids[row] for row in np.flatnonzero(mask)])
        for group in doomed:
            self.group_codes.pop(group, None)
            self.group_versions.pop(group, None)

    def drop(self, pks: Iterable[ObjectId]) -> None:
        """Remove deleted queries' rows (moving the last row into each hole)."""
        pks = list(pks)
        if self.lexicon is not None:
            self.lexicon.drop(pks)
        for pk in pks:
            position = self.positions.pop(pk, None)
            if position is None:
                continue
            self.changes += 1
            last = len(self.ids) - 1
            if position != last:
                moved = self.ids[last]
                self.buffer[position] = self.buffer[last]
                self.groups[position] = self.groups[last]
                self.ids[position] = moved
                self.positions[moved] = position
            self.ids.pop()
