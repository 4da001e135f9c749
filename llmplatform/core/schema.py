"""OpenAPI for drf-spectacular: our authentication, the error envelope on every operation,
and the shape of cursor-paginated lists, so /openapi.json describes what the API answers."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "llmplatform.core.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: `python manage.py create_api_key --name NAME`",
        }


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="stable machine-readable code, e.g. validation_error")
    message = serializers.CharField(help_text="what went wrong and how to fix it")
    details = serializers.DictField(help_text="extra facts (field errors, limits); may be {}")


class ErrorEnvelopeSerializer(serializers.Serializer):
    """``{"error": {"code", "message", "details"}}``: every 4xx/5xx the API returns."""

    error = ErrorDetailSerializer()


ERROR_DESCRIPTIONS = {
    400: "Invalid input (validation_error, malformed_request, json_too_deep, ...)",
    401: "Missing, unknown or revoked API key",
    403: "Not allowed",
    404: "No such object for this caller (other owners' objects included)",
    405: "Method not allowed",
    413: "Body over MAX_REQUEST_BODY or file over MAX_FILE_SIZE (payload_too_large)",
    415: "Unsupported media type or file type",
    429: (
        "Too many failed API key attempts from this address (rate_limited), or a question "
        "over the key's rate limit (rate_limited) or budget (budget_exceeded); Retry-After"
    ),
    502: "An upstream provider failed",
    503: "A dependency is unavailable",
    504: "An upstream provider timed out",
}


def error_response(status: int, description: str | None = None) -> OpenApiResponse:
    """An OpenAPI response of the error envelope, for ``extend_schema(responses=...)``."""
    return OpenApiResponse(
        ErrorEnvelopeSerializer, description=description or ERROR_DESCRIPTIONS[status]
    )


def paginated(serializer: type[serializers.Serializer], *, name: str) -> serializers.Serializer:
    """The body of a cursor-paginated list of ``serializer`` items."""
    return inline_serializer(
        name=name,
        fields={
            "next": serializers.URLField(allow_null=True, help_text="the next page, or null"),
            "previous": serializers.URLField(allow_null=True, help_text="the previous page"),
            "results": serializer(many=True),
        },
    )


class ApiAutoSchema(AutoSchema):
    """Every operation documents the error envelope for the statuses it can answer."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if not self.path.startswith("/api/"):
            return responses
        statuses = [400, 404, 405]
        if self.get_auth():
            statuses += [401, 403, 429]
        if self.method in ("POST", "PUT", "PATCH"):
            statuses += [413, 415]
        for status in statuses:
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(
                    error_response(status), str(status), direction=direction
                )
        return responses
