"""Exact-cosine memory retrieval: same top-k as brute force, scoped, kept up to date."""

from __future__ import annotations

import numpy as np
import pytest
from bson import ObjectId
from django.contrib.auth import get_user_model
from django.utils import timezone

from agents.memory import TOP_K, _exact_top_k
from agents.state import PipelineState
from agents.vector_cache import clear_vector_cache, user_vectors
from queries.models import Query

pytestmark = pytest.mark.django_db
DIMS = 384
MODEL = "all-MiniLM-L6-v2"


def unit(vector: np.ndarray) -> list[float]:
    return (vector / np.linalg.norm(vector)).astype(float).tolist()


def store(owner, vector, *, user_id="u1", model=MODEL, status=Query.Status.COMPLETED) -> Query:
    return Query.objects.create(
        owner=owner,
        user_id=user_id,
        session_id="s",
        query="q",
        response="r",
        model_provider="openai",
        model_name="m",
        status=status,
        embedding=vector,
        embedding_model=model,
        completed_at=timezone.now(),
    )


def state_for(owner, vector) -> PipelineState:
    async def emit(event):  # pragma: no cover - not used by retrieval
        return None

    return PipelineState(
        query_id=str(ObjectId()),
        owner_id=owner.pk,
        user_id="u1",
        session_id="s",
        text="q",
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
        emit=emit,
        embedding=vector,
        embedding_model=MODEL,
    )


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_vector_cache()
    yield
    clear_vector_cache()


def test_exact_top_k_matches_brute_force_and_stays_current():
    rng = np.random.default_rng(7)
    owner = get_user_model().objects.create(username="vec")
    query = rng.normal(size=DIMS)
    # Vectors near the query (cosine well above the memory threshold) at varying distances.
    stored = [
        store(owner, unit(query + rng.normal(size=DIMS) * scale))
        for scale in rng.uniform(0.02, 0.06, size=40)
    ]
    q = np.asarray(unit(query))
    matrix = np.asarray([s.embedding for s in stored])
    brute = [str(stored[i].pk) for i in np.argsort(-(matrix @ q))[:TOP_K]]
    found = _exact_top_k(state_for(owner, unit(query)), unit(query))
    assert [item["query_id"] for item in found] == brute

    closest = store(owner, unit(query))  # completed after the matrix was cached
    again = _exact_top_k(state_for(owner, unit(query)), unit(query))
    assert again[0]["query_id"] == str(closest.pk)
    assert again[0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_vectors_are_scoped_to_owner_user_model_and_completed():
    users = get_user_model().objects
    owner, other = users.create(username="a"), users.create(username="b")
    v = unit(np.ones(DIMS))
    mine = store(owner, v)
    store(other, v)
    store(owner, v, user_id="u2")
    store(owner, v, model="text-embedding-3-small")
    store(owner, v, status=Query.Status.FAILED)
    store(owner, unit(np.ones(1536)))  # another model's dimensions never mix in
    cached = user_vectors(owner_id=owner.pk, user_id="u1", model=MODEL, dimensions=DIMS)
    assert cached.ids == [mine.pk]


def test_a_query_saved_after_a_later_one_was_read_is_still_found():
    from datetime import timedelta

    owner = get_user_model().objects.create(username="late")
    v = unit(np.ones(DIMS))
    first = store(owner, v)
    user_vectors(owner_id=owner.pk, user_id="u1", model=MODEL, dimensions=DIMS)
    late = store(owner, v)
    Query.objects.filter(pk=late.pk).update(completed_at=first.completed_at - timedelta(seconds=30))
    cached = user_vectors(owner_id=owner.pk, user_id="u1", model=MODEL, dimensions=DIMS)
    assert set(cached.ids) == {first.pk, late.pk}
