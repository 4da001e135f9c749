"""Chat providers by name, built lazily from Django settings and cached per process.

``available_providers()`` is what health/status report: exactly the providers this
process can call (a cloud vendor needs its API key; ``local`` needs the model installed).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from agents.providers.base import ChatProvider, ChatRequest, check_capabilities
from agents.providers.reliability import FallbackProvider, ReliableProvider, RetryPolicy
from agents.providers.vendor import VendorConfig
from llmplatform.core.config import on_config_change, provider_config
from llmplatform.core.errors import ApplicationError

logger = logging.getLogger(__name__)

DEFAULT_MODELS: dict[str, str] = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
    "google": "gemini-2.0-flash",
    "openrouter": "openai/gpt-4o-mini",
    "local": "smollm2-135m-instruct",
}

# Cloud vendors, in the order status pages list them.
CLOUD_PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "google", "openrouter")
# The settings that enable each, for error messages.
_KEY_SETTINGS = "OPENAI_API_KEY, ANTHROPIC_API_KEY, GOOGLE_API_KEY, OPENROUTER_API_KEY"

_lock = threading.Lock()


class _Built:
    """Providers built for one event loop."""

    def __init__(self) -> None:
        self.vendors: dict[str, ReliableProvider] = {}
        self.providers: dict[str, ChatProvider] = {}


# SDK clients pool connections that belong to the event loop they were opened on; a
# caller on another loop (asyncio.run per Celery task, per test) must not reuse them.
# The clients hold their loop, so a weak mapping would never let go: entries of closed
# loops are dropped whenever a new loop asks.
_by_loop: dict[int, tuple[asyncio.AbstractEventLoop, _Built]] = {}
_no_loop = _Built()


def _built() -> _Built:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _no_loop
    known = _by_loop.get(id(loop))
    if known is not None and known[0] is loop:
        return known[1]
    for key, (old_loop, _) in list(_by_loop.items()):
        if old_loop.is_closed():
            del _by_loop[key]
    built = _Built()
    _by_loop[id(loop)] = (loop, built)
    return built


def reset_registry() -> None:
    """Forget every built provider (settings changed, or a test wants a clean slate)."""
    global _no_loop
    with _lock:
        _by_loop.clear()
        _no_loop = _Built()


on_config_change(reset_registry)


def _local_available() -> bool:
    if not provider_config().local_enabled:
        return False
    from agents.providers import local

    return bool(local.is_available())


def default_provider() -> str | None:
    """DEFAULT_MODEL_PROVIDER when configured; else ``local``, else the first available one."""
    available = available_providers()
    if provider_config().default_provider in available:
        return provider_config().default_provider
    # No key for the default vendor: the offline model answers instead.
    if "local" in available:
        return "local"
    return available[0] if available else None


def default_model_for(provider: str) -> str:
    """DEFAULT_MODEL_NAME for the default provider, else that provider's usual model."""
    config = provider_config()
    if provider == config.default_provider and config.default_model:
        return config.default_model
    return DEFAULT_MODELS.get(provider, "")


def available_providers() -> list[str]:
    """Names of the providers this process can use, cloud vendors first."""
    config = provider_config()
    names = [name for name in CLOUD_PROVIDERS if config.has_key(name)]
    if _local_available():
        names.append("local")
    return names


def providers_supporting(feature: str) -> list[str]:
    """Available providers whose ``supports_<feature>`` is true ("tools", "web_search",
    "response_format"), for errors that say where to go instead."""
    return [
        name
        for name in available_providers()
        if getattr(get_chat_provider(name), f"supports_{feature}", False)
    ]


def providers_sampling(name: str) -> list[str]:
    """Available providers that honour the sampling field ``name`` (``Sampling``)."""
    return [p for p in available_providers() if name in get_chat_provider(p).sampling_fields]


def check_request_capabilities(provider: str, request: ChatRequest) -> None:
    """Refuse (ApplicationError 400 ``tools_unsupported`` / ``response_format_unsupported``
    / ``unsupported_parameter``) a request whose tools, response_format or sampling fields
    ``provider`` cannot honour, naming the providers that can. For the edges, before
    admission."""
    check_capabilities(
        get_chat_provider(provider),
        request,
        supported_by={
            "tools": providers_supporting("tools"),
            "response_format": providers_supporting("response_format"),
            **{name: providers_sampling(name) for name in request.sampling.used()},
        },
    )


def _vendor_config(name: str) -> VendorConfig:
    config = provider_config()
    vendor = config.vendors[name]
    return VendorConfig(
        api_key=vendor.api_key,
        base_url=vendor.base_url,
        connect_timeout=config.connect_timeout_s,
        read_timeout=config.read_timeout_s,
        default_model=DEFAULT_MODELS[name],
    )


def _build_openai() -> ChatProvider:
    from agents.providers.openai_provider import OpenAIProvider

    return OpenAIProvider(
        _vendor_config("openai"),
        search_model=provider_config().openai_search_model,
    )


def _build_anthropic() -> ChatProvider:
    from agents.providers.anthropic_provider import AnthropicProvider

    return AnthropicProvider(_vendor_config("anthropic"))


def _build_google() -> ChatProvider:
    from agents.providers.google_provider import GoogleProvider

    return GoogleProvider(_vendor_config("google"))


def _build_openrouter() -> ChatProvider:
    from agents.providers.openrouter_provider import OpenRouterProvider

    return OpenRouterProvider(
        _vendor_config("openrouter"),
        app_url=provider_config().openrouter_app_url,
        app_title=provider_config().openrouter_app_title,
    )


def _build_local() -> ChatProvider:
    from agents.providers.local import LocalProvider

    return LocalProvider(providers_supporting=providers_supporting)


# Vendor modules are imported on first use: a process that never calls Gemini never pays
# for importing google-genai.
_BUILDERS: dict[str, Callable[[], ChatProvider]] = {
    "openai": _build_openai,
    "anthropic": _build_anthropic,
    "google": _build_google,
    "openrouter": _build_openrouter,
    "local": _build_local,
}


def retry_policy() -> RetryPolicy:
    config = provider_config()
    return RetryPolicy(max_retries=config.max_retries, base_delay=config.retry_base_delay_s)


def fallback_chains() -> dict[str, list[str]]:
    """PROVIDER_FALLBACKS (``"openai->anthropic->google, openrouter->openai"``) by head."""
    return provider_config().fallbacks


def _unknown_provider(name: str, available: list[str]) -> ApplicationError:
    listed = (
        ", ".join(available)
        if available
        else f"none. Set a provider key ({_KEY_SETTINGS}) or LOCAL_MODEL_ENABLED=true"
    )
    return ApplicationError(
        f"Unknown or unconfigured provider {name!r}. Available providers: {listed}.",
        code="unknown_provider",
        status=400,
        extra={"available": available},
    )


def _vendor(name: str) -> ReliableProvider:
    """The retrying provider for ``name`` (caller holds the lock)."""
    vendors = _built().vendors
    if name not in vendors:
        vendors[name] = ReliableProvider(_BUILDERS[name](), policy=retry_policy())
    return vendors[name]


def get_chat_provider(name: str) -> ChatProvider:
    """The provider called ``name``, with retries and its fallback chain.

    Raises ApplicationError(code="unknown_provider", status=400) when ``name`` is not
    an available provider.
    """
    available = available_providers()
    if name not in available:
        raise _unknown_provider(name, available)
    with _lock:
        providers = _built().providers
        provider = providers.get(name)
        if provider is not None:
            return provider
        chain_names = fallback_chains().get(name, [name])
        chain: list[ChatProvider] = []
        for member in chain_names:
            if member in available and member not in [p.name for p in chain]:
                chain.append(_vendor(member))
            elif member not in available:
                logger.warning("fallback provider %s is not configured; skipping it", member)
        provider = chain[0] if len(chain) == 1 else FallbackProvider(chain)
        providers[name] = provider
        return provider
