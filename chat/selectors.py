"""Reads for the chat UI: a user's conversations (sessions) with their questions (queries).

These combine two apps (a conversation's title falls back to its first question, which
lives in ``queries``), so they live above both, here. Every read is scoped to the owner
(the signed-in account) AND its end user (``user_id``, the page's own user name): an
owner's API clients may have made sessions, answers and files for other end users, and
the page must neither see nor change them (another end user's object is a 404).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from django.db.models import Q

from files.charges import Payer
from files.models import File
from files.selectors import file_get, file_list
from files.storage_quota import StorageUsage, storage_usage
from llmplatform.core.errors import NotFound
from llmplatform.core.quotas import Window, quota_windows
from queries.models import Query
from queries.selectors import (
    WaterfallRow,
    query_get,
    query_history,
    query_trace,
    trace_waterfall,
)
from queries.streams import final_event
from sessions.models import Session
from sessions.selectors import end_user_session_get
from sessions.sharing import shared_session_get

CONVERSATION_LIST_LIMIT = 50
# A conversation longer than this opens with its latest turns only.
CONVERSATION_TURNS_LIMIT = 200


@dataclass(frozen=True)
class ConversationRow:
    session_id: str
    title: str
    started_at: datetime
    ended: bool


def _first_question(*, owner, user_id: str, session_id: str) -> str:
    first = (
        query_history(owner=owner, session_id=session_id, user_id=user_id)
        .order_by("timestamp", "pk")
        .values_list("query", flat=True)
        .first()
    )
    return " ".join((first or "").split())


def conversation_list(*, owner, user_id: str) -> list[ConversationRow]:
    """The end user's conversations, newest first; untitled ones named by their first
    question (an untitled one without questions yet has a blank title)."""
    sessions = Session.objects.filter(owner=owner, user_id=user_id).order_by("-start_t", "-id")
    return [
        ConversationRow(
            session_id=session.session_id,
            title=session.title
            or _first_question(owner=owner, user_id=user_id, session_id=session.session_id),
            started_at=session.start_t,
            ended=session.is_ended,
        )
        for session in sessions[:CONVERSATION_LIST_LIMIT]
    ]


# A search looks at this many of the newest matching questions (and their conversations).
SEARCH_QUERY_SCAN = 500
SEARCH_SNIPPET_CHARS = 160
MAX_SEARCH_CHARS = 200


@dataclass(frozen=True)
class ConversationSearchHit:
    session_id: str
    title: str
    started_at: datetime
    ended: bool
    # Where the words were found: "title", "question" or "answer", with text around them.
    matched: str
    snippet: str


def _snippet(text: str, words: str) -> str:
    flat = " ".join(text.split())
    found = re.search(re.escape(words), flat, re.IGNORECASE)
    start = max(0, (found.start() if found else 0) - SEARCH_SNIPPET_CHARS // 3)
    piece = flat[start : start + SEARCH_SNIPPET_CHARS]
    return (
        ("…" if start else "") + piece + ("…" if start + SEARCH_SNIPPET_CHARS < len(flat) else "")
    )


def conversation_search(*, owner, user_id: str, text: str) -> list[ConversationSearchHit]:
    """The end user's conversations whose title, questions or answers contain ``text``
    (case-insensitive, whitespace-normalised), newest first, at most
    CONVERSATION_LIST_LIMIT. Raises nothing."""
    words = " ".join(text.split())[:MAX_SEARCH_CHARS]
    if not words:
        return []
    found: dict[str, tuple[str, str]] = {}  # session id -> (matched, snippet)
    for session_id, title in Session.objects.filter(
        owner=owner, user_id=user_id, title__icontains=words
    ).values_list("session_id", "title"):
        found[session_id] = ("title", _snippet(title, words))
    matches = (
        query_history(owner=owner, session_id=None, user_id=user_id)
        .filter(Q(query__icontains=words) | Q(response__icontains=words))
        .order_by("-timestamp", "-pk")
        .values_list("session_id", "query", "response")[:SEARCH_QUERY_SCAN]
    )
    for session_id, question, answer in matches:
        if session_id in found:
            continue
        in_question = words.lower() in " ".join(question.split()).lower()
        found[session_id] = (
            ("question", _snippet(question, words))
            if in_question
            else ("answer", _snippet(answer, words))
        )
    sessions = Session.objects.filter(
        owner=owner, user_id=user_id, session_id__in=list(found)
    ).order_by("-start_t", "-id")[:CONVERSATION_LIST_LIMIT]
    return [
        ConversationSearchHit(
            session_id=session.session_id,
            title=session.title
            or _first_question(owner=owner, user_id=user_id, session_id=session.session_id),
            started_at=session.start_t,
            ended=session.is_ended,
            matched=found[session.session_id][0],
            snippet=found[session.session_id][1],
        )
        for session in sessions
    ]


@dataclass(frozen=True)
class ConversationUsage:
    answers: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float | None  # None when no answer had a known price
    latency_ms_total: float


@dataclass(frozen=True)
class Conversation:
    session: Session
    title: str
    turns: list[dict[str, Any]]
    usage: ConversationUsage
    documents: list[File]


def _turn(query: Query) -> dict[str, Any]:
    # The same ``final`` shape the websocket sends, so the page renders both one way.
    return {
        **final_event(query),
        "question": query.query,
        # The images asked with (file ids; the page shows them as thumbnails).
        "images": list((query.request or {}).get("attachments") or []),
        "mode": query.mode,
        "model_provider": query.model_provider,
        "model_name": query.model_name,
        "error": query.error,
        "feedback": (
            None
            if query.feedback_rating is None
            else {"rating": query.feedback_rating, "comment": query.feedback_comment}
        ),
        "timestamp": query.timestamp,
    }


def _usage(queries: list[Query]) -> ConversationUsage:
    def number(usage: dict[str, Any], key: str) -> float:
        value = usage.get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else 0

    costs = [q.usage.get("cost_usd") for q in queries if isinstance(q.usage, dict)]
    known_costs = [c for c in costs if isinstance(c, int | float) and not isinstance(c, bool)]
    return ConversationUsage(
        answers=len(queries),
        input_tokens=int(sum(number(q.usage or {}, "input_tokens") for q in queries)),
        output_tokens=int(sum(number(q.usage or {}, "output_tokens") for q in queries)),
        total_tokens=int(sum(number(q.usage or {}, "total_tokens") for q in queries)),
        cost_usd=round(sum(known_costs), 6) if known_costs else None,
        latency_ms_total=round(sum(number(q.latency or {}, "total_ms") for q in queries), 1),
    )


def conversation_get(*, owner, user_id: str, session_id: str) -> Conversation:
    """One of the end user's conversations with its latest turns (that end user's
    questions), oldest first, and their usage. Raises NotFound (other owners' and other
    end users' conversations included)."""
    session = end_user_session_get(owner=owner, user_id=user_id, session_id=session_id)
    latest = list(
        query_history(owner=owner, session_id=session_id, user_id=user_id).order_by(
            "-timestamp", "-pk"
        )[:CONVERSATION_TURNS_LIMIT]
    )
    latest.reverse()
    return Conversation(
        session=session,
        title=session.title or _first_question(owner=owner, user_id=user_id, session_id=session_id),
        turns=[_turn(query) for query in latest],
        usage=_usage(latest),
        documents=conversation_documents(owner=owner, session=session),
    )


@dataclass(frozen=True)
class Transcript:
    """A whole conversation, oldest question first: for export and for a shared link."""

    session: Session
    title: str
    queries: list[Query]


def _transcript(*, owner, user_id: str, session: Session) -> Transcript:
    queries = list(
        query_history(owner=owner, session_id=session.session_id, user_id=user_id).order_by(
            "timestamp", "pk"
        )
    )
    return Transcript(
        session=session,
        title=session.title
        or _first_question(owner=owner, user_id=user_id, session_id=session.session_id),
        queries=queries,
    )


def conversation_transcript(*, owner, user_id: str, session_id: str) -> Transcript:
    """One of the end user's conversations with every question. Raises NotFound (other
    owners' and other end users' conversations included)."""
    session = end_user_session_get(owner=owner, user_id=user_id, session_id=session_id)
    return _transcript(owner=owner, user_id=user_id, session=session)


def shared_transcript(*, token: str) -> Transcript:
    """The conversation a live share link opens: its end user's questions in it, and
    nothing else. Raises NotFound (unknown or revoked token, deleted conversation)."""
    owner, session = shared_session_get(token=token)
    return _transcript(owner=owner, user_id=session.user_id, session=session)


def conversation_documents(*, owner, session: Session) -> list[File]:
    """The conversation's documents that still exist, in the order they were attached
    (a file deleted since simply drops out). Raises nothing."""
    object_ids = []
    for file_id in session.document_ids or []:
        try:
            object_ids.append(ObjectId(file_id))
        except (InvalidId, TypeError):
            continue
    if not object_ids:
        return []
    found = {
        str(stored.pk): stored
        for stored in file_list(owner=owner, user_id=session.user_id).filter(pk__in=object_ids)
    }
    return [found[str(pk)] for pk in object_ids if str(pk) in found]


def answer_get(*, owner, user_id: str, query_id: str) -> Query:
    """One of the end user's answers. Raises NotFound (other owners' and other end
    users' answers included)."""
    query = query_get(owner=owner, query_id=query_id)
    if query.user_id != user_id:
        raise NotFound("Query")
    return query


def answer_trace(*, owner, user_id: str, query_id: str) -> list[WaterfallRow]:
    """The steps of one of the end user's answers, laid out as the admin's waterfall
    (the spans GET /api/v1/query/{id}/trace returns). Raises NotFound as ``answer_get``."""
    query = answer_get(owner=owner, user_id=user_id, query_id=query_id)
    return trace_waterfall(query_trace(query=query))


def file_of_end_user_get(*, owner, user_id: str, file_id: str) -> File:
    """One of the end user's files. Raises NotFound (other owners' and other end users'
    files included)."""
    stored = file_get(owner=owner, file_id=file_id)
    if stored.user_id != user_id:
        raise NotFound("File")
    return stored


@dataclass(frozen=True)
class AccountUsage:
    """The signed-in account's own limits (the page asks without an API key)."""

    windows: list[Window]
    storage: StorageUsage


def account_usage(*, account) -> AccountUsage:
    """What the account used of each limit in the current windows, and its storage.
    Raises nothing."""
    return AccountUsage(
        windows=quota_windows(account=account),
        storage=storage_usage(owner_id=account.pk, payer=Payer(api_key=None, account=account)),
    )
