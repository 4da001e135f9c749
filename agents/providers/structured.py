"""Structured output checks: is a response_format usable, and does an answer honour it.

Vendors constrain their decoding to the schema where they can, but not every vendor, model
or keyword is covered (Gemini takes a subset, OpenAI-compatible servers may ignore the
schema). With ``strict: true`` the edge therefore validates the answer here before
returning it, retries once when it does not validate, and then fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from agents.providers.base import ResponseFormat
from llmplatform.core.errors import ApplicationError

# A validation error message quotes at most this much of the offending value.
_ERROR_LIMIT = 300


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(
        f"response_format: {message}",
        code="invalid_response_format",
        status=400,
        extra={"param": "response_format"},
    )


def response_format_parsed(value: Any) -> ResponseFormat | None:
    """OpenAI's ``response_format`` (``{"type": "text" | "json_object" | "json_schema",
    "json_schema": {name, schema, description, strict}}``) as a ResponseFormat; None for
    ``text`` (a plain answer). Raises ApplicationError 400 ``invalid_response_format``
    (param ``response_format``) for a malformed one or a schema that is not JSON Schema."""
    if not isinstance(value, Mapping):
        raise _invalid("must be an object with a type.")
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind != "json_schema":
        raise _invalid("type must be text, json_object or json_schema.")
    spec = value.get("json_schema")
    if not isinstance(spec, Mapping):
        raise _invalid("json_schema must be an object with name and schema.")
    name, schema = spec.get("name"), spec.get("schema", {})
    description, strict = spec.get("description"), spec.get("strict")
    if not isinstance(name, str) or not name:
        raise _invalid("json_schema.name must be a non-empty string.")
    if not isinstance(schema, Mapping):
        raise _invalid("json_schema.schema must be a JSON Schema object.")
    if description is not None and not isinstance(description, str):
        raise _invalid("json_schema.description must be a string.")
    if strict is not None and not isinstance(strict, bool):
        raise _invalid("json_schema.strict must be true or false.")
    response_format = ResponseFormat(
        "json_schema",
        schema=dict(schema),
        name=name,
        description=description,
        strict=bool(strict),
    )
    check_response_format(response_format)
    return response_format


def response_format_stored(response_format: ResponseFormat) -> dict[str, Any]:
    """OpenAI's shape of ``response_format``: what a run stores and reads back."""
    if response_format.schema is None:
        return {"type": response_format.type}
    spec: dict[str, Any] = {
        "name": response_format.name,
        "schema": dict(response_format.schema),
        "strict": response_format.strict,
    }
    if response_format.description is not None:
        spec["description"] = response_format.description
    return {"type": "json_schema", "json_schema": spec}


def check_response_format(response_format: ResponseFormat) -> None:
    """Refuse (ApplicationError 400 ``invalid_response_format``) a json_schema format whose
    schema is not a valid JSON Schema (Draft 2020-12), before any vendor is called."""
    if response_format.schema is None:
        return
    try:
        jsonschema.Draft202012Validator.check_schema(dict(response_format.schema))
    except SchemaError as exc:
        location = "/".join(str(p) for p in exc.path) or "(root)"
        raise ApplicationError(
            f"response_format.json_schema.schema is not a valid JSON Schema at {location}: "
            f"{exc.message[:_ERROR_LIMIT]}",
            code="invalid_response_format",
            status=400,
            extra={"param": "response_format"},
        ) from exc


def answer_errors(text: str, response_format: ResponseFormat) -> list[str]:
    """Why ``text`` does not honour ``response_format``; empty when it does.

    json_object: the text must be one JSON object. json_schema: it must be JSON that
    validates against the schema (every error, each with its JSON path).
    """
    try:
        value: Any = json.loads(text)
    except ValueError as exc:
        return [f"the answer is not valid JSON: {exc}"]
    if response_format.schema is None:
        return [] if isinstance(value, dict) else ["the answer is JSON but not an object"]
    validator = jsonschema.Draft202012Validator(dict(response_format.schema))
    return [
        f"{error.json_path}: {error.message[:_ERROR_LIMIT]}"
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    ]


def needs_validation(response_format: ResponseFormat | None) -> bool:
    """Whether the edge must validate (and retry once) the answer: ``strict`` json_schema."""
    return (
        response_format is not None
        and response_format.type == "json_schema"
        and response_format.strict
    )
