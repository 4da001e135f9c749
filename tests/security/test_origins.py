"""The websocket Origin check: whole origins (scheme, host, port), never ALLOWED_HOSTS alone."""

from __future__ import annotations

import pytest

from llmplatform.core.origins import origin_allowed, site_origin


def scope(host: str = "127.0.0.1:8000", *, scheme: str = "ws", peer: str = "127.0.0.1", **headers):
    raw = [(b"host", host.encode())] if host else []
    raw += [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"type": "websocket", "scheme": scheme, "headers": raw, "client": (peer, 50000)}


@pytest.fixture(autouse=True)
def _hosts(settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "chat.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = []
    settings.TRUSTED_PROXIES = []


def test_the_sites_own_origin_is_allowed():
    assert origin_allowed("http://127.0.0.1:8000", scope=scope())
    assert origin_allowed("HTTP://127.0.0.1:8000/", scope=scope())


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:9999",  # another port on the same host
        "http://localhost:1234",  # an allowed host name, another port
        "http://localhost:8000",  # another host name, same port
        "https://127.0.0.1:8000",  # another scheme
        "http://evil.example",
        "null",
        "",
        "file://",
        "http://127.0.0.1:8000/path",
        "http://user@127.0.0.1:8000",
        "http://127.0.0.1:notaport",
    ],
)
def test_other_origins_are_refused(origin):
    assert not origin_allowed(origin, scope=scope())


def test_allowed_hosts_wildcard_does_not_allow_foreign_origins(settings):
    settings.ALLOWED_HOSTS = ["*"]
    assert not origin_allowed("http://evil.example", scope=scope())
    assert not origin_allowed("http://127.0.0.1:9999", scope=scope())
    assert origin_allowed("http://127.0.0.1:8000", scope=scope())


def test_a_host_we_do_not_serve_is_not_our_origin():
    # DNS rebinding: evil.example resolves to us; its pages send Origin == Host.
    assert site_origin(scope("evil.example")) is None
    assert not origin_allowed("http://evil.example", scope=scope("evil.example"))
    assert site_origin(scope("")) is None


def test_csrf_trusted_origins_are_matched_whole(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com", "https://*.example.net"]
    assert origin_allowed("https://app.example.com", scope=scope())
    assert origin_allowed("https://app.example.com:443", scope=scope())
    assert not origin_allowed("http://app.example.com", scope=scope())
    assert not origin_allowed("https://app.example.com:8443", scope=scope())
    assert origin_allowed("https://a.example.net", scope=scope())
    assert not origin_allowed("https://example.net", scope=scope())
    assert not origin_allowed("https://evil-example.net", scope=scope())
    assert not origin_allowed("http://a.example.net", scope=scope())


def test_behind_a_trusted_tls_proxy_the_origin_is_https(settings):
    proxied = scope("chat.example.com", peer="10.0.0.2", x_forwarded_proto="https")
    assert not origin_allowed("https://chat.example.com", scope=proxied)  # proxy not trusted
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert origin_allowed("https://chat.example.com", scope=proxied)
    assert not origin_allowed("http://chat.example.com", scope=proxied)
    # wss straight to us (TLS ended by daphne's own endpoint) is https too.
    assert origin_allowed("https://chat.example.com", scope=scope("chat.example.com", scheme="wss"))
