"""OpenAPI for /v1: every operation documents OpenAI's error shape for what it can answer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

from openai_compat.responses_request import OpenAIResponseRequestSerializer
from openai_compat.serializers import (
    OpenAIChatCompletionRequestSerializer,
    OpenAIErrorSerializer,
)

_DESCRIPTIONS = {
    400: "Invalid request (type invalid_request_error; param names the field)",
    401: "Missing, unknown or revoked API key",
    404: "Unknown model (code model_not_found) or response (not_found)",
    405: "Method not allowed",
    413: "Body over MAX_REQUEST_BODY",
    415: "Unsupported media type",
    429: "Rate limit or budget exceeded, or too many wrong keys (Retry-After)",
    502: "The upstream provider failed",
    503: "A dependency is unavailable",
    504: "The answer took too long",
}


class OpenAIAutoSchema(AutoSchema):
    def _map_serializer(
        self, serializer: Any, direction: str, bypass_extensions: bool = False
    ) -> dict[str, Any]:
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if direction == "request" and isinstance(
            serializer, OpenAIChatCompletionRequestSerializer | OpenAIResponseRequestSerializer
        ):
            # Fields /v1 does not honour are refused, not ignored (null or OpenAI's default
            # value of an OpenAI field is let through for the SDKs that send it unasked).
            schema["additionalProperties"] = False
        return schema

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
