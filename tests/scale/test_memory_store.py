"""QueryMemoryStore: the engine's memory port over Query and Summary, scoped and incremental."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pytest
from bson import ObjectId
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.ports import Scope
from agents.state import RunState
from files import vector_cache
from files.vector_cache import clear_vector_cache, user_vectors
from imports.seed_documents import seed_document_convert
from queries import run as query_run
from queries.admin import QueryAdmin
from queries.memory_store import (
    QUERY_VECTORS,
    QueryMemoryStore,
    memory_refresh,
    similar_queries,
    vector_search_pipeline,
)
from queries.models import Query, Summary

pytestmark = pytest.mark.django_db(transaction=True)
DIMS = 384
MODEL = "all-MiniLM-L6-v2"


def unit(vector) -> list[float]:
    vector = np.asarray(vector, dtype=float)
    return (vector / np.linalg.norm(vector)).tolist()


def store(owner, vector, *, user_id="u1", session_id="s1", text="q", **fields) -> Query:
    return Query.objects.create(
        owner=owner,
        user_id=user_id,
        session_id=session_id,
        query=text,
        response=f"answer to {text}",
        model_provider="openai",
        model_name="m",
        status=fields.pop("status", Query.Status.COMPLETED),
        embedding=vector,
        embedding_model=fields.pop("embedding_model", MODEL),
        completed_at=fields.pop("completed_at", timezone.now()),
        **fields,
    )


def scope_of(owner, *, user_id="u1", session_id="s1", query_id=None) -> Scope:
    return Scope(
        owner_id=str(owner.pk),
        user_id=user_id,
        session_id=session_id,
        query_id=query_id or str(ObjectId()),
    )


def similar(scope, vector, limit=3, model=MODEL):
    return asyncio.run(
        QueryMemoryStore().similar(scope, vector=vector, embedding_model=model, limit=limit)
    )


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_vector_cache()
    yield
    clear_vector_cache()


@pytest.fixture
def owners():
    users = get_user_model().objects
    return users.create(username="acme"), users.create(username="globex")


def test_two_owners_with_the_same_ids_never_share_memory(owners):
    acme, globex = owners
    v = unit(np.ones(DIMS))
    mine = store(acme, v, text="acme question")
    store(globex, v, text="globex question")
    Summary.objects.create(owner=acme, user_id="u1", session_id="s1", summary="acme", pair_count=4)
    Summary.objects.create(
        owner=globex, user_id="u1", session_id="s1", summary="globex", pair_count=8
    )
    hits = similar(scope_of(acme), v)
    assert [hit.query_id for hit in hits] == [str(mine.pk)]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    store_ = QueryMemoryStore()
    assert asyncio.run(store_.latest_summary(scope_of(acme))) == "acme"
    turns = asyncio.run(store_.recent_turns(scope_of(acme), limit=5))
    assert [turn.question for turn in turns] == ["acme question"]


def test_candidates_best_first_without_threshold_and_running_query_excluded(owners):
    acme, _ = owners
    rng = np.random.default_rng(3)
    target = rng.normal(size=DIMS)
    running = store(acme, unit(target), text="running")
    near = store(acme, unit(target + rng.normal(size=DIMS) * 0.05), text="near")
    # Nearly orthogonal: a score the engine would drop, but the store still returns it.
    far = store(acme, unit(rng.normal(size=DIMS)), text="far")
    store(acme, unit(target), text="other user", user_id="u2")
    store(acme, unit(target), text="failed", status=Query.Status.FAILED)
    store(acme, unit(np.ones(1536)), text="other model", embedding_model="text-embedding-3-small")
    hits = similar(scope_of(acme, query_id=str(running.pk)), unit(target), limit=5)
    assert [hit.query_id for hit in hits] == [str(near.pk), str(far.pk)]
    assert hits[0].score > 0.9 and abs(hits[1].score) < 0.35


def test_memory_of_one_session_never_returns_other_sessions_even_when_closer(owners):
    acme, _ = owners
    rng = np.random.default_rng(5)
    target = rng.normal(size=DIMS)
    running = store(acme, unit(target), text="running", session_id="here")
    # Another conversation's question is the closest in the whole cache.
    store(acme, unit(target + rng.normal(size=DIMS) * 0.01), text="elsewhere", session_id="there")
    mine = store(acme, unit(target + rng.normal(size=DIMS) * 0.3), text="mine", session_id="here")
    store(acme, unit(target), text="other user", user_id="u2", session_id="here")
    scope = scope_of(acme, session_id="here", query_id=str(running.pk))
    everywhere = similar(scope, unit(target), limit=5)
    assert [hit.query for hit in everywhere] == ["elsewhere", "mine"]
    here = asyncio.run(
        QueryMemoryStore().similar(
            scope, vector=unit(target), embedding_model=MODEL, limit=5, session_only=True
        )
    )
    assert [hit.query_id for hit in here] == [str(mine.pk)]
    # A conversation with no earlier question has no memory to recall.
    empty = scope_of(acme, session_id="new")
    assert (
        asyncio.run(
            QueryMemoryStore().similar(
                empty, vector=unit(target), embedding_model=MODEL, limit=5, session_only=True
            )
        )
        == []
    )


def test_recent_turns_newest_first_and_only_completed(owners):
    acme, _ = owners
    base = timezone.now()
    for i in range(4):
        store(acme, None, text=f"q{i}", timestamp=base + timezone.timedelta(seconds=i))
    store(acme, None, text="pending", status=Query.Status.PENDING)
    turns = asyncio.run(QueryMemoryStore().recent_turns(scope_of(acme), limit=3))
    assert [turn.question for turn in turns] == ["q3", "q2", "q1"]


def test_matrix_reads_only_new_rows(owners):
    acme, _ = owners
    v = unit(np.ones(DIMS))
    first = [store(acme, v, text=str(i)) for i in range(5)]
    cached = user_vectors(
        owner_id=acme.pk, user_id="u1", model=MODEL, dimensions=DIMS, source=QUERY_VECTORS
    )
    assert set(cached.ids) == {q.pk for q in first}
    newer = store(acme, v, text="newer")
    with CaptureQueriesContext(connection) as captured:
        cached = user_vectors(
            owner_id=acme.pk, user_id="u1", model=MODEL, dimensions=DIMS, source=QUERY_VECTORS
        )
    assert newer.pk in cached.ids and len(cached.ids) == 6
    # The listing reads ids only; embeddings are fetched for the one new row alone.
    embedding_reads = [q["sql"] for q in captured.captured_queries if "'embedding': 1" in q["sql"]]
    assert len(embedding_reads) == 1
    assert str(newer.pk) in embedding_reads[0]
    assert not any(str(q.pk) in embedding_reads[0] for q in first)


def test_deleted_queries_leave_the_matrix(owners, rf):
    acme, _ = owners
    v = unit(np.ones(DIMS))
    kept, deleted_in_admin, deleted_elsewhere = (store(acme, v, text=t) for t in "abc")
    assert len(similar(scope_of(acme), v)) == 3
    admin = QueryAdmin(Query, None)
    admin.delete_model(rf.post("/"), deleted_in_admin)
    cached = user_vectors(
        owner_id=acme.pk, user_id="u1", model=MODEL, dimensions=DIMS, source=QUERY_VECTORS
    )
    assert deleted_in_admin.pk not in cached.ids
    # Any other delete path: the store notices the missing hit and prunes it.
    Query.objects.filter(pk=deleted_elsewhere.pk).delete()
    assert [hit.query_id for hit in similar(scope_of(acme), v)] == [str(kept.pk)]
    assert cached.ids == [kept.pk]


def test_cache_is_bounded_by_bytes(owners, monkeypatch):
    acme, _ = owners
    v = unit(np.ones(DIMS))
    for user in ("u1", "u2"):
        store(acme, v, user_id=user)
    monkeypatch.setattr(vector_cache, "MAX_CACHED_BYTES", 1)
    user_vectors(owner_id=acme.pk, user_id="u1", model=MODEL, dimensions=DIMS, source=QUERY_VECTORS)
    user_vectors(owner_id=acme.pk, user_id="u2", model=MODEL, dimensions=DIMS, source=QUERY_VECTORS)
    assert [key[1] for key in vector_cache._cache] == ["u2"]


def test_vector_search_pipeline_filters_by_owner_inside_the_search(owners):
    acme, _ = owners
    scope = scope_of(acme)
    [search, project] = vector_search_pipeline(
        scope, vector=[0.1] * 1536, embedding_model="text-embedding-3-small", limit=3
    )
    spec = search["$vectorSearch"]
    assert spec["filter"] == {
        "owner_id": acme.pk,
        "user_id": "u1",
        "embedding_model": "text-embedding-3-small",
        "status": "completed",
    }
    assert spec["limit"] == 4 and spec["numCandidates"] >= spec["limit"]
    assert project["$project"]["score"] == {"$meta": "vectorSearchScore"}


def test_vector_search_scores_are_converted_back_to_cosine(owners, monkeypatch):
    from queries import memory_store

    acme, _ = owners
    hit = store(acme, None, text="hit")
    running = store(acme, None, text="running")

    sent = []

    def atlas(pipeline):
        # What Atlas answers: the running query itself, then (1 + cos) / 2 scores.
        sent.append(pipeline)
        return [{"_id": running.pk, "score": 1.0}, {"_id": hit.pk, "score": 0.9}]

    monkeypatch.setattr(memory_store, "uses_vector_search", lambda dimensions: True)
    monkeypatch.setattr(memory_store, "_aggregate", atlas)
    hits = memory_store.similar_queries(
        scope_of(acme, query_id=str(running.pk)), vector=[1.0], embedding_model=MODEL, limit=3
    )
    assert [(h.query_id, h.score) for h in hits] == [(str(hit.pk), pytest.approx(0.8))]
    assert sent[0][0]["$vectorSearch"]["filter"]["owner_id"] == acme.pk


def test_cold_read_in_pages_and_batches_with_ties(owners, monkeypatch):
    # The embedded server decodes each returned row in full: a user's whole history is
    # never asked for in one read. Ties on indexed_at longer than a page still finish.
    acme, _ = owners
    monkeypatch.setattr(vector_cache, "LIST_PAGE", 2)
    monkeypatch.setattr(vector_cache, "FETCH_BATCH", 2)
    v = unit(np.ones(DIMS))
    tied_at = timezone.now() - timezone.timedelta(minutes=1)
    rows = [store(acme, v, text=f"t{i}") for i in range(7)]
    Query.objects.filter(pk__in=[q.pk for q in rows[1:6]]).update(indexed_at=tied_at)
    with CaptureQueriesContext(connection) as captured:
        cached = user_vectors(
            owner_id=acme.pk, user_id="u1", model=MODEL, dimensions=DIMS, source=QUERY_VECTORS
        )
    assert sorted(cached.ids) == sorted(q.pk for q in rows)
    embedding_reads = [q["sql"] for q in captured.captured_queries if "'embedding': 1" in q["sql"]]
    assert len(embedding_reads) >= 4  # 7 rows, at most 2 per page (+ the tie's own read)
    assert cached.matrix.shape == (7, DIMS)
    # Warm: only new rows' embeddings are read, by id, each once.
    newer = [store(acme, v, text=f"n{i}") for i in range(3)]
    with CaptureQueriesContext(connection) as captured:
        cached = user_vectors(
            owner_id=acme.pk, user_id="u1", model=MODEL, dimensions=DIMS, source=QUERY_VECTORS
        )
    assert {q.pk for q in newer} <= set(cached.ids) and len(cached.ids) == 10
    embedding_reads = "".join(
        q["sql"] for q in captured.captured_queries if "'embedding': 1" in q["sql"]
    )
    # Each new row's embedding is read at most once by id (or with a page of mostly new
    # rows), never an old row's.
    assert all(embedding_reads.count(str(q.pk)) <= 1 for q in newer)
    assert not any(str(q.pk) in embedding_reads for q in rows)


def test_an_imported_row_with_an_older_stamp_reaches_a_warm_matrix(owners):
    # import_seed_data while the server answers: the row's completed_at is months before
    # the warm matrix's last read, yet the next question's memory has it, no restart.
    acme, _ = owners
    seed_model, seed_dims = "text-embedding-3-small", 1536
    v = unit(np.ones(seed_dims))
    live = store(acme, v, text="live", embedding_model=seed_model)
    assert [h.query_id for h in similar(scope_of(acme), v, model=seed_model)] == [str(live.pk)]
    months_ago = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
    imported = seed_document_convert(
        "queries",
        {
            "_id": ObjectId.from_datetime(months_ago),
            "user_id": "u1",
            "session_id": "old",
            "query": "imported",
            "embedding": v,
            "timestamp": months_ago,
        },
        owner=acme,
        source=SimpleNamespace(name="seed"),
        reembed=False,
    )
    imported.save(force_insert=True)
    assert Query.objects.get(pk=imported.pk).completed_at == months_ago
    hits = similar(scope_of(acme), v, model=seed_model)
    assert {h.query_id for h in hits} == {str(live.pk), str(imported.pk)}


def test_a_query_completed_after_a_read_enters_however_long_ago_it_started(owners):
    # Stored at its start (pending, stamped then), completed after the matrix was read:
    # completion stamps it again, so a run longer than the margin is not lost.
    acme, _ = owners
    v = unit(np.ones(DIMS))
    store(acme, v, text="earlier")
    long_run = store(acme, None, text="long", status=Query.Status.RUNNING)
    Query.objects.filter(pk=long_run.pk).update(
        indexed_at=timezone.now() - timezone.timedelta(hours=1)
    )
    assert len(similar(scope_of(acme), v)) == 1
    complete(long_run, v)
    assert str(long_run.pk) in {h.query_id for h in similar(scope_of(acme), v)}


def complete(query: Query, vector: list[float]) -> None:
    """Store ``query``'s outcome as its run does: completed, with ``vector``."""
    state = RunState(
        scope=scope_of(query.owner, query_id=str(query.pk)),
        text=query.query,
        mode="chat",
        provider="openai",
        model="m",
        temperature=0.0,
        max_tokens=10,
        web_search=False,
        use_memory=True,
        selected_option=None,
        images=[],
        system_prompt_override=None,
        emit=None,
        embedding=vector,
        embedding_model=MODEL,
        response="done",
    )
    query_run._store_outcome(Query.objects.get(pk=query.pk), state, 1.0)


def test_a_query_this_process_completes_is_in_its_warm_matrix_without_a_read(owners):
    # The next question's refresh then lists it as held and fetches no embedding.
    acme, _ = owners
    v = unit(np.ones(DIMS))
    store(acme, v, text="earlier")
    held = user_vectors(
        owner_id=acme.pk, user_id="u1", model=MODEL, dimensions=DIMS, source=QUERY_VECTORS
    )
    asked = store(acme, None, text="pump XK-4471 pressure", status=Query.Status.RUNNING)
    complete(asked, v)
    assert asked.pk in held.ids
    with CaptureQueriesContext(connection) as captured:
        refreshed = user_vectors(
            owner_id=acme.pk, user_id="u1", model=MODEL, dimensions=DIMS, source=QUERY_VECTORS
        )
    assert len(refreshed.ids) == 2
    assert not [q for q in captured.captured_queries if "'embedding': 1" in q["sql"]]
    # Its question is in the lexical index too: a search naming its code ranks it first.
    found = asyncio.run(
        QueryMemoryStore().similar(
            scope_of(acme), vector=v, embedding_model=MODEL, limit=1, text="XK-4471"
        )
    )
    assert [hit.query_id for hit in found] == [str(asked.pk)]


def test_a_search_after_a_refresh_of_its_own_step_reads_nothing_again(owners):
    # The memory step refreshes the matrix while the question is embedded, then searches.
    acme, _ = owners
    v = unit(np.ones(DIMS))
    store(acme, v, text="earlier")
    step_started = timezone.now()
    memory_refresh(scope_of(acme), embedding_model=MODEL, dimensions=DIMS)
    with CaptureQueriesContext(connection) as captured:
        found = similar_queries(
            scope_of(acme), vector=v, embedding_model=MODEL, limit=3, fresh_since=step_started
        )
    assert [hit.query for hit in found] == ["earlier"]
    assert not [q for q in captured.captured_queries if "indexed_at" in q["sql"]]
    # A row stored after that refresh is read by the next step's.
    later = store(acme, v, text="later")
    with CaptureQueriesContext(connection) as captured:
        found = similar_queries(scope_of(acme), vector=v, embedding_model=MODEL, limit=3)
    assert [q for q in captured.captured_queries if "indexed_at" in q["sql"]]
    assert str(later.pk) in {hit.query_id for hit in found}


def test_a_completed_query_makes_no_matrix_in_a_process_that_holds_none(owners):
    acme, _ = owners
    asked = store(acme, None, text="asked", status=Query.Status.RUNNING)
    complete(asked, unit(np.ones(DIMS)))
    assert not vector_cache._cache


def test_rows_arriving_in_bulk_while_warm_are_all_read(owners, monkeypatch):
    # An import into a warm matrix: pages of mostly new rows are read with their
    # embeddings (or their stamp range again), and every row arrives, whatever its
    # completed_at.
    acme, _ = owners
    monkeypatch.setattr(vector_cache, "LIST_PAGE", 2)
    monkeypatch.setattr(vector_cache, "FETCH_BATCH", 1)
    v = unit(np.ones(DIMS))
    held = [store(acme, v, text=f"h{i}") for i in range(2)]
    cached = user_vectors(
        owner_id=acme.pk, user_id="u1", model=MODEL, dimensions=DIMS, source=QUERY_VECTORS
    )
    assert sorted(cached.ids) == sorted(q.pk for q in held)
    months_ago = timezone.now() - timezone.timedelta(days=90)
    imported = [store(acme, v, text=f"i{i}", completed_at=months_ago) for i in range(7)]
    cached = user_vectors(
        owner_id=acme.pk, user_id="u1", model=MODEL, dimensions=DIMS, source=QUERY_VECTORS
    )
    assert sorted(cached.ids) == sorted(q.pk for q in [*held, *imported])
    assert cached.matrix.shape == (9, DIMS)


def test_on_a_server_with_score_fusion_memory_fuses_vector_and_text_search(owners, monkeypatch):
    from queries import memory_store
    from queries.models import TEXT_INDEX_NAME

    acme, _ = owners
    hit = store(acme, None, text="Where is pump XK-4471?")
    running = store(acme, None, text="running")
    sent = []

    def atlas(pipeline):
        sent.append(pipeline)
        return [
            {"_id": running.pk, "embedding": [1.0, 0.0]},
            {"_id": hit.pk, "embedding": [0.6, 0.8]},
        ]

    monkeypatch.setattr(memory_store, "uses_vector_search", lambda dimensions: True)
    monkeypatch.setattr(memory_store, "server_fuses_scores", lambda: True)
    monkeypatch.setattr(memory_store, "_aggregate", atlas)
    hits = memory_store.similar_queries(
        scope_of(acme, query_id=str(running.pk)),
        vector=[1.0, 0.0],
        text="XK-4471",
        embedding_model=MODEL,
        limit=3,
    )
    # The running query is dropped; the cosine comes from the stored embedding.
    assert [(h.query_id, h.score) for h in hits] == [(str(hit.pk), pytest.approx(0.6))]
    fusion, limit, project = sent[0]
    pipelines = fusion["$scoreFusion"]["input"]["pipelines"]
    assert fusion["$scoreFusion"]["input"]["normalization"] == "minMaxScaler"
    assert fusion["$scoreFusion"]["combination"]["weights"] == {
        "vector": pytest.approx(0.45),
        "text": pytest.approx(0.55),
    }
    assert pipelines["vector"][0]["$vectorSearch"]["filter"]["owner_id"] == acme.pk
    search = pipelines["text"][0]["$search"]
    assert search["index"] == TEXT_INDEX_NAME
    assert search["compound"]["must"] == [{"text": {"query": "XK-4471", "path": "query"}}]
    scope = {c["equals"]["path"]: c["equals"]["value"] for c in search["compound"]["filter"]}
    assert scope == {
        "owner_id": acme.pk,
        "user_id": "u1",
        "embedding_model": MODEL,
        "status": Query.Status.COMPLETED,
    }
    # Atlas Search filters only on declared fields.
    [index] = [i for i in Query._meta.indexes if i.name == TEXT_INDEX_NAME]
    declared = {Query._meta.get_field(name).column for name in index.field_mappings}
    assert set(scope) | {"query"} <= declared
    assert limit == {"$limit": 4} and project == {"$project": {"_id": 1, "embedding": 1}}
