"""Where the counters that hold money and lock-outs live: the ``limits`` cache.

Limits, budgets and lock-outs must never be forgotten under pressure: an evicted counter
is a spent budget starting over, or a lock-out lifted. Django's local-memory cache keeps
300 entries and drops the oldest, so the embedded default (no ``REDIS_URL``) keeps them in
the project's MongoDB instead, with ``MongoCounterCache``: one document per key in
``limit_counters``, shared by every process, kept across restarts, never culled.
With ``REDIS_URL`` they live in Redis, where every key has a TTL and the server must not
evict (``maxmemory-policy noeviction``; ``llmplatform.W001`` warns otherwise).

django-mongodb-backend 6.1 ships no cache backend, and Django's database cache culls at
``MAX_ENTRIES`` and reads, then writes, in ``incr``: hence this module.
"""

from __future__ import annotations

import logging
import pickle
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

from bson import Int64, ObjectId
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.cache.backends.redis import RedisCache
from django.db import connections
from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

logger = logging.getLogger(__name__)

LIMITS_CACHE = "limits"

# BSON dates stop at year 9999; a key stored without a timeout expires then (never). A
# date, not a missing field, so that every filter below is one comparison.
_NEVER = datetime(9999, 12, 31, tzinfo=UTC)
# Each retry of ``incr_or_open`` means another process created the key in between, and
# the next attempt finds it; more than one retry needs it deleted again meanwhile.
_OPEN_ATTEMPTS = 8
# How many recent increments a counter remembers with the total each produced, so that an
# increment can read back its own total (see MongoCounterCache._count). Only if more than
# this many others hit the same key between an update and the read right after it does
# that read return the current total instead.
_RECENT = 64
# Collections whose TTL index this process has ensured: (database alias, name, collection).
_INDEXED: set[tuple[str, str, str]] = set()
_INDEXED_LOCK = threading.Lock()

# INCRBY, then give the key its window if it has none yet: atomic on the server, so a key
# can never be left without an expiry (a permanent counter).
_INCRBY_WITH_EXPIRY = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return total
"""


def counter_clock() -> float:
    """Seconds since the epoch: the one clock expiries are set and read by (tests move it)."""
    return time.time()


def counter_add(key: str, amount: int, *, ttl_s: int) -> int:
    """Add ``amount`` (may be negative) to the counter ``key`` of the ``limits`` cache,
    opening it with a ``ttl_s`` window when it is absent or expired; the new total.

    Atomic: one round trip on Redis, two on the embedded store (SecantusDB has no fast
    find-and-modify). Raises the store's errors.
    """
    cache = caches[LIMITS_CACHE]
    if isinstance(cache, MongoCounterCache):
        return cache.incr_or_open(key, amount, timeout=ttl_s)
    if isinstance(cache, RedisCache):
        redis_key = cache.make_and_validate_key(key)
        client = cache._cache.get_client(redis_key, write=True)
        return int(client.eval(_INCRBY_WITH_EXPIRY, 1, redis_key, amount, ttl_s))
    # Any other backend (a test's local-memory cache): add, then incr.
    cache.add(key, 0, timeout=ttl_s)
    try:
        return int(cache.incr(key, amount))
    except ValueError:  # expired between add and incr: this amount opens the window
        cache.add(key, amount, timeout=ttl_s)
        return amount


def counter_add_all(adds: list[tuple[str, int, int]]) -> None:
    """Add each ``(key, amount, ttl_s)`` as ``counter_add`` does, without reading the
    totals back: one round trip for them all on either store (admission counts what has
    no limit this way, so usage is shown without a read on the question's path). Atomic
    per counter. Raises the store's errors.
    """
    if not adds:
        return
    cache = caches[LIMITS_CACHE]
    if isinstance(cache, MongoCounterCache):
        cache.incr_or_open_all(adds)
        return
    if isinstance(cache, RedisCache):
        keys = [(cache.make_and_validate_key(key), amount, ttl_s) for key, amount, ttl_s in adds]
        pipeline = cache._cache.get_client(keys[0][0], write=True).pipeline(transaction=False)
        for redis_key, amount, ttl_s in keys:
            pipeline.eval(_INCRBY_WITH_EXPIRY, 1, redis_key, amount, ttl_s)
        pipeline.execute()
        return
    for key, amount, ttl_s in adds:
        counter_add(key, amount, ttl_s=ttl_s)


def _encode(value: Any) -> Any:
    # Integers stay numbers, so that $inc can count them; anything else is pickled, as
    # Django's own database cache does (the database is as trusted as the code).
    if isinstance(value, int) and not isinstance(value, bool):
        return Int64(value)
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def _decode(stored: Any) -> Any:
    if isinstance(stored, bytes):
        return pickle.loads(stored)  # noqa: S301  (written by _encode, in our own database)
    return int(stored) if isinstance(stored, int) else stored


class MongoCounterCache(BaseCache):
    """A Django cache backend on the project's MongoDB: one document per key,
    ``{_id: key, value, expires_at}``, in the collection named by ``LOCATION``.

    Never culls (``MAX_ENTRIES`` is ignored). An expired document counts as absent on every
    read and write, whether or not the server's TTL index has removed it yet; the TTL index
    only reclaims space. ``add``, ``incr`` and ``incr_or_open`` are atomic (an insert that
    collides on ``_id``, or one conditional update of one document). No upsert counts:
    SecantusDB returns nothing from an upsert that lost an insert race.
    ``OPTIONS["DATABASE"]`` names the Django database (default ``default``).
    """

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._collection_name = location or "limit_counters"
        self._alias = params.get("OPTIONS", {}).get("DATABASE", "default")

    # ---- plumbing ----

    def _collection(self) -> Collection:
        connection = connections[self._alias]
        collection = connection.database[self._collection_name]
        marker = (self._alias, connection.database.name, self._collection_name)
        if marker not in _INDEXED:
            with _INDEXED_LOCK:
                if marker not in _INDEXED:
                    self._ensure_ttl_index(collection)
                    _INDEXED.add(marker)
        return collection

    @staticmethod
    def _ensure_ttl_index(collection: Collection) -> None:
        # Idempotent: creating an index that exists with the same options is a no-op.
        try:
            collection.create_index(
                [("expires_at", 1)], expireAfterSeconds=0, name="expires_at_ttl"
            )
        except OperationFailure as exc:
            # Reads never rely on it: expired documents are skipped either way, only space
            # is not reclaimed until the index exists.
            logger.warning(
                "No TTL index on %s (%s): expired counters stay until deleted.",
                collection.name,
                exc.code,
            )

    @staticmethod
    def _now() -> datetime:
        return datetime.fromtimestamp(counter_clock(), UTC)

    def _expires_at(self, timeout: Any) -> datetime:
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        now = counter_clock()
        if timeout is None or now + float(timeout) >= _NEVER.timestamp():
            return _NEVER
        # 0 (or less) means "expired at once", as in every Django backend.
        return datetime.fromtimestamp(now + float(timeout), UTC)

    # ---- the cache API ----

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        """Store ``value`` unless a live value is there; True if stored. Atomic."""
        key = self.make_and_validate_key(key, version=version)
        expires_at = self._expires_at(timeout)
        collection = self._collection()
        try:
            collection.insert_one({"_id": key, "value": _encode(value), "expires_at": expires_at})
        except DuplicateKeyError:
            # Taken, but maybe by an expired value: replace it only if so, in one document
            # update. Of several processes doing this at once, one changes it.
            expired = {"$lte": ["$expires_at", self._now()]}
            replaced = collection.update_one(
                {"_id": key},
                [
                    {
                        "$set": {
                            "value": {"$cond": [expired, {"$literal": _encode(value)}, "$value"]},
                            "expires_at": {"$cond": [expired, expires_at, "$expires_at"]},
                        }
                    }
                ],
            )
            return replaced.modified_count == 1
        return True

    def get(self, key, default=None, version=None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        document = self._collection().find_one(
            {"_id": key, "expires_at": {"$gt": self._now()}}, {"value": True}
        )
        return default if document is None else _decode(document["value"])

    def get_many(self, keys, version=None) -> dict[str, Any]:
        by_stored = {self.make_and_validate_key(key, version=version): key for key in keys}
        if not by_stored:
            return {}
        documents = self._collection().find(
            {"_id": {"$in": list(by_stored)}, "expires_at": {"$gt": self._now()}},
            {"value": True},
        )
        return {by_stored[document["_id"]]: _decode(document["value"]) for document in documents}

    def has_key(self, key, version=None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        found = self._collection().find_one(
            {"_id": key, "expires_at": {"$gt": self._now()}}, {"_id": True}
        )
        return found is not None

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> None:
        key = self.make_and_validate_key(key, version=version)
        self._collection().update_one(
            {"_id": key},
            {
                "$set": {"value": _encode(value), "expires_at": self._expires_at(timeout)},
                "$unset": {"recent": ""},
            },
            upsert=True,
        )

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        live = {"$gt": ["$expires_at", self._now()]}
        expires_at = self._expires_at(timeout)
        result = self._collection().update_one(
            {"_id": key},
            [{"$set": {"expires_at": {"$cond": [live, expires_at, "$expires_at"]}}}],
        )
        return result.modified_count == 1

    def delete(self, key, version=None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._collection().delete_one({"_id": key}).deleted_count == 1

    def delete_many(self, keys, version=None) -> None:
        stored = [self.make_and_validate_key(key, version=version) for key in keys]
        if stored:
            self._collection().delete_many({"_id": {"$in": stored}})

    def _count(self, collection: Collection, key: str, delta: int, *, opens: datetime | None):
        """Add ``delta`` to a live counter; with ``opens``, an expired one starts over at
        ``delta`` until then. The new total; None if the key is absent (or expired,
        without ``opens``).

        One update of one document, matched by ``_id`` alone: SecantusDB's write path
        scans the whole collection for any other filter, and findAndModify always adds
        one. The update files the total it produced under a token of its own, so the read
        that follows returns this increment's total, whatever others did in between.
        """
        token = ObjectId()
        live = {"$gt": ["$expires_at", self._now()]}
        total = {"$add": ["$value", Int64(delta)]}
        if opens is None:
            new_value, new_expiry = {"$cond": [live, total, "$value"]}, "$expires_at"
            produced = {"$cond": [live, total, None]}
        else:
            new_value = {"$cond": [live, total, Int64(delta)]}
            new_expiry = {"$cond": [live, "$expires_at", opens]}
            produced = new_value
        recent = {"$concatArrays": [{"$ifNull": ["$recent", []]}, [{"t": token, "v": produced}]]}
        result = collection.update_one(
            {"_id": key},
            [
                {
                    "$set": {
                        "value": new_value,
                        "expires_at": new_expiry,
                        "recent": {"$slice": [recent, -_RECENT]},
                    }
                }
            ],
        )
        if result.matched_count == 0:
            return None
        document = collection.find_one(
            {"_id": key}, {"value": True, "recent": {"$elemMatch": {"t": token}}}
        )
        if document is None:
            return None  # deleted in between
        if not document.get("recent"):
            return int(document["value"])  # _RECENT others came in between: see there
        produced_total = document["recent"][0]["v"]
        return None if produced_total is None else int(produced_total)

    def incr(self, key, delta=1, version=None) -> int:
        """Add ``delta`` (may be negative) to a live integer; ValueError if absent. Atomic."""
        stored_key = self.make_and_validate_key(key, version=version)
        total = self._count(self._collection(), stored_key, delta, opens=None)
        if total is None:
            raise ValueError(f"Key '{key}' not found.")
        return total

    def incr_or_open(self, key, delta, *, timeout, version=None) -> int:
        """Add ``delta`` to the counter ``key``; absent or expired, it starts at ``delta``
        with ``timeout``. The new total. Atomic; two round trips (one to open a new key)."""
        key = self.make_and_validate_key(key, version=version)
        collection = self._collection()
        for _ in range(_OPEN_ATTEMPTS):
            expires_at = self._expires_at(timeout)
            total = self._count(collection, key, delta, opens=expires_at)
            if total is not None:
                return total
            # No such key. Not an upsert: SecantusDB answers an upsert that lost the race
            # to insert with no document (and applies it), leaving the total unknown.
            try:
                collection.insert_one({"_id": key, "value": Int64(delta), "expires_at": expires_at})
            except DuplicateKeyError:
                continue  # another process opened it first: count in its window
            return delta
        raise RuntimeError(f"The counter {key!r} kept changing under {_OPEN_ATTEMPTS} attempts.")

    def incr_or_open_all(self, adds: list[tuple[str, int, int]], version=None) -> None:
        """``incr_or_open`` for each ``(key, delta, timeout)``, totals not read: one bulk
        write of upserts. An upsert is safe here because nothing is read back (see
        ``incr_or_open`` for why it is not there); one that collides with another
        process's insert of the same key is applied again, and then finds the key."""
        live_at = self._now()
        operations = []
        for key, delta, timeout in adds:
            # A missing document's expires_at compares below any date: the key opens.
            live = {"$gt": ["$expires_at", live_at]}
            value = {"$cond": [live, {"$add": ["$value", Int64(delta)]}, Int64(delta)]}
            expires_at = {"$cond": [live, "$expires_at", self._expires_at(timeout)]}
            operations.append(
                UpdateOne(
                    {"_id": self.make_and_validate_key(key, version=version)},
                    [{"$set": {"value": value, "expires_at": expires_at}}],
                    upsert=True,
                )
            )
        collection = self._collection()
        try:
            collection.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            failed = [error["index"] for error in exc.details.get("writeErrors", [])]
            if any(error.get("code") != 11000 for error in exc.details.get("writeErrors", [])):
                raise
            collection.bulk_write([operations[index] for index in failed], ordered=False)

    def clear(self) -> None:
        """Delete this cache's keys: those under its ``KEY_PREFIX``, or all without one."""
        if self.key_prefix:
            self._collection().delete_many({"_id": {"$regex": f"^{re.escape(self.key_prefix)}:"}})
        else:
            self._collection().delete_many({})
