"""Writes for queries besides the run (``queries.start``, ``queries.run``): feedback, and what
follows an answer."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from bson import ObjectId
from django.db import IntegrityError
from django.utils import timezone

from agents.providers.base import ChatMessage, ChatRequest
from agents.providers.pricing import cost_for
from agents.providers.registry import get_chat_provider
from files.charges import Payer, budget_check_left, charge_unreserved
from files.vector_cache import vector_cache_forget
from llmplatform.core.bridge import run_sync
from llmplatform.core.config import run_config
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import ApiKey
from queries.models import Query, Summary

logger = logging.getLogger(__name__)


def query_feedback(*, query: Query, rating: int, comment: str) -> Query:
    """Record the user's rating (1 or -1) of an answer; the last rating wins. Raises nothing."""
    query.feedback_rating = rating
    query.feedback_comment = comment
    query.feedback_at = timezone.now()
    query.save(update_fields=["feedback_rating", "feedback_comment", "feedback_at"])
    return query


def conversation_queries_delete(*, owner, user_id: str, session_id: str) -> int:
    """Delete the end user's questions in a session, their vectors (the rows memory reads,
    and every cached matrix holding them) and the session's summaries; returns how many
    questions. Raises ApplicationError 409 ``conversation_busy`` while one is answered:
    its run would write the answer back after the delete."""
    rows = Query.objects.filter(owner=owner, session_id=session_id, user_id=user_id)
    unfinished = (Query.Status.PENDING, Query.Status.RUNNING)
    if any(status in unfinished for status in rows.values_list("status", flat=True)):
        raise ApplicationError(
            "A question in this conversation is still being answered.",
            code="conversation_busy",
            status=409,
            extra={"hint": "Stop the answer, or wait for it, then delete the conversation."},
        )
    pks = list(rows.values_list("pk", flat=True))
    Query.objects.filter(pk__in=pks).delete()
    Summary.objects.filter(owner=owner, session_id=session_id).delete()
    vector_cache_forget(owner_id=owner.pk, user_id=user_id, query_ids=pks)
    return len(pks)


def query_completed(*, query_id: str) -> str | None:
    """After an answer, in the background: every MEMORY_SUMMARY_INTERVAL answered pairs of
    a session, its summary. Returns the summary's id when one was due. Raises
    ProviderError."""
    # No select_related: django-mongodb-backend puts the owner $lookup before the $match
    # on _id, and the embedded server joins every stored query first (bench/README.md,
    # evaluation run). The owner is read by primary key, and only when it pays.
    query = (
        Query.objects.filter(pk=ObjectId(query_id))
        .only("owner", "user_id", "session_id", "request")
        .first()
    )
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
        owner_id=str(query.owner_id),
        session_id=query.session_id,
        pair_count=pairs,
        payer=summary_payer(query=query),
        charged_to=(query.request or {}).get("quota"),
    )
    return None if summary is None else str(summary.pk)


def _hashed(text: str) -> str:
    # Session ids are client input: hashed into a safe, bounded counter name.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def summary_payer(*, query: Query) -> Payer:
    """Who pays for the summary ``query``'s answer triggers: the key the question was
    admitted against, else (the signed-in chat UI) the owner's account. Raises nothing."""
    # The reservation names the key it was admitted against (quotas.quota_admit).
    key_id = ((query.request or {}).get("quota") or {}).get("api_key_id")
    api_key = None if key_id is None else ApiKey.objects.filter(pk=ObjectId(key_id)).first()
    if api_key is not None:
        return Payer(api_key=api_key, user_id=query.user_id)
    return Payer(api_key=None, account=query.owner, user_id=query.user_id)


SUMMARY_MAX_TOKENS = 300
SUMMARY_PROMPT = (
    "Summarise this conversation for your own memory in at most 120 words: the user's "
    "goals, facts they gave, decisions and open questions. Write plain sentences."
)


async def _complete(provider_name: str, request: Any) -> Any:
    # Looked up inside the loop that runs the call: SDK clients belong to one event loop.
    return await get_chat_provider(provider_name).complete(request)


def _newest_alternatives(pairs: list[Query]) -> list[Query]:
    """The pairs without the answers a later alternative of the same turn replaced (a
    regenerated or edited question: ``Query.metadata["alternative_of"]``), in order. A
    summary made before a turn was regenerated keeps the answer it summarised."""

    def turn_of(query: Query) -> str:
        return (query.metadata or {}).get("alternative_of") or str(query.pk)

    newest = {turn_of(query): query.pk for query in pairs}
    return [query for query in pairs if newest[turn_of(query)] == query.pk]


def summary_create(
    *,
    owner_id: str,
    session_id: str,
    pair_count: int,
    payer: Payer | None = None,
    charged_to: dict[str, Any] | None = None,
) -> Summary | None:
    """Summary of a session's first ``pair_count`` pairs, made once.

    It runs in the background, after the answer that caused it: not a request of its own
    (no requests-per-minute slot), it is skipped when ``payer``'s token or USD budget is
    already used up (None, logged; the next summary covers these pairs too), and what the
    vendor reports is counted on the budget counters of that answer's reservation
    ``charged_to``. Raises ProviderError."""
    owner = ObjectId(owner_id)
    existing = Summary.objects.filter(
        owner_id=owner, session_id=session_id, pair_count=pair_count
    ).first()
    if existing is not None:
        return existing
    pairs = list(
        Query.objects.filter(owner_id=owner, session_id=session_id, status=Query.Status.COMPLETED)
        .order_by("timestamp")
        .only("user_id", "query", "response", "model_provider", "model_name", "metadata")[
            :pair_count
        ]
    )
    previous = (
        Summary.objects.filter(owner_id=owner, session_id=session_id, pair_count__lt=pair_count)
        .order_by("-pair_count")
        .first()
    )
    transcript = "\n".join(
        f"User: {q.query}\nAssistant: {q.response}" for q in _newest_alternatives(pairs)
    )
    if previous:
        transcript = f"Earlier summary: {previous.summary}\n\n{transcript}"
    if len(pairs) < pair_count:
        raise ApplicationError(
            f"Session {session_id!r} has {len(pairs)} answered questions, not {pair_count}.",
            code="summary_span_missing",
            status=409,
        )
    last = pairs[-1]
    if payer is not None:
        try:
            budget_check_left(payer=payer)
        except ApplicationError as exc:
            logger.info(
                "summary of session %s (%d pairs) skipped: %s", session_id, pair_count, exc.code
            )
            return None
    result = run_sync(
        _complete(
            last.model_provider,
            ChatRequest(
                model=last.model_name,
                system=SUMMARY_PROMPT,
                messages=(ChatMessage(role="user", content=transcript),),
                temperature=0.2,
                max_tokens=SUMMARY_MAX_TOKENS,
            ),
        )
    )
    usage = result.usage
    charge_unreserved(
        charged_to,
        # One summary is charged once, whoever makes it (a retried or concurrent task).
        run_id=f"summary-{owner_id}-{_hashed(session_id)}-{pair_count}",
        tokens=usage.input_tokens + usage.output_tokens,
        usd=usage.cost_usd
        if usage.cost_usd is not None
        else cost_for(last.model_provider, last.model_name, usage),
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
