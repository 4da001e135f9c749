"""Content-Security-Policy on every page (chat UI, admin, docs) and the SSE header set."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from llmplatform.core.security_headers import sse_security_headers

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>")


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_strict(response) -> dict[str, list[str]]:
    policy = directives(response["Content-Security-Policy"])
    scripts = policy["script-src"]
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert "*" not in scripts and not any(s.startswith("http") for s in scripts)
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    return policy


@pytest.fixture
def staff_client() -> Client:
    user = get_user_model().objects.create_superuser(username="root", password="pw-123456789")
    client = Client()
    client.force_login(user)
    return client


def test_chat_page_and_login_have_a_strict_policy(staff_client):
    for client, path in ((Client(), "/login/"), (staff_client, "/")):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_strict(response)
        assert not INLINE_SCRIPT.search(response.content.decode()), path


@pytest.mark.parametrize("path", ["/admin/login/", "/admin/", "/admin/core/apikey/"])
def test_admin_has_a_strict_policy(staff_client, path):
    client = Client() if path == "/admin/login/" else staff_client
    response = client.get(path)
    assert response.status_code == 200
    policy = assert_strict(response)
    nonce = next((s for s in policy["script-src"] if s.startswith("'nonce-")), None)
    for tag in INLINE_SCRIPT.findall(response.content.decode()):
        # Any inline script the admin renders must carry this response's nonce.
        assert nonce and f'nonce="{nonce[7:-1]}"' in tag, tag


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_work_without_inline_scripts_or_a_cdn(anon, path):
    response = Client().get(path)
    assert response.status_code == 200
    assert_strict(response)
    html = response.content.decode()
    assert not INLINE_SCRIPT.search(html)
    sources = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert sources and all(s.startswith("/") for s in sources), sources
    for source in sources:
        assert Client().get(source).status_code == 200, source


def test_swagger_start_up_script_is_served(anon):
    response = Client().get("/docs?script=")
    assert response.status_code == 200
    assert "SwaggerUIBundle" in response.content.decode()


def test_api_responses_carry_the_policy(api):
    response = api.get("/api/v1/status")
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"


def test_sse_security_headers():
    headers = {name.decode(): value.decode() for name, value in sse_security_headers()}
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert directives(headers["Content-Security-Policy"])["default-src"] == ["'none'"]
