"""Each end user's stored vectors as one float32 matrix, kept between questions.

One cache serves every kind of stored vector: past queries (memory's source, declared
in ``queries.memory_store``) and document chunks (``files.document_store``'s), each a
``VectorSource`` saying which rows are the user's and which field orders them. It sits
in ``files`` (below ``queries``) so both stores can use it, and imports no model: each
store names its own. A chunk row also carries its file (its *group*), so a search can be
limited to some files with a mask instead of a matrix per file.

Exact cosine top-k over a matrix is cheap (a few ms at 10k vectors); building the matrix
from the documents' float lists is not, and neither is a read that scans the collection.
So the matrix is kept per (owner, end user, embedding model, dimensions, source) and
brought up to date on every question by reading only what changed:

1. the ids of the user's rows stamped since the last read started (minus a margin of
   seconds), through an index that ends with the stamp, no embeddings, in pages of
   LIST_PAGE rows. The stamp is a write's (a query's ``indexed_at``: inserted, completed
   or re-embedded), not a time the row describes, so a row written after a read is
   listed by the next one whatever its ``completed_at`` (an import's are in the past);
2. the embeddings of the ids not yet in the matrix, by primary key, FETCH_BATCH at a
   time. A cold read (empty matrix) lists the embeddings with the ids instead: one read
   per row, and never the whole history in one reply.

Rows that come and go a group at a time (chunks) are read by group instead
(``group_vectors``). Rows are appended into spare capacity (amortised, no copy of the
whole matrix per question). A deleted query leaves the matrix through
``vector_cache_forget`` (admin deletes call it) or, for any other delete path, when the
store finds a hit that no longer exists and prunes it (``UserVectors.drop``). Matrices
are evicted least recently used beyond ``MAX_CACHED_BYTES``.

Each matrix (with its BM25 index) is also kept on disk (``files.vector_snapshots``): a
process's first question for a user loads it in milliseconds instead of reading the
user's whole history, then reads only what changed since, as above.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from django.conf import settings
from django.db import models

from files.lexical_index import LexicalIndex
from files.user_vectors import UserVectors
from files.vector_snapshots import (
    CacheKey,
    snapshot_arrays,
    snapshot_load,
    snapshot_save,
    snapshots_clear,
    snapshots_forget,
)

# Where the server has $vectorSearch (instead of this cache), the approximate search
# looks at this many candidates per result wanted; the same for memory and passages.
CANDIDATES_PER_RESULT = 20
# About 170k vectors of 384 floats, or 43k of 1,536: enough for the busiest users of one
# process without letting the web worker grow without bound.
MAX_CACHED_BYTES = 256 * 1024 * 1024
# A row's stamp is taken by its writer just before the write lands (a save, a batch
# insert) and by that writer's clock: every read re-lists, by id (no embeddings), the
# rows stamped from this long before the previous read started, and fetches only the ids
# not already held. It bounds how late a write may land after its stamp plus how far
# writers' clocks may trail the reader's; it is not a time the rows' contents carry, so
# an import of old rows (stamped when imported) is read like any new row.
REREAD_MARGIN = timedelta(seconds=30)
# A range bound rather than "is not null", so the first read rides the same index.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Rows per read. The embedded server decodes every document it returns in full, the
# embedding included (about 12 KB of Python objects per 384-float row), so one read of a
# user's whole history would hold it all in the server at once: 600 MB at 50k rows,
# kept by its allocator afterwards. Pages keep that peak to a few tens of MB; on MongoDB
# they are simply batches.
LIST_PAGE = 2000
FETCH_BATCH = 500
# A changed matrix is written to its snapshot (files.vector_snapshots) at most this often;
# rows written since are read from the database after a restart, as by a warm process.
SNAPSHOT_EVERY_S = 60.0


@dataclass(frozen=True)
class VectorSource:
    """Which stored rows are one end user's vectors of one model, and how to read them
    incrementally: ``stamp_field`` is written with the writer's clock by every write that
    makes a row one of ``rows`` (insert, completion, a new embedding), never copied from
    the past, and is indexed after the ``rows`` filter's equality fields."""

    name: str
    model: type[models.Model]
    stamp_field: str
    rows: Callable[[object, str, str], models.QuerySet]
    # A field whose value each row keeps in the matrix (a chunk's file), or None.
    group_field: str | None = None
    # A text field indexed for the lexical signal (``files.lexical_index``), or None.
    text_field: str | None = None

    def row_fields(self, *, lexical: bool) -> tuple[str, ...]:
        """What is read of each row held: ``(pk, embedding[, group][, text])``."""
        group = (self.group_field,) if self.group_field else ()
        text = (self.text_field,) if lexical and self.text_field else ()
        return ("pk", "embedding", *group, *text)


def lexical_signal_on() -> bool:
    """Whether retrieval adds the lexical signal (``RETRIEVAL_LEXICAL``); read when a
    user's cache entry is made."""
    return settings.RETRIEVAL_LEXICAL


_cache: OrderedDict[CacheKey, UserVectors] = OrderedDict()
_lock = threading.Lock()
# One refresh at a time per key: two concurrent questions of one user would otherwise
# both fetch the same new rows.
_key_locks: dict[CacheKey, threading.Lock] = {}


def _key(owner_id: object, user_id: str, model: str, dimensions: int, source: str) -> CacheKey:
    return (str(owner_id), user_id, model, dimensions, source)


def _evict_over_budget() -> None:
    total = sum(entry.nbytes for entry in _cache.values())
    while total > MAX_CACHED_BYTES and len(_cache) > 1:
        key, entry = _cache.popitem(last=False)
        _key_locks.pop(key, None)
        total -= entry.nbytes


def _listed_pages(
    source: VectorSource,
    owner_id: object,
    user_id: str,
    model: str,
    since: datetime,
    fields: Callable[[], tuple],
):
    """``(pk, stamp, ...)`` of the rows stamped at or after ``since``, in pages, each
    read with the ``fields()`` of that moment.

    Walks the index in stamp order, LIST_PAGE rows at a time. The next page starts at
    the last stamp seen (rows sharing it come again; the caller skips what it holds). A
    page that is all one stamp is completed with an equality read and the walk goes on
    strictly after it, so ties cannot stall it.
    """
    rows = source.rows(owner_id, user_id, model)
    stamp = source.stamp_field
    lookup = {f"{stamp}__gte": since}
    while True:
        page = list(rows.filter(**lookup).order_by(stamp).values_list(*fields())[:LIST_PAGE])
        yield page
        if len(page) < LIST_PAGE:
            return
        last = page[-1][1]
        if last == page[0][1]:
            yield list(rows.filter(**{stamp: last}).values_list(*fields()))
            lookup = {f"{stamp}__gt": last}
        else:
            lookup = {f"{stamp}__gte": last}


def _entry(
    key: CacheKey, dimensions: int, source: VectorSource
) -> tuple[UserVectors, threading.Lock]:
    """The cached matrix for ``key`` (made empty if new), now the most recently used."""
    with _lock:
        entry = _cache.pop(key, None) or UserVectors(
            dimensions=dimensions,
            grouped=source.group_field is not None,
            lexicon=LexicalIndex() if source.text_field and lexical_signal_on() else None,
        )
        _cache[key] = entry
        return entry, _key_locks.setdefault(key, threading.Lock())


def user_vectors(
    *,
    owner_id: object,
    user_id: str,
    model: str,
    dimensions: int,
    source: VectorSource,
    fresh_since: datetime | None = None,
) -> UserVectors:
    """The end user's vectors of ``model`` from ``source``, brought up to date (for rows
    that are only ever added, such as completed queries): by a read that started at or
    after ``fresh_since`` (none is made if one did)."""
    key = _key(owner_id, user_id, model, dimensions, source.name)
    entry, key_lock = _entry(key, dimensions, source)
    with key_lock:
        if fresh_since is not None and entry.read_until and entry.read_until >= fresh_since:
            return entry
        cold = _snapshot_restore(key, entry)
        started = datetime.now(UTC)
        since = EPOCH if entry.read_until is None else entry.read_until - REREAD_MARGIN
        stamp = source.stamp_field
        # Everything after pk and embedding: the group, the text.
        extra = source.row_fields(lexical=entry.lexicon is not None)[2:]
        # A page is listed with its embeddings when the rows are likely new: on a cold
        # read, and after a page that was mostly new (rows arrived in bulk since the last
        # read: an import). The embedded server decodes each listed document in full
        # anyway, so that is one read per row, where listing the ids and then fetching
        # them by id costs about three times as much. Otherwise ids only, and the few new
        # rows' embeddings are fetched by id.
        with_embeddings = entry.read_until is None

        def fields() -> tuple:
            return ("pk", stamp, "embedding", *extra) if with_embeddings else ("pk", stamp)

        for listed in _listed_pages(source, owner_id, user_id, model, since, fields):
            if listed and len(listed[0]) > 2:
                fresh = sum(row[0] not in entry.positions for row in listed)
                entry.append((row[0], row[2], *row[3:]) for row in listed)
            else:
                new_ids = [pk for pk, _ in listed if pk not in entry.positions]
                fresh = len(new_ids)
                if fresh > FETCH_BATCH:
                    # Many new rows: the page's stamp range again, with embeddings,
                    # costs less than fetching them by id.
                    entry.append(
                        source.rows(owner_id, user_id, model)
                        .filter(**{f"{stamp}__gte": listed[0][1], f"{stamp}__lte": listed[-1][1]})
                        .values_list("pk", "embedding", *extra)
                    )
                    new_ids = []
                for start in range(0, len(new_ids), FETCH_BATCH):
                    batch = new_ids[start : start + FETCH_BATCH]
                    found = {
                        row[0]: row
                        for row in source.model.objects.filter(pk__in=batch).values_list(
                            "pk", "embedding", *extra
                        )
                    }
                    # Only rows still present; the order of rows is irrelevant to the
                    # ranking.
                    entry.append(found[pk] for pk in batch if pk in found)
            with_embeddings = 2 * fresh >= len(listed) > 0
        # Whatever landed before this read started was listed (or is deleted); a later
        # write carries a stamp no older than REREAD_MARGIN before this moment.
        entry.read_until = started
        _snapshot_maybe(key, entry, urgent=cold)
    with _lock:
        _evict_over_budget()
    return entry


def vector_cache_add(
    *,
    owner_id: object,
    user_id: str,
    model: str,
    dimensions: int,
    source: VectorSource,
    rows: Iterable[dict[str, object]],
) -> None:
    """Put rows this process has just stored into the end user's matrix, if this process
    holds it already read: the next refresh lists them as held and fetches nothing. Each
    row is a dict with the source's ``row_fields`` (``pk``, ``embedding``, ...). A matrix
    not held, or not read yet, is left alone: its read lists the rows with the rest."""
    key = _key(owner_id, user_id, model, dimensions, source.name)
    with _lock:
        entry, key_lock = _cache.get(key), _key_locks.get(key)
    if entry is None or key_lock is None:
        return
    with key_lock:
        if entry.read_until is None:
            return
        fields = source.row_fields(lexical=entry.lexicon is not None)
        entry.append(tuple(row[name] for name in fields) for row in rows)


def group_vectors(
    *,
    owner_id: object,
    user_id: str,
    model: str,
    dimensions: int,
    source: VectorSource,
    versions: dict[object, object],
) -> UserVectors:
    """The end user's vectors of ``model`` for exactly the groups in ``versions``.

    For rows that come and go a group at a time (a document's chunks: written together,
    searchable once the file is ready, replaced together when it is re-ingested), the
    caller knows which groups should be held and at which version (the file's last
    ingestion). Groups held at another version, or no longer wanted, are dropped; wanted
    groups not held are read one group at a time, LIST_PAGE rows per read. No time margin
    and no listing of unchanged groups: a warm call reads nothing.
    """
    assert source.group_field is not None
    key = _key(owner_id, user_id, model, dimensions, source.name)
    entry, key_lock = _entry(key, dimensions, source)
    group_field = source.group_field
    read = source.row_fields(lexical=entry.lexicon is not None)
    with key_lock:
        cold = _snapshot_restore(key, entry)
        stale = [g for g, held in entry.group_versions.items() if versions.get(g, held) != held]
        unwanted = [g for g in entry.group_codes if g not in versions]
        entry.drop_groups([*stale, *unwanted])
        rows = source.rows(owner_id, user_id, model)
        # One group at a time: equality on every field of the index, so each read touches
        # that file's rows only (an $in over many files, paged, rescans them all per page).
        for group in [g for g in versions if g not in entry.group_versions]:
            after = None
            while True:
                page = rows.filter(**{group_field: group})
                if after is not None:
                    page = page.filter(pk__gt=after)
                listed = list(page.order_by("pk").values_list(*read)[:LIST_PAGE])
                entry.append(listed)
                if len(listed) < LIST_PAGE:
                    break
                after = listed[-1][0]
            entry.group_versions[group] = versions[group]
        _snapshot_maybe(key, entry, urgent=cold)
    with _lock:
        _evict_over_budget()
    return entry


def vector_cache_forget(*, owner_id: object, user_id: str, query_ids: Iterable[ObjectId]) -> None:
    """Drop deleted queries from every cached matrix of that end user, and the user's
    snapshots on disk (the next cold read rebuilds them from the database)."""
    pks = list(query_ids)
    snapshots_forget(owner_id=owner_id, user_id=user_id)
    with _lock:
        entries = [
            (entry, _key_locks.setdefault(key, threading.Lock()))
            for key, entry in _cache.items()
            if key[0] == str(owner_id) and key[1] == user_id
        ]
    for entry, key_lock in entries:
        with key_lock:
            entry.drop(pks)
            entry.saved_at = 0.0  # its snapshot is gone: write a new one at the next read


def clear_vector_cache(*, snapshots: bool = True) -> None:
    """Forget every cached matrix (a cold start); ``snapshots=False`` keeps the snapshots
    on disk, as a restarted process finds them."""
    with _lock:
        _cache.clear()
        _key_locks.clear()
    if snapshots:
        snapshots_clear()


def _snapshot_restore(key: CacheKey, entry: UserVectors) -> bool:
    """On an entry's first use in this process, load its snapshot. Returns whether the
    entry still needs a cold read from the database (no snapshot)."""
    if entry.snapshot_tried:
        return False
    entry.snapshot_tried = True
    if entry.ids or entry.group_versions or entry.read_until is not None:
        return False
    return not snapshot_load(key, entry)


def _snapshot_maybe(key: CacheKey, entry: UserVectors, *, urgent: bool) -> None:
    """Write the entry's snapshot in the background when it changed: at once after a cold
    read (the read a snapshot saves), else at most every SNAPSHOT_EVERY_S."""
    if entry.saving or entry.changes == entry.saved_changes:
        return
    now = time.monotonic()
    if not urgent and now - entry.saved_at < SNAPSHOT_EVERY_S:
        return
    arrays, meta = snapshot_arrays(entry)
    entry.saved_changes, entry.saved_at, entry.saving = entry.changes, now, True

    def write() -> None:
        try:
            snapshot_save(key, arrays, meta)
        finally:
            entry.saving = False

    threading.Thread(target=write, name="vector-snapshot", daemon=True).start()
