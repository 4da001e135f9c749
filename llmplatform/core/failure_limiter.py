"""Counting failures (wrong API keys, wrong passwords) per subject in a fixed time window.

One counter per (limit, subject) in the ``limits`` cache (``counter_store``), shared by
every process and transport and never evicted: Redis ``INCR`` + ``EXPIRE`` in one script
with ``REDIS_URL``, one atomic ``$inc`` in the project's MongoDB in the embedded default.
Only failures are counted: callers validate first, so a valid credential is never refused
by a failure limit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core.cache import caches

from llmplatform.core.counter_store import LIMITS_CACHE, counter_add


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
        return int(caches[LIMITS_CACHE].get(self._key(subject)) or 0)

    def exceeded(self, subject: str) -> bool:
        """True once ``subject`` has ``limit`` failures in the current window."""
        return self.count(subject) >= self.limit

    def record(self, subject: str) -> int:
        """Count one failure of ``subject``; returns the count in this window.

        The first failure opens the window (a key can never be left without an expiry,
        which would be a permanent lock-out)."""
        return counter_add(self._key(subject), 1, ttl_s=self.window_s)

    def clear(self, subject: str) -> None:
        caches[LIMITS_CACHE].delete(self._key(subject))
