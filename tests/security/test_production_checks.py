"""Production refuses to start without what it needs, in one line an operator can act on."""

from __future__ import annotations

import secrets

from tests.foundation.test_settings_env import run_manage

PRODUCTION = {
    "ENVIRONMENT": "production",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "api.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://api.example.com",
    "MONGODB_URI": "mongodb://127.0.0.1:1/",
}


def test_deploy_check_fails_without_redis_url():
    result = run_manage(
        "check", "--deploy", **PRODUCTION, SECRET_KEY=secrets.token_urlsafe(64), REDIS_URL=""
    )
    assert result.returncode != 0
    assert "REDIS_URL must be set when ENVIRONMENT=production" in result.stderr


def test_a_missing_production_setting_is_one_line_not_a_traceback():
    for env in (
        {**PRODUCTION, "SECRET_KEY": ""},
        {**PRODUCTION, "SECRET_KEY": secrets.token_urlsafe(64), "REDIS_URL": ""},
        {**PRODUCTION, "SECRET_KEY": secrets.token_urlsafe(64), "MONGODB_URI": ""},
    ):
        result = run_manage("check", **env)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Configuration error: "), lines


def test_a_bad_value_is_one_line_too():
    result = run_manage("check", MAX_FILE_SIZE="abc")
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "Configuration error: MAX_FILE_SIZE='abc' is not a whole number "
        "(example: MAX_FILE_SIZE=10485760)."
    )


def test_an_unreachable_mongodb_uri_is_one_line_not_a_traceback():
    result = run_manage(
        "check",
        "--deploy",
        **{**PRODUCTION, "MONGODB_URI": "mongodb://admin:Pw0rd-Secret-1234@127.0.0.1:1/"},
        SECRET_KEY=secrets.token_urlsafe(64),
        REDIS_URL="redis://127.0.0.1:6379/15",
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Configuration error: the MongoDB server of MONGODB_URI")
    assert "127.0.0.1:1" in lines[0] and "Pw0rd" not in lines[0]
