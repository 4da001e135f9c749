"""Structured output checks: is a response_format usable, and does an answer honour it.

Vendors constrain their decoding to the schema where they can, but not every vendor, model
or keyword is covered (Gemini takes a subset, OpenAI-compatible servers may ignore the
schema). With ``strict: true`` the edge therefore validates the answer here before
returning it, retries once when it does not validate, and then fails.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from agents.providers.base import ResponseFormat
from llmplatform.core.errors import ApplicationError

# A validation error message quotes at most this much of the offending value.
_ERROR_LIMIT = 300


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
