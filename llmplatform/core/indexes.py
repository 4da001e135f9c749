"""Creating and verifying the indexes every model declares (``manage.py setup_indexes``)."""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.db import connection, models
from django_mongodb_backend.indexes import SearchIndex

PROJECT_APPS = (
    "core",
    "queries",
    "chat_sessions",
    "analytics",
    "files",
    "products",
    "imports",
    "evaluations",
)


@dataclass
class IndexOutcome:
    collection: str
    name: str
    action: str  # "exists", "created", "skipped"
    note: str = ""


def indexes_ensure(*, create: bool = True) -> list[IndexOutcome]:
    """Create missing indexes (unless ``create`` is False); report each. Raises PyMongoError."""
    outcomes: list[IndexOutcome] = []
    supports_search = connection.features.supports_search
    with connection.schema_editor() as editor:
        for app_label in PROJECT_APPS:
            for model in apps.get_app_config(app_label).get_models():
                outcomes.extend(_ensure_model(model, editor, create, supports_search))
    return outcomes


def _ensure_model(model: type[models.Model], editor, create: bool, supports_search: bool):
    collection = connection.database[model._meta.db_table]
    existing = set(collection.index_information())
    existing_search = (
        {index["name"] for index in collection.list_search_indexes()} if supports_search else set()
    )
    table = model._meta.db_table
    for index in model._meta.indexes:
        if isinstance(index, SearchIndex):
            if not supports_search:
                yield IndexOutcome(
                    table,
                    index.name,
                    "skipped",
                    "this server has no Atlas Search (Atlas, or MongoDB 8.2+ with mongot); "
                    "memory and documents rank in the process instead (cosine and BM25)",
                )
            elif index.name in existing_search:
                yield IndexOutcome(table, index.name, "exists")
            else:
                if create:
                    editor.add_index(model, index)
                yield IndexOutcome(table, index.name, "created" if create else "missing")
            continue
        yield _ensure_plain(
            table, index.name, existing, create, lambda i=index: editor.add_index(model, i)
        )
    for constraint in model._meta.constraints:
        yield _ensure_plain(
            table,
            constraint.name,
            existing,
            create,
            lambda c=constraint: editor.add_constraint(model, c),
        )


def _ensure_plain(table: str, name: str, existing: set[str], create: bool, add) -> IndexOutcome:
    if name in existing:
        return IndexOutcome(table, name, "exists")
    if not create:
        return IndexOutcome(table, name, "missing")
    add()
    return IndexOutcome(table, name, "created")
