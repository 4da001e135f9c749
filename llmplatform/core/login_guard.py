"""Brute-force protection for the chat UI and admin sign-in forms.

``LOGIN_FAILURES_PER_USERNAME`` wrong passwords for one user name, or
``LOGIN_FAILURES_PER_ADDRESS`` from one client address, lock that name or address out
for ``LOGIN_LOCKOUT_SECONDS``: while locked, even the right password is refused, with a
message that says so. The counters are the API key limiter's (``FailureLimit``, in the
``limits`` cache: shared by every process, never evicted). Operators unlock at
/admin/security/lockouts/.
(django-axes was the alternative; its releases do not support Django 6.1.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import caches

from llmplatform.core.client_address import client_address_from_request
from llmplatform.core.counter_store import LIMITS_CACHE
from llmplatform.core.failure_limiter import FailureLimit

logger = logging.getLogger("llmplatform.security")

# For the admin's list of current lock-outs only; the counters themselves decide.
_REGISTRY_KEY = "failures:login-lockouts"


def _by_username() -> FailureLimit:
    return FailureLimit(
        name="login-username",
        limit=settings.LOGIN_FAILURES_PER_USERNAME,
        window_s=settings.LOGIN_LOCKOUT_SECONDS,
    )


def _by_address() -> FailureLimit:
    return FailureLimit(
        name="login-address",
        limit=settings.LOGIN_FAILURES_PER_ADDRESS,
        window_s=settings.LOGIN_LOCKOUT_SECONDS,
    )


def lockout_message() -> str:
    minutes = max(1, round(settings.LOGIN_LOCKOUT_SECONDS / 60))
    return (
        "Too many failed sign-in attempts for this user name or from your network. "
        f"Sign-in is locked for up to {minutes} minutes; an administrator can unlock it "
        "sooner."
    )


@dataclass(frozen=True)
class Lockout:
    kind: str  # "username" or "address"
    subject: str
    until: float  # epoch seconds (at the latest)


def login_locked(*, username: str, address: str) -> bool:
    return _by_username().exceeded(username) or _by_address().exceeded(address)


def _register(kind: str, subject: str) -> None:
    cache = caches[LIMITS_CACHE]
    now = time.time()
    registry = {
        key: until for key, until in (cache.get(_REGISTRY_KEY) or {}).items() if until > now
    }
    registry[f"{kind}\x00{subject}"] = now + settings.LOGIN_LOCKOUT_SECONDS
    cache.set(_REGISTRY_KEY, registry, timeout=settings.LOGIN_LOCKOUT_SECONDS)


def login_failure_record(*, username: str, address: str) -> None:
    """Count one failed sign-in for ``username`` and ``address``. Raises nothing."""
    for kind, limit, subject in (
        ("username", _by_username(), username),
        ("address", _by_address(), address),
    ):
        if not subject:
            continue
        if limit.record(subject) == limit.limit:
            logger.warning("Sign-in locked for %s %r", kind, subject, extra={"lockout": kind})
            _register(kind, subject)


def login_success_record(*, username: str) -> None:
    """A correct password resets that user name's failures (not the address's)."""
    _by_username().clear(username)


def lockouts_current() -> list[Lockout]:
    now = time.time()
    registry = caches[LIMITS_CACHE].get(_REGISTRY_KEY) or {}
    lockouts = []
    for key, until in sorted(registry.items(), key=lambda item: item[1]):
        kind, _, subject = key.partition("\x00")
        limit = _by_username() if kind == "username" else _by_address()
        if until > now and limit.exceeded(subject):
            lockouts.append(Lockout(kind=kind, subject=subject, until=until))
    return lockouts


def lockout_clear(*, subject: str) -> bool:
    """Unlock ``subject`` as a user name and as an address; True if it was locked."""
    was_locked = _by_username().exceeded(subject) or _by_address().exceeded(subject)
    _by_username().clear(subject)
    _by_address().clear(subject)
    cache = caches[LIMITS_CACHE]
    registry = cache.get(_REGISTRY_KEY) or {}
    for kind in ("username", "address"):
        registry.pop(f"{kind}\x00{subject}", None)
    cache.set(_REGISTRY_KEY, registry, timeout=settings.LOGIN_LOCKOUT_SECONDS)
    return was_locked


class LockoutMixin:
    """For ``AuthenticationForm`` subclasses: refuse locked names/addresses, count failures."""

    request: object
    cleaned_data: dict

    def clean(self) -> dict:
        username = (self.cleaned_data.get("username") or "").strip()
        address = client_address_from_request(self.request) if self.request else "unknown"
        if login_locked(username=username, address=address):
            raise forms.ValidationError(lockout_message(), code="locked_out")
        try:
            cleaned = super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            login_failure_record(username=username, address=address)
            raise
        login_success_record(username=username)
        return cleaned


class LockoutAuthenticationForm(LockoutMixin, AuthenticationForm):
    """The chat UI's sign-in form."""


class LockoutAdminAuthenticationForm(LockoutMixin, AdminAuthenticationForm):
    """The admin's sign-in form."""
