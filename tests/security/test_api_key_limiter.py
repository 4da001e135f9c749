"""The failed-key limiter: validate first, count failures per client address, 60 s window,
shared by REST, SSE and websockets; proxy headers only from TRUSTED_PROXIES."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from llmplatform.core import auth
from llmplatform.core.auth import api_key_for_scope
from llmplatform.core.client_address import client_address, scheme_from_scope
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import ApiKey
from llmplatform.core.services import api_key_revoke

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _low_limit(settings):
    settings.API_KEY_FAILURES_PER_MINUTE = 3


def _client(address: str, key: str | None = None, **extra: str) -> APIClient:
    client = APIClient(REMOTE_ADDR=address, **extra)
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _fail(client: APIClient, times: int) -> list[int]:
    client.credentials(HTTP_AUTHORIZATION="Bearer wrong-key-0123456789")
    return [client.get("/api/v1/status").status_code for _ in range(times)]


def test_a_valid_key_is_never_refused_by_the_failure_limit(owner):
    attacker = _client("198.51.100.7")
    assert _fail(attacker, 5)[-1] == 429
    # Same address, valid key (another tenant behind the same NAT, or the attacker's own).
    assert _client("198.51.100.7", owner[1]).get("/api/v1/status").status_code == 200


def test_failures_are_counted_per_client_address():
    assert _fail(_client("198.51.100.7"), 5)[3:] == [429, 429]
    # Another address is not affected: a globally keyed counter would give 429 here.
    assert _fail(_client("198.51.100.8"), 1) == [401]


def test_the_window_is_a_minute_in_the_embedded_store(monkeypatch, settings):
    from llmplatform.core import counter_store

    # The embedded default (no REDIS_URL): the counter store in the project's MongoDB.
    settings.CACHES = {
        **settings.CACHES,
        "limits": {
            "BACKEND": "llmplatform.core.counter_store.MongoCounterCache",
            "LOCATION": "limit_counters",
            "KEY_PREFIX": settings.CACHES["limits"]["KEY_PREFIX"],
        },
    }
    assert _fail(_client("198.51.100.7"), 4)[-1] == 429
    now = counter_store.counter_clock()
    monkeypatch.setattr(counter_store, "counter_clock", lambda: now + 30)
    assert _fail(_client("198.51.100.7"), 1) == [429]  # a 1 s window would have ended
    monkeypatch.setattr(counter_store, "counter_clock", lambda: now + 61)
    assert _fail(_client("198.51.100.7"), 1) == [401]


def test_the_window_is_a_minute_in_redis(settings):
    import redis

    settings.CACHES = {
        **settings.CACHES,
        "limits": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.REDIS_URL,
            "KEY_PREFIX": "llmp-test-limiter",
        },
    }
    limit = auth.api_key_failure_limit()
    limit.clear("203.0.113.1")
    try:
        assert [limit.record("203.0.113.1") for _ in range(4)] == [1, 2, 3, 4]
        assert limit.exceeded("203.0.113.1")
        assert not limit.exceeded("203.0.113.2")
        backend = caches["limits"]
        key = backend.make_and_validate_key(limit._key("203.0.113.1"))
        ttl = redis.Redis.from_url(settings.REDIS_URL).ttl(key)
        assert 55 <= ttl <= 60
    finally:
        limit.clear("203.0.113.1")


def test_forwarded_for_is_ignored_from_untrusted_peers(settings):
    settings.TRUSTED_PROXIES = []
    # 5 wrong keys, each claiming another address: all from one peer, so throttled.
    codes = [
        _fail(_client("198.51.100.7", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}"), 1)[0] for n in range(5)
    ]
    assert codes[3:] == [429, 429]
    # A forged header cannot throttle the address it names.
    assert _fail(_client("10.0.0.1"), 1) == [401]


def test_forwarded_for_is_honoured_from_a_trusted_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.1.0.0/16"]
    for n in range(5):
        # Each client behind the proxy has its own counter.
        proxied = _client("10.1.0.5", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        assert _fail(proxied, 1) == [401]
    proxied = _client("10.1.0.5", HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert _fail(proxied, 4)[-1] == 429


def test_client_address_reads_the_chain_from_the_right(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    # The client prepended a forged entry; the proxies appended the real one.
    assert client_address(peer="10.0.0.2", forwarded_for="1.2.3.4, 192.0.2.9, 10.0.0.1") == (
        "192.0.2.9"
    )
    assert client_address(peer="192.0.2.1", forwarded_for="1.2.3.4") == "192.0.2.1"
    assert client_address(peer="10.0.0.2", forwarded_for="garbage") == "10.0.0.2"
    assert client_address(peer=None, forwarded_for=None) == "unknown"
    settings.TRUSTED_PROXIES = []
    assert client_address(peer="10.0.0.2", forwarded_for="192.0.2.9") == "10.0.0.2"


def test_scheme_follows_forwarded_proto_only_from_trusted_proxies(settings):
    scope = {
        "scheme": "ws",
        "client": ("10.0.0.2", 5000),
        "headers": [(b"x-forwarded-proto", b"https")],
    }
    settings.TRUSTED_PROXIES = []
    assert scheme_from_scope(scope) == "http"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert scheme_from_scope(scope) == "https"
    assert scheme_from_scope({**scope, "scheme": "wss", "headers": []}) == "https"


# ---- Streaming transports: api_key_for_scope ----


def owner_from_scope(scope: dict, *, allow_query_param: bool = False) -> object | None:
    """The owner whose key a streaming transport's scope carries, as its consumer reads it."""
    api_key = api_key_for_scope(scope, allow_query_param=allow_query_param)
    return None if api_key is None else api_key.owner


def _scope(
    *, key: str | None = None, header: str | None = None, query: str = "", peer: str = "192.0.2.50"
) -> dict:
    headers = []
    if header is not None:
        headers.append((b"authorization", header.encode()))
    elif key is not None:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    return {"headers": headers, "query_string": query.encode(), "client": (peer, 40000)}


def test_owner_from_scope_accepts_an_active_key(owner):
    assert owner_from_scope(_scope(key=owner[1])) == owner[0]


def test_owner_from_scope_refuses_a_revoked_key(owner):
    api_key_revoke(api_key=ApiKey.objects.get(owner=owner[0]))
    assert owner_from_scope(_scope(key=owner[1])) is None


def test_owner_from_scope_refuses_a_deactivated_owner(owner):
    user = owner[0]
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert owner_from_scope(_scope(key=owner[1])) is None


@pytest.mark.parametrize("scheme", ["Token", "Basic", "Api-Key", "Bearer:", ""])
def test_only_the_bearer_scheme_is_accepted(owner, scheme):
    header = f"{scheme} {owner[1]}".strip()
    assert owner_from_scope(_scope(header=header)) is None
    client = APIClient(REMOTE_ADDR="192.0.2.60")
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get("/api/v1/status").status_code == 401


def test_query_param_key_only_where_allowed(owner):
    scope = _scope(query=f"api_key={owner[1]}")
    assert owner_from_scope(scope) is None  # SSE: header only
    assert owner_from_scope(scope, allow_query_param=True) == owner[0]  # the websocket


def test_streaming_failures_share_the_rest_counter():
    for _ in range(2):
        assert owner_from_scope(_scope(key="wrong-key-0123456789", peer="198.51.100.9")) is None
    assert _fail(_client("198.51.100.9"), 1) == [401]  # the third failure
    with pytest.raises(ApplicationError) as refused:
        owner_from_scope(_scope(key="wrong-key-0123456789", peer="198.51.100.9"))
    assert refused.value.status == 429 and refused.value.code == "rate_limited"
    # Another address is not affected.
    assert owner_from_scope(_scope(key="wrong-key-0123456789", peer="198.51.100.10")) is None


def test_streaming_valid_key_is_not_refused_after_failures(owner):
    for _ in range(3):
        owner_from_scope(_scope(key="wrong-key-0123456789", peer="198.51.100.11"))
    with pytest.raises(ApplicationError):
        owner_from_scope(_scope(key="wrong-key-0123456789", peer="198.51.100.11"))
    assert owner_from_scope(_scope(key=owner[1], peer="198.51.100.11")) == owner[0]


def test_no_credential_is_not_a_failure():
    for _ in range(10):
        assert owner_from_scope(_scope(peer="198.51.100.12")) is None
    assert _fail(_client("198.51.100.12"), 1) == [401]


def test_the_asgi_server_is_never_told_to_believe_proxy_headers():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in ("llmplatform/core/management/commands/serve.py", "docker/Dockerfile"):
        text = (root / path).read_text()
        # daphne's --proxy-headers, uvicorn's default: both believe a client's X-Forwarded-For.
        assert not re.search(r"(?<!no-)--proxy-headers\b", text), path
        assert "proxy_headers=True" not in text, path
    from llmplatform.core.management.commands.serve import uvicorn_options

    assert uvicorn_options(host="127.0.0.1", port=8000)["proxy_headers"] is False


def test_trusted_proxies_are_read_as_networks(monkeypatch):
    from llmplatform.env import EnvError, env_networks

    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")
    assert env_networks("TRUSTED_PROXIES") == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]
    monkeypatch.setenv("TRUSTED_PROXIES", "")
    assert env_networks("TRUSTED_PROXIES") == []
    monkeypatch.setenv("TRUSTED_PROXIES", "lb.internal")
    with pytest.raises(EnvError, match="TRUSTED_PROXIES"):
        env_networks("TRUSTED_PROXIES")
