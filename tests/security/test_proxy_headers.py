"""X-Forwarded-Proto (Django's SECURE_PROXY_SSL_HEADER) is believed only from a peer in
TRUSTED_PROXIES: from anyone else a plain-HTTP request is still redirected to https."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PROXY = "10.1.2.3"
CLIENT = "203.0.113.9"


@pytest.fixture(autouse=True)
def _production_https(settings):
    # What settings.py sets when ENVIRONMENT=production, with one load balancer network.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]


def login_page(peer: str, **headers: str):
    return Client(REMOTE_ADDR=peer).get("/login/", **headers)


def test_plain_http_is_redirected_to_https():
    response = login_page(CLIENT)
    assert response.status_code == 301
    assert response["Location"].startswith("https://")


def test_an_untrusted_client_cannot_claim_https():
    response = login_page(CLIENT, HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 301
    assert response["Location"].startswith("https://")


def test_the_trusted_proxy_is_believed():
    response = login_page(PROXY, HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response.wsgi_request.is_secure()


def test_the_nearest_proxy_has_the_last_word():
    # The client forged "https"; the trusted proxy appended what it saw: plain http.
    response = login_page(PROXY, HTTP_X_FORWARDED_PROTO="https, http")
    assert response.status_code == 301


def test_no_trusted_proxies_means_the_header_is_never_believed(settings):
    settings.TRUSTED_PROXIES = []
    assert login_page(PROXY, HTTP_X_FORWARDED_PROTO="https").status_code == 301
