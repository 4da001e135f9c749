"""Reads of queries, always scoped to the calling owner."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import QuerySet

from llmplatform.core.errors import NotFound
from queries.models import Query

# Sessions an evaluation run asks in (evaluations.services names them so).
EVALUATION_SESSION_PREFIX = "evaluation-"


def users_queries() -> QuerySet[Query]:
    """Every owner's queries asked by their users: not an evaluation run's questions,
    which analytics and experiment results leave out."""
    return Query.objects.filter(metadata__evaluation__isnull=True)


def query_get(*, owner: User, query_id: str) -> Query:
    """The owner's query. Raises NotFound (other owners' queries and bad ids included)."""
    try:
        pk = ObjectId(query_id)
    except (InvalidId, TypeError):
        raise NotFound("Query") from None
    # By primary key alone, then the owner checked here: a point lookup on any server,
    # where (owner, _id) made the embedded one scan. The embedding is never returned.
    query = Query.objects.defer("embedding").filter(pk=pk).first()
    if query is None or query.owner_id != owner.pk:
        raise NotFound("Query")
    return query


def query_history(*, owner: User, session_id: str | None, user_id: str | None) -> QuerySet[Query]:
    """The owner's queries, for pages ordered (-timestamp, -pk): an index gives that order.

    The indexes (owner, session_id | user_id, -timestamp, -_id) and (owner, -timestamp,
    -_id) hold exactly these filters followed by the page order.
    """
    queries = Query.objects.filter(owner=owner).defer("embedding")
    if session_id:
        queries = queries.filter(session_id=session_id)
    if user_id:
        queries = queries.filter(user_id=user_id)
    return queries


def files_asked_with_elsewhere(
    *, owner: User, user_id: str, session_id: str, file_ids: list[str]
) -> set[str]:
    """Which of ``file_ids`` the end user's questions in other sessions were asked with
    (as images or documents). Raises nothing."""
    if not file_ids:
        return set()
    rows = connection.database[Query._meta.db_table].find(
        {
            "owner_id": owner.pk,
            "user_id": user_id,
            "session_id": {"$ne": session_id},
            "$or": [
                {"request.attachments": {"$in": file_ids}},
                {"request.documents": {"$in": file_ids}},
            ],
        },
        {"request.attachments": 1, "request.documents": 1},
    )
    wanted = set(file_ids)
    used: set[str] = set()
    for row in rows:
        request = row.get("request") or {}
        for key in ("attachments", "documents"):
            used.update(wanted.intersection(request.get(key) or []))
    return used


def query_file_ids(*, owner: User, user_id: str, session_id: str) -> list[str]:
    """The file ids the end user's questions in a session were asked with, first seen
    first. Raises nothing."""
    ids: dict[str, None] = {}
    for request in Query.objects.filter(
        owner=owner, session_id=session_id, user_id=user_id
    ).values_list("request", flat=True):
        for key in ("attachments", "documents"):
            for file_id in (request or {}).get(key) or []:
                if isinstance(file_id, str):
                    ids[file_id] = None
    return list(ids)
