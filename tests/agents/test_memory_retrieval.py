"""The MemoryAgent's policy over the real memory store: which past queries count as memory
(top k, minimum score), and the session's history (its newest turns, oldest first)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import numpy as np
import pytest
from bson import ObjectId
from django.contrib.auth import get_user_model
from django.utils import timezone

from agents import memory
from agents.ports import Scope
from agents.providers.embeddings import get_embedder
from agents.state import RunState
from files.vector_cache import clear_vector_cache
from queries.engine_ports import ENGINE_PORTS
from queries.models import Query, Summary
from tests.engine_state import run_state

pytestmark = pytest.mark.django_db
DIMS = 384
MODEL = "all-MiniLM-L6-v2"


def unit(vector: np.ndarray) -> list[float]:
    return (vector / np.linalg.norm(vector)).astype(float).tolist()


def store(owner, vector, *, text="q", session_id="s", at=None, response=None) -> Query:
    completed = at or timezone.now()
    return Query.objects.create(
        owner=owner,
        user_id="u1",
        session_id=session_id,
        query=text,
        response=response or f"answer to {text}",
        model_provider="openai",
        model_name="m",
        status=Query.Status.COMPLETED,
        embedding=vector,
        embedding_model=MODEL,
        timestamp=completed,
        completed_at=completed,
    )


def recall(owner, vector, *, session_id="s") -> RunState:
    async def emit(event):  # the memory agent emits nothing
        raise AssertionError(event)

    state = run_state(
        scope=Scope(
            owner_id=str(owner.pk), user_id="u1", session_id=session_id, query_id=str(ObjectId())
        ),
        emit=emit,
        text="q",
        use_memory=True,
        embedding=vector,
        embedding_model=MODEL,
    )
    asyncio.run(memory.run(state, ENGINE_PORTS))
    return state


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_vector_cache()
    yield
    clear_vector_cache()


def test_memory_is_the_top_k_matching_brute_force_above_the_minimum_score():
    rng = np.random.default_rng(7)
    owner = get_user_model().objects.create(username="vec")
    query = rng.normal(size=DIMS)
    near = [
        store(owner, unit(query + rng.normal(size=DIMS) * scale), session_id="other")
        for scale in rng.uniform(0.02, 0.06, size=20)
    ]
    for _ in range(20):  # unrelated vectors: cosine near 0, below MIN_SCORE
        store(owner, unit(rng.normal(size=DIMS)), session_id="other")
    q = np.asarray(unit(query))
    matrix = np.asarray([s.embedding for s in near])
    brute = [str(near[i].pk) for i in np.argsort(-(matrix @ q))[: memory.TOP_K]]
    items = recall(owner, unit(query)).memory_items
    assert [item["query_id"] for item in items] == brute
    assert len(items) == memory.TOP_K


def test_past_queries_below_the_minimum_score_are_not_memory():
    rng = np.random.default_rng(3)
    owner = get_user_model().objects.create(username="noise")
    query = unit(rng.normal(size=DIMS))
    base = np.asarray(query)
    orthogonal = rng.normal(size=DIMS)
    orthogonal -= orthogonal.dot(base) * base
    orthogonal /= np.linalg.norm(orthogonal)
    # Cosine exactly 0.3 with the question: related words, not memory.
    weak = store(owner, unit(0.3 * base + np.sqrt(1 - 0.09) * orthogonal), session_id="x")
    strong = store(owner, unit(0.9 * base + np.sqrt(1 - 0.81) * orthogonal), session_id="x")
    items = recall(owner, query).memory_items
    assert [item["query_id"] for item in items] == [str(strong.pk)]
    assert str(weak.pk) not in {item["query_id"] for item in items}
    assert 0.3 < memory.MIN_SCORE < 0.9


def test_history_is_the_newest_turns_in_conversation_order():
    owner = get_user_model().objects.create(username="history")
    start = timezone.now() - timedelta(minutes=10)
    for turn in range(5):
        store(owner, unit(np.ones(DIMS)), text=f"turn {turn}", at=start + timedelta(minutes=turn))
    state = recall(owner, unit(np.ones(DIMS)))
    assert memory.HISTORY_TURNS == 3
    assert [question for question, _ in state.history] == ["turn 2", "turn 3", "turn 4"]
    assert state.history[-1][1] == "answer to turn 4"


def test_two_owners_with_the_same_user_and_session_never_share_memory():
    users = get_user_model().objects
    owner, other = users.create(username="a"), users.create(username="b")
    v = unit(np.ones(DIMS))
    store(other, v, text="the other owner's secret")
    Summary.objects.create(
        owner=other, user_id="u1", session_id="s", summary="other summary", pair_count=4
    )
    state = recall(owner, v)
    assert (state.memory_items, state.history, state.summary) == ([], [], None)
    mine = store(owner, v, text="mine")
    Summary.objects.create(owner=owner, user_id="u1", session_id="s", summary="mine", pair_count=4)
    state = recall(owner, v)
    assert [item["query_id"] for item in state.memory_items] == [str(mine.pk)]
    assert state.history == [("mine", "answer to mine")]
    assert state.summary == "mine"


@pytest.mark.usefixtures("in_process")
def test_an_imported_row_reaches_the_next_questions_prompt_without_a_restart(api, owner, fakes):
    def ask(text: str, session: str):
        body = {"user_id": "u1", "session_id": session, "query": text, "use_memory": True}
        response = api.post("/api/v1/query/", body, format="json")
        assert response.status_code == 200, response.content
        return fakes["openai"].chat_requests[-1].body

    # A question answered in this process: the end user's vector matrix is now held warm.
    ask("Hello there", "today")
    question = "Which pier is the Zanzibar warehouse on?"
    [vector] = asyncio.run(get_embedder().embed([question]))
    # Written by another writer (an import of last year's conversations), stamped before
    # the matrix's last read: a read of recent stamps alone would never see it.
    store(
        owner[0],
        vector,
        text=question,
        session_id="imported",
        at=timezone.now() - timedelta(days=365),
        response="The Zanzibar warehouse is on pier 47.",
    )
    assert "pier 47" in str(ask(question, "today"))
