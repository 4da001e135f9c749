"""System checks of the platform's own (``manage.py check``, and at the start of ``serve``)."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register

from llmplatform.core.counter_store import LIMITS_CACHE

_REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"
# A check runs before anything is served: a Redis that does not answer within this time
# is left to the health check to report.
_REDIS_CHECK_TIMEOUT_S = 1.0


def _limits_redis_eviction_policy() -> str | None:
    """The ``maxmemory-policy`` of the Redis behind the ``limits`` cache; None when the
    cache is not Redis, or the server cannot or will not say (managed Redis often refuses
    ``CONFIG``)."""
    config: dict[str, Any] = settings.CACHES.get(LIMITS_CACHE, {})
    if config.get("BACKEND") != _REDIS_BACKEND:
        return None
    import redis

    location = config["LOCATION"]
    # Django writes to the first of several servers: that is where counters live.
    primary = location[0] if isinstance(location, list | tuple) else re.split("[;,]", location)[0]
    try:
        client = redis.Redis.from_url(
            primary,
            socket_timeout=_REDIS_CHECK_TIMEOUT_S,
            socket_connect_timeout=_REDIS_CHECK_TIMEOUT_S,
        )
        with client:
            return client.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.RedisError:
        return None


@register()
def limits_redis_never_evicts(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A Redis that evicts could drop a spent budget or a lock-out under memory pressure."""
    policy = _limits_redis_eviction_policy()
    if policy is None or policy == "noeviction":
        return []
    return [
        Warning(
            f"The Redis that holds limits, budgets and lock-outs evicts keys "
            f"(maxmemory-policy {policy}): under memory pressure a spent budget could start "
            "over or a lock-out be lifted.",
            hint="Set `maxmemory-policy noeviction` on that Redis (every counter has a TTL, "
            "so nothing accumulates), or give the limits cache a Redis of its own that does "
            "not evict.",
            id="llmplatform.W001",
        )
    ]
