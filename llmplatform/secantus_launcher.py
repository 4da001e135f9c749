"""Run the embedded SecantusDB server in its own process.

Started as ``python -m llmplatform.secantus_launcher``.

SecantusDB is GPL-2.0 and this project is MIT, so it is never imported by the Django
process: ``llmplatform.embedded_mongo`` starts this module as a child process and talks
to it over the MongoDB wire protocol like to any other server.

Compatibility patch (SecantusDB 0.7.0b3): django-mongodb-backend implements
``QuerySet.count()`` (and other aggregates over possibly empty results) with
``{"$unionWith": {"pipeline": [{"$documents": [...]}]}}`` — a ``$unionWith`` without
``coll``, which MongoDB 6.0+ accepts ("a pipeline starting with $documents") and this
server rejects. The patch runs such a sub-pipeline as a collection-less aggregate.
It changes only this embedded server; nothing the ORM sends to a real MongoDB is
touched. A second patch makes nested inclusion projections work (see
``apply_nested_inclusion_project_patch``). ``tests/foundation/test_embedded_mongo.py`` shows
both patches are still needed; drop each when upstream fixes it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

# The launcher's own default; the project passes settings.EMBEDDED_MONGO_CACHE_MB.
DEFAULT_CACHE_MB = 256


def apply_union_with_documents_patch() -> None:
    from secantus import aggregate

    original = aggregate._STAGES["$unionWith"]

    def union_with(spec: Any, docs: list[dict[str, Any]], ctx: Any) -> list[dict[str, Any]]:
        pipeline = spec.get("pipeline") if isinstance(spec, dict) else None
        collectionless = (
            isinstance(spec, dict)
            and spec.get("coll") is None
            and isinstance(pipeline, list)
            and bool(pipeline)
            and isinstance(pipeline[0], dict)
            and "$documents" in pipeline[0]
        )
        if not collectionless:
            return original(spec, docs, ctx)
        sub_ctx = aggregate.PipelineContext(
            storage=ctx.storage, db_name=ctx.db_name, coll_name="", collation=ctx.collation
        )
        return list(docs) + list(aggregate.apply_pipeline([], pipeline, sub_ctx))

    aggregate._STAGES["$unionWith"] = union_with


def _flatten_inclusions(prefix: str, spec: dict[str, Any], out: dict[str, Any]) -> bool:
    for key, value in spec.items():
        if key.startswith("$"):
            return False
        path = f"{prefix}.{key}"
        if isinstance(value, dict):
            if not value or not _flatten_inclusions(path, value, out):
                return False
        elif isinstance(value, bool) or value in (0, 1):
            out[path] = value
        else:
            return False
    return True


def apply_nested_inclusion_project_patch() -> None:
    """``{"$project": {"a": {"b": 1}}}`` must include ``a.b``; 0.7.0b3 returns literal 1s.

    Django's permission lookup projects ``{"django_content_type": {"app_label": 1}}``;
    without this, staff permissions read as ``'1.view_query'`` and every non-superuser
    operator is denied. Rewritten to the equivalent dotted form ``{"a.b": 1}``.
    """
    from secantus import aggregate

    original = aggregate._STAGES["$project"]

    def project(spec: Any, docs: list[dict[str, Any]], ctx: Any) -> list[dict[str, Any]]:
        if isinstance(spec, dict):
            rewritten: dict[str, Any] = {}
            for key, value in spec.items():
                nested: dict[str, Any] = {}
                if isinstance(value, dict) and value and _flatten_inclusions(key, value, nested):
                    rewritten.update(nested)
                else:
                    rewritten[key] = value
            spec = rewritten
        return original(spec, docs, ctx)

    aggregate._STAGES["$project"] = project


def flatten_and_filter(filter_: Any) -> Any:
    """``{"$and": [{"a": 1}, {"b": {"$in": [...]}}]}`` as ``{"a": 1, "b": {"$in": [...]}}``.

    Equivalent whenever the clauses name different fields (an implicit AND), which is
    what django-mongodb-backend emits for ``filter(a=..., b=...)``; anything else is left
    as it is.
    """
    if not isinstance(filter_, dict) or set(filter_) != {"$and"}:
        return filter_
    clauses = filter_["$and"]
    if not isinstance(clauses, list) or not all(isinstance(c, dict) for c in clauses):
        return filter_
    flat: dict[str, Any] = {}
    for clause in clauses:
        for key, value in clause.items():
            if key.startswith("$") or key in flat:
                return filter_
            flat[key] = value
    return flat


def apply_and_filter_index_patch() -> None:
    """Let the index planner see ``$and`` filters (performance only, same results).

    SecantusDB 0.7.0b3 uses an index for ``{"a": 1, "b": 2}`` but scans the whole
    collection for the ``{"$and": [{"a": 1}, {"b": 2}]}`` form the ORM sends: 85 ms
    instead of 1 ms at 3,000 documents, on every filtered read and update.
    """
    from secantus.storage import Storage

    original = Storage.find_matching

    def find_matching(self: Any, db: str, coll: str, filter: Any = None, **kwargs: Any) -> Any:
        return original(self, db, coll, flatten_and_filter(filter), **kwargs)

    Storage.find_matching = find_matching


# ----- ordered windows: $match [$project] $sort [$skip] $limit read off an index -----

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


# ----- memory: what the server process holds, on demand (--trace-memory, SIGUSR1) -----


def _malloc_info() -> dict[str, int]:
    """glibc's view of the heap: bytes in use, and bytes free but still held (mallinfo2)."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in [
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            ]
        ]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):
        return {}
    info = libc.mallinfo2()
    return {"in_use": info.uordblks + info.hblkhd, "free_held": info.fordblks}


def memory_report(top: int = 25) -> dict[str, Any]:
    """RSS, the malloc heap, and (when tracing) the Python lines holding the most memory."""
    rss_kb = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    report: dict[str, Any] = {"rss_mb": rss_kb // 1024}
    report.update({f"malloc_{k}_mb": v // 2**20 for k, v in _malloc_info().items()})
    import tracemalloc

    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot()
        report["python_traced_mb"] = tracemalloc.get_traced_memory()[0] // 2**20
        report["top"] = [
            f"{stat.size / 2**20:8.1f} MB {stat.count:>9} blocks  {stat.traceback[0]}"
            for stat in snapshot.statistics("lineno")[:top]
        ]
    return report


# glibc's mallopt parameter number for the arena limit (malloc.h).
M_ARENA_MAX = -8
DEFAULT_MALLOC_ARENAS = 2
DEFAULT_TRIM_INTERVAL_S = 10.0


def bound_malloc(*, arenas: int, trim_interval_s: float, stopping: threading.Event) -> None:
    """Keep freed memory from piling up in the server process (glibc only; else nothing).

    What grows in SecantusDB is not live data: at 10k queries a traced run held 13 MB of
    Python objects and ~200 MB in malloc (WiredTiger's 256 MB cache filling), while
    another ~490 MB was free but kept by glibc. Each connection thread gets its own malloc
    arena (up to 8 per core), WiredTiger pages and decoded documents come and go in all of
    them, and a freed chunk returns to the system only from the top of the main heap. So
    the resident size ratchets up with every burst and never comes down. Fewer arenas
    share the holes; ``malloc_trim`` hands free pages in every arena back to the system.
    Call before any thread starts (the arena limit applies to arenas made afterwards).
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return
    if arenas > 0:
        mallopt(M_ARENA_MAX, arenas)
    if trim_interval_s <= 0:
        return

    def trim() -> None:
        while not stopping.wait(trim_interval_s):
            malloc_trim(0)

    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()


def _print_memory_report(_signum: int, _frame: object) -> None:
    print(json.dumps(memory_report(), indent=1), flush=True)


# A command whose Python allocations peak above this is logged by --trace-memory.
TRACE_COMMAND_PEAK_MB = 32


def _trace_command_peaks() -> None:
    """Log each command that allocates more than TRACE_COMMAND_PEAK_MB at its peak.

    The peak is process-wide, so a command running alongside another one may be
    blamed for both: good enough to find the reads that materialise whole collections.
    """
    import tracemalloc

    from secantus import server

    original = server.dispatch

    def dispatch(doc: dict[str, Any], ctx: Any) -> dict[str, Any]:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        try:
            return original(doc, ctx)
        finally:
            peak_mb = (tracemalloc.get_traced_memory()[1] - before) / 2**20
            if peak_mb > TRACE_COMMAND_PEAK_MB:
                shown = {k: v for k, v in doc.items() if k not in ("lsid", "$clusterTime")}
                print(f"peak {peak_mb:.0f} MB: {repr(shown)[:600]}", flush=True)

    server.dispatch = dispatch


def _stop_when_orphaned(parent_pid: int, stopping: threading.Event) -> None:
    # A killed test run must not leave servers behind: re-parenting means our parent died.
    while not stopping.wait(1.0):
        if os.getppid() != parent_pid:
            stopping.set()


def _wait_until_unused(stopping: threading.Event, leases_dir: Path, lock_fd: int) -> None:
    """Return, holding ``lock_fd``'s lock, once signalled or when no live process holds a lease.

    Deciding and stopping under the lock means an attaching process either sees this
    server alive with its lease counted, or starts a new one after this one has closed
    its files (see llmplatform/embedded_mongo.py).
    """
    import fcntl

    from llmplatform.embedded_mongo import LEASE_CHECK_S, live_leases

    users: list[int] | None = None
    while True:
        stopping.wait(LEASE_CHECK_S)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        if stopping.is_set():
            return
        current = live_leases(leases_dir)
        if current != users:
            users = current
            held_by = ", ".join(map(str, users)) or "nobody: stopping"
            print(f"secantus launcher {os.getpid()}: leases held by {held_by}", flush=True)
        if not users:
            return
        fcntl.flock(lock_fd, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage-path", required=True, help="directory, or :memory:")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--ready-file", required=True, help="JSON {pid, port} written when listening"
    )
    parser.add_argument("--no-patch", action="store_true", help="serve without the compat patch")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the starting process dies (throw-away test servers)",
    )
    parser.add_argument(
        "--leases-dir",
        type=Path,
        help="stop once no live process holds a lease in this directory (shared servers)",
    )
    parser.add_argument("--lock-file", type=Path, help="the lock that guards --leases-dir")
    parser.add_argument(
        "--cache-mb",
        type=int,
        default=DEFAULT_CACHE_MB,
        help="WiredTiger cache in MB (settings.EMBEDDED_MONGO_CACHE_MB); with :memory: it "
        "must hold all the data",
    )
    parser.add_argument(
        "--malloc-arenas",
        type=int,
        default=DEFAULT_MALLOC_ARENAS,
        help="glibc malloc arenas (0: glibc's default, 8 per core)",
    )
    parser.add_argument(
        "--trim-interval",
        type=float,
        default=DEFAULT_TRIM_INTERVAL_S,
        help="seconds between malloc_trim calls that return freed memory (0: never)",
    )
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="debug: trace Python allocations; SIGUSR1 prints a memory report to stdout",
    )
    args = parser.parse_args(argv)
    if (args.leases_dir is None) != (args.lock_file is None):
        parser.error("--leases-dir and --lock-file go together")

    stopping = threading.Event()
    bound_malloc(arenas=args.malloc_arenas, trim_interval_s=args.trim_interval, stopping=stopping)
    if args.trace_memory:
        import tracemalloc

        tracemalloc.start()
        _trace_command_peaks()
    signal.signal(signal.SIGUSR1, _print_memory_report)

    from secantus import SecantusDBServer

    if not args.no_patch:
        apply_union_with_documents_patch()
        apply_nested_inclusion_project_patch()
        apply_and_filter_index_patch()
        apply_ordered_window_patch()

    if args.storage_path != ":memory:":
        Path(args.storage_path).mkdir(parents=True, exist_ok=True)
    server = SecantusDBServer(
        host=args.host,
        port=args.port,
        storage_path=args.storage_path,
        enable_test_commands=False,
        cache_size=f"{args.cache_mb}M",
    )
    server.start()

    def request_stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    ready = Path(args.ready_file)
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "port": server.port, "host": server.host}))
    tmp.replace(ready)
    if args.exit_with_parent:
        parent = os.getppid()
        threading.Thread(target=_stop_when_orphaned, args=(parent, stopping), daemon=True).start()
    # Released when this process exits, after the storage is closed.
    lock = args.lock_file.open("a") if args.lock_file is not None else None
    try:
        if lock is None:
            stopping.wait()
        else:
            _wait_until_unused(stopping, args.leases_dir, lock.fileno())
    finally:
        server.stop()
        ready.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
