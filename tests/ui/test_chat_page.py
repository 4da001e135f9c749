"""The chat page's server side with Django's test client: login, logout, providers listed."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from agents.providers.registry import available_providers

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-7"


@pytest.fixture
def user():
    return get_user_model().objects.create_user("carol", password=PASSWORD)


def provider_options(html: str) -> list[str]:
    select = re.search(r'<select id="provider".*?</select>', html, re.DOTALL)
    assert select is not None, "the provider picker is missing"
    return re.findall(r'<option value="([^"]+)"', select.group(0))


def test_anonymous_users_are_sent_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"
    login_page = client.get("/login/?next=/")
    assert login_page.status_code == 200
    html = login_page.content.decode()
    assert '<label for="id_username">Username</label>' in html
    assert '<label for="id_password">Password</label>' in html


def test_login_then_the_page_lists_exactly_the_available_providers(client, user, vendor_settings):
    vendor_settings.ANTHROPIC_API_KEY = ""  # one configured vendor fewer than the fixture sets
    expected = available_providers()
    assert expected == ["openai", "google", "openrouter"]

    response = client.post("/login/", {"username": "carol", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"

    page = client.get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert provider_options(html) == expected
    # The model field starts with the default provider's default model.
    assert 'id="model" name="model_name" value="gpt-4o-mini"' in html
    assert page.context["chat_config"]["userId"] == "carol"
    assert page.context["chat_config"]["defaultModels"]["google"] == "gemini-2.0-flash"
    assert "/static/chat/chat.js" in html and "/static/chat/chat.css" in html
    assert "https://" not in html  # nothing is loaded from elsewhere


def test_wrong_password_shows_an_error(client, user):
    response = client.post("/login/", {"username": "carol", "password": "wrong"})
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert client.get("/").status_code == 302


def test_local_provider_is_marked_demo_quality(client, user, monkeypatch):
    monkeypatch.setattr("chat.views.available_providers", lambda: ["openai", "local"])
    client.force_login(user)
    html = client.get("/").content.decode()
    assert provider_options(html) == ["openai", "local"]
    assert re.search(r'<option value="local"[^>]*>local \(demo-quality\)</option>', html)


def test_no_provider_configured_says_so_and_disables_sending(client, user, settings):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "OPENROUTER_API_KEY"):
        setattr(settings, name, "")
    settings.LOCAL_MODEL_ENABLED = False
    client.force_login(user)
    html = client.get("/").content.decode()
    assert 'id="no-providers"' in html
    assert re.search(r'<button type="submit" id="send" class="primary" disabled>', html)


def test_logout_is_post_only(client, user):
    client.force_login(user)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert client.get("/").status_code == 302


def test_static_files_are_served_by_the_app(client):
    for path in ("/static/chat/chat.js", "/static/chat/chat.css"):
        response = client.get(path)
        assert response.status_code == 200, path
