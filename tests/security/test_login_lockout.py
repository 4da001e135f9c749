"""Brute-force protection on /login/ and /admin/login/: lock-out by user name and by
address, a clear message, and an admin page to unlock."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _limits(settings):
    # Hashing a password the production way costs ~0.5 s here; these tests sign in often.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.LOGIN_FAILURES_PER_USERNAME = 5
    settings.LOGIN_FAILURES_PER_ADDRESS = 8
    settings.LOGIN_LOCKOUT_SECONDS = 900


@pytest.fixture
def users():
    model = get_user_model()
    model.objects.create_user(username="alice", password=PASSWORD)
    model.objects.create_superuser(username="root", password=PASSWORD)


def sign_in(path: str, username: str, password: str, *, address: str = "192.0.2.10"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(path, {"username": username, "password": password})
    return client, response


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize(("path", "user"), [("/login/", "alice"), ("/admin/login/", "root")])
def test_wrong_passwords_then_the_right_one_is_refused(users, path, user):
    for _ in range(5):
        client, response = sign_in(path, user, "wrong")
        assert not signed_in(client)
    client, response = sign_in(path, user, PASSWORD, address="198.51.100.1")
    assert not signed_in(client)
    assert "Too many failed sign-in attempts" in response.content.decode()


def test_lockout_by_user_name_leaves_other_users_alone(users):
    for _ in range(5):
        sign_in("/login/", "alice", "wrong")
    client, _ = sign_in("/login/", "root", PASSWORD)
    assert signed_in(client)


def test_lockout_by_address_across_user_names(users):
    for n in range(8):
        sign_in("/login/", f"guess{n}", "wrong", address="203.0.113.5")
    client, response = sign_in("/login/", "alice", PASSWORD, address="203.0.113.5")
    assert not signed_in(client)
    assert "Too many failed sign-in attempts" in response.content.decode()
    client, _ = sign_in("/login/", "alice", PASSWORD, address="203.0.113.6")
    assert signed_in(client)


def test_fewer_failures_than_the_limit_then_success_resets_the_count(users):
    for _ in range(4):
        sign_in("/login/", "alice", "wrong")
    client, _ = sign_in("/login/", "alice", PASSWORD)
    assert signed_in(client)
    for _ in range(4):
        sign_in("/login/", "alice", "wrong", address="192.0.2.11")
    client, _ = sign_in("/login/", "alice", PASSWORD, address="192.0.2.12")
    assert signed_in(client)


def test_forged_forwarded_for_does_not_escape_the_address_lock(users, settings):
    settings.TRUSTED_PROXIES = []
    for n in range(8):
        client = Client(REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR=f"10.9.0.{n}")
        client.post("/login/", {"username": f"guess{n}", "password": "wrong"})
    client = Client(REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="10.9.0.99")
    client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert not signed_in(client)


def test_a_superuser_lists_and_unlocks(users):
    for _ in range(5):
        sign_in("/login/", "alice", "wrong")
    admin, _ = sign_in("/admin/login/", "root", PASSWORD, address="198.51.100.2")
    assert signed_in(admin)
    page = admin.get("/admin/security/lockouts/")
    assert page.status_code == 200
    assert "alice" in page.content.decode()
    response = admin.post("/admin/security/lockouts/", {"subject": "alice"})
    assert response.status_code == 302
    assert (
        "alice"
        not in admin.get("/admin/security/lockouts/").content.decode().split("Locked now")[1]
    )
    client, _ = sign_in("/login/", "alice", PASSWORD)
    assert signed_in(client)


def test_only_superusers_may_unlock(users):
    model = get_user_model()
    model.objects.create_user(username="staff", password=PASSWORD, is_staff=True)
    staff, _ = sign_in("/admin/login/", "staff", PASSWORD)
    assert signed_in(staff)
    assert staff.get("/admin/security/lockouts/").status_code == 403
    assert Client().get("/admin/security/lockouts/").status_code == 302  # to the login page
