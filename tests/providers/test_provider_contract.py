"""The contract every cloud vendor provider meets, each through its real SDK against its
fake server on 127.0.0.1 (tests/fakes): complete, stream, images, citations, usage and
cost, and every fault case.

Over 500 lines on purpose: each case runs for every vendor from one parametrised table,
which is the point of a contract test; split per vendor, the vendors could drift apart."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from typing import Any

import pytest

from agents.providers.base import ChatChunk, ChatMessage, ChatRequest, ImageInput, Usage
from agents.providers.pricing import PRICES_FILE
from agents.providers.provider_errors import ProviderError
from agents.providers.registry import DEFAULT_MODELS, get_chat_provider
from agents.providers.reliability import FallbackProvider, ReliableProvider
from tests.fakes.server import FakeVendorServer, Reply, echo_reply_text
from tests.providers.conftest import SECRET_KEYS, VENDORS, FakeVendors, run

pytestmark = pytest.mark.usefixtures("provider_settings")

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))
PNG_B64 = base64.b64encode(PNG).decode()

# The price-table entry each vendor's default model must be billed at.
PRICED_AS = {
    "openai": ("openai", "gpt-4o-mini"),
    "anthropic": ("anthropic", "claude-haiku-4-5"),
    "google": ("google", "gemini-2.0-flash"),
    "openrouter": ("openrouter", "openai/gpt-4o-mini"),
}


def ask(text: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest(model="", messages=(ChatMessage("user", text),), **kwargs)


def expected_usage(vendor: str, reply: Reply) -> Usage:
    """What our Usage must say, given what the fake put on the wire in each vendor's terms."""
    if vendor == "anthropic":  # cache reads are reported apart from input_tokens
        input_tokens = reply.input_tokens + reply.cached_tokens
    else:
        input_tokens = reply.input_tokens
    output = reply.output_tokens
    if vendor == "google":  # thoughts are reported apart from candidates
        output += reply.reasoning_tokens
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output,
        cached_tokens=reply.cached_tokens,
        reasoning_tokens=reply.reasoning_tokens,
    )


def expected_cost(vendor: str, usage: Usage) -> float:
    table = json.loads(PRICES_FILE.read_text())
    provider, model = PRICED_AS[vendor]
    price = table["models"][provider][model]
    uncached = usage.input_tokens - usage.cached_tokens
    return (
        uncached * price["input"]
        + usage.cached_tokens * price["cached_input"]
        + usage.output_tokens * price["output"]
    ) / 1_000_000


def record_sleeps(provider: Any) -> list[float]:
    """Replace the retry waits of ``provider`` (and its fallbacks) by a recorder."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    members = provider.chain if isinstance(provider, FallbackProvider) else [provider]
    for member in members:
        assert isinstance(member, ReliableProvider)
        member.sleep = sleep
    return waits


async def collect_chunks(provider: Any, request: ChatRequest) -> list[ChatChunk]:
    return [chunk async for chunk in provider.stream(request)]


async def call(provider: Any, request: ChatRequest, mode: str) -> object:
    """``complete`` or a fully consumed ``stream``, as the test's mode says."""
    if mode == "complete":
        return await provider.complete(request)
    return await collect_chunks(provider, request)


@pytest.fixture(params=VENDORS)
def vendor(request: pytest.FixtureRequest, fakes: FakeVendors) -> tuple[str, FakeVendorServer]:
    return request.param, fakes[request.param]


# -- complete and stream -------------------------------------------------------------------


def test_complete_returns_text_finish_usage_and_cost(vendor: tuple[str, FakeVendorServer]) -> None:
    name, server = vendor
    server.cached_tokens = 2
    server.reasoning_tokens = 1

    result = run(get_chat_provider(name).complete(ask("what is the capital of France")))

    assert result.provider == name
    assert result.text == echo_reply_text("what is the capital of France")
    assert result.finish_reason == "stop"
    assert result.model == (server.chat_requests[-1].body or {}).get("model", DEFAULT_MODELS[name])
    assert len(server.chat_requests) == 1
    reply = server.replies[-1]
    usage = expected_usage(name, reply)
    assert (result.usage.input_tokens, result.usage.output_tokens) == (
        usage.input_tokens,
        usage.output_tokens,
    )
    assert result.usage.cached_tokens == 2
    assert result.usage.reasoning_tokens == 1
    assert result.usage.cost_usd == pytest.approx(expected_cost(name, result.usage), rel=1e-6)
    assert result.usage.cost_usd > 0
    assert result.timings.total_ms > 0


def test_stream_yields_chunks_in_order_then_a_final_chunk(
    vendor: tuple[str, FakeVendorServer],
) -> None:
    name, server = vendor
    server.chunk_count = 4
    server.cached_tokens = 3

    chunks = run(collect_chunks(get_chat_provider(name), ask("tell me a story about owls")))

    reply = server.replies[-1]
    text_chunks = [c.text for c in chunks if c.text]
    assert text_chunks == reply.chunks  # every piece, in the order sent
    assert len(text_chunks) == 4
    assert "".join(text_chunks) == echo_reply_text("tell me a story about owls")
    *body, last = chunks
    assert all(c.finish_reason is None and c.usage is None for c in body)
    assert last.finish_reason == "stop"
    assert last.usage is not None
    want = expected_usage(name, reply)
    assert last.usage.input_tokens == want.input_tokens
    assert last.usage.output_tokens == want.output_tokens
    assert last.usage.cached_tokens == 3
    assert last.usage.cost_usd == pytest.approx(expected_cost(name, last.usage), rel=1e-6)
    assert (server.chat_requests[-1].body or {}).get("stream", True) is True


def test_complete_through_collect_measures_time_to_first_token(
    vendor: tuple[str, FakeVendorServer],
) -> None:
    from agents.providers.base import collect_stream

    name, _ = vendor
    result = run(collect_stream(get_chat_provider(name), ask("hello")))
    assert result.text == echo_reply_text("hello")
    assert result.timings.time_to_first_token_ms is not None
    assert 0 < result.timings.time_to_first_token_ms <= result.timings.total_ms
    assert result.usage.cost_usd is not None


def test_system_prompt_and_history_in_vendor_shape(vendor: tuple[str, FakeVendorServer]) -> None:
    name, server = vendor
    request = ChatRequest(
        model="",
        system="Be brief.",
        temperature=0.2,
        max_tokens=50,
        messages=(
            ChatMessage("user", "first question"),
            ChatMessage("assistant", "first answer"),
            ChatMessage("user", "second question"),
        ),
    )
    result = run(get_chat_provider(name).complete(request))
    assert result.text == echo_reply_text("second question")
    body = server.chat_requests[-1].body
    if name in ("openai", "openrouter"):
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
        assert body["messages"][0]["content"] == "Be brief."
        assert body["temperature"] == 0.2
        # A custom base URL (the fake) means an OpenAI-compatible server: max_tokens.
        assert body["max_tokens"] == 50
    elif name == "anthropic":
        assert body["system"] == "Be brief."
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        assert body["temperature"] == 0.2
        assert body["max_tokens"] == 50
    else:
        assert body["systemInstruction"]["parts"][0]["text"] == "Be brief."
        assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
        assert body["generationConfig"]["temperature"] == 0.2
        assert body["generationConfig"]["maxOutputTokens"] == 50


def test_anthropic_gets_a_default_max_tokens(fakes: FakeVendors) -> None:
    run(get_chat_provider("anthropic").complete(ask("hi")))
    assert fakes["anthropic"].chat_requests[-1].body["max_tokens"] == 1024


# -- images --------------------------------------------------------------------------------


def test_images_are_sent_in_the_vendor_wire_shape(vendor: tuple[str, FakeVendorServer]) -> None:
    name, server = vendor
    request = ChatRequest(
        model="",
        messages=(
            ChatMessage("user", "what is in this picture", images=(ImageInput(PNG, "image/png"),)),
        ),
    )
    result = run(get_chat_provider(name).complete(request))
    assert result.text == echo_reply_text("what is in this picture")
    body = server.chat_requests[-1].body
    if name in ("openai", "openrouter"):
        parts = body["messages"][-1]["content"]
        assert {"type": "text", "text": "what is in this picture"} in parts
        assert {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG_B64}"},
        } in parts
    elif name == "anthropic":
        blocks = body["messages"][-1]["content"]
        assert blocks[0] == {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
        }
        assert blocks[1] == {"type": "text", "text": "what is in this picture"}
    else:
        parts = body["contents"][-1]["parts"]
        inline = parts[0]["inlineData"]
        assert inline["data"] == PNG_B64
        assert inline.get("mimeType", inline.get("mime_type")) == "image/png"
        assert parts[1] == {"text": "what is in this picture"}


# -- citations -----------------------------------------------------------------------------


def _assert_search_request(name: str, body: dict[str, Any]) -> None:
    if name == "openai":
        assert body["model"] == "gpt-4o-mini-search-preview"
        assert "temperature" not in body  # the real API rejects it for search models
    elif name == "openrouter":
        assert body["model"] == "openai/gpt-4o-mini:online"
    elif name == "anthropic":
        assert body["tools"][0]["type"].startswith("web_search")
    else:
        assert body["tools"] == [{"googleSearch": {}}]


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_web_search_answers_carry_citations(
    vendor: tuple[str, FakeVendorServer], mode: str
) -> None:
    name, server = vendor
    server.citations = [("https://news.example/1", "One"), ("https://wiki.example/2", "Two")]
    request = ask("latest news", web_search=True, temperature=0.5)
    provider = get_chat_provider(name)
    if mode == "complete":
        citations = run(provider.complete(request)).citations
    else:
        chunks = run(collect_chunks(provider, request))
        assert chunks[-1].finish_reason == "stop"
        citations = [c for chunk in chunks for c in chunk.citations]
    assert [c.url for c in citations] == ["https://news.example/1", "https://wiki.example/2"]
    if name != "openrouter" or mode == "complete":
        assert [c.title for c in citations] == ["One", "Two"]
    _assert_search_request(name, server.chat_requests[-1].body)


def test_no_citations_without_web_search(vendor: tuple[str, FakeVendorServer]) -> None:
    name, _ = vendor
    assert run(get_chat_provider(name).complete(ask("plain question"))).citations == []


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_openrouter_perplexity_top_level_citations(fakes: FakeVendors, mode: str) -> None:
    fakes["openrouter"].citations = [("https://p.example/a", ""), ("https://p.example/b", "")]
    request = ChatRequest(model="perplexity/sonar", messages=(ChatMessage("user", "q"),))
    provider = get_chat_provider("openrouter")
    if mode == "complete":
        result = run(provider.complete(request))
        urls = [c.url for c in result.citations]
        assert result.usage.cost_usd is not None  # perplexity/sonar is in the price table
    else:
        chunks = run(collect_chunks(provider, request))
        urls = [c.url for chunk in chunks for c in chunk.citations]
    assert urls == ["https://p.example/a", "https://p.example/b"]
    # A perplexity model searches by itself: no :online suffix is added.
    assert fakes["openrouter"].chat_requests[-1].body["model"] == "perplexity/sonar"


def test_openrouter_sends_attribution_headers(fakes: FakeVendors) -> None:
    run(get_chat_provider("openrouter").complete(ask("hi")))
    sent = fakes["openrouter"].chat_requests[-1]
    assert sent.header("HTTP-Referer") == "https://chat.example.test"
    assert sent.header("X-Title") == "LLM Platform Tests"
    assert sent.header("Authorization") == f"Bearer {SECRET_KEYS['openrouter']}"


def test_unknown_model_costs_none_not_zero(fakes: FakeVendors) -> None:
    request = ChatRequest(model="my-finetune-7b", messages=(ChatMessage("user", "hi"),))
    result = run(get_chat_provider("openai").complete(request))
    assert result.usage.input_tokens > 0
    assert result.usage.cost_usd is None


# -- faults --------------------------------------------------------------------------------


def _assert_no_secret(error: ProviderError) -> None:
    rendered = json.dumps(error.as_envelope()) + str(error) + error.message
    for key in SECRET_KEYS.values():
        assert key not in rendered
        assert key[-12:] not in rendered


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_429_is_retried_honouring_retry_after(
    vendor: tuple[str, FakeVendorServer], mode: str
) -> None:
    name, server = vendor
    server.fail_next("rate_limit", retry_after=7)
    provider = get_chat_provider(name)
    waits = record_sleeps(provider)
    if mode == "complete":
        text = run(provider.complete(ask("retry me"))).text
    else:
        text = "".join(c.text for c in run(collect_chunks(provider, ask("retry me"))))
    assert text == echo_reply_text("retry me")
    assert waits == [7.0]
    assert len(server.chat_requests) == 2


def test_rate_limit_error_when_retries_run_out(vendor: tuple[str, FakeVendorServer]) -> None:
    name, server = vendor
    server.fail_next("rate_limit", times=3, retry_after=1)
    provider = get_chat_provider(name)
    waits = record_sleeps(provider)
    with pytest.raises(ProviderError) as caught:
        run(provider.complete(ask("hi")))
    assert caught.value.code == "provider_rate_limited"
    assert caught.value.status == 429
    assert caught.value.retry_after == 1.0
    assert waits == [1.0, 1.0]
    assert len(server.chat_requests) == 3


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_500_after_retries_is_a_clear_retryable_error(
    vendor: tuple[str, FakeVendorServer], mode: str
) -> None:
    name, server = vendor
    server.fail_next("server_error", times=3)
    provider = get_chat_provider(name)
    waits = record_sleeps(provider)
    with pytest.raises(ProviderError) as caught:
        run(call(provider, ask("hi"), mode))
    error = caught.value
    assert error.provider == name
    assert error.retryable is True
    assert error.code == "provider_error"
    assert error.status == 502
    assert error.upstream_status == 500
    assert name in error.message
    assert "server error" in error.message
    _assert_no_secret(error)
    assert len(server.chat_requests) == 3  # first try + PROVIDER_MAX_RETRIES
    assert len(waits) == 2
    assert all(0 <= w <= 0.001 * 2**i for i, w in enumerate(waits))  # jittered backoff


def test_500_then_success_is_retried(vendor: tuple[str, FakeVendorServer]) -> None:
    name, server = vendor
    server.fail_next("server_error", times=2)
    provider = get_chat_provider(name)
    record_sleeps(provider)
    assert run(provider.complete(ask("third time lucky"))).text == echo_reply_text(
        "third time lucky"
    )
    assert len(server.chat_requests) == 3


def test_auth_failure_names_the_setting_and_is_not_retried(
    vendor: tuple[str, FakeVendorServer],
) -> None:
    name, server = vendor
    server.fail_next("auth", times=3)
    provider = get_chat_provider(name)
    record_sleeps(provider)
    with pytest.raises(ProviderError) as caught:
        run(provider.complete(ask("hi")))
    error = caught.value
    assert error.code == "provider_auth_failed"
    assert error.status == 502
    assert error.retryable is False
    assert f"{name.upper()}_API_KEY" in error.message
    _assert_no_secret(error)
    assert len(server.chat_requests) == 1


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_hang_times_out_within_the_configured_timeout(
    vendor: tuple[str, FakeVendorServer], mode: str, provider_settings: Any
) -> None:
    name, server = vendor
    provider_settings.PROVIDER_READ_TIMEOUT = 0.3
    provider_settings.PROVIDER_MAX_RETRIES = 0
    server.fail_next("hang")
    provider = get_chat_provider(name)
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        run(call(provider, ask("hi"), mode))
    assert time.monotonic() - started < 5.0  # loose: the fake would hang for 30 s
    assert caught.value.code == "provider_timeout"
    assert caught.value.status == 504
    assert caught.value.retryable is True


def test_stream_cut_after_first_chunk_is_an_error_and_not_retried(
    vendor: tuple[str, FakeVendorServer],
) -> None:
    name, server = vendor
    server.chunk_count = 4
    server.fail_next("cut", after_chunks=1)
    provider = get_chat_provider(name)
    record_sleeps(provider)
    seen: list[ChatChunk] = []

    async def consume() -> None:
        async for chunk in provider.stream(ask("a long answer please")):
            seen.append(chunk)

    with pytest.raises(ProviderError) as caught:
        run(consume())
    assert caught.value.retryable is True
    assert [c.text for c in seen] == [server.replies[-1].chunks[0]]  # got one, then the error
    assert all(c.finish_reason is None for c in seen)
    # Once a token was out, a retry would splice two answers: exactly one request.
    assert len(server.chat_requests) == 1


def test_stream_cut_before_first_chunk_is_retried(vendor: tuple[str, FakeVendorServer]) -> None:
    name, server = vendor
    server.fail_next("cut", after_chunks=0)
    provider = get_chat_provider(name)
    record_sleeps(provider)
    chunks = run(collect_chunks(provider, ask("again")))
    assert "".join(c.text for c in chunks) == echo_reply_text("again")
    assert chunks[-1].finish_reason == "stop"
    assert len(server.chat_requests) == 2


def test_stream_ending_cleanly_before_the_finish_event_is_an_error(
    vendor: tuple[str, FakeVendorServer],
) -> None:
    name, server = vendor
    server.chunk_count = 3
    server.fail_next("end_early", after_chunks=2)
    provider = get_chat_provider(name)
    record_sleeps(provider)
    seen: list[str] = []

    async def consume() -> None:
        async for chunk in provider.stream(ask("an answer that stops short")):
            seen.append(chunk.text)

    with pytest.raises(ProviderError) as caught:
        run(consume())
    assert "ended before the answer was finished" in caught.value.message
    assert seen == server.replies[-1].chunks[:2]
    assert len(server.chat_requests) == 1


def test_complete_cut_mid_body_is_an_error(vendor: tuple[str, FakeVendorServer]) -> None:
    name, server = vendor
    server.fail_next("cut", times=3)
    provider = get_chat_provider(name)
    record_sleeps(provider)
    with pytest.raises(ProviderError) as caught:
        run(provider.complete(ask("hi")))
    assert caught.value.retryable is True
    _assert_no_secret(caught.value)
    assert len(server.chat_requests) == 3


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_malformed_json_is_an_error(vendor: tuple[str, FakeVendorServer], mode: str) -> None:
    name, server = vendor
    server.fail_next("malformed", times=3)
    provider = get_chat_provider(name)
    record_sleeps(provider)
    with pytest.raises(ProviderError) as caught:
        run(call(provider, ask("hi"), mode))
    assert caught.value.retryable is True
    assert "not valid JSON" in caught.value.message


# -- fallback ------------------------------------------------------------------------------


def test_fallback_switches_before_the_first_token(
    fakes: FakeVendors, provider_settings: Any
) -> None:
    provider_settings.PROVIDER_FALLBACKS = "openai->anthropic"
    fakes["openai"].fail_next("server_error", times=3)
    provider = get_chat_provider("openai")
    record_sleeps(provider)
    chunks = run(collect_chunks(provider, ask("who answers")))
    assert "".join(c.text for c in chunks) == echo_reply_text("who answers")
    assert chunks[-1].model == DEFAULT_MODELS["anthropic"]
    assert len(fakes["openai"].chat_requests) == 3
    assert fakes["anthropic"].chat_requests[-1].body["model"] == DEFAULT_MODELS["anthropic"]


def test_fallback_complete_reports_the_provider_that_answered(
    fakes: FakeVendors, provider_settings: Any
) -> None:
    provider_settings.PROVIDER_FALLBACKS = "openai->google"
    fakes["openai"].fail_next("auth")
    result = run(get_chat_provider("openai").complete(ask("hi")))
    assert result.provider == "google"
    assert result.text == echo_reply_text("hi")


def test_no_fallback_after_the_first_token(fakes: FakeVendors, provider_settings: Any) -> None:
    provider_settings.PROVIDER_FALLBACKS = "openai->anthropic"
    fakes["openai"].fail_next("cut", after_chunks=1)
    provider = get_chat_provider("openai")
    record_sleeps(provider)
    seen: list[str] = []

    async def consume() -> None:
        async for chunk in provider.stream(ask("partial")):
            seen.append(chunk.text)

    with pytest.raises(ProviderError):
        run(consume())
    assert len(seen) == 1
    assert fakes["anthropic"].chat_requests == []


def test_fallback_chain_all_failing_lists_every_error(
    fakes: FakeVendors, provider_settings: Any
) -> None:
    provider_settings.PROVIDER_FALLBACKS = "openai->anthropic"
    provider_settings.PROVIDER_MAX_RETRIES = 0
    fakes["openai"].fail_next("server_error")
    fakes["anthropic"].fail_next("auth")
    with pytest.raises(ProviderError) as caught:
        run(get_chat_provider("openai").complete(ask("hi")))
    assert "openai:" in caught.value.message
    assert "anthropic:" in caught.value.message
    assert caught.value.provider == "openai->anthropic"


def test_with_fallbacks_the_primary_still_answers_with_the_requested_model(
    fakes: FakeVendors, provider_settings: Any
) -> None:
    provider_settings.PROVIDER_FALLBACKS = "openai->anthropic"
    request = dataclasses.replace(ask("which model"), model="gpt-4.1")
    run(collect_chunks(get_chat_provider("openai"), request))
    assert fakes["openai"].chat_requests[-1].body["model"] == "gpt-4.1"
    assert fakes["anthropic"].chat_requests == []


def test_a_chain_that_failed_is_retryable_if_any_member_failed_retryably(
    fakes: FakeVendors, provider_settings: Any
) -> None:
    provider_settings.PROVIDER_FALLBACKS = "openai->anthropic"
    provider_settings.PROVIDER_MAX_RETRIES = 0

    async def ask_the_chain() -> None:
        # Looked up inside the loop: SDK clients belong to the loop that opened them.
        await get_chat_provider("openai").complete(ask("hi"))

    fakes["openai"].fail_next("server_error")  # retryable: the vendor may recover
    fakes["anthropic"].fail_next("auth")  # not retryable
    with pytest.raises(ProviderError) as caught:
        run(ask_the_chain())
    assert caught.value.retryable is True
    fakes["openai"].fail_next("auth")
    fakes["anthropic"].fail_next("auth")
    with pytest.raises(ProviderError) as caught:
        run(ask_the_chain())
    assert caught.value.retryable is False
