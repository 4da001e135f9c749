"""Configured secrets, and any 8+ character piece of one, never leave through vendor errors
or logs, whatever their shape."""

from __future__ import annotations

import json
import logging

import httpx2
import openai
import pytest

from agents.providers.provider_errors import map_sdk_error, status_error
from llmplatform.core.logging import JsonFormatter, mask_secrets, secrets_redact

# No "sk-" prefix and no 32-character run: the shape-based patterns cannot see it.
KEY = "AbCdEfGh12345678IjKl"


@pytest.fixture(autouse=True)
def _configured(settings):
    settings.OPENAI_API_KEY = KEY
    settings.SERPAPI_KEY = "serp0123456789serp"
    settings.REDIS_URL = "redis://:hunter2hunter2@10.0.0.5:6379/0"


@pytest.mark.parametrize(
    "fragment",
    [KEY, KEY[:8], KEY[4:16], KEY[-8:], KEY[3:12] + "****", "serp0123456", "hunter2hunter2"],
)
def test_any_8_character_piece_of_a_secret_is_redacted(fragment):
    text = f"Incorrect API key provided: {fragment}. You can find your key at example."
    cleaned = secrets_redact(text)
    assert "[REDACTED]" in cleaned
    for start in range(len(KEY) - 7):
        assert KEY[start : start + 8] not in cleaned
    assert "hunter2h" not in cleaned and "serp0123" not in cleaned
    assert cleaned.startswith("Incorrect API key provided: ")


def test_short_pieces_and_ordinary_text_are_kept():
    assert (
        secrets_redact("AbCdEfG is seven; production logs") == "AbCdEfG is seven; production logs"
    )


def test_the_default_secret_key_is_not_treated_as_a_secret(settings):
    settings.SECRET_KEY = settings.DEFAULT_SECRET_KEY
    assert secrets_redact("ENVIRONMENT=production") == "ENVIRONMENT=production"


def test_vendor_400_text_is_redacted_before_it_becomes_a_provider_error():
    error = status_error(
        provider="openai",
        key_setting="OPENAI_API_KEY",
        status=400,
        vendor_message=f"Invalid key '{KEY[2:14]}…' for this project",
    )
    assert KEY[2:10] not in error.message
    assert "[REDACTED]" in error.message
    assert KEY[2:10] not in json.dumps(error.as_envelope())


def test_sdk_error_echoing_the_key_is_redacted():
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(400, request=request)
    exc = openai.BadRequestError(
        "bad",
        response=response,
        body={"error": {"message": f"Incorrect API key provided: {KEY[:12]}****"}},
    )
    error = map_sdk_error(exc, sdk=openai, provider="openai", key_setting="OPENAI_API_KEY")
    assert KEY[:8] not in error.message and KEY[4:12] not in error.message


def test_logs_are_redacted():
    record = logging.makeLogRecord(
        {"name": "x", "levelname": "ERROR", "msg": "vendor said %s", "args": (KEY[5:17],)}
    )
    line = JsonFormatter().format(record)
    assert KEY[5:13] not in line and "[REDACTED]" in line
    assert KEY not in mask_secrets(f"key={KEY}")
