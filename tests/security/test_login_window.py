"""The sign-in lock-out lasts LOGIN_LOCKOUT_SECONDS, measured on a clock the test moves.

The counters live in a local cache here (the embedded default's kind of store): it
expires keys by ``time.time``, which the test holds and advances. Redis expires keys by
its own clock, which no test can move.
"""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"
WINDOW_S = 900


class Clock:
    """``time.time`` held still, moved only by ``advance``."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(settings, monkeypatch) -> Clock:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.LOGIN_FAILURES_PER_USERNAME = 5
    settings.LOGIN_FAILURES_PER_ADDRESS = 1000  # only the user name's lock-out is tested
    settings.LOGIN_LOCKOUT_SECONDS = WINDOW_S
    settings.CACHES = {
        name: {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": name}
        for name in settings.CACHES
    }
    fake = Clock()
    monkeypatch.setattr(time, "time", fake)
    get_user_model().objects.create_user(username="alice", password=PASSWORD)
    return fake


def sign_in(password: str, *, address: str):
    client = Client(REMOTE_ADDR=address)
    response = client.post("/login/", {"username": "alice", "password": password})
    return "_auth_user_id" in client.session, response.content.decode()


def test_a_user_name_stays_locked_for_the_whole_window_and_no_longer(clock):
    for n in range(5):
        signed_in, _ = sign_in("wrong", address=f"192.0.2.{n}")
        assert not signed_in
    clock.advance(61)
    signed_in, page = sign_in(PASSWORD, address="198.51.100.1")
    assert not signed_in
    assert "Too many failed sign-in attempts" in page
    assert "15 minutes" in page  # the message states the window
    clock.advance(WINDOW_S - 61 - 2)
    signed_in, _ = sign_in(PASSWORD, address="198.51.100.2")
    assert not signed_in  # two seconds before the window ends
    clock.advance(3)
    signed_in, _ = sign_in(PASSWORD, address="198.51.100.3")
    assert signed_in
