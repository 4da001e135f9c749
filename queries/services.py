"""Writes for queries: start, run, wait, cancel, feedback, and what follows completion."""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from typing import Any

from asgiref.sync import async_to_sync
from bson import ObjectId
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError
from django.utils import timezone

from agents.providers.registry import default_model_for, default_provider, get_chat_provider
from files.selectors import file_get
from files.services import file_check, file_upload
from llmplatform.core.errors import ApplicationError
from llmplatform.core.event_log import event_log
from queries.models import Query, Summary

logger = logging.getLogger(__name__)

_DATA_URL = re.compile(r"^data:(image/(?:png|jpeg|gif|webp));base64,(.+)$", re.DOTALL)
# The JSON endpoint waits this long for the pipeline before answering 504 with the id.
JSON_WAIT_S = 240


def _resolve_model(requested_provider: str | None, requested_model: str | None) -> tuple[str, str]:
    provider = requested_provider or default_provider() or settings.DEFAULT_MODEL_PROVIDER
    get_chat_provider(provider)  # raises a 400 listing the available providers
    return provider, requested_model or default_model_for(provider)


def _attachment_ids(*, owner, user_id: str, attachments: list[str]) -> list[str]:
    """File ids for every attachment; image data URLs are stored as files.

    Everything is checked before anything is stored: a rejected query leaves no files.
    Raises ApplicationError (400, 404 for another owner's or unknown file, 413, 415).
    """
    decoded: list[tuple[int, bytes, str]] = []
    ids: list[str] = []
    for index, attachment in enumerate(attachments):
        match = _DATA_URL.match(attachment)
        if attachment.startswith("data:") and not match:
            raise ApplicationError(
                f"attachments[{index}] is not a base64 image data URL "
                "(data:image/png|jpeg|gif|webp;base64,...).",
                code="invalid_attachment",
            )
        if match:
            try:
                decoded.append(
                    (index, base64.b64decode(match.group(2), validate=True), match.group(1))
                )
            except binascii.Error:
                raise ApplicationError(
                    f"attachments[{index}] has invalid base64 data.", code="invalid_attachment"
                ) from None
            continue
        stored = file_get(owner=owner, file_id=attachment)
        if not stored.content_type.startswith("image/"):
            raise ApplicationError(
                f"attachments[{index}] is {stored.filename!r} ({stored.content_type}): only "
                "images can be attached to a query.",
                code="unsupported_attachment",
            )
        ids.append(str(stored.pk))
    uploads = [
        SimpleUploadedFile(f"attachment-{index}", content, content_type=content_type)
        for index, content, content_type in decoded
    ]
    for upload in uploads:
        file_check(upload=upload)
    ids.extend(str(file_upload(owner=owner, user_id=user_id, upload=u).pk) for u in uploads)
    return ids


def _experiment_overrides(*, owner, session_id: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Variants of running experiments for this session, and what they change."""
    from sessions.selectors import experiment_overrides_for_session

    assignment = experiment_overrides_for_session(owner=owner, session_id=session_id)
    return assignment.variants, assignment.overrides


def query_start(*, owner, params: dict[str, Any]) -> Query:
    """Store a pending Query for validated ``params``. Raises ApplicationError (400, 404)."""
    variants, overrides = _experiment_overrides(owner=owner, session_id=params["session_id"])
    provider, model = _resolve_model(
        params.get("model_provider") or overrides.get("model_provider"),
        params.get("model_name") or overrides.get("model_name"),
    )
    attachments = _attachment_ids(
        owner=owner, user_id=params["user_id"], attachments=params.get("attachments", [])
    )
    temperature = params.get("temperature")
    if temperature is None:
        temperature = overrides.get("temperature", settings.DEFAULT_TEMPERATURE)
    return Query.objects.create(
        owner=owner,
        user_id=params["user_id"],
        session_id=params["session_id"],
        query=params["query"],
        mode=params.get("mode", "chat"),
        model_provider=provider,
        model_name=model,
        experiments=variants,
        request={
            "web_search": params.get("web_search", False),
            "use_memory": params.get("use_memory", True),
            "attachments": attachments,
            "selected_option": params.get("selected_option"),
            "temperature": temperature,
            "max_tokens": params.get("max_tokens") or settings.DEFAULT_MAX_TOKENS,
            "system_prompt": overrides.get("system_prompt"),
        },
    )


def query_dispatch(*, query: Query) -> None:
    """Hand the pipeline to a Celery worker (REDIS_URL set) or run it here. Raises nothing."""
    from queries.tasks import run_query

    if settings.REDIS_URL:
        run_query.apply_async(args=[str(query.pk)], queue="agents")
    else:
        from agents.pipeline import run_pipeline

        # The pipeline stores its outcome on this very instance.
        async_to_sync(run_pipeline)(str(query.pk), query=query)


def query_wait(*, query: Query, timeout_s: float = JSON_WAIT_S) -> Query:
    """Block until the query's event log says ``done``. Raises ApplicationError(504)."""
    log = event_log()
    deadline = time.monotonic() + timeout_s
    after: str | None = None
    while (remaining := deadline - time.monotonic()) > 0:
        for entry_id, event in log.read(
            str(query.pk), after=after, block_ms=int(min(remaining, 5) * 1000)
        ):
            after = entry_id
            if event["type"] == "done":
                query.refresh_from_db()
                return query
    raise ApplicationError(
        "The answer is taking longer than expected; it is still being generated. "
        f"Fetch it later from /api/v1/query/{query.pk}.",
        code="query_timeout",
        status=504,
        extra={"query_id": str(query.pk)},
    )


def query_answer(*, owner, params: dict[str, Any]) -> Query:
    """Start, run and wait for a query (the JSON endpoint). Raises ApplicationError."""
    query = query_start(owner=owner, params=params)
    query_dispatch(query=query)
    if settings.REDIS_URL:
        query = query_wait(query=query)
    return query


def query_cancel(*, query: Query) -> tuple[Query, bool]:
    """Ask the pipeline to stop; returns (query, whether a stop was requested). Raises nothing."""
    if query.status in {Query.Status.COMPLETED, Query.Status.FAILED, Query.Status.CANCELLED}:
        return query, False
    event_log().request_cancel(str(query.pk))
    return query, True


def query_feedback(*, query: Query, rating: int, comment: str) -> Query:
    """Record the user's rating (1 or -1) of an answer; the last rating wins. Raises nothing."""
    query.feedback_rating = rating
    query.feedback_comment = comment
    query.feedback_at = timezone.now()
    query.save(update_fields=["feedback_rating", "feedback_comment", "feedback_at"])
    return query


def query_completed(*, query: Query) -> None:
    """Bookkeeping after an answer: session counters and, every N pairs, a summary."""
    from queries.tasks import summarise_session

    # Filtered on the indexed (owner, session) pair only, statuses counted here: the
    # embedded database uses an index only when it covers every filtered field.
    statuses = Query.objects.filter(
        owner_id=query.owner_id, session_id=query.session_id
    ).values_list("status", flat=True)
    pairs = sum(status == Query.Status.COMPLETED for status in statuses)
    if pairs % settings.MEMORY_SUMMARY_INTERVAL == 0:
        args = [str(query.owner_id), query.session_id, pairs]
        if settings.REDIS_URL:
            summarise_session.apply_async(args=args, queue="default")
        else:
            summarise_session.apply(args=args)  # in-process; a failure is logged, not raised


SUMMARY_PROMPT = (
    "Summarise this conversation for your own memory in at most 120 words: the user's "
    "goals, facts they gave, decisions and open questions. Write plain sentences."
)


async def _complete(provider_name: str, request: Any) -> Any:
    # Looked up inside the loop that runs the call: SDK clients belong to one event loop.
    return await get_chat_provider(provider_name).complete(request)


def summary_create(*, owner_id: str, session_id: str, pair_count: int) -> Summary:
    """Summary of a session's first ``pair_count`` pairs, made once. Raises ProviderError."""
    from agents.providers.base import ChatMessage, ChatRequest

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
    result = async_to_sync(_complete)(
        last.model_provider,
        ChatRequest(
            model=last.model_name,
            system=SUMMARY_PROMPT,
            messages=(ChatMessage(role="user", content=transcript),),
            temperature=0.2,
            max_tokens=300,
        ),
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
