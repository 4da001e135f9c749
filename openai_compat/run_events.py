"""A run's event log as both /v1 streams read it (chat completion chunks, Responses
events): keep-alives in a silence, the key checked while the stream is open, and the
stream counted in the active-streams gauge however it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from llmplatform.core import metrics
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import ApiKey
from llmplatform.core.stream_access import StreamAccess
from queries.models import Query
from queries.streams import follow_query

# An SSE comment: the SDKs skip it, proxies see traffic.
KEEP_ALIVE = b": keep-alive\n\n"
# A run's own error event carries no HTTP status: it failed on the server's side.
RUN_ERROR_STATUS = 500


async def run_events(
    query: Query, *, api_key: ApiKey, stored: Query | None = None
) -> AsyncIterator[bytes | dict[str, Any]]:
    """The query's events from the start, until ``done``: ``KEEP_ALIVE`` (bytes, to send
    as is) in a silence, else the run's event. A failed run, or revoking ``api_key`` (the
    key the request came with) while the stream is open, ends it with an ``error`` event
    ``{"type": "error", "error": {"code", "message"}, "status"}``. ``stored``: the query as
    read, when it may be finished already (its answer is replayed once its log expired).

    Close it (``contextlib.aclosing``) when the client goes: the gauge counts it till then.
    """
    with metrics.stream_active("sse"):
        followed = follow_query(
            str(query.pk), after=None, stored=stored, access=StreamAccess.for_api_key(api_key)
        )
        try:
            async for entry_id, event in followed:
                if entry_id is None:
                    yield KEEP_ALIVE
                    continue
                if event.get("type") == "error":
                    yield {**event, "status": RUN_ERROR_STATUS}
                    return
                yield event
        except ApplicationError as refusal:  # the key was revoked mid-stream
            yield {
                "type": "error",
                "error": {"code": refusal.code, "message": refusal.message},
                "status": refusal.status,
            }
