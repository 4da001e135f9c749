"""Retries, fallbacks and the end-of-answer bookkeeping every provider gets.

The registry hands out providers wrapped here, so every caller gets the same rules:

* retry only retryable errors, with exponential backoff and full jitter, honouring the
  vendor's Retry-After (capped);
* a stream is retried, or handed to the next provider of a fallback chain, only before
  its first chunk was yielded: once a client has seen a token or a tool-call delta,
  switching would splice two different answers together;
* requests with tools or a response_format go only to fallbacks that support them;
* a stream that ends without a finish chunk is an error, never a short success;
* cost is computed here, once, from the usage the vendor reported (not in each vendor).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from agents.providers.attempt_spans import (
    attempt_span,
    fallback_span,
    record_finish,
    record_result,
)
from agents.providers.base import (
    ChatChunk,
    ChatProvider,
    ChatRequest,
    ChatResult,
    EmbeddingProvider,
)
from agents.providers.pricing import priced
from agents.providers.provider_errors import (
    MAX_RETRY_AFTER_SECONDS,
    ProviderError,
    incomplete_stream_error,
)
from llmplatform.core import metrics, tracing

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int  # retries after the first attempt (PROVIDER_MAX_RETRIES)
    base_delay: float  # seconds (PROVIDER_RETRY_BASE_DELAY)
    max_delay: float = MAX_RETRY_AFTER_SECONDS

    async def call[R](
        self,
        attempt: Callable[[], Awaitable[R]],
        *,
        name: str,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> R:
        """``attempt()``, retried while it raises a retryable ProviderError."""
        rng = rng or random.Random()
        retry = 0
        while True:
            try:
                return await attempt()
            except ProviderError as error:
                metrics.record_provider_error(name, error.code)
                if not error.retryable or retry >= self.max_retries:
                    raise
                retry += 1
                await sleep(self.wait_before_retry(name=name, retry=retry, error=error, rng=rng))

    def wait_before_retry(
        self, *, name: str, retry: int, error: ProviderError, rng: random.Random
    ) -> float:
        """Log and count the retry and return how long to wait before it."""
        metrics.record_retry(name)
        delay = self.delay_before_retry(retry=retry, error=error, rng=rng)
        logger.warning(
            "provider %s failed (%s); retry %d/%d in %.2f s",
            name,
            error.code,
            retry,
            self.max_retries,
            delay,
        )
        return delay

    def delay_before_retry(self, *, retry: int, error: ProviderError, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        if error.retry_after is not None:
            return min(error.retry_after, self.max_delay)
        # Full jitter: spreads out clients that failed together instead of having them
        # return together (AWS architecture blog, "Exponential Backoff And Jitter").
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (retry - 1)))


class ReliableProvider(ChatProvider):
    """``inner`` with retries, the stream-completeness check and pricing."""

    def __init__(
        self,
        inner: ChatProvider,
        *,
        policy: RetryPolicy,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.description = inner.description
        self.supports_web_search = inner.supports_web_search
        self.supports_tools = inner.supports_tools
        self.supports_response_format = inner.supports_response_format
        self.sampling_fields = inner.sampling_fields
        self.default_model: str = getattr(inner, "default_model", "")
        self.policy = policy
        # Public so tests can record the waits instead of sleeping through them.
        self.sleep = sleep
        self._rng = rng or random.Random()

    async def _wait_before_retry(self, retry: int, error: ProviderError) -> None:
        await self.sleep(
            self.policy.wait_before_retry(name=self.name, retry=retry, error=error, rng=self._rng)
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        """The whole answer, retried as a unit. Raises ProviderError."""
        attempts = 0

        async def attempt() -> ChatResult:
            nonlocal attempts
            attempts += 1
            span = attempt_span(self.name, request, attempt=attempts, streaming=False)
            try:
                with tracing.within(span):
                    result = await self.inner.complete(request)
            except BaseException as error:
                tracing.end_span(span, error)
                raise
            model = result.model or request.model
            result.usage = priced(result.usage, provider=self.name, model=model)
            record_result(span, result)
            tracing.end_span(span)
            return result

        return await self.policy.call(attempt, name=self.name, sleep=self.sleep, rng=self._rng)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """The answer as it comes; retried only until the first chunk. Raises ProviderError."""
        retry = 0
        while True:
            yielded = False
            finished = False
            span = attempt_span(self.name, request, attempt=retry + 1, streaming=True)
            started = time.perf_counter()
            completion: list[str] | None = [] if tracing.content_enabled() else None
            chunks = self.inner.stream(request)
            try:
                async for chunk in chunks:
                    if not yielded:
                        ttft_ms = round((time.perf_counter() - started) * 1000, 3)
                        span.set_attribute("llmplatform.ttft_ms", ttft_ms)
                    if completion is not None and chunk.text:
                        completion.append(chunk.text)
                    if chunk.finish_reason is not None:
                        finished = True
                        if chunk.usage is not None:
                            model = chunk.model or request.model
                            usage = priced(chunk.usage, provider=self.name, model=model)
                            chunk = dataclasses.replace(chunk, usage=usage)
                        record_finish(span, chunk)
                    yielded = True
                    yield chunk
                if not finished:
                    raise incomplete_stream_error(provider=self.name)
                if completion is not None:
                    tracing.record_content(span, "gen_ai.output.messages", "".join(completion))
                tracing.end_span(span)
                return
            except ProviderError as error:
                tracing.end_span(span, error)
                metrics.record_provider_error(self.name, error.code)
                if yielded or not error.retryable or retry >= self.policy.max_retries:
                    raise
                retry += 1
                await self._wait_before_retry(retry, error)
            except BaseException as error:  # cancelled, or its consumer stopped reading
                tracing.end_span(span, error)
                raise
            finally:
                await _aclose(chunks)


class ReliableEmbedder(EmbeddingProvider):
    """``inner`` with the same retries as chat calls (a 429 or a dropped connection)."""

    def __init__(self, inner: EmbeddingProvider, *, policy: RetryPolicy) -> None:
        self.inner = inner
        self.model = inner.model
        self.dimensions = inner.dimensions
        self.policy = policy

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await self.policy.call(lambda: self.inner.embed(texts), name=self.model)

    async def embed_bulk(self, texts: list[str]) -> list[list[float]]:
        return await self.policy.call(lambda: self.inner.embed_bulk(texts), name=self.model)


class FallbackProvider(ChatProvider):
    """Try each provider in turn until one answers; switch only before the first chunk.

    Any ProviderError moves on to the next provider (each has already used its own
    retries): the primary's auth or quota failure is exactly when a fallback helps. The
    fallback providers answer with their own default model, since the request's model
    names a model of the primary.
    """

    def __init__(self, chain: Sequence[ChatProvider]) -> None:
        if not chain:
            raise ValueError("a fallback chain needs at least one provider")
        self.chain = list(chain)
        self.name = chain[0].name
        self.description = chain[0].description
        self.supports_web_search = chain[0].supports_web_search
        self.supports_tools = chain[0].supports_tools
        self.supports_response_format = chain[0].supports_response_format
        self.sampling_fields = chain[0].sampling_fields
        self.default_model: str = getattr(chain[0], "default_model", "")

    def _members_for(self, request: ChatRequest) -> list[tuple[int, ChatProvider]]:
        """The chain members that can honour ``request``: a fallback without tools or
        structured output would only fail it (or, worse, answer it half)."""
        members = list(enumerate(self.chain))
        if request.uses_tools or request.tool_choice is not None:
            members = [(i, p) for i, p in members if i == 0 or p.supports_tools]
        if request.response_format is not None:
            members = [(i, p) for i, p in members if i == 0 or p.supports_response_format]
        used = set(request.sampling.used())
        if used:
            members = [(i, p) for i, p in members if i == 0 or used <= p.sampling_fields]
        return members

    def _request_for(self, index: int, request: ChatRequest) -> ChatRequest:
        if index == 0:
            return request
        return dataclasses.replace(request, model=getattr(self.chain[index], "default_model", ""))

    def _all_failed(self, errors: list[ProviderError]) -> ProviderError:
        if len(errors) == 1:
            return errors[0]
        last = errors[-1]
        summary = "; ".join(f"{e.provider}: {e.message}" for e in errors)
        return ProviderError(
            f"Every provider in the fallback chain failed. {summary}",
            provider="->".join(p.name for p in self.chain),
            retryable=any(e.retryable for e in errors),
            code=last.code,
            status=last.status,
            upstream_status=last.upstream_status,
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        """The first provider's answer that succeeds. Raises ProviderError."""
        errors: list[ProviderError] = []
        members = self._members_for(request)
        for position, (index, provider) in enumerate(members):
            span = fallback_span(provider.name, position=position)
            try:
                with tracing.within(span):
                    result = await provider.complete(self._request_for(index, request))
                tracing.end_span(span)
                return result
            except ProviderError as error:
                tracing.end_span(span, error)
                errors.append(error)
                if position + 1 < len(members):
                    metrics.record_fallback(provider.name, members[position + 1][1].name)
                logger.warning("provider %s failed (%s); falling back", provider.name, error.code)
        raise self._all_failed(errors)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """The first provider's stream that yields a chunk. Raises ProviderError."""
        errors: list[ProviderError] = []
        members = self._members_for(request)
        for position, (index, provider) in enumerate(members):
            yielded = False
            span = fallback_span(provider.name, position=position)
            chunks = provider.stream(self._request_for(index, request))
            try:
                while True:
                    # Pulled with this member's span current, so its attempts nest under it.
                    try:
                        chunk = await tracing.next_within(span, chunks)
                    except StopAsyncIteration:
                        break
                    yielded = True
                    yield chunk
                tracing.end_span(span)
                return
            except ProviderError as error:
                tracing.end_span(span, error)
                if yielded:
                    raise
                errors.append(error)
                if position + 1 < len(members):
                    metrics.record_fallback(provider.name, members[position + 1][1].name)
                logger.warning("provider %s failed (%s); falling back", provider.name, error.code)
            except BaseException as error:  # cancelled, or its consumer stopped reading
                tracing.end_span(span, error)
                raise
            finally:
                await _aclose(chunks)
        raise self._all_failed(errors)


async def _aclose(chunks: AsyncIterator[ChatChunk]) -> None:
    # Closing the vendor stream releases its HTTP connection at once, not at GC time.
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
