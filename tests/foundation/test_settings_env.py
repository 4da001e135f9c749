"""Settings come from the environment; bad values stop start-up naming the variable."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from llmplatform.env import EnvError, env_bool, env_int, env_list

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "LLMPLATFORM_SKIP_DOTENV": "1", **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_env_int_names_the_variable(monkeypatch):
    monkeypatch.setenv("MAX_FILE_SIZE", "abc")
    with pytest.raises(EnvError, match="MAX_FILE_SIZE='abc' is not a whole number"):
        env_int("MAX_FILE_SIZE", 10)


def test_env_bool_rejects_garbage(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(EnvError, match="DEBUG"):
        env_bool("DEBUG", False)


def test_env_list_accepts_the_seeds_json_form_and_commas(monkeypatch):
    monkeypatch.setenv("CORS_ORIGINS", '["http://localhost:3000", "http://localhost:8000"]')
    assert env_list("CORS_ORIGINS", []) == ["http://localhost:3000", "http://localhost:8000"]
    monkeypatch.setenv("CORS_ORIGINS", "http://a.test, http://b.test")
    assert env_list("CORS_ORIGINS", []) == ["http://a.test", "http://b.test"]


def test_invalid_value_stops_startup_with_the_variable_name():
    result = run_manage("check", MAX_FILE_SIZE="abc")
    assert result.returncode != 0
    assert "MAX_FILE_SIZE='abc' is not a whole number" in result.stderr


def test_production_refuses_the_default_secret_key():
    result = run_manage("check", ENVIRONMENT="production", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_deploy_check_passes_with_documented_variables():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        ENVIRONMENT="production",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="api.example.com",
        CSRF_TRUSTED_ORIGINS="https://api.example.com",
    )
    assert result.returncode == 0, result.stderr


def test_settings_read_seed_variables(settings):
    # Every seed variable has a setting of the same name (values from the test environment).
    for name in (
        "APP_NAME",
        "APP_VERSION",
        "DEBUG",
        "ENVIRONMENT",
        "HOST",
        "PORT",
        "WORKERS",
        "MONGODB_URI",
        "MONGO_DB",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GOOGLE_API_KEY",
        "OPENROUTER_API_KEY",
        "SERPAPI_KEY",
        "UPLOAD_DIR",
        "MAX_FILE_SIZE",
        "LOG_LEVEL",
        "LOG_FILE",
        "SECRET_KEY",
        "ACCESS_TOKEN_EXPIRE_MINUTES",
        "MEMORY_SUMMARY_INTERVAL",
        "PRODUCT_SEARCH_MAX_RESULTS",
        "DEFAULT_MODEL_PROVIDER",
        "DEFAULT_MODEL_NAME",
        "DEFAULT_TEMPERATURE",
        "DEFAULT_MAX_TOKENS",
        "REDIS_URL",
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "GOOGLE_BASE_URL",
        "OPENROUTER_BASE_URL",
        "SERPAPI_BASE_URL",
    ):
        assert hasattr(settings, name), name
    assert settings.CORS_ALLOWED_ORIGINS  # CORS_ORIGINS


def test_env_example_lists_every_variable():
    example = (ROOT / ".env.example").read_text()
    source = (ROOT / "llmplatform" / "settings.py").read_text()
    import re

    names = set(re.findall(r'env_\w+\(\s*"([A-Z0-9_]+)"', source))
    missing = sorted(name for name in names if f"{name}=" not in example)
    assert not missing, f".env.example lacks {missing}"
