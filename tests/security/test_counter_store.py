"""Counters that are never evicted (issue 19, defect 2): the ``limits`` cache.

In the embedded default the counters of limits, budgets and lock-outs live in the
project's MongoDB (``MongoCounterCache``), not in the local-memory cache that keeps 300
entries: one tenant's traffic must not erase another's spent budget or lift a lock-out.
On Redis they live in a Redis that must not evict (``llmplatform.W001``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.checks.registry import registry
from django.db import connection

from llmplatform.core import counter_store
from llmplatform.core.checks import limits_redis_never_evicts
from llmplatform.core.counter_store import MongoCounterCache, counter_add, counter_add_all
from llmplatform.core.errors import ApplicationError
from llmplatform.core.failure_limiter import FailureLimit
from llmplatform.core.login_guard import lockouts_current, login_failure_record, login_locked
from llmplatform.core.models import ApiKey
from llmplatform.core.quotas import quota_admit, quota_settle, quota_windows
from tests.processes import free_port

pytestmark = pytest.mark.django_db

STORE = "llmplatform.core.counter_store.MongoCounterCache"
# The embedded default's own "default" cache: Django's local-memory cache, 300 entries.
LOCAL_MEMORY = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
OTHERS = 1_000


def _embedded(settings, prefix: str | None = None) -> MongoCounterCache:
    """The embedded default's caches, as settings.py builds them without REDIS_URL."""
    settings.CACHES = {
        "default": {**LOCAL_MEMORY, "LOCATION": f"t-{uuid.uuid4().hex}"},
        "limits": {
            "BACKEND": STORE,
            "LOCATION": "limit_counters",
            "KEY_PREFIX": f"t-{uuid.uuid4().hex}" if prefix is None else prefix,
        },
    }
    return caches["limits"]


def _redis(settings) -> None:
    """Redis behind the limits; the default cache still the evicting local one."""
    settings.CACHES = {
        "default": {**LOCAL_MEMORY, "LOCATION": f"t-{uuid.uuid4().hex}"},
        "limits": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.REDIS_URL,
            "KEY_PREFIX": f"t-{uuid.uuid4().hex}",
        },
    }


@pytest.fixture
def store(settings) -> MongoCounterCache:
    return _embedded(settings)


@pytest.fixture
def clock(monkeypatch) -> Callable[[float], None]:
    """Moves the store's clock ``seconds`` ahead of now."""
    start = counter_store.counter_clock()

    def move(seconds: float) -> None:
        monkeypatch.setattr(counter_store, "counter_clock", lambda: start + seconds)

    return move


def _together(threads: int, work: Callable[[int], object]) -> list[object]:
    """Run ``work(n)`` in ``threads`` threads released at the same moment."""
    start = threading.Barrier(threads)
    results: list[object] = [None] * threads
    errors: list[BaseException] = []

    def run(n: int) -> None:
        start.wait()
        try:
            results[n] = work(n)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors, errors
    return results


# ---- the store ----


def test_counting_from_many_threads_loses_nothing(store):
    # The first increments race to create the document (upsert on a missing key).
    per_thread = 25
    totals = _together(8, lambda n: [counter_add("hits", 1, ttl_s=600) for _ in range(per_thread)])
    assert store.get("hits") == 8 * per_thread
    # Every total was handed out exactly once: no two increments read the same value.
    handed_out = sorted(total for thread in totals for total in thread)
    assert handed_out == list(range(1, 8 * per_thread + 1))
    # Django's incr (existing key), positive and negative, is atomic too.
    _together(8, lambda n: [store.incr("hits", 1 if n % 2 else -2) for _ in range(per_thread)])
    assert store.get("hits") == 8 * per_thread + 4 * per_thread * (1 - 2)


def test_add_stores_once_under_a_race(store, clock):
    won = _together(8, lambda n: store.add("first", n, timeout=600))
    assert won.count(True) == 1
    assert store.get("first") == won.index(True)
    # Over an expired value, too, exactly one add wins.
    clock(601)
    won = _together(8, lambda n: store.add("first", 100 + n, timeout=600))
    assert won.count(True) == 1
    assert store.get("first") == 100 + won.index(True)


def test_an_expired_counter_is_absent_on_every_read_and_write(store, clock):
    store.set("gone", 41, timeout=60)
    assert counter_add("window", 5, ttl_s=60) == 5
    clock(61)
    # The TTL monitor has not run (it may never run on the embedded server): the
    # documents are still there, and no read may see them.
    assert connection.database["limit_counters"].count_documents({"_id": store.make_key("gone")})
    assert store.get("gone") is None
    assert store.get_many(["gone", "window"]) == {}
    assert not store.has_key("gone")
    assert not store.touch("gone", timeout=600)
    with pytest.raises(ValueError, match="not found"):
        store.incr("gone")
    # The next count opens a new window; it does not add to the old one.
    assert counter_add("window", 5, ttl_s=60) == 5
    assert store.add("gone", 1, timeout=60)
    assert store.get("gone") == 1
    clock(61 + 59)
    assert store.get_many(["gone", "window"]) == {"gone": 1, "window": 5}


def test_reopening_an_expired_counter_under_a_race_loses_nothing(store, clock):
    counter_add("window", 100, ttl_s=60)
    clock(61)
    _together(8, lambda n: [counter_add("window", 1, ttl_s=60) for _ in range(10)])
    assert store.get("window") == 80


@pytest.mark.parametrize("limits", ["embedded", "redis"])
def test_counting_several_counters_unread_opens_adds_and_loses_nothing(settings, limits):
    # What admission counts without a limit: one round trip, no total read back.
    _embedded(settings) if limits == "embedded" else _redis(settings)
    store = caches["limits"]
    counter_add("live", 7, ttl_s=600)
    counter_add_all([("live", 5, 600), ("new", 3, 60)])
    assert store.get_many(["live", "new"]) == {"live": 12, "new": 3}
    # Racing threads opening and adding to the same fresh counters lose no increment.
    _together(
        8, lambda n: [counter_add_all([("raced", 1, 600), ("live", 2, 600)]) for _ in range(10)]
    )
    assert store.get_many(["raced", "live"]) == {"raced": 80, "live": 12 + 160}


def test_counting_unread_opens_an_expired_counter_with_its_window(store, clock):
    counter_add("stale", 100, ttl_s=60)
    clock(61)  # expired, not yet removed: the unread add starts it over at its amount
    counter_add_all([("stale", 4, 60)])
    assert store.get("stale") == 4
    clock(61 + 61)  # and the window it opened ends with the ttl it was given
    assert store.get("stale") is None


def test_timeouts_values_and_namespaces(store, settings, clock):
    # The sign-in lock-out registry: a dict whose keys hold NUL characters.
    registry = {"username\x00alice": 1.5}
    store.set("registry", registry, timeout=None)
    assert store.get("registry") == registry
    store.set("big", 5 * 10**12, timeout=600)  # micro-USD of $5M: past 32 bits
    assert store.incr("big", -(10**12)) == 4 * 10**12
    store.set("now", 1, timeout=0)
    assert store.get("now") is None  # 0 means "expired at once", as in Django
    assert store.touch("big", timeout=10)
    clock(11)
    assert store.get("big") is None
    assert store.get("registry") == registry  # no timeout: never expires

    # Another KEY_PREFIX (another test, another deployment) sees none of it.
    other = MongoCounterCache("limit_counters", {"KEY_PREFIX": f"t-{uuid.uuid4().hex}"})
    assert other.get("registry") is None
    other.set("registry", {"mine": 1.0}, timeout=None)
    other.clear()
    assert store.get("registry") == registry
    assert store.delete("registry")
    assert store.get("registry") is None


def test_the_store_never_culls(settings):
    # MAX_ENTRIES means nothing to it: Django's database cache would cull at 10 here.
    settings.CACHES = {
        **settings.CACHES,
        "limits": {
            "BACKEND": STORE,
            "LOCATION": "limit_counters",
            "KEY_PREFIX": f"t-{uuid.uuid4().hex}",
            "OPTIONS": {"MAX_ENTRIES": 10, "CULL_FREQUENCY": 1},
        },
    }
    for n in range(40):
        caches["limits"].set(f"k{n}", n, timeout=600)
    assert caches["limits"].get_many([f"k{n}" for n in range(40)]) == {
        f"k{n}": n for n in range(40)
    }


def test_the_ttl_index_reclaims_space_where_the_server_has_one(store):
    store.set("any", 1, timeout=60)
    indexes = connection.database["limit_counters"].index_information()
    assert indexes["expires_at_ttl"]["expireAfterSeconds"] == 0


def test_every_process_shares_the_embedded_store(settings):
    """Two other processes, configured by settings.py without REDIS_URL, count into the
    same counter as this one: every total reaches everyone, nothing is lost."""
    _embedded(settings, prefix="")  # settings.py gives the embedded store no prefix
    key = f"shared-{uuid.uuid4().hex}"
    counter_add(key, 1000, ttl_s=600)
    child = (
        "import django, sys\n"
        "django.setup()\n"
        "from django.core.cache import caches\n"
        "from llmplatform.core.counter_store import counter_add\n"
        "assert caches['limits'].get(sys.argv[1]) >= 1000\n"
        "for _ in range(100):\n"
        "    counter_add(sys.argv[1], 1, ttl_s=600)\n"
        "print(type(caches['limits']).__name__)\n"
    )
    env = {
        **os.environ,
        "MONGO_DB": connection.settings_dict["NAME"],
        "LLMPLATFORM_SKIP_DOTENV": "1",
        "DJANGO_SETTINGS_MODULE": "llmplatform.settings",
    }
    env.pop("REDIS_URL", None)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", child, key],
            cwd=django_settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for _ in range(100):
        counter_add(key, 1, ttl_s=600)
    for process in children:
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err[-2000:]
        assert out.strip() == "MongoCounterCache"
    assert caches["limits"].get(key) == 1000 + 3 * 100


# ---- the outcome: other tenants' traffic changes nothing ----


def _spent_key(owner) -> ApiKey:
    """A key whose $0.01 a month is used up: its next question is refused."""
    api_key = ApiKey.objects.get(owner=owner[0])
    api_key.usd_per_month = Decimal("0.01")
    api_key.save(update_fields=["usd_per_month"])
    reservation = quota_admit(api_key=api_key, user_id="u", tokens_estimate=10, usd_estimate=0.01)
    quota_settle(reservation, run_id=uuid.uuid4().hex, tokens=10, usd=0.01)
    return api_key


def _assert_spent(api_key: ApiKey) -> None:
    [usd] = [w for w in quota_windows(api_key=api_key) if w.name == "usd_per_month"]
    assert usd.used == Decimal("0.01")
    with pytest.raises(ApplicationError) as refused:
        quota_admit(api_key=api_key, user_id="u", tokens_estimate=10, usd_estimate=0.0)
    assert refused.value.code == "budget_exceeded"


def _other_keys(owner) -> Iterator[ApiKey]:
    ApiKey.objects.bulk_create(
        ApiKey(owner=owner[0], name=f"other{n}", prefix="other", key_hash=uuid.uuid4().hex * 2)
        for n in range(OTHERS)
    )
    return ApiKey.objects.filter(name__startswith="other").iterator()


@pytest.mark.slow
@pytest.mark.parametrize("limits", ["embedded", "redis"])
def test_a_thousand_other_keys_questions_do_not_change_a_spent_budget(settings, owner, limits):
    if limits == "embedded":
        _embedded(settings)
    else:
        _redis(settings)
    spent = _spent_key(owner)
    _assert_spent(spent)
    for other in _other_keys(owner):
        # Each question moves three counters (minute, day, month) and settles once.
        reservation = quota_admit(
            api_key=other, user_id="u", tokens_estimate=10, usd_estimate=0.001
        )
        quota_settle(reservation, run_id=uuid.uuid4().hex, tokens=10, usd=0.001)
    _assert_spent(spent)


@pytest.mark.slow
@pytest.mark.parametrize("limits", ["embedded", "redis"])
def test_a_lockout_survives_a_thousand_other_failures(settings, limits):
    if limits == "embedded":
        _embedded(settings)
    else:
        _redis(settings)
    settings.LOGIN_FAILURES_PER_USERNAME = 5
    # Windows far longer than the test, however slow the machine: only eviction could
    # lift these lock-outs here.
    settings.LOGIN_LOCKOUT_SECONDS = 3600
    wrong_keys = FailureLimit(name="api-key", limit=3, window_s=3600)
    for _ in range(5):
        login_failure_record(username="alice", address="192.0.2.1")
        wrong_keys.record("192.0.2.1")
    for n in range(OTHERS):
        address = f"10.{n // 250}.{n % 250}.1"
        login_failure_record(username=f"guess{n}", address=address)
        wrong_keys.record(address)
    assert login_locked(username="alice", address="198.51.100.1")
    assert [lockout.subject for lockout in lockouts_current()] == ["alice"]
    assert wrong_keys.exceeded("192.0.2.1")


# ---- Redis: llmplatform.W001 ----


@pytest.fixture
def private_redis() -> Iterator[Callable[..., str]]:
    """Start a throw-away redis-server with the given arguments; its URL."""
    started: list[subprocess.Popen] = []

    def start(*args: str) -> str:

        port = free_port()
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        for line in process.stdout:
            if "Ready to accept connections" in line:
                break
        else:
            pytest.fail(f"redis-server {' '.join(args)} did not start")
        return f"redis://127.0.0.1:{port}/0"

    yield start
    for process in started:
        process.terminate()
        process.communicate(timeout=10)


def _limits_on(settings, url: str) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "limits": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url},
    }


def test_a_redis_that_evicts_counters_is_warned_about(settings, private_redis):
    _limits_on(settings, private_redis("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"))
    # Registered, so `manage.py check` and the start of `manage.py serve` run it.
    assert limits_redis_never_evicts in registry.get_checks()
    [warning] = limits_redis_never_evicts()
    assert warning.id == "llmplatform.W001"
    assert "allkeys-lru" in warning.msg
    assert "noeviction" in warning.hint


def test_a_redis_that_does_not_evict_or_will_not_say_is_not_warned_about(settings, private_redis):
    _limits_on(settings, private_redis("--maxmemory-policy", "noeviction"))
    assert limits_redis_never_evicts() == []
    # Managed Redis often refuses CONFIG: say nothing rather than guess.
    _limits_on(
        settings,
        private_redis("--maxmemory-policy", "volatile-lru", "--rename-command", "CONFIG", ""),
    )
    assert limits_redis_never_evicts() == []
    # Unreachable: the health check reports that; start-up goes on.
    _limits_on(settings, f"redis://127.0.0.1:{free_port()}/0")
    assert limits_redis_never_evicts() == []
    # The embedded store is not Redis.
    _embedded(settings)
    assert limits_redis_never_evicts() == []
