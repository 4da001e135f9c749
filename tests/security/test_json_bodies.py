"""Oversized and deeply nested JSON: 413 and 400 envelopes, never a 500 or RecursionError."""

from __future__ import annotations

import json

import pytest

from llmplatform.core.errors import ApplicationError
from llmplatform.core.json_body import json_depth_exceeds, parse_json_body

pytestmark = pytest.mark.django_db

JSON_ENDPOINTS = [
    "/api/v1/query/",
    "/api/v1/session/start",
    "/api/v1/session/event",
    "/api/v1/session/events",
    "/api/v1/session/end",
    "/api/v1/query/{query_id}/feedback",
]


@pytest.fixture
def query_id(owner) -> str:
    from queries.models import Query

    query = Query.objects.create(
        owner=owner[0],
        user_id="u-1",
        session_id="s-1",
        query="What is a pan?",
        response="A pan.",
        model_provider="openai",
        model_name="gpt-4o-mini",
        status="completed",
    )
    return str(query.pk)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
def test_a_body_over_the_limit_is_a_413(api, settings, path, query_id):
    path = path.format(query_id=query_id)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = json.dumps({"session_id": "s", "padding": "x" * 4096})
    response = api.post(path, data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("depth", [65, 1500, 100_000])
def test_deep_nesting_is_a_400(api, path, depth, query_id):
    path = path.format(query_id=query_id)
    response = api.post(path, data=nested(depth), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "json_too_deep"


def test_nesting_within_the_limit_is_parsed(settings):
    settings.MAX_JSON_DEPTH = 64
    assert parse_json_body(nested(64)) is not None
    with pytest.raises(ApplicationError) as refused:
        parse_json_body(nested(65))
    assert refused.value.code == "json_too_deep" and refused.value.status == 400


def test_depth_counts_objects_and_arrays():
    assert not json_depth_exceeds({"a": [{"b": 1}]}, 3)
    assert json_depth_exceeds({"a": [{"b": {}}]}, 3)
    assert not json_depth_exceeds("scalar", 1)


@pytest.mark.parametrize("raw", [b"{", b"NaN", b'{"x": Infinity}', b"\xff\xfe{}", b"[1,]"])
def test_malformed_json_is_a_400(raw):
    with pytest.raises(ApplicationError) as refused:
        parse_json_body(raw)
    assert refused.value.code == "malformed_request" and refused.value.status == 400


def test_malformed_json_over_rest_is_the_envelope(api):
    response = api.post(
        "/api/v1/session/start", data=b'{"x": NaN}', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_too_large_raw_body(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    with pytest.raises(ApplicationError) as refused:
        parse_json_body(b" " * 1025)
    assert refused.value.status == 413 and refused.value.code == "payload_too_large"
