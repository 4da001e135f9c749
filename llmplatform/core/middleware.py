"""Request ids, access logging, proxy headers only from trusted proxies, and the JSON error
envelope for non-DRF errors under /api/."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from llmplatform.core.client_address import is_trusted_proxy
from llmplatform.core.contract import MAX_ID_LENGTH
from llmplatform.core.errors import error_envelope
from llmplatform.core.logging import request_id_var

logger = logging.getLogger("llmplatform.access")
_VALID_REQUEST_ID = re.compile(rf"^[A-Za-z0-9._:\-]{{1,{MAX_ID_LENGTH}}}$")

STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def request_id_from(value: str | None) -> str:
    """The client's request id when it is sane, else a new one."""
    if value and _VALID_REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.headers.get("X-Request-ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            return response
        finally:
            request_id_var.reset(token)


class TrustedProxyHeadersMiddleware:
    """``SECURE_PROXY_SSL_HEADER`` (``X-Forwarded-Proto``) counts only from TRUSTED_PROXIES.

    Django believes that header from any client, so a plain-HTTP request saying
    ``X-Forwarded-Proto: https`` would escape the redirect to https and be treated as
    secure. Placed before SecurityMiddleware: from any other peer the header is dropped;
    from a trusted proxy only its last value (the one the nearest proxy appended) is kept,
    as ``client_address.scheme_from_scope`` reads it for websockets.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header = settings.SECURE_PROXY_SSL_HEADER
        if header and header[0] in request.META:
            name = header[0]
            if is_trusted_proxy(request.META.get("REMOTE_ADDR")):
                request.META[name] = request.META[name].split(",")[-1].strip()
            else:
                del request.META[name]
        return self.get_response(request)


class JsonErrorMiddleware:
    """Under /api/, every error is the JSON envelope: unknown routes, 405s, crashes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return self._envelope(response.status_code, request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return self._envelope(500, request)

    @staticmethod
    def _envelope(status: int, request: HttpRequest) -> JsonResponse:
        if status == 404:
            message = f"No API endpoint at {request.path}. See /docs for the API."
        elif status >= 500:
            message = (
                "The server failed to handle this request. It has been logged; quote the "
                "X-Request-ID header when reporting it."
            )
        else:
            message = f"The request was rejected ({status})."
        return JsonResponse(
            error_envelope(code=STATUS_CODES.get(status, "server_error"), message=message),
            status=status,
        )
