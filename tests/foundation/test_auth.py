"""API keys: missing, invalid and revoked keys get 401 in the error envelope."""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from llmplatform.core.models import ApiKey
from llmplatform.core.services import api_key_hash, api_key_revoke

pytestmark = pytest.mark.django_db


def test_missing_key_is_401_with_envelope(anon):
    response = anon.get("/api/v1/status")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_invalid_key_is_401(anon):
    anon.credentials(HTTP_AUTHORIZATION="Bearer llmp_not-a-real-key-at-all")
    response = anon.get("/api/v1/status")
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["code"] == "authentication_failed"
    assert "llmp_not-a-real-key" not in response.content.decode()


def test_revoked_key_is_401(api, owner):
    assert api.get("/api/v1/status").status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get(owner=owner[0]))
    assert api.get("/api/v1/status").status_code == 401


def test_health_needs_no_key(anon):
    assert anon.get("/api/v1/health").status_code == 200


def test_repeated_failures_are_rate_limited(anon, settings):
    settings.API_KEY_FAILURES_PER_MINUTE = 3
    anon.credentials(HTTP_AUTHORIZATION="Bearer wrong-key-123456")
    codes = [anon.get("/api/v1/status").status_code for _ in range(5)]
    assert codes[:3] == [401, 401, 401]
    assert codes[3:] == [429, 429]


def test_create_api_key_command_prints_key_last_and_stores_hash(capsys):
    call_command("create_api_key", "--name", "ci", "--user", "robot")
    out = capsys.readouterr().out.strip().splitlines()
    raw_key = out[-1]
    assert raw_key.startswith("llmp_") and " " not in raw_key
    stored = ApiKey.objects.get(owner__username="robot")
    assert stored.key_hash == api_key_hash(raw_key)
    assert raw_key not in {stored.prefix, stored.name, stored.key_hash}

    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert client.get("/api/v1/status").status_code == 200


def test_a_key_revoked_by_another_process_is_refused_within_the_cache_time(owner):
    from llmplatform.core.auth import API_KEY_CACHE_S, api_key_resolve

    user, raw_key = owner
    assert api_key_resolve(raw_key).owner == user
    # Another process revokes it: this process learns of it from the database only.
    ApiKey.objects.filter(owner=user).update(revoked_at=timezone.now())
    time.sleep(API_KEY_CACHE_S + 0.2)
    assert api_key_resolve(raw_key) is None


def test_a_key_revoked_in_this_process_is_refused_at_once(owner):
    from llmplatform.core.auth import api_key_resolve

    user, raw_key = owner
    assert api_key_resolve(raw_key).owner == user
    api_key_revoke(api_key=ApiKey.objects.get(owner=user))
    assert api_key_resolve(raw_key) is None
