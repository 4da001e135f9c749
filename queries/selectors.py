"""Reads of queries, always scoped to the calling owner."""

from __future__ import annotations

import json
from dataclasses import dataclass

from bson import ObjectId
from bson.errors import InvalidId
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import QuerySet

from llmplatform.core.errors import NotFound
from llmplatform.core.models import TraceSpan
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


def query_trace(*, query: Query) -> list[TraceSpan]:
    """The stored spans of ``query``'s trace (its start, its run, what followed it), by
    start time; none for a query from before traces or whose trace was not kept."""
    if not query.trace_id:
        return []
    return list(TraceSpan.objects.filter(trace_id=query.trace_id).order_by("started_at"))


@dataclass(frozen=True)
class WaterfallRow:
    """One span as the admin's waterfall draws it: indented by depth, its bar placed by
    its start and length as percentages of the whole trace."""

    span: TraceSpan
    depth: int
    offset_pct: float
    width_pct: float
    tokens: int | None
    cost_usd: float | None
    attributes_json: str
    cancelled: bool

    @property
    def indent_em(self) -> float:
        return 0.5 + 1.2 * self.depth


def trace_duration_ms(spans: list[TraceSpan]) -> float:
    """From the first span's start to the last one's end (0 without spans)."""
    if not spans:
        return 0.0
    first, last = min(s.started_at for s in spans), max(s.ended_at for s in spans)
    return (last - first).total_seconds() * 1000


def trace_waterfall(spans: list[TraceSpan]) -> list[WaterfallRow]:
    """``spans`` (one trace's) in tree order, each under its parent, siblings by start."""
    if not spans:
        return []
    start = min(span.started_at for span in spans)
    total_ms = max(trace_duration_ms(spans), 0.001)
    ids = {span.span_id for span in spans}
    children: dict[str, list[TraceSpan]] = {}
    for span in sorted(spans, key=lambda s: s.started_at):
        # A span whose parent is not stored (another service's, or sampled out) is a root.
        parent = span.parent_id if span.parent_id in ids else ""
        children.setdefault(parent, []).append(span)
    rows: list[WaterfallRow] = []

    def add(span: TraceSpan, depth: int) -> None:
        attributes = span.attributes or {}
        tokens = [attributes.get(f"gen_ai.usage.{kind}_tokens") for kind in ("input", "output")]
        offset_ms = (span.started_at - start).total_seconds() * 1000
        rows.append(
            WaterfallRow(
                span=span,
                depth=depth,
                offset_pct=round(100 * offset_ms / total_ms, 3),
                width_pct=round(max(100 * span.duration_ms / total_ms, 0.2), 3),
                tokens=None if tokens == [None, None] else sum(t or 0 for t in tokens),
                cost_usd=attributes.get("llmplatform.cost_usd"),
                attributes_json=json.dumps(attributes, indent=2, sort_keys=True, default=str),
                cancelled=bool(attributes.get("llmplatform.cancelled")),
            )
        )
        for child in children.get(span.span_id, []):
            add(child, depth + 1)

    for root in children.get("", []):
        add(root, 0)
    return rows
