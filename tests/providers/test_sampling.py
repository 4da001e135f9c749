"""stop, seed and the penalties in the provider contract, per vendor, through each real SDK
against its fake server: the exact vendor payload, and a field a vendor cannot honour
refused (never sent without it), in the registry's check and in fallback chains."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents.providers.base import (
    ChatChunk,
    ChatMessage,
    ChatProvider,
    ChatRequest,
    Sampling,
)
from agents.providers.local import LocalProvider
from agents.providers.provider_errors import ProviderError
from agents.providers.registry import check_request_capabilities, get_chat_provider
from agents.providers.reliability import FallbackProvider
from llmplatform.core.errors import ApplicationError
from tests.providers.conftest import VENDORS, FakeVendors, run

pytestmark = pytest.mark.usefixtures("provider_settings")

EVERYTHING = Sampling(stop=("END", "\n\n"), seed=7, presence_penalty=0.5, frequency_penalty=-0.25)


def ask(sampling: Sampling) -> ChatRequest:
    return ChatRequest(model="", messages=(ChatMessage("user", "Count to ten"),), sampling=sampling)


def sent(fakes: FakeVendors, vendor: str) -> dict[str, Any]:
    assert len(fakes[vendor].chat_requests) == 1
    return fakes[vendor].chat_requests[-1].body


async def _streamed(vendor: str, request: ChatRequest) -> list[ChatChunk]:
    return [chunk async for chunk in get_chat_provider(vendor).stream(request)]


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize("vendor", ["openai", "openrouter", "google"])
def test_every_field_reaches_the_vendors_that_have_them(
    vendor: str, mode: str, fakes: FakeVendors
) -> None:
    request = ask(EVERYTHING)
    if mode == "complete":
        run(get_chat_provider(vendor).complete(request))
    else:
        run(_streamed(vendor, request))
    body = sent(fakes, vendor)
    if vendor == "google":
        config = body["generationConfig"]
        assert config["stopSequences"] == ["END", "\n\n"]
        assert config["seed"] == 7
        assert config["presencePenalty"] == 0.5
        assert config["frequencyPenalty"] == -0.25
    else:
        assert body["stop"] == ["END", "\n\n"]
        assert body["seed"] == 7
        assert body["presence_penalty"] == 0.5
        assert body["frequency_penalty"] == -0.25


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_anthropic_gets_stop_sequences(mode: str, fakes: FakeVendors) -> None:
    request = ask(Sampling(stop=("END",)))
    if mode == "complete":
        run(get_chat_provider("anthropic").complete(request))
    else:
        run(_streamed("anthropic", request))
    body = sent(fakes, "anthropic")
    assert body["stop_sequences"] == ["END"]
    assert "seed" not in body and "presence_penalty" not in body


@pytest.mark.parametrize("vendor", VENDORS)
def test_unset_fields_are_not_sent(vendor: str, fakes: FakeVendors) -> None:
    # Penalties of 0 are OpenAI's default: unset, so any vendor takes them.
    run(get_chat_provider(vendor).complete(ask(Sampling(presence_penalty=0.0))))
    body = sent(fakes, vendor)
    for name in ("stop", "stop_sequences", "seed", "presence_penalty", "frequency_penalty"):
        assert name not in body
    for name in ("stopSequences", "seed", "presencePenalty", "frequencyPenalty"):
        assert name not in body.get("generationConfig", {})


@pytest.mark.parametrize("name", ["seed", "presence_penalty", "frequency_penalty"])
def test_anthropic_refuses_what_it_cannot_honour_naming_who_can(name: str) -> None:
    sampling = Sampling(**{name: 1})
    with pytest.raises(ApplicationError) as refused:
        check_request_capabilities("anthropic", ask(sampling))
    assert refused.value.code == "unsupported_parameter" and refused.value.status == 400
    assert refused.value.extra["param"] == name
    assert refused.value.extra["providers_with_parameter"] == ["openai", "google", "openrouter"]
    for vendor in ("openai", "google", "openrouter"):
        check_request_capabilities(vendor, ask(sampling))


def test_the_local_model_honours_stop_only() -> None:
    local = LocalProvider()
    assert local.sampling_fields == {"stop"}
    assert get_chat_provider("anthropic").sampling_fields == {"stop"}


def test_the_stored_shape_round_trips() -> None:
    stored = EVERYTHING.stored()
    assert stored == {
        "stop": ["END", "\n\n"],
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.25,
    }
    assert Sampling.of(stored) == EVERYTHING
    assert Sampling.of(None) == Sampling() and Sampling().stored() == {}
    assert Sampling(seed=0).used() == ["seed"]  # 0 is a seed, not an unset one
    with_logprobs = Sampling(logprobs=True, top_logprobs=0)
    assert with_logprobs.stored() == {"logprobs": True, "top_logprobs": 0}
    assert Sampling.of(with_logprobs.stored()) == with_logprobs
    assert Sampling(logprobs=False).stored() == {}


@pytest.mark.parametrize("vendor", ["openai", "openrouter", "google"])
def test_logprobs_are_asked_for_and_streamed_as_the_vendor_sent_them(
    vendor: str, fakes: FakeVendors
) -> None:
    fakes[vendor].chunk_count = 3
    chunks = run(_streamed(vendor, ask(Sampling(logprobs=True, top_logprobs=2))))
    body = sent(fakes, vendor)
    if vendor == "google":
        config = body["generationConfig"]
        assert (config["responseLogprobs"], config["logprobs"]) == (True, 2)
    else:
        assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    [reply] = fakes[vendor].replies
    streamed = [token for chunk in chunks for token in chunk.logprobs]
    assert streamed == fakes[vendor].adapter.token_logprobs(reply)
    assert len(streamed) == 3
    assert all(len(chunk.logprobs) == 1 for chunk in chunks if chunk.text)


def test_logprobs_are_refused_where_the_vendor_has_none() -> None:
    with pytest.raises(ApplicationError) as refused:
        check_request_capabilities("anthropic", ask(Sampling(logprobs=True)))
    assert refused.value.extra["param"] == "logprobs"
    assert refused.value.extra["providers_with_parameter"] == ["openai", "google", "openrouter"]
    assert "logprobs" not in LocalProvider().sampling_fields


@pytest.mark.parametrize("vendor", ["openai", "google"])
def test_without_logprobs_none_are_asked_for_or_streamed(vendor: str, fakes: FakeVendors) -> None:
    chunks = run(_streamed(vendor, ask(Sampling())))
    body = sent(fakes, vendor)
    assert "logprobs" not in body and "responseLogprobs" not in body.get("generationConfig", {})
    assert not any(chunk.logprobs for chunk in chunks)


class _Recorder(ChatProvider):
    def __init__(self, name: str, fields: frozenset[str], *, fail: bool = False) -> None:
        self.name = name
        self.sampling_fields = fields
        self.fail = fail
        self.requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.requests.append(request)
        if self.fail:
            raise ProviderError("down", provider=self.name, retryable=True)
        yield ChatChunk(text="ok", finish_reason="stop")


def test_fallbacks_that_cannot_honour_the_fields_are_skipped() -> None:
    everything = frozenset({"stop", "seed", "presence_penalty", "frequency_penalty"})
    primary = _Recorder("primary", everything, fail=True)
    stop_only = _Recorder("stop_only", frozenset({"stop"}))
    full = _Recorder("full", everything)
    chain = FallbackProvider([primary, stop_only, full])
    run(chain.complete(ask(Sampling(seed=3))))
    assert stop_only.requests == []
    assert full.requests[0].sampling == Sampling(seed=3)
    run(chain.complete(ask(Sampling(stop=("x",)))))
    assert len(stop_only.requests) == 1
