"""The embedded server's ordered-window patch: pages read off an index, still needed."""

from __future__ import annotations

import datetime as dt

import pymongo
import pytest
from bson import ObjectId
from pymongo.errors import OperationFailure

from llmplatform.embedded.ordered_window import ordered_window
from llmplatform.embedded.server import spawn_server

OWNER = ObjectId()
BASE = dt.datetime(2026, 1, 1)
# Small enough that materialising every matching document fails loudly: the server
# refuses a stage with more documents than this (its own safety limit).
MATERIALISE_LIMIT = 20


def _documents() -> list[dict]:
    return [
        {
            "_id": ObjectId(),
            "owner_id": OWNER if i % 3 else ObjectId(),
            "user_id": "u" if i % 2 else "v",
            # Repeated timestamps: the _id tie-breaker decides.
            "timestamp": BASE + dt.timedelta(minutes=i % 17),
            "n": i,
        }
        for i in range(120)
    ]


def _server(tmp_path, monkeypatch, name: str, *, patched: bool):
    monkeypatch.setenv("SECANTUS_MAX_PIPELINE_DOCS", str(MATERIALISE_LIMIT))
    return spawn_server(
        storage_path=":memory:",
        ready_file=tmp_path / f"{name}.json",
        log_file=tmp_path / f"{name}.log",
        exit_with_parent=True,
        extra_args=[] if patched else ["--no-patch"],
    )


def _load(uri: str, documents: list[dict]):
    collection = pymongo.MongoClient(uri).db.queries
    collection.create_index(
        [("owner_id", 1), ("user_id", 1), ("timestamp", -1), ("_id", -1)], name="page"
    )
    collection.insert_many([dict(d) for d in documents])
    return collection


def _newest_first(rows):
    return sorted(rows, key=lambda d: (d["timestamp"], d["_id"]), reverse=True)


# What django-mongodb-backend sends for a deferred-field history page.
def _history_page(skip: int, limit: int, before: dt.datetime | None = None) -> list[dict]:
    clauses = [{"owner_id": OWNER}, {"user_id": "u"}]
    if before is not None:
        clauses.append(
            {
                "$and": [
                    {"timestamp": {"$lt": before}},
                    {"$and": [{"timestamp": {"$exists": True}}, {"timestamp": {"$ne": None}}]},
                ]
            }
        )
    return [
        {"$match": {"$and": clauses}},
        {"$project": {"_id": 1, "timestamp": 1, "n": 1}},
        {"$sort": {"timestamp": -1, "_id": -1}},
        {"$skip": skip},
        {"$limit": limit},
    ]


def test_ordered_window_patch_is_still_needed(tmp_path, monkeypatch):
    documents = _documents()
    unpatched = _server(tmp_path, monkeypatch, "unpatched", patched=False)
    try:
        collection = _load(unpatched.uri, documents)
        # Upstream reads all 40 of the user's documents to return 5.
        with pytest.raises(OperationFailure, match="materialize more than"):
            list(collection.aggregate(_history_page(0, 5)))
    finally:
        unpatched.stop()


def test_ordered_window_patch_returns_the_same_pages(tmp_path, monkeypatch):
    documents = _documents()
    patched = _server(tmp_path, monkeypatch, "patched", patched=True)
    try:
        collection = _load(patched.uri, documents)
        mine = _newest_first(d for d in documents if d["owner_id"] == OWNER and d["user_id"] == "u")

        def ids(pipeline):
            return [d["_id"] for d in collection.aggregate(pipeline)]

        assert ids(_history_page(0, 5)) == [d["_id"] for d in mine[:5]]
        assert ids(_history_page(5, 10)) == [d["_id"] for d in mine[5:15]]
        # A cursor page deep in the list starts at its bound, ties excluded by $lt.
        before = BASE + dt.timedelta(minutes=6)
        older = [d for d in mine if d["timestamp"] < before]
        assert ids(_history_page(0, 7, before)) == [d["_id"] for d in older[:7]]
        # Unfiltered _id order (admin lists) reads the _id index from its end.
        pymongo.MongoClient(patched.uri).db.zzz.insert_one({"after": True})
        newest = sorted((d["_id"] for d in documents), reverse=True)[:10]
        assert ids([{"$sort": {"_id": -1}}, {"$limit": 10}]) == newest
        # Shapes the patch does not serve still work (and still hit the server's limit).
        with pytest.raises(OperationFailure):
            list(collection.aggregate([{"$sort": {"n": 1}}, {"$limit": 3}]))
    finally:
        patched.stop()


def test_ordered_window_recognises_only_page_shapes():
    match = {"$match": {"a": 1}}
    sort = {"$sort": {"t": -1, "_id": -1}}
    assert ordered_window([match, sort, {"$skip": 20}, {"$limit": 21}]) == (
        [("t", -1), ("_id", -1)],
        41,
    )
    assert ordered_window([sort, {"$limit": 5}]) == ([("t", -1), ("_id", -1)], 5)
    # What the ORM sends for an admin list without a projection.
    identity = {"$addFields": {"t": "$t", "_id": "$_id"}}
    assert ordered_window([identity, sort, {"$limit": 5}]) == ([("t", -1), ("_id", -1)], 5)
    assert ordered_window([{"$addFields": {"t": "$u"}}, sort, {"$limit": 5}]) is None
    # A projection that drops the sort field would change the order: not served.
    assert ordered_window([match, {"$project": {"x": 1}}, sort, {"$limit": 5}]) is None
    assert ordered_window([match, sort]) is None
    assert ordered_window([{"$lookup": {}}, sort, {"$limit": 5}]) is None
    assert ordered_window([match, {"$group": {"_id": 1}}, {"$limit": 5}]) is None
