"""No cold start (files.vector_snapshots): after a restart a user's vectors and BM25 index
load from disk instead of being read row by row from the database, and the database stays
the truth: rows written since are read, deletions remove the snapshot, a broken or
mismatched snapshot is ignored."""

from __future__ import annotations

import time

import numpy as np
import pytest
from bson import ObjectId
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.ports import Scope
from files import vector_cache
from files.document_store import CHUNK_VECTORS, search_chunks
from files.lexical_index import LexicalIndex
from files.models import DocumentChunk, File
from files.vector_snapshots import snapshot_path
from queries.memory_store import QUERY_VECTORS, similar_query_rows
from queries.models import Query

pytestmark = pytest.mark.django_db
DIMS = 8
MODEL = "m"


@pytest.fixture(autouse=True)
def _fresh():
    vector_cache.clear_vector_cache()
    yield
    vector_cache.clear_vector_cache()


def unit(values) -> list[float]:
    vector = np.asarray(values, dtype=np.float64)
    return (vector / np.linalg.norm(vector)).tolist()


def store(owner, text: str, vector: list[float]) -> Query:
    now = timezone.now()
    return Query.objects.create(
        owner=owner,
        user_id="u1",
        session_id="s",
        query=text,
        response="answer",
        model_provider="openai",
        model_name="m",
        status=Query.Status.COMPLETED,
        embedding=vector,
        embedding_model=MODEL,
        timestamp=now,
        completed_at=now,
    )


def memory_entry(owner):
    return vector_cache.user_vectors(
        owner_id=owner.pk, user_id="u1", model=MODEL, dimensions=DIMS, source=QUERY_VECTORS
    )


def key(owner, source: str = "queries"):
    return (str(owner.pk), "u1", MODEL, DIMS, source)


def wait_for_snapshot(path, *, newer_than: float = 0.0) -> None:
    # Written by a background thread: generous for a loaded CI machine.
    deadline = time.monotonic() + 60
    while not (path.exists() and path.stat().st_mtime > newer_than):
        assert time.monotonic() < deadline, f"no snapshot written at {path}"
        time.sleep(0.02)
    time.sleep(0.05)  # the rename is atomic; let the writer thread finish


def embedding_reads(captured) -> int:
    return sum("'embedding': 1" in query["sql"] for query in captured.captured_queries)


def restart() -> None:
    """What a new process sees: nothing in memory, the snapshots on disk."""
    vector_cache.clear_vector_cache(snapshots=False)


def test_after_a_restart_memory_loads_the_snapshot_and_reads_no_embedding(make_owner):
    owner, _ = make_owner()
    rng = np.random.default_rng(1)
    rows = [
        store(owner, f"question {i} about XK-{4400 + i}", unit(rng.normal(size=DIMS)))
        for i in range(40)
    ]
    before = memory_entry(owner)
    wait_for_snapshot(snapshot_path(key(owner)))
    held = list(before.ids)

    restart()
    with CaptureQueriesContext(connection) as captured:
        after = memory_entry(owner)
    assert embedding_reads(captured) == 0  # the cold read it saves lists every embedding
    assert sorted(after.ids) == sorted(held)
    assert np.allclose(after.matrix[[after.positions[pk] for pk in held]], before.matrix)
    # The BM25 index came back too: the code ranks its question first.
    scope = Scope(owner_id=str(owner.pk), user_id="u1", session_id="x", query_id=str(ObjectId()))
    [(best, _)] = similar_query_rows(
        scope, vector=unit(np.ones(DIMS)), text="XK-4417", embedding_model=MODEL, limit=1
    )
    assert best.pk == rows[17].pk


def test_rows_written_after_the_snapshot_are_read_after_a_restart(make_owner):
    owner, _ = make_owner()
    first = store(owner, "first", unit(np.arange(1, DIMS + 1)))
    memory_entry(owner)
    wait_for_snapshot(snapshot_path(key(owner)))
    later = store(owner, "later", unit(np.arange(DIMS, 0, -1)))

    restart()
    entry = memory_entry(owner)
    assert set(entry.ids) == {first.pk, later.pk}
    assert entry.lexicon.top_k("later", 1)[0][0] == later.pk


def test_a_deletion_removes_the_users_snapshots_and_the_database_is_the_truth(make_owner):
    owner, _ = make_owner()
    gone = store(owner, "gone", unit(np.arange(1, DIMS + 1)))
    kept = store(owner, "kept", unit(np.arange(DIMS, 0, -1)))
    memory_entry(owner)
    path = snapshot_path(key(owner))
    wait_for_snapshot(path)

    # A delete path that tells the cache: the snapshot is gone at once.
    Query.objects.filter(pk=gone.pk).delete()
    vector_cache.vector_cache_forget(owner_id=owner.pk, user_id="u1", query_ids=[gone.pk])
    assert not path.exists()

    # Any other delete path: a snapshot may still hold the row, and a search drops it.
    memory_entry(owner)
    wait_for_snapshot(path)
    Query.objects.filter(pk=kept.pk).delete()
    restart()
    scope = Scope(owner_id=str(owner.pk), user_id="u1", session_id="x", query_id=str(ObjectId()))
    assert (
        similar_query_rows(
            scope, vector=unit(np.arange(DIMS, 0, -1)), text="kept", embedding_model=MODEL, limit=3
        )
        == []
    )


def test_a_broken_or_mismatched_snapshot_is_ignored(make_owner, settings):
    owner, _ = make_owner()
    row = store(owner, "hello", unit(np.ones(DIMS)))
    path = snapshot_path(key(owner))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a snapshot")
    broken_at = path.stat().st_mtime
    assert memory_entry(owner).ids == [row.pk]  # read from the database instead

    wait_for_snapshot(path, newer_than=broken_at)
    settings.RETRIEVAL_LEXICAL = False  # a snapshot with a BM25 index no longer fits
    restart()
    with CaptureQueriesContext(connection) as captured:
        entry = memory_entry(owner)
    assert entry.ids == [row.pk] and entry.lexicon is None
    assert embedding_reads(captured) == 1


def test_a_lost_snapshot_is_rebuilt_from_the_database_and_written_again(make_owner):
    owner, _ = make_owner()
    first = store(owner, "first", unit(np.ones(DIMS)))
    memory_entry(owner)
    path = snapshot_path(key(owner))
    wait_for_snapshot(path)
    later = store(owner, "later", unit(np.arange(1, DIMS + 1)))

    path.unlink()  # lost: a wiped volume, an operator's clean-up
    restart()
    with CaptureQueriesContext(connection) as captured:
        entry = memory_entry(owner)
    assert set(entry.ids) == {first.pk, later.pk}  # the database's rows, both
    assert embedding_reads(captured) >= 1  # read there, not from a file
    wait_for_snapshot(path)

    restart()
    with CaptureQueriesContext(connection) as captured:
        assert set(memory_entry(owner).ids) == {first.pk, later.pk}
    assert embedding_reads(captured) == 0  # the rebuilt snapshot serves the next process


def test_document_chunks_come_back_and_a_reingested_file_is_read_again(make_owner):
    owner, _ = make_owner()

    def document(name: str) -> File:
        return File.objects.create(
            owner=owner,
            user_id="u1",
            filename=name,
            content_type="text/plain",
            size=1,
            sha256="0" * 64,
            storage_path=name,
            ingestion_status="ready",
            embedding_model=MODEL,
            ingestion_finished_at=timezone.now(),
        )

    def chunks(file: File, texts: list[str]) -> None:
        DocumentChunk.objects.bulk_create(
            DocumentChunk(
                owner=owner,
                user_id="u1",
                file=file,
                index=i,
                char_start=0,
                char_end=len(text),
                text=text,
                embedding=unit(np.arange(1, DIMS + 1) + i),
                embedding_model=MODEL,
            )
            for i, text in enumerate(texts)
        )

    a, b = document("a.txt"), document("b.txt")
    chunks(a, ["clause 14.2 sets the notice period", "the cafeteria opens at noon"])
    chunks(b, ["pump XK-4471 is rated for 40 bar"])

    def search(text: str) -> list[str]:
        hits = search_chunks(
            owner_id=owner.pk,
            user_id="u1",
            vector=unit(np.ones(DIMS)),
            text=text,
            embedding_model=MODEL,
            file_ids=None,
            limit=1,
        )
        return [hit.chunk.text for hit in hits]

    assert search("clause 14.2") == ["clause 14.2 sets the notice period"]
    wait_for_snapshot(snapshot_path(key(owner, CHUNK_VECTORS.name)))

    # Re-ingested while this process was down: a new version, new chunks.
    DocumentChunk.objects.filter(file=a).delete()
    chunks(a, ["clause 15.1 replaces clause 14.2"])
    File.objects.filter(pk=a.pk).update(ingestion_finished_at=timezone.now())

    restart()
    with CaptureQueriesContext(connection) as captured:
        assert search("XK-4471") == ["pump XK-4471 is rated for 40 bar"]
    # Only the re-ingested file's chunks were read; b came from the snapshot.
    reads = [q["sql"] for q in captured.captured_queries if "'embedding': 1" in q["sql"]]
    assert len(reads) == 1 and str(a.pk) in reads[0]
    assert search("clause 15.1") == ["clause 15.1 replaces clause 14.2"]


def test_the_bm25_state_round_trips():
    index = LexicalIndex()
    index.add_many((i, f"part XK-{4400 + i} rated {i} bar") for i in range(30))
    index.drop(range(0, 30, 3))
    copy = LexicalIndex.from_state(index.state())
    for question in ("XK-4405", "rated bar", "XK-4403"):
        expected = index.top_k(question, 5)
        got = copy.top_k(question, 5)
        assert [key for key, _ in got] == [key for key, _ in expected]
        assert [score for _, score in got] == pytest.approx([score for _, score in expected])
    assert len(copy) == len(index) == 20
