"""Configured secrets, and any 6+ character piece of one, never leave through vendor errors
or logs, whatever their shape or encoding (percent-encoding, base64 at any alignment, JSON
escapes, pieces): unit checks of the one redaction, then every chat provider's vendor
echoing the key through the fake servers, checked in the REST error, the stored query and
the log file."""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path
from urllib.parse import unquote

import httpx2
import openai
import pytest

from agents.providers.provider_errors import map_sdk_error, status_error
from llmplatform.core.logging import JsonFormatter, mask_secrets, secrets_redact
from queries.models import Query
from tests.fakes.server import KEY_ENCODINGS, encode_key

# No "sk-" prefix and no 32-character run: the shape-based patterns cannot see it.
KEY = "AbCdEfGh12345678IjKl"


@pytest.fixture(autouse=True)
def _configured(settings):
    settings.OPENAI_API_KEY = KEY
    settings.SERPAPI_KEY = "serp0123456789serp"
    settings.REDIS_URL = "redis://:hunter2hunter2@10.0.0.5:6379/0"


def base64_cores(secret: str) -> list[str]:
    """An independent statement of what base64 of ``secret`` looks like inside a longer
    base64 text: the middle of its encoding after 0, 1 or 2 other bytes."""
    cores = []
    for offset, skip in ((0, 0), (1, 2), (2, 3)):
        encoded = base64.b64encode(b"\xff" * offset + secret.encode()).decode()
        cores.append(encoded[skip : skip + 8 * len(secret) // 6 - 2])
    return cores


def leaks(text: str, secret: str = KEY) -> list[str]:
    """What of ``secret`` can still be read in ``text``: any 6-character piece, plain,
    percent-decoded or JSON-unescaped, and any 8 characters of its base64 forms."""
    unescaped = re.sub(r"\\+u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text)
    views = (text, unquote(unquote(text)), unescaped)
    found = [
        secret[i : i + 6]
        for i in range(len(secret) - 5)
        if any(secret[i : i + 6] in v for v in views)
    ]
    for core in base64_cores(secret):
        found += [core[i : i + 8] for i in range(len(core) - 7) if core[i : i + 8] in text]
    return found


@pytest.mark.parametrize(
    "fragment",
    [
        KEY,
        KEY[:6],
        KEY[4:16],
        KEY[-6:],
        KEY[3:10] + "****",
        "serp0123456",
        "hunter2hunter2",
        " ".join(KEY[i : i + 7] for i in range(0, len(KEY), 7)),
    ],
)
def test_any_6_character_piece_of_a_secret_is_redacted(fragment):
    text = f"Incorrect API key provided: {fragment}. You can find your key at example."
    cleaned = secrets_redact(text)
    assert "[REDACTED]" in cleaned
    assert leaks(cleaned) == []
    assert "hunter" not in cleaned and "serp01" not in cleaned
    assert cleaned.startswith("Incorrect API key provided: ")
    assert cleaned.endswith(". You can find your key at example.")


@pytest.mark.parametrize("encoding", KEY_ENCODINGS)
@pytest.mark.parametrize("piece", [KEY, KEY[2:17]], ids=["whole", "piece"])
def test_encoded_forms_are_redacted(encoding, piece):
    encoded = encode_key(piece, encoding)
    assert leaks(f"before {encoded} after") != []  # the check itself sees the key
    cleaned = secrets_redact(f"before {encoded} after")
    assert leaks(cleaned) == [], cleaned
    assert cleaned.startswith("before ") and cleaned.endswith(" after")


@pytest.mark.parametrize(
    "text",
    [
        "%2541%2562%2543%2564%2545%2566%2547",  # percent-encoded twice
        "\\\\u0041\\\\u0062\\\\u0043\\\\u0064\\\\u0045\\\\u0066",  # escapes escaped again
        json.dumps({"message": "\\u0041\\u0062\\u0043\\u0064\\u0045\\u0066"}),
        "Ab%43d\\u0045fGh",  # mixed
        base64.urlsafe_b64encode(b"x" + KEY.encode()).decode(),
    ],
)
def test_mixed_and_repeated_encodings_are_redacted(text):
    cleaned = secrets_redact(text)
    assert "[REDACTED]" in cleaned
    assert "AbCdEf" not in unquote(unquote(cleaned))


def test_other_configured_secrets_are_redacted(settings):
    settings.METRICS_TOKEN = "scrape-token-Zq81vX"
    settings.SECRET_KEY = "k" * 20 + "Lm4Np7Qr2St9Uv"
    assert "Zq81vX" not in secrets_redact("token=scrape-token-Zq81vX")
    assert "Np7Qr2" not in secrets_redact("x Np7Qr2 y")


def test_short_pieces_and_ordinary_text_are_kept():
    assert secrets_redact("AbCdE is five; production logs") == "AbCdE is five; production logs"
    ordinary = "GET /api/v1/query?q=caf%C3%A9 \\u00e9 aGVsbG8gd29ybGQ= 200"
    assert secrets_redact(ordinary) == ordinary


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
    assert leaks(error.message) == []
    assert "[REDACTED]" in error.message
    assert leaks(json.dumps(error.as_envelope())) == []


def test_sdk_error_echoing_the_key_is_redacted():
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(400, request=request)
    exc = openai.BadRequestError(
        "bad",
        response=response,
        body={"error": {"message": f"Incorrect API key provided: {KEY[:12]}****"}},
    )
    error = map_sdk_error(exc, sdk=openai, provider="openai", key_setting="OPENAI_API_KEY")
    assert leaks(error.message) == []


def test_logs_are_redacted():
    record = logging.makeLogRecord(
        {"name": "x", "levelname": "ERROR", "msg": "vendor said %s", "args": (KEY[5:17],)}
    )
    line = JsonFormatter().format(record)
    assert leaks(line) == [] and "[REDACTED]" in line
    assert KEY not in mask_secrets(f"key={KEY}")


# ----- every chat provider, through its fake vendor server -----

PROVIDER_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GOOGLE_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
}


@pytest.fixture
def app_log(tmp_path: Path):
    """What app.log receives: the JSON formatter on a file handler of the root logger."""
    path = tmp_path / "app.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    yield path
    logging.getLogger().removeHandler(handler)
    handler.close()


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", KEY_ENCODINGS)
@pytest.mark.parametrize("provider", list(PROVIDER_KEYS))
def test_a_vendor_echoing_the_key_leaks_it_nowhere(
    provider, encoding, in_process, settings, api, app_log
):
    # The key must be the one the vendor received, so the fake echoes this key.
    setattr(settings, PROVIDER_KEYS[provider], KEY)
    in_process[provider].fail_next("echo_key", encoding=encoding)
    # A session id allows letters, digits and . _ : - only ("base64+1" has a "+").
    session_id = f"redaction-{provider}-{encoding.replace('+', '.')}"
    response = api.post(
        "/api/v1/query/",
        {
            "user_id": "u1",
            "session_id": session_id,
            "query": "Hello",
            "use_memory": False,
            "model_provider": provider,
        },
        format="json",
    )
    assert response.status_code >= 400
    body = response.content.decode()
    # The vendor's own words arrive (so the check below is not vacuous), the key does not.
    assert "Invalid request for key" in body
    assert leaks(body) == [], body
    stored = Query.objects.filter(session_id=session_id).values()
    assert len(stored) == 1 and stored[0]["status"] == "failed"
    assert "Invalid request for key" in json.dumps(stored[0]["error"])
    assert leaks(json.dumps(list(stored), default=str)) == []
    log = app_log.read_text()
    assert "Invalid request for key" in log
    assert leaks(log) == []
