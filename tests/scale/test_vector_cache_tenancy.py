"""Tenancy of the vector cache: one owner's end user never sees another owner's vectors.

Two owners may both have an end user called "u1". Each layer is pinned on its own: the
cached matrix (its key and the read that fills it) holds exactly the owner's completed
queries, and the memory store's check of each hit (``_hits_in_scope``) drops anything
else even when a matrix is wrong. Were only the last layer tested, it would hide a
cache shared between owners, a read without the owner filter, and a failed query's
vector recalled as memory.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import numpy as np
import pytest
from bson import ObjectId
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from agents.ports import Scope
from agents.providers.embeddings import get_embedder
from files.user_vectors import UserVectors
from files.vector_cache import clear_vector_cache, user_vectors
from llmplatform.core.bridge import run_sync
from llmplatform.core.services import api_key_create
from queries import memory_store
from queries.memory_store import QUERY_VECTORS, QueryMemoryStore
from queries.models import Query

pytestmark = pytest.mark.django_db(transaction=True)
DIMS = 384
MODEL = "all-MiniLM-L6-v2"


def unit(vector) -> list[float]:
    vector = np.asarray(vector, dtype=float)
    return (vector / np.linalg.norm(vector)).tolist()


SAME = unit(np.ones(DIMS))


def store(owner, *, text: str, status=Query.Status.COMPLETED, age=timedelta(0), vector=SAME):
    at = timezone.now() - age
    return Query.objects.create(
        owner=owner,
        user_id="u1",
        session_id="s1",
        query=text,
        response=f"answer to {text}",
        model_provider="openai",
        model_name="m",
        status=status,
        embedding=vector,
        embedding_model=MODEL,
        timestamp=at,
        completed_at=at,
    )


def recalled(owner, *, limit: int = 5) -> set[str]:
    scope = Scope(owner_id=str(owner.pk), user_id="u1", session_id="s1", query_id=str(ObjectId()))
    hits = asyncio.run(
        QueryMemoryStore().similar(scope, vector=SAME, embedding_model=MODEL, limit=limit)
    )
    return {hit.query_id for hit in hits}


def matrix_rows(owner) -> set[ObjectId]:
    cached = user_vectors(
        owner_id=owner.pk, user_id="u1", model=MODEL, dimensions=DIMS, source=QUERY_VECTORS
    )
    return set(cached.ids)


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_vector_cache()
    yield
    clear_vector_cache()


@pytest.fixture
def owners():
    users = get_user_model().objects
    return users.create(username="acme"), users.create(username="globex")


def test_each_owners_matrix_holds_only_its_own_completed_queries(owners):
    acme, globex = owners
    acme_done = {store(acme, text=f"acme {n}").pk for n in range(3)}
    globex_done = {store(globex, text="globex").pk}
    # Their vectors are stored, but they are not answers: never memory.
    store(acme, text="failed", status=Query.Status.FAILED)
    store(acme, text="running", status=Query.Status.RUNNING)
    store(acme, text="cancelled", status=Query.Status.CANCELLED)
    assert matrix_rows(globex) == globex_done
    assert matrix_rows(acme) == acme_done


def test_a_warm_matrix_of_one_owner_is_never_served_to_another(owners):
    acme, globex = owners
    # Acme's answers are older than the cache's re-read margin: were the two owners to
    # share one matrix, Globex's questions would prune them from it for good.
    acme_done = {str(store(acme, text=f"acme {n}", age=timedelta(hours=2)).pk) for n in range(3)}
    globex_done = {str(store(globex, text="globex").pk)}
    assert recalled(acme) == acme_done  # Acme's matrix is now warm in the cache
    assert {str(pk) for pk in matrix_rows(globex)} == globex_done
    assert recalled(globex) == globex_done
    assert recalled(acme) == acme_done  # and Globex's questions took nothing from it
    assert {str(pk) for pk in matrix_rows(acme)} == acme_done


def test_the_memory_store_drops_hits_outside_the_scope_whatever_the_matrix_holds(
    owners, monkeypatch
):
    # The second layer on its own: a matrix that (wrongly) holds another owner's and an
    # unfinished query still recalls only the scope's completed ones.
    acme, globex = owners
    foreign = store(acme, text="acme")
    failed = store(globex, text="failed", status=Query.Status.FAILED)
    own = store(globex, text="globex")
    polluted = UserVectors(dimensions=DIMS)
    polluted.append([(q.pk, SAME) for q in (foreign, failed, own)])
    monkeypatch.setattr(memory_store, "user_vectors", lambda **_: polluted)
    assert recalled(globex) == {str(own.pk)}


def client_of(owner) -> APIClient:
    _, raw_key = api_key_create(owner=owner, name="search")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def test_search_never_returns_another_owners_queries_even_with_its_matrix_warm(owners, settings):
    settings.EMBEDDING_PROVIDER = "local"
    acme, globex = owners
    embedder = get_embedder()
    texts = ["How do I bake sourdough bread?", "What is the capital of France?"]
    acme_vector, globex_vector = run_sync(embedder.embed(texts))
    acme_query = store(acme, text=texts[0], vector=acme_vector)
    globex_query = store(globex, text=texts[1], vector=globex_vector)
    params = {"q": "sourdough bread", "user_id": "u1", "scope": "queries"}

    acme_results = client_of(acme).get("/api/v1/search", params)
    assert acme_results.status_code == 200
    assert [r["query_id"] for r in acme_results.json()["results"]] == [str(acme_query.pk)]

    globex_results = client_of(globex).get("/api/v1/search", params)
    assert globex_results.status_code == 200
    assert [r["query_id"] for r in globex_results.json()["results"]] == [str(globex_query.pk)]
