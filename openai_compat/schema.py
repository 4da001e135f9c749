"""OpenAPI for /v1: every operation documents OpenAI's error shape for what it can answer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

from openai_compat.serializers import OpenAIErrorSerializer

_DESCRIPTIONS = {
    400: "Invalid request (type invalid_request_error; param names the field)",
    401: "Missing, unknown or revoked API key",
    404: "Unknown model (code model_not_found)",
    405: "Method not allowed",
    413: "Body over MAX_REQUEST_BODY",
    415: "Unsupported media type",
    429: "Rate limit or budget exceeded, or too many wrong keys (Retry-After)",
    502: "The upstream provider failed",
    503: "A dependency is unavailable",
    504: "The answer took too long",
}


class OpenAIAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        statuses = [400, 401, 404, 405, 429]
        if self.method == "POST":
            statuses += [413, 415, 502, 503, 504]
        for status in statuses:
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(
                    OpenApiResponse(OpenAIErrorSerializer, description=_DESCRIPTIONS[status]),
                    str(status),
                    direction=direction,
                )
        return responses
