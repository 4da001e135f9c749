"""API key authentication for DRF views and websocket/SSE consumers.

Every transport validates the key first and counts only failures, per client address,
in one shared counter (``API_KEY_FAILURES_PER_MINUTE``): a valid key is never refused
by the failure limit, and guessing over REST, SSE or websockets adds up.
"""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import parse_qs

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from llmplatform.core.client_address import client_address_from_request, client_address_from_scope
from llmplatform.core.errors import ApplicationError
from llmplatform.core.failure_limiter import FailureLimit
from llmplatform.core.models import ApiKey
from llmplatform.core.services import RESOLVED_KEYS, RESOLVED_KEYS_LOCK, api_key_hash

# Writing last_used_at on every request would double the writes of a busy key.
LAST_USED_RESOLUTION = timedelta(minutes=1)


# The window of API_KEY_FAILURES_PER_MINUTE.
API_KEY_FAILURE_WINDOW_S = 60
RATE_LIMITED_MESSAGE = "Too many failed API key attempts from this address. Wait a minute."


class ApiKeyRateLimited(exceptions.Throttled):
    default_detail = RATE_LIMITED_MESSAGE


def api_key_failure_limit() -> FailureLimit:
    return FailureLimit(
        name="api-key",
        limit=settings.API_KEY_FAILURES_PER_MINUTE,
        window_s=API_KEY_FAILURE_WINDOW_S,
    )


def api_key_failure_record(*, client: str) -> bool:
    """Count a wrong key from ``client``; True when that puts it over the limit."""
    limit = api_key_failure_limit()
    return limit.record(client) > limit.limit


def api_key_from_header(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# Each process remembers a key it just resolved this long, so a stream or a burst of
# requests costs no database read before its provider call; a revoked key (or deactivated
# owner) is refused everywhere within this time.
API_KEY_CACHE_S = 1.0
_API_KEY_CACHE_MAX = 10_000


def api_key_resolve(raw_key: str) -> ApiKey | None:
    """The active key for ``raw_key``, or None. Records when it was last used."""
    return _api_key_by_hash(api_key_hash(raw_key), max_age_s=API_KEY_CACHE_S)


def api_key_still_active(*, api_key: ApiKey, max_age_s: float) -> bool:
    """Whether ``api_key``, which an open stream authenticated with, is still active (not
    revoked, owner active), as this process read it at most ``max_age_s`` ago (0: read
    now). Call in a thread. Raises nothing."""
    current = _api_key_by_hash(api_key.key_hash, max_age_s=max_age_s)
    return current is not None and current.pk == api_key.pk


def _api_key_by_hash(key_hash: str, *, max_age_s: float) -> ApiKey | None:
    now_s = time.monotonic()
    with RESOLVED_KEYS_LOCK:
        cached = RESOLVED_KEYS.get(key_hash)
    # An entry expires API_KEY_CACHE_S after it was read.
    if cached is not None and now_s < cached[1] - API_KEY_CACHE_S + max_age_s:
        return cached[0]
    api_key = _api_key_read(key_hash)
    with RESOLVED_KEYS_LOCK:
        if len(RESOLVED_KEYS) >= _API_KEY_CACHE_MAX:
            RESOLVED_KEYS.clear()  # bounded; a full cache costs one read per key
        RESOLVED_KEYS[key_hash] = (api_key, now_s + API_KEY_CACHE_S)
    return api_key


def _api_key_read(key_hash: str) -> ApiKey | None:
    # Two reads by unique index instead of select_related: django-mongodb-backend puts the
    # owner $lookup before the $match, and the embedded server would join every key (for
    # every unknown key a client tries, too) before finding this one.
    try:
        api_key = ApiKey.objects.get(key_hash=key_hash)
    except ApiKey.DoesNotExist:
        return None
    if not api_key.is_active or not api_key.owner.is_active:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <key>``. Missing → 401, unknown or revoked → 401."""

    def authenticate(self, request: Request) -> tuple[object, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION")
        if header is None:
            return None
        raw_key = api_key_from_header(header)
        api_key = api_key_resolve(raw_key) if raw_key else None
        if api_key is None:
            if api_key_failure_record(client=client_address_from_request(request)):
                raise ApiKeyRateLimited(wait=API_KEY_FAILURE_WINDOW_S)
            raise exceptions.AuthenticationFailed(
                "Invalid or revoked API key. Send `Authorization: Bearer <key>` with an "
                "active key (create one with `python manage.py create_api_key --name NAME`)."
            )
        return api_key.owner, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def _scope_credentials(scope: dict, *, allow_query_param: bool) -> tuple[bool, str | None]:
    """(whether the connection presented a credential, the API key if well-formed)."""
    header = None
    for name, value in scope.get("headers") or []:
        if name.lower() == b"authorization":
            header = value.decode("latin-1")
    if header is not None:
        return True, api_key_from_header(header)
    if allow_query_param:
        query = scope.get("query_string", b"").decode("latin-1")
        values = parse_qs(query, keep_blank_values=True).get("api_key")
        if values:
            return True, values[-1].strip() or None
    return False, None


def api_key_from_scope(scope: dict, *, allow_query_param: bool) -> str | None:
    """The API key of an ASGI connection: ``Authorization: Bearer`` or ``?api_key=``.

    Only the websocket may pass ``allow_query_param=True`` (browsers cannot set headers
    on a websocket); SSE takes the header only, so keys stay out of URLs and logs.
    """
    return _scope_credentials(scope, allow_query_param=allow_query_param)[1]


def api_key_for_scope(scope: dict, *, allow_query_param: bool = False) -> ApiKey | None:
    """The active API key of an SSE/websocket connection, or None. Call in a thread.

    A presented but wrong key counts against the client address's failure limit, shared
    with REST. Raises ApplicationError (429 ``rate_limited``, ``retry_after`` in details)
    once that limit is exceeded; a valid key is never refused.
    """
    presented, raw = _scope_credentials(scope, allow_query_param=allow_query_param)
    if not presented:
        return None
    api_key = api_key_resolve(raw) if raw else None
    if api_key is not None:
        return api_key
    if api_key_failure_record(client=client_address_from_scope(scope)):
        raise ApplicationError(
            RATE_LIMITED_MESSAGE,
            code="rate_limited",
            status=429,
            extra={"retry_after": API_KEY_FAILURE_WINDOW_S},
        )
    return None
