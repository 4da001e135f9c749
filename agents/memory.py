"""MemoryAgent: the query's embedding, the caller's relevant past queries, the session summary.

Retrieval never crosses owners, end users or embedding models (vectors of two models are
not comparable): the memory store is scoped by the run's ``Scope``. What counts as
memory is decided here: at most TOP_K past queries scoring at least MIN_SCORE (of all
the end user's conversations, or of this one only: ``RunState.memory_scope``), the
session's newest summary, and its last HISTORY_TURNS turns, oldest first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime

from agents.ports import MemoryHit, Ports, Turn
from agents.providers.embeddings import get_embedder
from agents.providers.provider_errors import ProviderError
from agents.state import RunState
from llmplatform.core import tracing

logger = logging.getLogger(__name__)

TOP_K = 3
# Below this cosine similarity a past query is noise rather than memory.
MIN_SCORE = 0.35
HISTORY_TURNS = 3
MEMORY_TEXT_LIMIT = 600


def memory_item(hit: MemoryHit) -> dict[str, object]:
    return {
        "query_id": hit.query_id,
        "query": hit.query,
        "response": hit.response[:MEMORY_TEXT_LIMIT],
        "score": round(float(hit.score), 4),
    }


async def embed_query(state: RunState) -> bool:
    """Embed the query text (stored with the query for future retrieval); False if it failed."""
    embedder = get_embedder()
    try:
        with tracing.span(
            "embeddings",
            {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": embedder.model},
        ):
            [vector] = await embedder.embed([state.text])
    except ProviderError as exc:
        # Memory is an aid: without an embedding the question is still answered.
        logger.warning("embedding failed, answering without memory: %s", exc.message)
        state.embedding_model = ""
        return False
    state.embedding = vector
    state.embedding_model = embedder.model
    return True


async def _traced[T](name: str, step: Awaitable[T]) -> T:
    # gather runs each step as its own task, with a copy of this context: each span is a
    # child of the agent's.
    with tracing.span(name):
        return await step


async def _recent_turns(state: RunState, ports: Ports) -> list[Turn]:
    # The start read them for admission to reserve for: a run they were handed to does not
    # read them again (they are the turns the question was admitted with).
    handed = state.memory_reads
    if handed is not None and handed.recent_turns is not None:
        return await asyncio.wrap_future(handed.recent_turns)
    return await _traced(
        "memory.recent_turns", ports.memory.recent_turns(state.scope, limit=HISTORY_TURNS)
    )


async def _summary(state: RunState, ports: Ports) -> str | None:
    handed = state.memory_reads
    if handed is not None and handed.summary is not None:  # read since the question's start
        return await asyncio.wrap_future(handed.summary)
    return await _traced("memory.summary", ports.memory.latest_summary(state.scope))


async def _handed_refresh(state: RunState) -> None:
    # The search waits for this read by its start time; awaited here as well so that what
    # it raised fails the step instead of staying in a future nobody reads.
    handed = state.memory_reads
    if handed is not None and handed.vectors_refresh is not None:
        await asyncio.wrap_future(handed.vectors_refresh)


async def run(state: RunState, ports: Ports) -> None:
    # What does not need the question's vector is read while the question is embedded
    # (or was, since the question's start: ``RunState.memory_reads``): the summary, the
    # turns, and what changed in the user's stored vectors.
    reads = asyncio.gather(
        _recent_turns(state, ports), _summary(state, ports), _handed_refresh(state)
    )
    # The user's vectors brought up to date since the question's start, or now.
    fresh_since = state.memory_reads.vectors_since if state.memory_reads else None
    if state.embedding is None:
        if fresh_since is not None:
            embedded = await embed_query(state)
        else:
            embedder = get_embedder()
            fresh_since = datetime.now(UTC)
            refresh = ports.memory.refresh(
                state.scope, embedding_model=embedder.model, dimensions=embedder.dimensions
            )
            embedded, _ = await asyncio.gather(
                embed_query(state), _traced("memory.refresh", refresh)
            )
        if not embedded:
            reads.cancel()
            return
    assert state.embedding is not None
    hits, (turns, summary, _) = await asyncio.gather(
        _traced(
            "memory.vector_search",
            ports.memory.similar(
                state.scope,
                vector=state.embedding,
                embedding_model=state.embedding_model,
                limit=TOP_K,
                text=state.text,
                session_only=state.memory_scope == "session",
                fresh_since=fresh_since,
            ),
        ),
        reads,
    )
    state.memory_items = [memory_item(hit) for hit in hits[:TOP_K] if hit.score >= MIN_SCORE]
    tracing.annotate(
        llmplatform__memory_hits=len(state.memory_items),
        llmplatform__history_turns=len(turns[:HISTORY_TURNS]),
        llmplatform__summary_used=summary is not None,
    )
    if tracing.content_enabled():
        remembered = [f"{item['query']} -> {item['response']}" for item in state.memory_items]
        tracing.record_content(tracing.current_span(), "llmplatform.memory", "\n".join(remembered))
    state.summary = summary
    # The store gives the newest first; the prompt reads as the conversation went.
    state.history = [(turn.question, turn.answer) for turn in reversed(turns[:HISTORY_TURNS])]
