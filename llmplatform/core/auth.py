"""API key authentication for DRF views and websocket/SSE consumers."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from llmplatform.core.models import ApiKey
from llmplatform.core.services import api_key_hash

# Writing last_used_at on every request would double the writes of a busy key.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyRateLimited(exceptions.Throttled):
    default_detail = "Too many failed API key attempts from this address. Wait a minute."


def api_key_from_header(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def api_key_resolve(raw_key: str) -> ApiKey | None:
    """The active key for ``raw_key``, or None. Records when it was last used."""
    try:
        api_key = ApiKey.objects.select_related("owner").get(key_hash=api_key_hash(raw_key))
    except ApiKey.DoesNotExist:
        return None
    if not api_key.is_active or not api_key.owner.is_active:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


def _failure_key(client: str) -> str:
    return f"auth-failures:{client}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <key>``. Missing → 401, unknown or revoked → 401."""

    def authenticate(self, request: Request) -> tuple[object, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION")
        if header is None:
            return None
        client = request.META.get("REMOTE_ADDR", "unknown")
        failures = cache.get(_failure_key(client), 0)
        if failures >= settings.API_KEY_FAILURES_PER_MINUTE:
            raise ApiKeyRateLimited(wait=60)
        raw_key = api_key_from_header(header)
        api_key = api_key_resolve(raw_key) if raw_key else None
        if api_key is None:
            cache.set(_failure_key(client), failures + 1, timeout=60)
            raise exceptions.AuthenticationFailed(
                "Invalid or revoked API key. Send `Authorization: Bearer <key>` with an "
                "active key (create one with `python manage.py create_api_key --name NAME`)."
            )
        return api_key.owner, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def api_key_from_scope(scope: dict, *, allow_query_param: bool) -> str | None:
    """The API key of an ASGI connection: ``Authorization: Bearer`` or ``?api_key=``."""
    headers = dict(scope.get("headers") or [])
    raw = api_key_from_header(headers.get(b"authorization", b"").decode("latin-1") or None)
    if raw is None and allow_query_param:
        from urllib.parse import parse_qs

        values = parse_qs(scope.get("query_string", b"").decode()).get("api_key")
        raw = values[-1] if values else None
    return raw


def owner_from_scope(scope: dict, *, allow_query_param: bool = False) -> object | None:
    """The owner of an SSE/websocket connection by API key, or None. Call in a thread."""
    raw = api_key_from_scope(scope, allow_query_param=allow_query_param)
    api_key = api_key_resolve(raw) if raw else None
    return api_key.owner if api_key else None
