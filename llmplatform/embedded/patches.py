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
- ``$and`` filters the index planner can see, and fields it plans on beside a logical
  operator (performance only, same results).
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

    Equivalent whenever no key repeats (a document's keys are an implicit AND), which is
    what django-mongodb-backend emits for ``filter(a=..., b=...)``. A clause that is an
    operator (``$nor`` from ``.exclude()``, ``$or`` from a ``Q``) stays one key of the
    flat filter: the planner picks an index from the fields beside it and checks the rest
    on the documents it reads. Anything else is left as it is.
    """
    if not isinstance(filter_, dict) or set(filter_) != {"$and"}:
        return filter_
    clauses = filter_["$and"]
    if not isinstance(clauses, list) or not all(isinstance(c, dict) for c in clauses):
        return filter_
    flat: dict[str, Any] = {}
    for clause in clauses:
        for key, value in clause.items():
            if key in flat:
                return filter_
            flat[key] = value
    if all(key.startswith("$") for key in flat):
        return filter_  # no field for the planner: nothing gained
    return flat


# Top-level operators the index planner may set aside: every document matching the whole
# filter matches the fields beside them, so the index's candidates are a superset, and
# the server checks each candidate against the whole filter anyway.
SET_ASIDE_FOR_PLANNING = frozenset({"$and", "$or", "$nor", "$expr", "$comment"})


def fields_to_plan_on(filter_: Any) -> Any:
    """``{"a": 1, "$nor": [...]}`` as ``{"a": 1}`` for picking an index; a filter with no
    field, or with another operator (``$text``, ``$where``), as it is."""
    if not isinstance(filter_, dict) or not any(key.startswith("$") for key in filter_):
        return filter_
    fields = {key: value for key, value in filter_.items() if not key.startswith("$")}
    if not fields or not set(filter_) - set(fields) <= SET_ASIDE_FOR_PLANNING:
        return filter_
    return fields


def apply_and_filter_index_patch() -> None:
    """Let the index planner see ``$and`` filters (performance only, same results).

    SecantusDB 0.7.0b3 uses an index for ``{"a": 1, "b": 2}`` but scans the whole
    collection for the ``{"$and": [{"a": 1}, {"b": 2}]}`` form the ORM sends: 85 ms
    instead of 1 ms at 3,000 documents, on every filtered read and update.

    It also refuses any index for a filter with a top-level operator: an ``.exclude()``
    (``$nor``) beside ``owner`` and ``user_id`` scanned the collection, so a search's
    list of the user's documents took 27 ms at 200 files and ~100 ms at 1,000
    (bench/documents_search.py). The planner (and explain's mirror of it) is handed the
    fields only (``fields_to_plan_on``); the candidates are still checked against the
    whole filter.
    """
    from secantus.storage import Storage

    original = Storage.find_matching

    def find_matching(self: Any, db: str, coll: str, filter: Any = None, **kwargs: Any) -> Any:
        return original(self, db, coll, flatten_and_filter(filter), **kwargs)

    Storage.find_matching = find_matching
    # The write paths (update_matching, delete_matching) hand the ORM's ``$and`` straight
    # to the planner, so it flattens too: ``filter(pk=..., end_t=None).update(...)`` on a
    # session, every question, read the whole collection.
    for name in ("_try_index_id_keys", "_pick_index_for_filter"):
        planner = getattr(Storage, name)

        def planned(
            self: Any, db: str, coll: str, filter: Any, *args: Any, _planner=planner, **kw: Any
        ) -> Any:
            plan_on = fields_to_plan_on(flatten_and_filter(filter))
            return _planner(self, db, coll, plan_on, *args, **kw)

        setattr(Storage, name, planned)
