"""DRF's exception handler: every API error becomes the one JSON envelope."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

from llmplatform.core.errors import ApplicationError, error_envelope
from llmplatform.core.json_body import too_large_error
from llmplatform.core.quotas import refusal_headers

_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "validation_error",
}


def _drf_code(exc: exceptions.APIException) -> str:
    for klass in type(exc).__mro__:
        if klass in _DRF_CODES:
            return _DRF_CODES[klass]
    return "error"


def application_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = too_large_error()
    elif isinstance(exc, SuspiciousOperation):
        # Too many form fields or files, a malformed multipart body: the client's fault.
        exc = ApplicationError(
            f"The request was refused: {exc}", code="malformed_request", status=400
        )
    if isinstance(exc, ApplicationError):
        return Response(exc.as_envelope(), status=exc.status, headers=refusal_headers(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: JsonErrorMiddleware logs it and answers 500 in the envelope
    headers: dict[str, str] = {}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(int(exc.wait))
    if auth_header := getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = auth_header
    if isinstance(exc, exceptions.ValidationError):
        details = {"fields": exc.detail} if isinstance(exc.detail, dict) else {"errors": exc.detail}
        message = "The request is invalid: " + _first_problem(exc.detail)
    elif isinstance(exc, exceptions.ParseError):
        details = {}
        message = f"The request body could not be parsed: {exc.detail}. Send valid JSON."
    else:
        details = {}
        message = str(exc.detail)
    return Response(
        error_envelope(code=_drf_code(exc), message=message, details=details),
        status=exc.status_code,
        headers=headers,
    )


def _first_problem(detail: Any, path: str = "") -> str:
    """A one-line description of the first validation problem, with its field path."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            return _first_problem(value, f"{path}.{key}" if path else str(key))
    if isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, (dict, list)):
            return _first_problem(first, f"{path}[0]")
        return f"{path}: {first}" if path else str(first)
    return f"{path}: {detail}" if path else str(detail)
