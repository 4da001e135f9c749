"""OpenAPI for drf-spectacular: our authentication, the error envelope on every operation,
and the shape of cursor-paginated lists, so /openapi.json describes what the API answers."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance, is_basic_serializer
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

# What DRF's CharField refuses, said as patterns (Python ``re``: ``\s`` is exactly the
# whitespace ``trim_whitespace`` strips). Every CharField refuses NUL characters; one that
# trims and refuses blanks also needs a character that is not whitespace.
NO_NUL_PATTERN = r"^[^\x00]*$"
NOT_BLANK_PATTERN = r"^[^\x00]*[^\x00\s][^\x00]*$"
# A query parameter that is optional and sent empty ("?user_id=") is read as absent.
EMPTY_OR_NOT_BLANK_PATTERN = r"^(?:[^\x00]*[^\x00\s][^\x00]*)?$"


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
    """Every operation documents the error envelope for the statuses it can answer, and
    its inputs as DRF validates them (NUL characters, blanks, empty query parameters)."""

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        # drf-spectacular offers a blank-allowing field with a pattern as oneOf [pattern,
        # empty]. Our patterns that allow blanks match "" already, so "" would match both
        # branches and break oneOf ("exactly one"): keep the one branch that says it all.
        branches = schema.get("oneOf")
        if (
            isinstance(branches, list)
            and len(branches) == 2
            and branches[1] == {"type": "string", "maxLength": 0}
            and branches[0].get("pattern") in (NO_NUL_PATTERN, EMPTY_OR_NOT_BLANK_PATTERN)
            and "minLength" not in branches[0]
        ):
            schema.update(schema.pop("oneOf")[0])

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction != "request"
            or not isinstance(field, serializers.CharField)
            or schema.get("type") != "string"
            or {"enum", "format"} & schema.keys()
        ):
            return schema
        # Regex validators become the pattern after this (drf-spectacular keeps one set
        # here); only "not only spaces" is widened to say NUL too.
        regexes = [v.regex.pattern for v in field.validators if isinstance(v, RegexValidator)]
        if regexes:
            if regexes == [r"\S"]:
                schema["pattern"] = NOT_BLANK_PATTERN
            return schema
        refuses_blank = not field.allow_blank and field.trim_whitespace
        schema["pattern"] = NOT_BLANK_PATTERN if refuses_blank else NO_NUL_PATTERN
        return schema

    def _process_override_parameters(self, direction="request"):
        result = super()._process_override_parameters(direction)
        for parameter in self.get_override_parameters():
            if not is_basic_serializer(parameter):
                continue
            for name, field in force_instance(parameter).fields.items():
                built = result.get((name, OpenApiParameter.QUERY))
                if not built or field.required or built["schema"].get("type") != "string":
                    continue
                # DRF reads a query string as form input, where an optional field sent
                # empty counts as not sent: the empty string is valid too.
                built["schema"].pop("minLength", None)
                if built["schema"].get("pattern") == NOT_BLANK_PATTERN:
                    built["schema"]["pattern"] = EMPTY_OR_NOT_BLANK_PATTERN
        return result

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
