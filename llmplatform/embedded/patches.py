"""Compatibility patches for what django-mongodb-backend sends (SecantusDB 0.7.0b3).

Applied by the launcher, in the server process only: nothing the ORM sends to a real
MongoDB is touched. ``tests/foundation/test_embedded_mongo.py`` shows each is still
needed; drop each when upstream fixes it.

- ``$unionWith`` without ``coll``: django-mongodb-backend implements
  ``QuerySet.count()`` (and other aggregates over possibly empty results) with
  ``{"$unionWith": {"pipeline": [{"$documents": [...]}]}}``, which MongoDB 6.0+ accepts
  ("a pipeline starting with $documents") and this server rejects. The patch runs such a
  sub-pipeline as a collection-less aggregate.
- Nested inclusion projections (``apply_nested_inclusion_project_patch``).
- ``$and`` filters the index planner can see (performance only, same results).
"""

from __future__ import annotations

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
