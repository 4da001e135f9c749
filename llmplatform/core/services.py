"""Writes for API access: creating and revoking API keys."""

from __future__ import annotations

import hashlib
import secrets
import threading
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from llmplatform.core.models import ApiKey

KEY_PREFIX = "llmp_"

# Keys this process resolved in the last API_KEY_CACHE_S (llmplatform.core.auth): key hash
# -> (the active key or None, when the entry expires). Revoking here forgets the key at
# once in this process; other processes refuse it within API_KEY_CACHE_S.
RESOLVED_KEYS: dict[str, tuple[ApiKey | None, float]] = {}
RESOLVED_KEYS_LOCK = threading.Lock()


def api_key_hash(raw_key: str) -> str:
    # Keys are 256-bit random tokens, so a fast unsalted hash cannot be brute-forced.
    return hashlib.sha256(raw_key.encode()).hexdigest()


# The limits a key may set (llmplatform.core.quotas); unset ones follow the settings.
KEY_LIMIT_FIELDS = (
    "requests_per_minute",
    "tokens_per_day",
    "usd_per_month",
    "user_requests_per_minute",
    "user_tokens_per_day",
    "storage_mb",
)


def api_key_create(
    *, owner: AbstractBaseUser, name: str, limits: dict[str, Any] | None = None
) -> tuple[ApiKey, str]:
    """Create a key for ``owner`` with optional ``limits`` (KEY_LIMIT_FIELDS); returns it
    and the raw key (shown once). Raises nothing."""
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        owner=owner,
        name=name,
        prefix=raw_key[: len(KEY_PREFIX) + 6],
        key_hash=api_key_hash(raw_key),
        **{field: value for field, value in (limits or {}).items() if field in KEY_LIMIT_FIELDS},
    )
    return api_key, raw_key


def api_key_create_for_username(
    *, username: str, name: str, limits: dict[str, Any] | None = None
) -> tuple[ApiKey, str, bool]:
    """Create a key for the user ``username``, creating that user if missing. Raises nothing."""
    user_model = get_user_model()
    owner, created = user_model.objects.get_or_create(username=username)
    if created:
        owner.set_unusable_password()
        owner.save(update_fields=["password"])
    api_key, raw_key = api_key_create(owner=owner, name=name, limits=limits)
    return api_key, raw_key, created


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke ``api_key`` (idempotent). Raises nothing."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    with RESOLVED_KEYS_LOCK:
        RESOLVED_KEYS.pop(api_key.key_hash, None)
    return api_key


def api_key_set_limits(*, api_key: ApiKey, limits: dict[str, Any]) -> ApiKey:
    """Change ``api_key``'s limits (KEY_LIMIT_FIELDS; None: the setting's default). Every
    process applies them within API_KEY_CACHE_S. Raises nothing."""
    fields = [field for field in limits if field in KEY_LIMIT_FIELDS]
    for field in fields:
        setattr(api_key, field, limits[field])
    api_key.save(update_fields=fields)
    with RESOLVED_KEYS_LOCK:
        RESOLVED_KEYS.pop(api_key.key_hash, None)
    return api_key
