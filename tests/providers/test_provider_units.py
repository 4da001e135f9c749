"""Provider-layer pieces without a vendor: pricing, retry policy, collect, registry."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents.providers.base import (
    ChatChunk,
    ChatMessage,
    ChatProvider,
    ChatRequest,
    Usage,
    collect_stream,
)
from agents.providers.pricing import cost_for, price_table
from agents.providers.provider_errors import ProviderError, parse_retry_after, status_error
from agents.providers.registry import available_providers, get_chat_provider
from agents.providers.reliability import ReliableProvider, RetryPolicy
from llmplatform.core.errors import ApplicationError
from tests.providers.conftest import run

REQUEST = ChatRequest(model="m", messages=(ChatMessage("user", "hi"),))


# -- pricing -------------------------------------------------------------------------------


def test_price_table_is_versioned_and_dated() -> None:
    table = price_table()
    assert table.version >= 1
    assert table.taken_on.startswith("2026-11-")
    for provider in ("openai", "anthropic", "google", "openrouter"):
        assert table.models[provider], provider


def test_cost_by_hand_for_gpt_4o_mini() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cached_tokens=400_000)
    # 600k uncached at 0.15 + 400k cached at 0.075 + 1M output at 0.60
    assert cost_for("openai", "gpt-4o-mini", usage) == pytest.approx(0.09 + 0.03 + 0.6)


def test_dated_snapshots_and_aliases_price_as_their_model() -> None:
    usage = Usage(input_tokens=1000, output_tokens=1000)
    base = cost_for("openai", "gpt-4o-mini", usage)
    assert cost_for("openai", "gpt-4o-mini-2024-07-18", usage) == base
    assert cost_for("anthropic", "claude-3-5-haiku-20241022", usage) == cost_for(
        "anthropic", "claude-3-5-haiku", usage
    )
    assert cost_for("anthropic", "claude-3-5-haiku-latest", usage) is not None
    assert cost_for("google", "gemini-2.0-flash-001", usage) == cost_for(
        "google", "gemini-2.0-flash", usage
    )


def test_unknown_models_cost_none() -> None:
    usage = Usage(input_tokens=10, output_tokens=10)
    assert cost_for("openai", "llama3:8b", usage) is None
    assert cost_for("nobody", "gpt-4o", usage) is None
    # A model of another vendor's table is not priced by name alone.
    assert cost_for("anthropic", "gpt-4o", usage) is None


def test_search_models_bill_cache_reads_as_input() -> None:
    usage = Usage(input_tokens=100, output_tokens=0, cached_tokens=100)
    assert cost_for("openai", "gpt-4o-search-preview", usage) == pytest.approx(100 * 2.5 / 1e6)


def test_per_request_fee_is_added() -> None:
    assert cost_for("openrouter", "perplexity/sonar", Usage()) == pytest.approx(0.005)


# -- errors --------------------------------------------------------------------------------


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({}) is None


def test_status_error_classification() -> None:
    common = {"provider": "openai", "key_setting": "OPENAI_API_KEY"}
    assert status_error(status=400, **common).retryable is False
    assert status_error(status=404, **common).retryable is False
    assert status_error(status=503, **common).retryable is True
    assert status_error(status=429, retry_after=500, **common).retry_after == 60.0
    auth = status_error(status=403, **common)
    assert (auth.code, auth.status, auth.retryable) == ("provider_auth_failed", 502, False)


def test_vendor_messages_are_redacted() -> None:
    error = status_error(
        provider="openai",
        key_setting="OPENAI_API_KEY",
        status=400,
        vendor_message="Incorrect API key provided: sk-proj-abcdefghijklmnop1234.",
    )
    assert "sk-proj-abcdefghijklmnop1234" not in error.message
    assert "HTTP 400" in error.message


# -- retry policy --------------------------------------------------------------------------


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    policy = RetryPolicy(max_retries=5, base_delay=0.5, max_delay=4.0)
    rng = random.Random(1)
    plain = ProviderError("x", provider="p", retryable=True)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0)]:
        delays = [policy.delay_before_retry(retry=retry, error=plain, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole range, not a fixed value
    told = ProviderError("x", provider="p", retryable=True, retry_after=2.5)
    assert policy.delay_before_retry(retry=1, error=told, rng=rng) == 2.5


class ScriptedProvider(ChatProvider):
    """Streams scripted outcomes, one list per attempt."""

    name = "scripted"

    def __init__(self, attempts: list[list[ChatChunk | ProviderError]]) -> None:
        self.attempts = attempts
        self.calls = 0

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        script = self.attempts[self.calls]
        self.calls += 1
        for step in script:
            if isinstance(step, ProviderError):
                raise step
            yield step


def _reliable(inner: ChatProvider, retries: int = 2) -> tuple[ReliableProvider, list[float]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return ReliableProvider(
        inner, policy=RetryPolicy(max_retries=retries, base_delay=0.5), sleep=sleep
    ), waits


def test_non_retryable_errors_are_not_retried() -> None:
    inner = ScriptedProvider([[ProviderError("bad", provider="s", retryable=False)], []])
    provider, waits = _reliable(inner)
    with pytest.raises(ProviderError):
        run(collect_stream(provider, REQUEST))
    assert inner.calls == 1
    assert waits == []


def test_stream_without_finish_chunk_is_an_error_not_a_short_success() -> None:
    inner = ScriptedProvider([[ChatChunk(text="partial")]])
    with pytest.raises(ProviderError) as caught:
        run(collect_stream(inner, REQUEST))
    assert caught.value.retryable is True
    provider, _ = _reliable(ScriptedProvider([[ChatChunk(text="partial")]]), retries=0)

    async def consume() -> list[ChatChunk]:
        return [c async for c in provider.stream(REQUEST)]

    with pytest.raises(ProviderError):
        run(consume())


def test_collect_prices_nothing_but_keeps_what_it_was_given() -> None:
    final = ChatChunk(finish_reason="stop", usage=Usage(input_tokens=3), model="gpt-4o")
    inner = ScriptedProvider([[ChatChunk(text="a"), ChatChunk(text="b"), final]])
    provider, _ = _reliable(inner)
    result = run(collect_stream(provider, REQUEST))
    assert result.text == "ab"
    assert result.model == "gpt-4o"
    # Priced once, by the reliability layer, under the provider's name ("scripted"):
    # an unknown vendor, so unknown cost.
    assert result.usage.cost_usd is None
    assert result.usage.input_tokens == 3


# -- registry ------------------------------------------------------------------------------


def test_available_providers_are_exactly_the_configured_ones(provider_settings: Any) -> None:
    assert available_providers() == ["openai", "anthropic", "google", "openrouter"]
    provider_settings.ANTHROPIC_API_KEY = ""
    provider_settings.OPENROUTER_API_KEY = ""
    assert available_providers() == ["openai", "google"]
    provider_settings.OPENAI_API_KEY = ""
    provider_settings.GOOGLE_API_KEY = ""
    assert available_providers() == []


def test_local_is_listed_only_when_enabled_and_installed(provider_settings: Any) -> None:
    from agents.providers import local

    assert local.is_available()  # the model packages are installed by `make test`
    assert "local" not in available_providers()  # LOCAL_MODEL_ENABLED is False
    provider_settings.LOCAL_MODEL_ENABLED = True
    assert available_providers()[-1] == "local"


def test_unknown_provider_is_a_400_listing_the_available_ones(provider_settings: Any) -> None:
    provider_settings.GOOGLE_API_KEY = ""
    with pytest.raises(ApplicationError) as caught:
        get_chat_provider("mistral")
    error = caught.value
    assert (error.code, error.status) == ("unknown_provider", 400)
    assert error.extra["available"] == ["openai", "anthropic", "openrouter"]
    assert "openai, anthropic, openrouter" in error.message
    with pytest.raises(ApplicationError):
        get_chat_provider("google")  # known vendor, but no key configured


def test_registry_caches_and_rebuilds_on_setting_change(provider_settings: Any) -> None:
    first = get_chat_provider("openai")
    assert get_chat_provider("openai") is first
    provider_settings.PROVIDER_MAX_RETRIES = 5
    second = get_chat_provider("openai")
    assert second is not first
    assert isinstance(second, ReliableProvider)
    assert second.policy.max_retries == 5


def test_official_openai_uses_max_completion_tokens() -> None:
    from agents.providers.openai_provider import OpenAIProvider
    from agents.providers.vendor import VendorConfig

    config = VendorConfig("sk-x", None, 1.0, 1.0, "gpt-4o-mini")
    params = OpenAIProvider(config).request_params(
        ChatRequest(model="", messages=(ChatMessage("user", "hi"),), max_tokens=7)
    )
    assert params["max_completion_tokens"] == 7
    assert "max_tokens" not in params


# -- the SerpAPI fake (used by the product search tests) -----------------------------------


def test_serpapi_fake_answers_google_shopping(fake_serpapi: Any) -> None:
    import json
    import urllib.request
    from urllib.parse import urlencode

    query = urlencode({"engine": "google_shopping", "q": "running shoes", "api_key": "k", "num": 3})
    with urllib.request.urlopen(f"{fake_serpapi.base_url}/search.json?{query}", timeout=5) as r:
        body = json.load(r)
    results = body["shopping_results"]
    assert len(results) == 3
    first = results[0]
    for field in ("title", "price", "extracted_price", "link", "product_link", "thumbnail"):
        assert first[field], field
    assert isinstance(first["extracted_price"], float)
    assert first["price"] == f"${first['extracted_price']:.2f}"
    assert {"source", "rating", "reviews"} <= first.keys()
    assert fake_serpapi.requests[-1].query["q"] == "running shoes"


def test_providers_of_closed_event_loops_are_released(provider_settings: Any) -> None:
    # Celery runs each task in a fresh loop (asyncio.run); the registry must not keep one
    # set of SDK clients per loop forever.
    import asyncio

    from agents.providers import registry

    async def lookup() -> ChatProvider:
        return get_chat_provider("openai")

    for _ in range(10):
        asyncio.run(lookup())
    assert len(registry._by_loop) <= 1


def test_no_provider_at_all_says_how_to_configure_one(provider_settings: Any) -> None:
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "OPENROUTER_API_KEY"):
        setattr(provider_settings, key, "")
    with pytest.raises(ApplicationError) as caught:
        get_chat_provider("openai")
    assert caught.value.extra["available"] == []
    assert "OPENAI_API_KEY" in caught.value.message
    assert "LOCAL_MODEL_ENABLED" in caught.value.message


def test_unparseable_retry_after_is_ignored_not_a_crash() -> None:
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "2"}) == 2.0


class ClosingProvider(ChatProvider):
    """A vendor whose stream records whether it was closed (its HTTP response released)."""

    name = "closing"

    def __init__(self) -> None:
        self.closed = False
        self.started = asyncio.Event()

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        try:
            yield ChatChunk(text="first")
            self.started.set()
            await asyncio.sleep(3600)  # a vendor that stalls after one token
            yield ChatChunk(text="never")
        finally:
            self.closed = True


def test_a_stream_left_early_closes_the_vendor_stream() -> None:
    inner = ClosingProvider()
    provider, _ = _reliable(inner)

    async def take_one() -> None:
        stream = provider.stream(REQUEST)
        async for _chunk in stream:
            break
        await stream.aclose()

    run(take_one())
    assert inner.closed


def test_a_cancelled_writer_closes_the_vendor_stream(monkeypatch) -> None:
    from agents import writer
    from agents.ports import Scope
    from tests.engine_state import run_state

    inner = ClosingProvider()
    provider, _ = _reliable(inner)
    monkeypatch.setattr(writer, "get_chat_provider", lambda name: provider)
    emitted: list[dict] = []

    async def emit(event: dict) -> None:
        emitted.append(event)

    state = run_state(
        scope=Scope(owner_id="o", user_id="u", session_id="s", query_id="q"),
        emit=emit,
        provider="closing",
    )

    async def cancel_mid_answer() -> None:
        task = asyncio.create_task(writer.run(state, None))
        await inner.started.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    run(cancel_mid_answer())
    assert inner.closed
    assert state.response == "first"  # what the client already saw is kept
    assert emitted == [{"type": "chunk", "content": "first"}]
