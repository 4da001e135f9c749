"""``GET /metrics`` (Prometheus text format, bearer ``METRICS_TOKEN``) and the request-latency
middleware. The series themselves are in ``llmplatform.core.metrics``.

A wrong token counts as a failed key attempt of the client's address, in the same counter
as wrong API keys (``API_KEY_FAILURES_PER_MINUTE``): guessing the token is limited like
guessing a key, and a right token is never refused."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmplatform.core import metrics
from llmplatform.core.auth import (
    API_KEY_FAILURE_WINDOW_S,
    RATE_LIMITED_MESSAGE,
    api_key_failure_record,
)
from llmplatform.core.client_address import client_address_from_request
from llmplatform.core.errors import error_envelope


class RequestMetricsMiddleware:
    """Request latency per route *pattern* (``api/v1/files/<str:file_id>``), method and
    status; requests that match no route share one label, so scanners add no series."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        metrics.record_request(
            route=match.route if match is not None else None,
            method=request.method if request.method in _METHODS else "other",
            status=response.status_code,
            seconds=time.perf_counter() - started,
        )
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _authorized(request: HttpRequest, token: str) -> bool:
    sent = request.headers.get("Authorization", "")
    return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The scrape. 404 while METRICS_TOKEN is unset (off), 401 without the token."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off: set METRICS_TOKEN.")
    if not _authorized(request, token):
        if "Authorization" in request.headers and api_key_failure_record(
            client=client_address_from_request(request)
        ):
            limited = JsonResponse(
                error_envelope(code="rate_limited", message=RATE_LIMITED_MESSAGE), status=429
            )
            limited["Retry-After"] = str(API_KEY_FAILURE_WINDOW_S)
            return limited
        response = JsonResponse(
            error_envelope(
                code="not_authenticated",
                message="Send `Authorization: Bearer <METRICS_TOKEN>`.",
            ),
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(
        generate_latest(metrics.scrape_registry()), content_type=CONTENT_TYPE_LATEST
    )
