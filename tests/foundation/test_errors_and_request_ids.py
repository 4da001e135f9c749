"""One JSON envelope for every error; a request id on every response and log line."""

from __future__ import annotations

import json
import logging

import pytest

from llmplatform.core.logging import JsonFormatter, mask_secrets, request_id_var

pytestmark = pytest.mark.django_db


def test_unknown_api_route_is_404_envelope(api):
    response = api.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "/docs" in response.json()["error"]["message"]


def test_wrong_method_is_405_envelope(api):
    response = api.delete("/api/v1/status")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_request_id_is_generated_and_echoed(api):
    generated = api.get("/api/v1/health")["X-Request-ID"]
    assert len(generated) == 32
    echoed = api.get("/api/v1/health", HTTP_X_REQUEST_ID="client-abc.123")
    assert echoed["X-Request-ID"] == "client-abc.123"
    hostile = api.get("/api/v1/health", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert hostile["X-Request-ID"] != "bad id\nwith newline"


def test_log_lines_are_json_with_request_id_and_masked_secrets(settings, caplog):
    settings.OPENAI_API_KEY = "sk-test-secret-value-123"
    token = request_id_var.set("req-42")
    try:
        with caplog.at_level(logging.INFO, logger="llmplatform.test"):
            logging.getLogger("llmplatform.test").info("calling with %s", settings.OPENAI_API_KEY)
    finally:
        request_id_var.reset(token)
    line = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert line["request_id"] == "req-42"
    assert "sk-test-secret-value-123" not in line["message"]
    assert "[REDACTED]" in line["message"]


def test_mask_secrets_covers_our_keys_and_bearer_headers():
    text = "Authorization: Bearer llmp_abcdefghijklmnop x-api-key: abcdef123456"
    masked = mask_secrets(text)
    assert "llmp_abcdefghijklmnop" not in masked
    assert "abcdef123456" not in masked


def test_access_log_carries_request_id(api, caplog):
    with caplog.at_level(logging.INFO, logger="llmplatform.access"):
        api.get("/api/v1/health", HTTP_X_REQUEST_ID="trace-me-1")
    records = [r for r in caplog.records if r.name == "llmplatform.access"]
    assert records and records[-1].status == 200
    assert JsonFormatter().format(records[-1]).count("trace-me-1") == 1


def test_openapi_documents_the_real_endpoints(anon):
    schema = anon.get("/openapi.json?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for expected in (
        "/api/v1/health",
        "/api/v1/status",
        "/api/v1/query/",
        "/api/v1/query/stream",
        "/api/v1/query/{query_id}/stream",
        "/api/v1/files/upload",
        "/api/v1/session/start",
        "/api/v1/products/search",
    ):
        assert expected in paths, expected
    assert anon.get("/docs").status_code == 200
    assert anon.get("/redoc").status_code == 200
