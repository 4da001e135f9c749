"""The stored outcome of a run: its usage, latency and error shapes.

``Query.usage``, ``Query.latency`` and ``Query.error`` are JSON; these are their shapes,
the one builder of each, and the one reader of a stored error (every edge answering a
failed query renders the same error with the same status).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict, cast

from agents.providers.base import Usage as ProviderUsage
from llmplatform.core.errors import ApplicationError

# A failed query stored without a status (or without an error at all): the answer's
# upstream failed.
FAILED_STATUS = 502


class Usage(TypedDict):
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    total_tokens: int
    # None: the model is not in the price table (unknown is not free).
    cost_usd: float | None
    # A completed or cancelled run only: True when the counts are estimated (a stop cut
    # off the vendor's report).
    estimated: NotRequired[bool]


class Latency(TypedDict):
    time_to_first_token_ms: float | None
    total_ms: float


class StoredError(TypedDict):
    """An error envelope's ``error`` with the HTTP status it is answered with."""

    code: str
    message: str
    details: dict[str, Any]
    status: int


def usage_stored(usage: ProviderUsage, *, estimated: bool | None = None) -> Usage:
    stored = cast(Usage, usage.as_dict())
    if estimated is not None:
        stored["estimated"] = estimated
    return stored


def latency_stored(*, time_to_first_token_ms: float | None, total_ms: float) -> Latency:
    return {
        "time_to_first_token_ms": (
            round(time_to_first_token_ms, 2) if time_to_first_token_ms else None
        ),
        "total_ms": round(total_ms, 2),
    }


def error_stored(error: ApplicationError) -> StoredError:
    """The one builder of a failed query's ``error``."""
    return cast(StoredError, {**error.as_envelope()["error"], "status": error.status})


def error_of(stored: dict[str, Any] | None) -> ApplicationError:
    """The one reader: a failed query's stored ``error`` as the error it answers with."""
    stored = stored or {}
    return ApplicationError(
        stored.get("message", "The answer failed."),
        code=stored.get("code", "error"),
        status=stored.get("status", FAILED_STATUS),
        extra=stored.get("details") or {},
    )
