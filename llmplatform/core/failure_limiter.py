"""Counting failures (wrong API keys, wrong passwords) per subject in a fixed time window.

One counter per (limit, subject), shared by every process and transport: Redis
``INCR`` + ``EXPIRE`` in one script when the cache is Redis (``REDIS_URL`` set), the
process-local cache in the embedded default (one process). Only failures are counted:
callers validate first, so a valid credential is never refused by a failure limit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

# INCR, then give the key its window if it has none yet: atomic on the server, so a key
# can never be left without an expiry (a permanent lock-out).
_INCR_WITH_EXPIRY = """
local count = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""


@dataclass(frozen=True)
class FailureLimit:
    """At most ``limit`` failures per subject in ``window_s`` seconds (a fixed window)."""

    name: str
    limit: int
    window_s: int

    def _key(self, subject: str) -> str:
        # Subjects are user input (user names): hash them into a safe cache key.
        digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"failures:{self.name}:{digest}"

    def count(self, subject: str) -> int:
        return int(caches["default"].get(self._key(subject)) or 0)

    def exceeded(self, subject: str) -> bool:
        """True once ``subject`` has ``limit`` failures in the current window."""
        return self.count(subject) >= self.limit

    def record(self, subject: str) -> int:
        """Count one failure of ``subject``; returns the count in this window."""
        key = self._key(subject)
        cache = caches["default"]
        if isinstance(cache, RedisCache):
            redis_key = cache.make_and_validate_key(key)
            client = cache._cache.get_client(redis_key, write=True)
            return int(client.eval(_INCR_WITH_EXPIRY, 1, redis_key, self.window_s))
        cache.add(key, 0, timeout=self.window_s)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr: this failure opens a new window
            cache.add(key, 1, timeout=self.window_s)
            return 1

    def clear(self, subject: str) -> None:
        caches["default"].delete(self._key(subject))
