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


def _stop_when_orphaned(parent_pid: int, stopping: threading.Event) -> None:
    # A killed test run must not leave servers behind: re-parenting means our parent died.
    while not stopping.wait(1.0):
        if os.getppid() != parent_pid:
            stopping.set()


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
    args = parser.parse_args(argv)

    from secantus import SecantusDBServer

    if not args.no_patch:
        apply_union_with_documents_patch()
        apply_nested_inclusion_project_patch()
        apply_and_filter_index_patch()

    if args.storage_path != ":memory:":
        Path(args.storage_path).mkdir(parents=True, exist_ok=True)
    server = SecantusDBServer(
        host=args.host,
        port=args.port,
        storage_path=args.storage_path,
        enable_test_commands=False,
        cache_size="256M",
    )
    server.start()
    stopping = threading.Event()

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
    try:
        stopping.wait()
    finally:
        server.stop()
        ready.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
