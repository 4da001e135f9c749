"""The embedded SecantusDB's compatibility patches (sharing: test_embedded_ownership.py)."""

from __future__ import annotations

import pymongo
import pytest
from pymongo.errors import OperationFailure

from llmplatform.embedded.patches import apply_and_filter_index_patch, flatten_and_filter
from llmplatform.embedded.server import spawn_server

UNION_WITH_DOCUMENTS = [{"$unionWith": {"pipeline": [{"$documents": [{"n": 1}]}]}}]


def _aggregate(uri: str) -> list[dict]:
    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        client.db.things.insert_one({"n": 0})
        return list(client.db.things.aggregate([*UNION_WITH_DOCUMENTS, {"$project": {"_id": 0}}]))


def test_compat_patch_is_still_needed_and_works(tmp_path, monkeypatch):
    # Unpatched upstream server rejects what django-mongodb-backend sends for count().
    # When this starts passing without the patch, drop the patch.
    unpatched = spawn_server(
        storage_path=":memory:",
        ready_file=tmp_path / "a.json",
        log_file=tmp_path / "a.log",
        exit_with_parent=True,
        extra_args=["--no-patch"],
    )
    try:
        with pytest.raises(OperationFailure, match=r"\$documents"):
            _aggregate(unpatched.uri)
    finally:
        unpatched.stop()

    patched = spawn_server(
        storage_path=":memory:",
        ready_file=tmp_path / "b.json",
        log_file=tmp_path / "b.log",
        exit_with_parent=True,
    )
    try:
        assert _aggregate(patched.uri) == [{"n": 0}, {"n": 1}]
    finally:
        patched.stop()


@pytest.fixture(scope="module")
def unpatched_uri(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("unpatched")
    server = spawn_server(
        storage_path=":memory:",
        ready_file=workdir / "server.json",
        log_file=workdir / "server.log",
        exit_with_parent=True,
        extra_args=["--no-patch"],
    )
    yield server.uri
    server.stop()


def test_nested_projection_patch_is_still_needed(unpatched_uri, settings):
    # Django's permission lookup projects {"django_content_type": {"app_label": 1}}.
    pipeline = [{"$project": {"_id": 0, "ct": {"app_label": 1}}}]
    with pymongo.MongoClient(unpatched_uri) as client:
        client.db.p.insert_one({"ct": {"app_label": "queries", "model": "query"}})
        assert list(client.db.p.aggregate(pipeline)) == [{"ct": {"app_label": 1}}]
    with pymongo.MongoClient(settings.DATABASES["default"]["HOST"]) as client:
        client.scratch.p.insert_one({"ct": {"app_label": "queries", "model": "query"}})
        assert list(client.scratch.p.aggregate(pipeline)) == [{"ct": {"app_label": "queries"}}]
        client.drop_database("scratch")


def test_and_filter_patch_is_still_needed(unpatched_uri):
    # The ORM sends filter(a=..., b=...) as {"$and": [...]}; upstream scans for that form.
    with pymongo.MongoClient(unpatched_uri) as client:
        collection = client.db.f
        collection.create_index([("a", 1), ("b", 1)])
        collection.insert_many([{"a": i % 7, "b": i % 5} for i in range(50)])
        anded = {"$and": [{"a": 1}, {"b": 2}]}
        assert (
            collection.find(anded).explain()["queryPlanner"]["winningPlan"]["stage"] == "COLLSCAN"
        )
        flat = flatten_and_filter(anded)
        assert collection.find(flat).explain()["queryPlanner"]["winningPlan"]["stage"] != "COLLSCAN"
        assert sorted(d["_id"] for d in collection.find(flat)) == sorted(
            d["_id"] for d in collection.find(anded)
        )


def test_operator_clauses_patch_is_still_needed(unpatched_uri, settings):
    # .exclude() and Q(...) | Q(...) add operator clauses beside the fields: upstream
    # scans for any filter with one; patched, the fields pick the index and the operator
    # still filters.
    def plan_and_found(uri: str, db: str, operator: dict) -> tuple[str, list]:
        with pymongo.MongoClient(uri) as client:
            collection = client[db].ops
            collection.drop()
            collection.create_index([("a", 1)])
            collection.insert_many([{"_id": i, "a": i % 7, "b": i % 5} for i in range(50)])
            flat = flatten_and_filter({"$and": [{"a": 1}, operator]})
            assert flat == {"a": 1, **operator}
            plan = collection.find(flat).explain()["queryPlanner"]["winningPlan"]["stage"]
            found = sorted(d["_id"] for d in collection.find(flat))
            client.drop_database(db)
            return plan, found

    for operator, expected in (
        ({"$nor": [{"b": 2}]}, [1, 8, 15, 29, 36, 43]),
        ({"$or": [{"b": 2}, {"b": 3}]}, [22, 43, 8]),
    ):
        plan, found = plan_and_found(unpatched_uri, "db", operator)
        assert plan == "COLLSCAN"
        assert found == sorted(expected)
        plan, found = plan_and_found(settings.DATABASES["default"]["HOST"], "scratch", operator)
        assert plan != "COLLSCAN"
        assert found == sorted(expected)


def test_flatten_and_filter_merges_only_distinct_keys():
    assert flatten_and_filter({"$and": [{"a": 1}, {"b": {"$in": [1, 2]}}]}) == {
        "a": 1,
        "b": {"$in": [1, 2]},
    }
    repeated = {"$and": [{"a": {"$gt": 1}}, {"a": {"$lt": 5}}]}
    assert flatten_and_filter(repeated) is repeated
    operator = {"$and": [{"$or": [{"a": 1}, {"b": 1}]}, {"c": 1}]}
    assert flatten_and_filter(operator) == {"$or": [{"a": 1}, {"b": 1}], "c": 1}
    two_ors = {"$and": [{"$or": [{"a": 1}]}, {"$or": [{"b": 1}]}, {"c": 1}]}
    assert flatten_and_filter(two_ors) is two_ors
    only_operators = {"$and": [{"$or": [{"a": 1}]}, {"$nor": [{"b": 1}]}]}
    assert flatten_and_filter(only_operators) is only_operators
    assert flatten_and_filter({"a": 1}) == {"a": 1}


def test_updates_and_deletes_with_the_orms_and_filter_read_only_the_index_candidates(monkeypatch):
    # What django-mongodb-backend sends for filter(pk=..., end_t=None).update(...): the
    # write paths hand it to the planner as is. Checked on the server's storage itself,
    # in this process, for the count of documents a write would read.
    from secantus.storage import Storage

    for name in ("find_matching", "_try_index_id_keys", "_pick_index_for_filter"):
        monkeypatch.setattr(Storage, name, getattr(Storage, name))  # undone after the test
    storage = Storage(":memory:")
    storage.create_index("db", "sessions", "a_1", {"a": 1})
    storage.insert("db", "sessions", [{"_id": i, "a": i % 50, "end": None} for i in range(500)])
    orm_filter = {"$and": [{"a": 7}, {"end": None}]}

    unpatched = storage._candidates_iter("db", "sessions", orm_filter)
    assert len(unpatched) == 500  # upstream reads every document: the patch is still needed

    apply_and_filter_index_patch()
    assert len(storage._candidates_iter("db", "sessions", orm_filter)) == 10
    updated = storage.update_matching(
        "db", "sessions", orm_filter, {"$set": {"end": 1}}, multi=True
    )
    assert updated["modified"] == 10
    assert storage.delete_matching("db", "sessions", {"$and": [{"a": 7}, {"end": 1}]}) == 10
    assert len(storage.find_matching("db", "sessions", {})) == 490
