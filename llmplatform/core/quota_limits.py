"""Whose limits a paid call is counted against, and what they are.

A payer is an API key or a signed-in account asking without one. Its limits are its own
fields (the key's, or the account's ``AccountLimits`` row) or, where blank, the
``DEFAULT_KEY_*`` / ``DEFAULT_USER_*`` / ``DEFAULT_ACCOUNT_*`` settings; no value means no
limit. ``llmplatform.core.quotas`` admits and settles against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from llmplatform.core.models import AccountLimits, ApiKey


@dataclass(frozen=True)
class KeyLimits:
    requests_per_minute: int | None
    tokens_per_day: int | None
    usd_per_month: Decimal | None
    user_requests_per_minute: int | None
    user_tokens_per_day: int | None

    @classmethod
    def of(cls, api_key: ApiKey) -> KeyLimits:
        return cls(
            requests_per_minute=_pick(api_key.requests_per_minute, settings.DEFAULT_KEY_RPM),
            tokens_per_day=_pick(api_key.tokens_per_day, settings.DEFAULT_KEY_TOKENS_PER_DAY),
            usd_per_month=_pick(api_key.usd_per_month, _usd(settings.DEFAULT_KEY_USD_PER_MONTH)),
            user_requests_per_minute=_pick(
                api_key.user_requests_per_minute, settings.DEFAULT_USER_RPM
            ),
            user_tokens_per_day=_pick(
                api_key.user_tokens_per_day, settings.DEFAULT_USER_TOKENS_PER_DAY
            ),
        )

    @classmethod
    def of_account(cls, account: Any) -> KeyLimits:
        """A signed-in account's limits (no end users inside it)."""
        own = AccountLimits.objects.filter(user_id=account.pk).first()
        return cls(
            requests_per_minute=_pick(
                own and own.requests_per_minute, settings.DEFAULT_ACCOUNT_RPM
            ),
            tokens_per_day=_pick(
                own and own.tokens_per_day, settings.DEFAULT_ACCOUNT_TOKENS_PER_DAY
            ),
            usd_per_month=_pick(
                own and own.usd_per_month, _usd(settings.DEFAULT_ACCOUNT_USD_PER_MONTH)
            ),
            user_requests_per_minute=None,
            user_tokens_per_day=None,
        )


def _pick(own: Any, default: Any) -> Any:
    return own if own is not None else default


def _usd(setting: float | None) -> Decimal | None:
    return None if setting is None else Decimal(str(setting))


@dataclass(frozen=True)
class PayerLimits:
    """Whose counters a paid call moves (an API key's or an account's), and their limits."""

    counter_id: str
    scope: str  # "key" | "account"
    limits: KeyLimits

    @classmethod
    def of(cls, *, api_key: ApiKey | None, account: Any) -> PayerLimits | None:
        if api_key is not None:
            return cls(str(api_key.pk), "key", KeyLimits.of(api_key))
        if account is not None and account.pk is not None:
            return cls(f"acct:{account.pk}", "account", KeyLimits.of_account(account))
        return None
