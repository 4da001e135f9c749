"""Writes for queries besides the run (queries.run): feedback, and what follows an answer."""

from __future__ import annotations

import logging
from typing import Any

from bson import ObjectId
from django.db import IntegrityError
from django.utils import timezone

from agents.providers.base import ChatMessage, ChatRequest
from agents.providers.registry import get_chat_provider
from llmplatform.core.bridge import run_sync
from llmplatform.core.config import run_config
from llmplatform.core.errors import ApplicationError
from queries.models import Query, Summary

logger = logging.getLogger(__name__)


def query_feedback(*, query: Query, rating: int, comment: str) -> Query:
    """Record the user's rating (1 or -1) of an answer; the last rating wins. Raises nothing."""
    query.feedback_rating = rating
    query.feedback_comment = comment
    query.feedback_at = timezone.now()
    query.save(update_fields=["feedback_rating", "feedback_comment", "feedback_at"])
    return query


def query_completed(*, query_id: str) -> str | None:
    """After an answer, in the background: every MEMORY_SUMMARY_INTERVAL answered pairs of
    a session, its summary. Returns the summary's id when one was due. Raises
    ProviderError."""
    query = Query.objects.filter(pk=ObjectId(query_id)).only("owner_id", "session_id").first()
    if query is None:
        return None
    # Filtered on the indexed (owner, session) pair only, statuses counted here: the
    # embedded database uses an index only when it covers every filtered field.
    statuses = Query.objects.filter(
        owner_id=query.owner_id, session_id=query.session_id
    ).values_list("status", flat=True)
    pairs = sum(status == Query.Status.COMPLETED for status in statuses)
    if pairs % run_config().summary_interval:
        return None
    summary = summary_create(
        owner_id=str(query.owner_id), session_id=query.session_id, pair_count=pairs
    )
    return str(summary.pk)


SUMMARY_PROMPT = (
    "Summarise this conversation for your own memory in at most 120 words: the user's "
    "goals, facts they gave, decisions and open questions. Write plain sentences."
)


async def _complete(provider_name: str, request: Any) -> Any:
    # Looked up inside the loop that runs the call: SDK clients belong to one event loop.
    return await get_chat_provider(provider_name).complete(request)


def summary_create(*, owner_id: str, session_id: str, pair_count: int) -> Summary:
    """Summary of a session's first ``pair_count`` pairs, made once. Raises ProviderError."""
    owner = ObjectId(owner_id)
    existing = Summary.objects.filter(
        owner_id=owner, session_id=session_id, pair_count=pair_count
    ).first()
    if existing is not None:
        return existing
    pairs = list(
        Query.objects.filter(owner_id=owner, session_id=session_id, status=Query.Status.COMPLETED)
        .order_by("timestamp")
        .only("user_id", "query", "response", "model_provider", "model_name")[:pair_count]
    )
    previous = (
        Summary.objects.filter(owner_id=owner, session_id=session_id, pair_count__lt=pair_count)
        .order_by("-pair_count")
        .first()
    )
    transcript = "\n".join(f"User: {q.query}\nAssistant: {q.response}" for q in pairs)
    if previous:
        transcript = f"Earlier summary: {previous.summary}\n\n{transcript}"
    if len(pairs) < pair_count:
        raise ApplicationError(
            f"Session {session_id!r} has {len(pairs)} answered questions, not {pair_count}.",
            code="summary_span_missing",
            status=409,
        )
    last = pairs[-1]
    result = run_sync(
        _complete(
            last.model_provider,
            ChatRequest(
                model=last.model_name,
                system=SUMMARY_PROMPT,
                messages=(ChatMessage(role="user", content=transcript),),
                temperature=0.2,
                max_tokens=300,
            ),
        )
    )
    try:
        return Summary.objects.create(
            owner_id=owner,
            user_id=last.user_id,
            session_id=session_id,
            pair_count=pair_count,
            summary=result.text.strip(),
            model_provider=last.model_provider,
            model_name=last.model_name,
        )
    except IntegrityError:
        # A concurrent run of the same task won the race: keep its summary.
        return Summary.objects.get(owner_id=owner, session_id=session_id, pair_count=pair_count)
