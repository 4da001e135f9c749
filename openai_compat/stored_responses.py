"""Responses stored as queries: ``resp_<query id>`` read back for its owner (GET
/v1/responses/{id}, ``previous_response_id``), and the conversation it ended with.

A query is a response when POST /v1/responses asked it: its ``request["client_request"]``
holds the fields the ``response`` object echoes (``ResponsesCall.echo``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from llmplatform.core.errors import ApplicationError, NotFound
from queries.models import Query
from queries.selectors import query_get

RESPONSE_ID_PREFIX = "resp_"


def response_id_of(query: Query) -> str:
    return f"{RESPONSE_ID_PREFIX}{query.pk}"


def response_query_get(*, owner: User, response_id: str) -> Query:
    """The owner's query that answered ``response_id``. Raises ApplicationError (404
    not_found: malformed, unknown, another owner's, or a run not asked through
    /v1/responses)."""
    if response_id.startswith(RESPONSE_ID_PREFIX):
        try:
            query = query_get(owner=owner, query_id=response_id.removeprefix(RESPONSE_ID_PREFIX))
        except NotFound:
            pass
        else:
            if (query.request or {}).get("client_request") is not None:
                return query
    raise ApplicationError(
        f"No response with id {response_id[:60]!r}.",
        code="not_found",
        status=404,
        extra={"param": "response_id"},
    )


def previous_response_get(*, owner: User, response_id: str) -> Query:
    """The finished response a new one continues. Raises ApplicationError (400
    previous_response_not_found, previous_response_not_completed; param
    previous_response_id)."""
    try:
        query = response_query_get(owner=owner, response_id=response_id)
    except ApplicationError:
        raise ApplicationError(
            f"previous_response_id: no response with id {response_id[:60]!r}.",
            code="previous_response_not_found",
            extra={"param": "previous_response_id"},
        ) from None
    if query.status != Query.Status.COMPLETED:
        shown = (
            "in_progress"
            if query.status in (Query.Status.PENDING, Query.Status.RUNNING)
            else query.status
        )
        raise ApplicationError(
            f"previous_response_id: response {response_id!r} is {shown}; only a completed "
            "response can be continued (wait for it, or continue from an earlier one).",
            code="previous_response_not_completed",
            extra={"param": "previous_response_id", "status": shown},
        )
    return query


def response_turns(query: Query) -> list[dict[str, Any]]:
    """The conversation a finished response ended with, as client-kept turns
    (``queries.client_turns``): its earlier turns, its question, the tool turns after it,
    then its answer (with the function calls it made). Its ``instructions`` are left out:
    as on OpenAI, they are not carried over to the next response."""
    request = query.request
    earlier = request.get("messages") or []
    if request["client_request"].get("instructions"):
        earlier = earlier[1:]  # the system turn the instructions became (first, always)
    answer: dict[str, Any] = {"role": "assistant", "content": query.response}
    calls = (query.metadata or {}).get("tool_calls")
    if calls:
        answer["tool_calls"] = calls
    return [
        *earlier,
        {"role": "user", "content": query.query},
        *(request.get("tool_turns") or []),
        answer,
    ]
