"""Errors as OpenAI sends them: ``{"error": {"message", "type", "param", "code"}}``.

Every failure is first what the rest of the platform makes of it (an ApplicationError,
or DRF's exception through the one exception handler), then re-shaped here, so /v1
answers the same statuses, codes and messages as /api/v1 in the wire format that the
OpenAI SDKs parse (they raise by status: 400 BadRequestError, 401 AuthenticationError,
404 NotFoundError, 429 RateLimitError, ...).
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import JsonResponse
from rest_framework.request import Request

from llmplatform.core.errors import ApplicationError, internal_error
from llmplatform.core.exception_handler import application_exception_handler
from llmplatform.core.quotas import refusal_headers

logger = logging.getLogger(__name__)

# OpenAI's error types by status; the SDKs choose their exception class by status alone.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error_body(
    *, status: int, code: str, message: str, param: str | None = None
) -> dict[str, Any]:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _param(details: dict[str, Any]) -> str | None:
    """The request field at fault: named by the raiser, or the first invalid field."""
    if isinstance(details.get("param"), str):
        return details["param"]
    fields = details.get("fields")
    if isinstance(fields, dict) and fields:
        return str(next(iter(fields)))
    return None


def openai_error_response(error: ApplicationError) -> JsonResponse:
    response = JsonResponse(
        openai_error_body(
            status=error.status,
            code=error.code,
            message=error.message,
            param=_param(error.extra),
        ),
        status=error.status,
    )
    # Rate limits and budgets (and the wrong-key limit) say when to come back.
    for name, value in refusal_headers(error).items():
        response[name] = value
    return response


def openai_exception_response(exc: Exception, request: Request) -> JsonResponse:
    """Any exception of a /v1 view as an OpenAI error; a bug is logged and is a 500."""
    rendered = application_exception_handler(exc, {"request": request})
    if rendered is None:
        logger.exception("/v1 request failed: %s %s", request.method, request.path)
        return openai_error_response(internal_error())
    envelope = rendered.data["error"]
    response = openai_error_response(
        ApplicationError(
            envelope["message"],
            code=envelope["code"],
            status=rendered.status_code,
            extra=envelope.get("details") or {},
        )
    )
    # Retry-After, WWW-Authenticate, and whatever else the platform tells a refused caller.
    for header, value in rendered.headers.items():
        if header.lower() != "content-type":
            response[header] = value
    return response
