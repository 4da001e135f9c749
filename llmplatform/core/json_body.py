"""The one way a request body becomes JSON: size-, depth- and syntax-checked.

Used by the REST API (``DepthLimitedJSONParser``), SSE and websocket consumers, so every
transport refuses the same bodies with the same envelope: 413 ``payload_too_large``
over ``MAX_REQUEST_BODY`` bytes, 400 ``json_too_deep`` past ``MAX_JSON_DEPTH`` levels of
arrays/objects, 400 ``malformed_request`` for anything that is not strict JSON. Never a
RecursionError or a 500.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.parsers import BaseParser

from llmplatform.core.errors import ApplicationError


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON: stored, they could never be rendered back.
    raise ValueError(f"{name} is not valid JSON")


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` nests arrays/objects more than ``limit`` levels deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def too_large_error(size: int | None = None) -> ApplicationError:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    actual = f" ({size} bytes)" if size is not None else ""
    return ApplicationError(
        f"The request body{actual} is larger than MAX_REQUEST_BODY ({limit} bytes).",
        code="payload_too_large",
        status=413,
        extra={"limit_bytes": limit},
    )


def parse_json_body(raw: bytes) -> Any:
    """The JSON value of ``raw``.

    Raises ApplicationError: 413 ``payload_too_large``, 400 ``json_too_deep``,
    400 ``malformed_request``.
    """
    if len(raw) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise too_large_error(len(raw))
    depth_error = ApplicationError(
        f"The JSON body nests deeper than MAX_JSON_DEPTH ({settings.MAX_JSON_DEPTH}) levels.",
        code="json_too_deep",
        extra={"max_depth": settings.MAX_JSON_DEPTH},
    )
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        # The decoder gave up before our limit could: it is far too deep either way.
        raise depth_error from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise ApplicationError(
            f"The request body could not be parsed: {exc}. Send valid JSON.",
            code="malformed_request",
        ) from None
    if json_depth_exceeds(value, settings.MAX_JSON_DEPTH):
        raise depth_error
    return value


class DepthLimitedJSONParser(BaseParser):
    """DRF's JSON parser, through ``parse_json_body``."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        if stream is None:
            return None
        # One byte past the limit is enough to know it is too large.
        raw = stream.read(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
        return parse_json_body(raw)
