"""Serve a page (``$match`` [``$project``] ``$sort`` [``$skip``] ``$limit``) off an index.

A performance patch of the server process (same results): see
``apply_ordered_window_patch``. ``tests/scale/test_planner_patches.py`` shows it is still
needed and returns the same pages.
"""

from __future__ import annotations

import threading
from typing import Any

# The window of the aggregate being handled, from the command handler to the first storage
# read it makes; per thread, as the server runs each connection on its own thread.
_pushdown = threading.local()


def ordered_window(pipeline: Any) -> tuple[list[tuple[str, int]], int] | None:
    """``(sort, skip + limit)`` when ``pipeline`` only needs the first rows of one order.

    The shape django-mongodb-backend sends for a page: ``$match`` (optional), inclusion
    ``$project`` stages that keep every sort field, ``$sort``, ``$skip`` (optional),
    ``$limit``. Anything else is ``None``.
    """
    if not isinstance(pipeline, list):
        return None
    stages = list(pipeline)
    if stages and isinstance(stages[0], dict) and set(stages[0]) == {"$match"}:
        stages = stages[1:]
    projections = []
    while stages and isinstance(stages[0], dict) and set(stages[0]) & {"$project", "$addFields"}:
        if set(stages[0]) == {"$addFields"}:
            # The ORM copies the sort fields onto themselves ({"t": "$t"}): a no-op.
            added = stages.pop(0)["$addFields"]
            if not isinstance(added, dict) or any(v != f"${k}" for k, v in added.items()):
                return None
            continue
        if set(stages[0]) != {"$project"}:
            return None
        projections.append(stages.pop(0)["$project"])
    if not stages or not isinstance(stages[0], dict) or set(stages[0]) != {"$sort"}:
        return None
    spec = stages.pop(0)["$sort"]
    if not isinstance(spec, dict) or not spec:
        return None
    sort = list(spec.items())
    if any(direction not in (1, -1) or isinstance(direction, bool) for _, direction in sort):
        return None
    for projection in projections:
        if not isinstance(projection, dict):
            return None
        if not all(
            value in (1, True) and not key.startswith("$") for key, value in projection.items()
        ):
            return None
        if not all(field == "_id" or field in projection for field, _ in sort):
            return None
    skip = 0
    if stages and isinstance(stages[0], dict) and set(stages[0]) == {"$skip"}:
        skip = stages.pop(0)["$skip"]
    if not stages or not isinstance(stages[0], dict) or set(stages[0]) != {"$limit"}:
        return None
    limit = stages[0]["$limit"]
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (skip, limit)):
        return None
    if skip < 0 or limit <= 0:
        return None
    return sort, skip + limit


def _conjuncts(filter_: Any) -> list[dict[str, Any]] | None:
    """The filter as a list of single-field clauses ANDed together; None if it has $or etc."""
    if not isinstance(filter_, dict):
        return None
    out: list[dict[str, Any]] = []
    for key, value in filter_.items():
        if key == "$and" and isinstance(value, list):
            for clause in value:
                inner = _conjuncts(clause)
                if inner is None:
                    return None
                out.extend(inner)
        elif key.startswith("$"):
            # $nor/$or/$expr: not usable to pick an index, still checked by matches().
            out.append({})
        else:
            out.append({key: value})
    return out


def _plain_equalities(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """Fields compared for equality with a scalar (what an index prefix can pin)."""
    found: dict[str, Any] = {}
    for clause in clauses:
        for field, value in clause.items():
            if isinstance(value, dict) and set(value) == {"$eq"}:
                value = value["$eq"]
            if isinstance(value, (dict, list)) or type(value).__name__ == "Regex":
                continue
            if hasattr(value, "pattern") and hasattr(value, "flags"):
                continue
            if field in found and found[field] != value:
                return {}
            found[field] = value
    return found


def _seek_bound(clauses: list[dict[str, Any]], field: str, descending: bool) -> Any:
    """The bound a walk can start at: $lt/$lte on a descending walk, $gt/$gte ascending."""
    wanted = ("$lt", "$lte") if descending else ("$gt", "$gte")
    for clause in clauses:
        value = clause.get(field)
        if isinstance(value, dict):
            for op in wanted:
                if op in value:
                    return value[op]
    return None


def ordered_index_window(
    storage: Any, db: str, coll: str, filter_: Any, sort: list[tuple[str, int]], window: int
) -> list[dict[str, Any]] | None:
    """The first ``window`` matching documents in ``sort`` order, read off an index.

    Needs an index whose keys are some of the filter's equality fields followed by
    exactly the sort (same directions): its entries for those equalities are already in
    sort order, so documents are fetched one by one until ``window`` of them match. A
    range on the first sort field starts the walk at its bound (a deep cursor page does
    not walk the pages before it). ``None`` (use the normal plan) for anything else.
    """
    from secantus import storage as wt_storage
    from secantus.query import matches
    from secantus.sortkey import COMPOUND_SEP, encode_value_directed

    clauses = _conjuncts(filter_ or {})
    if clauses is None:
        return None
    equalities = _plain_equalities(clauses)
    partials = storage._partial_filters(db, coll)
    options = storage._index_options_map(db, coll)
    best: tuple[str, list[str], dict[str, Any]] | None = None
    for name, key_spec, sparse, _unique in storage._all_indexes(db, coll):
        keys = list(key_spec.items())
        if sparse or name in partials or options.get(name, {}).get("collation"):
            continue
        if any(direction not in (1, -1) for _, direction in keys):
            continue
        prefix_len = len(keys) - len(sort)
        if prefix_len < 0 or keys[prefix_len:] != sort:
            continue
        prefix = [field for field, _ in keys[:prefix_len]]
        if not all(field in equalities for field in prefix):
            continue
        if best is None or len(prefix) > len(best[1]):
            best = (name, prefix, dict(key_spec))
    if best is None or storage.index_is_multikey(db, coll, best[0]):
        return None
    name, prefix, key_spec = best
    parts = [encode_value_directed(equalities[field], key_spec[field]) for field in prefix]
    prefix_kb = COMPOUND_SEP.join(parts) + COMPOUND_SEP if parts else b""
    first_field, first_dir = sort[0]
    bound = _seek_bound(clauses, first_field, descending=first_dir == -1)
    seek_kb = prefix_kb + (encode_value_directed(bound, first_dir) if bound is not None else b"")
    esc_prefix = wt_storage._escape_kb(prefix_kb)
    descending_fields = [field for field, direction in sort if direction == -1]
    out: list[dict[str, Any]] = []
    storage._refresh_read_snapshot()
    with storage._lock:
        cursor = storage._cursor(wt_storage._IDX_ENTRIES_TABLE)
        cursor.set_key(db, coll, name, wt_storage._escape_kb(seek_kb))
        rc = cursor.search_near()
        if rc == wt_storage.wt.WT_NOTFOUND or (rc < 0 and cursor.next() != 0):
            return out
        while len(out) < window:
            key = cursor.get_key()
            if (key[0], key[1], key[2]) != (db, coll, name):
                break
            row_esc, row_id = wt_storage._unpack_entry(bytes(key[3]))
            if not row_esc.startswith(esc_prefix):
                break
            if row_id is not None:
                for document in storage._docs_by_recordids(db, coll, [row_id]):
                    if not matches(document, filter_ or {}):
                        continue
                    # A descending index orders strings that prefix each other
                    # ascending (see sortkey.encode_value_directed): not a sort order.
                    if any(isinstance(document.get(f), str) for f in descending_fields):
                        return None
                    out.append(document)
            if cursor.next() != 0:
                break
    return out


def newest_by_id_window(storage: Any, db: str, coll: str, window: int, descending: bool):
    """The first ``window`` documents by ``_id`` (unfiltered), from the ``_id`` index."""
    from secantus import storage as wt_storage

    out: list[dict[str, Any]] = []
    storage._refresh_read_snapshot()
    with storage._lock:
        cursor = storage._cursor(wt_storage._NAT_SEQ_TABLE)
        if descending:
            # Past every id key of this collection: id keys start with a type byte < 0xff.
            cursor.set_key(db, coll, b"\xff" * 32)
            rc = cursor.search_near()
            if rc == wt_storage.wt.WT_NOTFOUND:
                return out
            if rc > 0 and cursor.prev() != 0:
                return out
            step = cursor.prev
        else:
            cursor.set_key(db, coll, b"")
            rc = cursor.search_near()
            if rc == wt_storage.wt.WT_NOTFOUND or (rc < 0 and cursor.next() != 0):
                return out
            step = cursor.next
        recordids: list[int] = []
        while len(recordids) < window:
            key = cursor.get_key()
            if (key[0], key[1]) == (db, coll):
                recordids.append(int(cursor.get_value()))
            elif descending and (key[0], key[1]) > (db, coll):
                pass  # another collection after ours: keep stepping back
            else:
                break
            if step() != 0:
                break
        out = storage._docs_by_recordids(db, coll, recordids)
    return out


def apply_ordered_window_patch() -> None:
    """Serve a page (``$sort`` + ``$limit``) from an index in order: read ``limit`` rows.

    SecantusDB 0.7.0b3 fetches every document matching the ``$match``, then sorts them
    all, then cuts the page: the first page of a user's history, or of an admin list,
    costs as much as reading all of it. This walks an index whose keys are the filter's
    equalities followed by the sort (the project's page indexes), or the ``_id`` index
    for an unfiltered ``_id`` order, and stops after ``skip + limit`` matches. The
    pipeline's own stages still run over that window, so results are the same.
    """
    from secantus import commands
    from secantus.storage import Storage

    original_aggregate = commands._HANDLERS["aggregate"]

    def aggregate(doc: dict[str, Any], ctx: Any) -> dict[str, Any]:
        shape = None
        if isinstance(doc.get("aggregate"), str) and "hint" not in doc:
            shape = ordered_window(doc.get("pipeline"))
        _pushdown.spec = (doc["aggregate"], *shape) if shape else None
        try:
            return original_aggregate(doc, ctx)
        finally:
            _pushdown.spec = None

    original_find = Storage.find_matching

    def find_matching(self: Any, db: str, coll: str, filter: Any = None, **kwargs: Any) -> Any:
        spec = getattr(_pushdown, "spec", None)
        if spec is not None and spec[0] == coll and not kwargs.get("hint"):
            _pushdown.spec = None  # only the pipeline's first read, never a $lookup's
            _, sort, window = spec
            if not filter and sort in ([("_id", -1)], [("_id", 1)]):
                return newest_by_id_window(self, db, coll, window, descending=sort[0][1] == -1)
            found = ordered_index_window(self, db, coll, filter, sort, window)
            if found is not None:
                return found
        return original_find(self, db, coll, filter, **kwargs)

    commands._HANDLERS["aggregate"] = aggregate
    Storage.find_matching = find_matching
