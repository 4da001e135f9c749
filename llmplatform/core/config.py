"""Settings read once into typed objects, for code below the edges.

``llmplatform/env.py`` reads the environment into Django settings; this module turns the
settings the query run and the providers need into frozen dataclasses, built on first use
and rebuilt only when a test overrides a setting. Code deep in the engine asks for
``provider_config()`` or ``run_config()`` instead of ``getattr(settings, X, default)``:
every default is defined once, in settings.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass(frozen=True)
class RunBudget:
    """Every time limit of one query run, derived from the single QUERY_TIMEOUT_S.

    In order: the engine stops itself at ``engine_deadline_s`` (and stores a timeout);
    Celery's soft limit comes later, its hard limit (the worker process is killed) later
    still, and the JSON endpoint waits past both, so it always sees the outcome. A run
    heartbeats every ``heartbeat_s``; the sweeper fails a running query whose heartbeat is
    older than ``stale_after_s`` (its worker died), looking every ``sweep_every_s``. The
    broker redelivers an unacknowledged run only after ``visibility_timeout_s``, when the
    first delivery is certainly dead.
    """

    timeout_s: float

    @classmethod
    def for_timeout(cls, timeout_s: float) -> RunBudget:
        return cls(timeout_s=float(timeout_s))

    @property
    def grace_s(self) -> float:
        return max(5.0, self.timeout_s * 0.05)

    @property
    def engine_deadline_s(self) -> float:
        return self.timeout_s

    @property
    def celery_soft_limit_s(self) -> int:
        return int(self.engine_deadline_s + self.grace_s) + 1

    @property
    def celery_hard_limit_s(self) -> int:
        return int(self.celery_soft_limit_s + self.grace_s) + 1

    @property
    def json_wait_s(self) -> float:
        return self.celery_hard_limit_s + self.grace_s

    @property
    def heartbeat_s(self) -> float:
        return min(5.0, max(0.5, self.timeout_s / 20))

    @property
    def stale_after_s(self) -> float:
        return self.heartbeat_s * 4

    @property
    def sweep_every_s(self) -> float:
        return self.heartbeat_s

    @property
    def visibility_timeout_s(self) -> int:
        return int(self.celery_hard_limit_s + self.grace_s) + 1


@dataclass(frozen=True)
class RunConfig:
    budget: RunBudget
    # How often a running query checks for a cancel request, whatever it is doing.
    cancel_poll_s: float
    summary_interval: int
    default_temperature: float
    default_max_tokens: int
    sse_heartbeat_s: float


@dataclass(frozen=True)
class VendorSettings:
    api_key: str
    base_url: str | None


@dataclass(frozen=True)
class ProviderConfig:
    vendors: dict[str, VendorSettings]
    local_enabled: bool
    connect_timeout_s: float
    read_timeout_s: float
    max_retries: int
    retry_base_delay_s: float
    # Chain head -> [head, fallback, ...], from PROVIDER_FALLBACKS.
    fallbacks: dict[str, list[str]]
    openai_search_model: str
    openrouter_app_url: str
    openrouter_app_title: str
    embedding_provider: str
    default_provider: str
    default_model: str
    # Operator-chosen model names (MODEL_ALIASES): alias -> provider/model.
    model_aliases: dict[str, str]

    def has_key(self, vendor: str) -> bool:
        settings_of = self.vendors.get(vendor)
        return bool(settings_of and settings_of.api_key)


def parse_fallbacks(raw: str) -> dict[str, list[str]]:
    """``"openai->anthropic->google, openrouter->openai"`` by chain head."""
    chains: dict[str, list[str]] = {}
    for spec in raw.split(","):
        names = [part.strip() for part in spec.split("->") if part.strip()]
        if len(names) > 1:
            chains[names[0]] = names
    return chains


def parse_model_aliases(raw: str) -> dict[str, str]:
    """``"fast=openai/gpt-4o-mini, smart=anthropic/claude-sonnet-4-5"`` by alias. An entry
    without ``=`` or whose target is not provider/model is a configuration error."""
    aliases: dict[str, str] = {}
    for spec in raw.split(","):
        if not spec.strip():
            continue
        alias, _, target = (part.strip() for part in spec.partition("="))
        if not alias or "/" not in target.strip("/"):
            raise ValueError(
                f"MODEL_ALIASES entry {spec.strip()!r} must be alias=provider/model "
                "(e.g. fast=openai/gpt-4o-mini)."
            )
        aliases[alias] = target
    return aliases


def _build_run_config() -> RunConfig:
    return RunConfig(
        budget=RunBudget.for_timeout(settings.QUERY_TIMEOUT_S),
        cancel_poll_s=settings.QUERY_CANCEL_POLL_S,
        summary_interval=settings.MEMORY_SUMMARY_INTERVAL,
        default_temperature=settings.DEFAULT_TEMPERATURE,
        default_max_tokens=settings.DEFAULT_MAX_TOKENS,
        sse_heartbeat_s=settings.SSE_HEARTBEAT_SECONDS,
    )


def _build_provider_config() -> ProviderConfig:
    return ProviderConfig(
        vendors={
            "openai": VendorSettings(settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL),
            "anthropic": VendorSettings(settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL),
            "google": VendorSettings(settings.GOOGLE_API_KEY, settings.GOOGLE_BASE_URL),
            "openrouter": VendorSettings(settings.OPENROUTER_API_KEY, settings.OPENROUTER_BASE_URL),
        },
        local_enabled=settings.LOCAL_MODEL_ENABLED,
        connect_timeout_s=settings.PROVIDER_CONNECT_TIMEOUT,
        read_timeout_s=settings.PROVIDER_READ_TIMEOUT,
        max_retries=settings.PROVIDER_MAX_RETRIES,
        retry_base_delay_s=settings.PROVIDER_RETRY_BASE_DELAY,
        fallbacks=parse_fallbacks(settings.PROVIDER_FALLBACKS),
        openai_search_model=settings.OPENAI_SEARCH_MODEL,
        openrouter_app_url=settings.OPENROUTER_APP_URL,
        openrouter_app_title=settings.OPENROUTER_APP_TITLE,
        embedding_provider=settings.EMBEDDING_PROVIDER,
        default_provider=settings.DEFAULT_MODEL_PROVIDER,
        default_model=settings.DEFAULT_MODEL_NAME,
        model_aliases=parse_model_aliases(settings.MODEL_ALIASES),
    )


_lock = threading.Lock()
_cache: dict[str, Any] = {}
# Called after a rebuild, so caches built from the old values (providers, the
# embedder) start again.
_listeners: list[Callable[[], None]] = []


def _cached[T](name: str, build: Callable[[], T]) -> T:
    with _lock:
        if name not in _cache:
            _cache[name] = build()
        return _cache[name]


def run_config() -> RunConfig:
    return _cached("run", _build_run_config)


def provider_config() -> ProviderConfig:
    return _cached("providers", _build_provider_config)


def on_config_change(listener: Callable[[], None]) -> Callable[[], None]:
    """Register ``listener`` to run when settings change (tests); returns it."""
    _listeners.append(listener)
    return listener


def reset_config() -> None:
    with _lock:
        _cache.clear()
    for listener in _listeners:
        listener()


@receiver(setting_changed)
def _reset_on_setting_changed(**kwargs: Any) -> None:
    reset_config()
