"""The embedded SecantusDB: compatibility patch, reuse across processes, persistence."""

from __future__ import annotations

import pymongo
import pytest
from pymongo.errors import OperationFailure

from llmplatform.embedded_mongo import ensure_embedded_server, spawn_server

UNION_WITH_DOCUMENTS = [{"$unionWith": {"pipeline": [{"$documents": [{"n": 1}]}]}}]


def _aggregate(uri: str) -> list[dict]:
    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        client.db.things.insert_one({"n": 0})
        return list(client.db.things.aggregate([*UNION_WITH_DOCUMENTS, {"$project": {"_id": 0}}]))


def test_compat_patch_is_still_needed_and_works(tmp_path, monkeypatch):
    # Unpatched upstream server rejects what django-mongodb-backend sends for count().
    # When this starts passing without the patch, drop the patch.
    import llmplatform.embedded_mongo as embedded

    unpatched = embedded.spawn_server(
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


def test_second_process_reuses_server_and_data_survives_restart(tmp_path):
    first = ensure_embedded_server(data_dir=tmp_path)
    try:
        again = ensure_embedded_server(data_dir=tmp_path)
        assert again.uri == first.uri and again.process is None  # reused, not owned
        with pymongo.MongoClient(first.uri) as client:
            client.LLMPlatform.notes.insert_one({"kept": True})
    finally:
        first.stop()
    restarted = ensure_embedded_server(data_dir=tmp_path)
    try:
        assert restarted.process is not None
        with pymongo.MongoClient(restarted.uri) as client:
            assert client.LLMPlatform.notes.find_one({}, {"_id": 0}) == {"kept": True}
    finally:
        restarted.stop()
