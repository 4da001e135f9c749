"""Limits and budgets: questions per minute, tokens per day, USD per month.

Whose limits and what they are (an API key's, with per-end-user limits inside it, or a
signed-in account's; its own fields, else the ``DEFAULT_*`` settings) is
``llmplatform.core.quota_limits``. An account's counters are keyed ``acct:<user pk>``.

No value means no limit; usage is counted either way.

Every question is admitted by ``quota_admit`` before anything is stored or any provider is
called, whatever the transport, so a refusal (429 ``rate_limited`` or ``budget_exceeded``,
``retry_after`` in the details) never costs a model call. Counters live in the ``limits``
cache (``llmplatform.core.counter_store``), which never evicts: Redis when ``REDIS_URL``
is set, the project's database in the embedded default; both add atomically and are
shared by every process.

Budgets are reserved, then settled: admission adds the question's reservation (the most
it can use: everything its prompts will send plus the most its answers may be, see
``queries.admission``) to the period's counter, and is refused only when the counter was
already at the budget. Concurrent questions therefore overshoot a budget by at most one
question's reservation. ``quota_settle`` replaces the reservation with what the run
really used, once; a run that never settles (its worker died) is settled by the sweeper
through the same call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import caches

from llmplatform.core.counter_store import LIMITS_CACHE, counter_add, counter_add_all
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import ApiKey
from llmplatform.core.quota_limits import PayerLimits

# Cost is counted in millionths of a dollar: cache counters are integers.
MICRO_USD = 1_000_000


def quota_now() -> datetime:
    """The clock every window is read from (one place, so tests can hold it still)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Window:
    """One limit in force: how much of it is used, and when it starts over."""

    name: str  # requests_per_minute | tokens_per_day | usd_per_month
    # "key"; "user" for the end-user limit inside the key; "account" for a signed-in
    # account's own limit (no key)
    scope: str
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
    return counter_add(counter, amount, ttl_s=ttl_s)


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


_WHOSE = {"key": "this API key", "user": "this end user (user_id)", "account": "this account"}
_WHERE = {"key": "API keys", "user": "API keys", "account": "Account limits"}


class QuotaRefusal(ApplicationError):
    """A 429 of ``quota_admit``, with the ``RateLimit-*`` headers of the questions-per-
    minute limit in force (the README documents those headers as the per-minute limit,
    whichever window refused; empty when no such limit applies)."""

    def __init__(self, check: _Check, now: datetime, rate_limit: dict[str, str]) -> None:
        retry_after = _seconds_until(check.ends, now)
        whose = _WHOSE[check.scope]
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
                f"{retry_after} s; an operator can raise it in admin under "
                f"{_WHERE[check.scope]}."
            )
            code = "budget_exceeded"
        super().__init__(
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
        self.rate_limit = rate_limit


def _checks(
    *, payer: PayerLimits, user_id: str, tokens: int, micro_usd: int, periods: _Periods
) -> list[_Check]:
    """Every counter a question moves. The payer's are always counted (usage is shown even
    without a limit); an end user's only where a limit for end users is in force."""
    limits = payer.limits
    who = payer.counter_id
    usd_limit = None if limits.usd_per_month is None else int(limits.usd_per_month * MICRO_USD)
    checks = [
        _Check(
            "requests_per_minute",
            payer.scope,
            _counter("rpm", who, periods.minute),
            limits.requests_per_minute,
            1,
            periods.minute_ends,
        ),
        _Check(
            "tokens_per_day",
            payer.scope,
            _counter("tok", who, periods.day),
            limits.tokens_per_day,
            tokens,
            periods.day_ends,
        ),
        _Check(
            "usd_per_month",
            payer.scope,
            _counter("usd", who, periods.month),
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
                _counter("rpm", who, periods.minute, user_id),
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
                _counter("tok", who, periods.day, user_id),
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
    # runs, so concurrent questions overshoot by at most one question's reservation.
    return total - check.amount >= check.limit


def _rate_limit(checks: list[_Check], now: datetime, *, refused: _Check | None) -> dict[str, str]:
    """``RateLimit-*`` of the tightest questions-per-minute limit among ``checks``, read
    from the counters (``refused``: the one that just refused, so nothing remains)."""
    limited = [c for c in checks if c.counts_requests and c.limit is not None]
    if not limited:
        return {}
    counts = caches[LIMITS_CACHE].get_many([c.counter for c in limited])

    def remaining(check: _Check) -> int:
        if check is refused:
            return 0
        return max(check.limit - max(int(counts.get(check.counter) or 0), 0), 0)

    tightest = min(limited, key=remaining)
    return {
        "RateLimit-Limit": str(tightest.limit),
        "RateLimit-Remaining": str(remaining(tightest)),
        "RateLimit-Reset": str(_seconds_until(tightest.ends, now)),
    }


def quota_admit(
    *,
    api_key: ApiKey | None,
    user_id: str,
    tokens_estimate: int,
    usd_estimate: float | None,
    now: datetime | None = None,
    account: Any = None,
) -> dict[str, Any] | None:
    """Count one question against ``api_key``'s limits or, without a key, against the
    signed-in ``account``'s (a Django user: the chat UI), reserving its estimated usage.

    Returns the reservation to store with the query and hand to ``quota_settle`` (None
    with neither a key nor an account). Raises QuotaRefusal (an ApplicationError: 429
    ``rate_limited`` or ``budget_exceeded``) and counts nothing when over a limit.
    """
    payer = PayerLimits.of(api_key=api_key, account=account)
    if payer is None:
        return None
    now = now or quota_now()
    checks = _checks(
        payer=payer,
        user_id=user_id,
        tokens=tokens_estimate,
        micro_usd=round((usd_estimate or 0.0) * MICRO_USD),
        periods=_Periods.at(now),
    )
    added: list[_Check] = []
    for check in [c for c in checks if c.limit is not None]:
        total = _add(check.counter, check.amount, ttl_s=_ttl(check.ends, now))
        added.append(check)
        if _over(check, total):
            for done in added:
                _add(done.counter, -done.amount, ttl_s=_ttl(done.ends, now))
            raise QuotaRefusal(check, now, _rate_limit(checks, now, refused=check))
    # What has no limit is only counted, once everything limited has admitted the
    # question: one round trip for them all, and no total to read back.
    counter_add_all([(c.counter, c.amount, _ttl(c.ends, now)) for c in checks if c.limit is None])
    return {
        # Who was admitted: what a later charge caused by this question (its summary)
        # is counted against.
        **(
            {"api_key_id": str(api_key.pk)}
            if api_key is not None
            else {"account_id": str(account.pk)}
        ),
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
    if not caches[LIMITS_CACHE].add(f"quota:settled:{run_id}", 1, timeout=32 * 24 * 3600):
        return False
    used_micro_usd = round((usd or 0.0) * MICRO_USD)
    corrections = []
    for budget in reservation["budgets"]:
        used = used_micro_usd if budget["usd"] else tokens
        ends = datetime.fromisoformat(budget["ends"])
        corrections.append(
            (budget["counter"], used - int(budget["reserved"]), max(_ttl(ends, now), 60))
        )
    counter_add_all(corrections)
    return True


def quota_windows(
    *,
    api_key: ApiKey | None = None,
    user_id: str | None = None,
    now: datetime | None = None,
    account: Any = None,
) -> list[Window]:
    """The windows of ``api_key`` (and of its end user where ``user_id`` is given and
    limited) or, without a key, of the signed-in ``account``, with what is used
    (reservations of running questions included). Empty with neither."""
    payer = PayerLimits.of(api_key=api_key, account=account)
    if payer is None:
        return []
    now = now or quota_now()
    checks = [
        check
        for check in _checks(
            payer=payer, user_id=user_id or "", tokens=0, micro_usd=0, periods=_Periods.at(now)
        )
        if check.scope != "user" or user_id is not None
    ]
    counts = caches[LIMITS_CACHE].get_many([check.counter for check in checks])
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


def rate_limit_headers(
    *, api_key: ApiKey | None, user_id: str | None = None, account: Any = None
) -> dict[str, str]:
    """``RateLimit-Limit/Remaining/Reset`` for the tightest questions-per-minute limit in
    force (none when there is no such limit). Raises nothing."""
    payer = PayerLimits.of(api_key=api_key, account=account)
    if payer is None:
        return {}
    limits = payer.limits
    if limits.requests_per_minute is None and limits.user_requests_per_minute is None:
        return {}  # nothing to report, and no counter to read
    now = quota_now()
    checks = [
        check
        for check in _checks(
            payer=payer, user_id=user_id or "", tokens=0, micro_usd=0, periods=_Periods.at(now)
        )
        if check.scope != "user" or user_id is not None
    ]
    return _rate_limit(checks, now, refused=None)


def refusal_headers(error: ApplicationError) -> dict[str, str]:
    """``Retry-After`` for any error with a ``retry_after``, plus, for a refusal of
    ``quota_admit``, ``RateLimit-*`` of the questions-per-minute limit; empty otherwise.

    A budget refusal's ``RateLimit-*`` still describe the per-minute limit (a client
    reads them as that), not the budget: ``Retry-After`` says when the budget starts over.
    """
    headers: dict[str, str] = {}
    if "retry_after" in error.extra:
        headers["Retry-After"] = str(error.extra["retry_after"])
    if isinstance(error, QuotaRefusal):
        headers.update(error.rate_limit)
    return headers
