"""Per-API-key limits and budgets: questions per minute, tokens per day, USD per month.

A key's limits are its own fields or, where blank, the ``DEFAULT_KEY_*`` settings; inside
a key, each end user (``user_id``) can have a tighter questions-per-minute and
tokens-per-day limit (``user_*`` fields, ``DEFAULT_USER_*``). No value means no limit.

Every question is admitted by ``quota_admit`` before anything is stored or any provider is
called, whatever the transport, so a refusal (429 ``rate_limited`` or ``budget_exceeded``,
``retry_after`` in the details) never costs a model call. Counters live in the default
cache: Redis when ``REDIS_URL`` is set (shared by every process; ``INCRBY`` is atomic),
the process-local cache in the embedded default (one process).

Budgets are reserved, then settled: admission adds the question's estimated tokens and
cost to the period's counter, and is refused only when the counter was already at the
budget, so concurrent streams overshoot by at most one question's reservation.
``quota_settle`` replaces the estimate with what the run really used, once; a run that
never settles (its worker died) is settled by the sweeper through the same call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import caches

from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import ApiKey

# Cost is counted in millionths of a dollar: cache counters are integers.
MICRO_USD = 1_000_000


def quota_now() -> datetime:
    """The clock every window is read from (one place, so tests can hold it still)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Window:
    """One limit in force: how much of it is used, and when it starts over."""

    name: str  # requests_per_minute | tokens_per_day | usd_per_month
    scope: str  # "key", or "user" for the end-user limit inside the key
    limit: int | Decimal | None
    used: int | Decimal
    resets_at: datetime
    resets_in_s: int

    @property
    def remaining(self) -> int | Decimal | None:
        if self.limit is None:
            return None
        return max(self.limit - self.used, 0)

    def as_dict(self) -> dict[str, Any]:
        as_number = float if self.name == "usd_per_month" else int
        return {
            "limit": None if self.limit is None else as_number(self.limit),
            "used": as_number(self.used),
            "remaining": None if self.remaining is None else as_number(self.remaining),
            "resets_at": self.resets_at.isoformat(),
            "resets_in_s": self.resets_in_s,
        }


@dataclass(frozen=True)
class KeyLimits:
    requests_per_minute: int | None
    tokens_per_day: int | None
    usd_per_month: Decimal | None
    user_requests_per_minute: int | None
    user_tokens_per_day: int | None

    @classmethod
    def of(cls, api_key: ApiKey) -> KeyLimits:
        def pick(own: Any, default: Any) -> Any:
            return own if own is not None else default

        default_usd = settings.DEFAULT_KEY_USD_PER_MONTH
        return cls(
            requests_per_minute=pick(api_key.requests_per_minute, settings.DEFAULT_KEY_RPM),
            tokens_per_day=pick(api_key.tokens_per_day, settings.DEFAULT_KEY_TOKENS_PER_DAY),
            usd_per_month=pick(
                api_key.usd_per_month,
                None if default_usd is None else Decimal(str(default_usd)),
            ),
            user_requests_per_minute=pick(
                api_key.user_requests_per_minute, settings.DEFAULT_USER_RPM
            ),
            user_tokens_per_day=pick(
                api_key.user_tokens_per_day, settings.DEFAULT_USER_TOKENS_PER_DAY
            ),
        )


@dataclass(frozen=True)
class _Periods:
    """The windows ``now`` falls in, named so that a counter's key names its window."""

    minute: str
    day: str
    month: str
    minute_ends: datetime
    day_ends: datetime
    month_ends: datetime

    @classmethod
    def at(cls, now: datetime) -> _Periods:
        minute_start = now.replace(second=0, microsecond=0)
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        month_start = day_start.replace(day=1)
        next_month = (month_start + timedelta(days=32)).replace(day=1)
        return cls(
            minute=minute_start.strftime("%Y%m%d%H%M"),
            day=day_start.strftime("%Y%m%d"),
            month=month_start.strftime("%Y%m"),
            minute_ends=minute_start + timedelta(minutes=1),
            day_ends=day_start + timedelta(days=1),
            month_ends=next_month,
        )


def _user_part(user_id: str) -> str:
    # user ids are client input: hashed into a safe, bounded cache key.
    return hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _counter(kind: str, key_id: str, period: str, user_id: str | None = None) -> str:
    who = key_id if user_id is None else f"{key_id}:u:{_user_part(user_id)}"
    return f"quota:{kind}:{who}:{period}"


def _add(counter: str, amount: int, *, ttl_s: int) -> int:
    """Add ``amount`` (may be negative) to ``counter``; the new total. Atomic."""
    cache = caches["default"]
    cache.add(counter, 0, timeout=ttl_s)
    try:
        return int(cache.incr(counter, amount))
    except ValueError:  # expired between add and incr: this amount opens the window
        cache.add(counter, amount, timeout=ttl_s)
        return amount


def _ttl(ends: datetime, now: datetime) -> int:
    # Kept a minute past its window, so a late settle still finds its counter.
    return int((ends - now).total_seconds()) + 60


@dataclass(frozen=True)
class _Check:
    window: str
    scope: str
    counter: str
    limit: int | None  # in counter units (micro-USD for cost); None: counted, not limited
    amount: int
    ends: datetime

    @property
    def counts_requests(self) -> bool:
        return self.window == "requests_per_minute"

    def shown_limit(self) -> int | float | None:
        if self.limit is None or self.window != "usd_per_month":
            return self.limit
        return self.limit / MICRO_USD


def _seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds, rounded up and at least 1: what Retry-After and Reset say."""
    return max(int((moment - now).total_seconds() + 0.999), 1)


def _refusal(check: _Check, now: datetime) -> ApplicationError:
    retry_after = _seconds_until(check.ends, now)
    whose = "this API key" if check.scope == "key" else "this end user (user_id)"
    if check.counts_requests:
        message = (
            f"Too many questions: {whose} may ask {check.limit} per minute. "
            f"Retry after {retry_after} s."
        )
        code = "rate_limited"
    else:
        budget = (
            f"${check.shown_limit():.2f} a month"
            if check.window == "usd_per_month"
            else f"{check.limit} tokens a day"
        )
        message = (
            f"The budget of {whose} ({budget}) is used up. It starts over in "
            f"{retry_after} s; an operator can raise it in admin under API keys."
        )
        code = "budget_exceeded"
    return ApplicationError(
        message,
        code=code,
        status=429,
        extra={
            "retry_after": retry_after,
            "window": check.window,
            "scope": check.scope,
            "limit": check.shown_limit(),
            "remaining": 0,
        },
    )


def _checks(
    *, api_key: ApiKey, user_id: str, tokens: int, micro_usd: int, periods: _Periods
) -> list[_Check]:
    """Every counter a question moves. The key's are always counted (usage is shown even
    without a limit); an end user's only where a limit for end users is in force."""
    limits = KeyLimits.of(api_key)
    key_id = str(api_key.pk)
    usd_limit = None if limits.usd_per_month is None else int(limits.usd_per_month * MICRO_USD)
    checks = [
        _Check(
            "requests_per_minute",
            "key",
            _counter("rpm", key_id, periods.minute),
            limits.requests_per_minute,
            1,
            periods.minute_ends,
        ),
        _Check(
            "tokens_per_day",
            "key",
            _counter("tok", key_id, periods.day),
            limits.tokens_per_day,
            tokens,
            periods.day_ends,
        ),
        _Check(
            "usd_per_month",
            "key",
            _counter("usd", key_id, periods.month),
            usd_limit,
            micro_usd,
            periods.month_ends,
        ),
    ]
    if limits.user_requests_per_minute is not None:
        checks.append(
            _Check(
                "requests_per_minute",
                "user",
                _counter("rpm", key_id, periods.minute, user_id),
                limits.user_requests_per_minute,
                1,
                periods.minute_ends,
            )
        )
    if limits.user_tokens_per_day is not None:
        checks.append(
            _Check(
                "tokens_per_day",
                "user",
                _counter("tok", key_id, periods.day, user_id),
                limits.user_tokens_per_day,
                tokens,
                periods.day_ends,
            )
        )
    return checks


def _over(check: _Check, total: int) -> bool:
    if check.limit is None:
        return False
    if check.counts_requests:
        return total > check.limit  # this question must fit
    # A budget refuses only once it is used up: a question larger than what is left still
    # runs, so the overshoot is at most one question's usage.
    return total - check.amount >= check.limit


def quota_admit(
    *,
    api_key: ApiKey | None,
    user_id: str,
    tokens_estimate: int,
    usd_estimate: float | None,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """Count one question against ``api_key``'s limits, reserving its estimated usage.

    Returns the reservation to store with the query and hand to ``quota_settle`` (None
    without a key: the browser chat UI signs in, it has no key). Raises ApplicationError
    (429 ``rate_limited`` or ``budget_exceeded``) and counts nothing when over a limit.
    """
    if api_key is None:
        return None
    now = now or quota_now()
    checks = _checks(
        api_key=api_key,
        user_id=user_id,
        tokens=tokens_estimate,
        micro_usd=round((usd_estimate or 0.0) * MICRO_USD),
        periods=_Periods.at(now),
    )
    added: list[_Check] = []
    for check in checks:
        total = _add(check.counter, check.amount, ttl_s=_ttl(check.ends, now))
        added.append(check)
        if _over(check, total):
            for done in added:
                _add(done.counter, -done.amount, ttl_s=_ttl(done.ends, now))
            raise _refusal(check, now)
    return {
        "budgets": [
            {
                "counter": c.counter,
                "reserved": c.amount,
                "ends": c.ends.isoformat(),
                "usd": c.window == "usd_per_month",
            }
            for c in checks
            if not c.counts_requests
        ],
    }


def quota_settle(
    reservation: dict[str, Any] | None, *, run_id: str, tokens: int, usd: float | None
) -> bool:
    """Replace a reservation's estimates with what the run used; once per ``run_id``.

    An unpriced model's cost (``usd`` None) counts as zero. Returns whether it settled
    now (False: nothing reserved, or already settled). Raises nothing.
    """
    if not reservation or not reservation.get("budgets"):
        return False
    now = quota_now()
    cache = caches["default"]
    if not cache.add(f"quota:settled:{run_id}", 1, timeout=32 * 24 * 3600):
        return False
    used_micro_usd = round((usd or 0.0) * MICRO_USD)
    for budget in reservation["budgets"]:
        used = used_micro_usd if budget["usd"] else tokens
        ends = datetime.fromisoformat(budget["ends"])
        _add(budget["counter"], used - int(budget["reserved"]), ttl_s=max(_ttl(ends, now), 60))
    return True


def quota_windows(
    *, api_key: ApiKey, user_id: str | None = None, now: datetime | None = None
) -> list[Window]:
    """The key's windows, and the end user's where ``user_id`` is given and limited, with
    what is used (reservations of running questions included)."""
    now = now or quota_now()
    checks = [
        check
        for check in _checks(
            api_key=api_key, user_id=user_id or "", tokens=0, micro_usd=0, periods=_Periods.at(now)
        )
        if check.scope == "key" or user_id is not None
    ]
    counts = caches["default"].get_many([check.counter for check in checks])
    windows = []
    for check in checks:
        used = max(int(counts.get(check.counter) or 0), 0)
        limit = check.limit
        if check.window == "usd_per_month":
            used = Decimal(used) / MICRO_USD
            limit = None if limit is None else Decimal(limit) / MICRO_USD
        windows.append(
            Window(
                name=check.window,
                scope=check.scope,
                limit=limit,
                used=used,
                resets_at=check.ends,
                resets_in_s=_seconds_until(check.ends, now),
            )
        )
    return windows


def rate_limit_headers(*, api_key: ApiKey | None, user_id: str | None = None) -> dict[str, str]:
    """``RateLimit-Limit/Remaining/Reset`` for the tightest questions-per-minute limit in
    force (none when the key has no such limit). Raises nothing."""
    if api_key is None:
        return {}
    limits = KeyLimits.of(api_key)
    if limits.requests_per_minute is None and limits.user_requests_per_minute is None:
        return {}  # nothing to report, and no counter to read
    now = quota_now()
    limited = [
        window
        for window in quota_windows(api_key=api_key, user_id=user_id, now=now)
        if window.name == "requests_per_minute" and window.limit is not None
    ]
    if not limited:
        return {}
    tightest = min(limited, key=lambda window: window.remaining)
    return {
        "RateLimit-Limit": str(tightest.limit),
        "RateLimit-Remaining": str(tightest.remaining),
        "RateLimit-Reset": str(tightest.resets_in_s),
    }


def refusal_headers(error: ApplicationError) -> dict[str, str]:
    """``Retry-After`` for any error with a ``retry_after``, plus ``RateLimit-*`` for a
    refusal of ``quota_admit``; empty otherwise."""
    headers: dict[str, str] = {}
    if "retry_after" in error.extra:
        headers["Retry-After"] = str(error.extra["retry_after"])
    if "window" in error.extra and error.extra.get("limit") is not None:
        headers["RateLimit-Limit"] = f"{error.extra['limit']:g}"
        headers["RateLimit-Remaining"] = "0"
        headers["RateLimit-Reset"] = str(error.extra["retry_after"])
    return headers
