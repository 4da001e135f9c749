"""Reads of queries, always scoped to the calling owner."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId
from django.db.models import QuerySet

from llmplatform.core.errors import NotFound
from queries.models import Query


def query_get(*, owner, query_id: str) -> Query:
    """The owner's query. Raises NotFound (other owners' queries and bad ids included)."""
    try:
        return Query.objects.get(owner=owner, pk=ObjectId(query_id))
    except (InvalidId, TypeError, Query.DoesNotExist):
        raise NotFound("Query") from None


def query_history(*, owner, session_id: str | None, user_id: str | None) -> QuerySet[Query]:
    queries = Query.objects.filter(owner=owner).defer("embedding")
    if session_id:
        queries = queries.filter(session_id=session_id)
    if user_id:
        queries = queries.filter(user_id=user_id)
    return queries
