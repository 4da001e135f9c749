"""The two limits ReliableProvider keeps for every vendor.

* A vendor's Retry-After is honoured up to MAX_RETRY_AFTER_SECONDS (60 s): a vendor that
  answers 429 with ``Retry-After: 3600`` is retried after 60 s, never after an hour. The
  cap holds in the retry policy itself, not only where an HTTP status becomes an error.
* The vendor's stream is closed (its HTTP response released) whenever the caller stops
  reading it: left early, cancelled, or failed and retried. The doubles below are plain
  async iterators, not async generators, so nothing but an explicit ``aclose()`` closes
  them (an async generator would be closed by the event loop's finaliser anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from agents.providers.base import ChatChunk, ChatMessage, ChatProvider, ChatRequest, Usage
from agents.providers.provider_errors import MAX_RETRY_AFTER_SECONDS, ProviderError
from agents.providers.registry import get_chat_provider
from agents.providers.reliability import ReliableProvider, RetryPolicy
from tests.providers.conftest import run

REQUEST = ChatRequest(model="m", messages=(ChatMessage("user", "hi"),), max_tokens=50)
FINISH = ChatChunk(finish_reason="stop", usage=Usage(input_tokens=1, output_tokens=2))


def rate_limited(retry_after: float) -> ProviderError:
    return ProviderError(
        "slow down",
        provider="double",
        retryable=True,
        code="provider_rate_limited",
        status=429,
        retry_after=retry_after,
    )


class VendorStream:
    """One attempt's stream: its chunks, then an error, a stall, or the end."""

    def __init__(self, chunks: list[ChatChunk], *, error=None, stall: bool = False) -> None:
        self.chunks = list(chunks)
        self.error = error
        self.stall = stall
        self.closed = False
        self.stalled = asyncio.Event()

    def __aiter__(self) -> VendorStream:
        return self

    async def __anext__(self) -> ChatChunk:
        if self.chunks:
            return self.chunks.pop(0)
        if self.error is not None:
            raise self.error
        if self.stall:
            self.stalled.set()
            await asyncio.Event().wait()  # a vendor that says nothing more
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed = True


class DoubleVendor(ChatProvider):
    """Hands out the scripted streams in turn and keeps them for the test to inspect."""

    name = "double"

    def __init__(self, *streams: VendorStream) -> None:
        self.scripted = list(streams)
        self.streams: list[VendorStream] = []

    def stream(self, request: ChatRequest) -> Any:
        stream = self.scripted.pop(0)
        self.streams.append(stream)
        return stream


def reliable(inner: ChatProvider) -> tuple[ReliableProvider, list[float]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    policy = RetryPolicy(max_retries=2, base_delay=0.01)
    return ReliableProvider(inner, policy=policy, sleep=sleep), waits


# -- Retry-After -------------------------------------------------------------------------


def test_an_hour_long_retry_after_is_waited_for_at_most_the_cap():
    assert MAX_RETRY_AFTER_SECONDS == 60.0
    provider, waits = reliable(
        DoubleVendor(
            VendorStream([], error=rate_limited(3600)),
            VendorStream([ChatChunk(text="ok"), FINISH]),
        )
    )
    result = run(provider.complete(REQUEST))
    assert result.text == "ok"
    assert waits == [MAX_RETRY_AFTER_SECONDS]


def test_a_stream_told_to_wait_an_hour_waits_at_most_the_cap():
    provider, waits = reliable(
        DoubleVendor(
            VendorStream([], error=rate_limited(3600)),
            VendorStream([ChatChunk(text="ok"), FINISH]),
        )
    )

    async def read() -> str:
        return "".join([chunk.text async for chunk in provider.stream(REQUEST)])

    assert run(read()) == "ok"
    assert waits == [MAX_RETRY_AFTER_SECONDS]


def test_a_shorter_retry_after_is_honoured_as_given():
    provider, waits = reliable(
        DoubleVendor(
            VendorStream([], error=rate_limited(7)),
            VendorStream([ChatChunk(text="ok"), FINISH]),
        )
    )
    run(provider.complete(REQUEST))
    assert waits == [7]


def test_a_vendor_answering_429_with_retry_after_3600_is_retried_after_the_cap(
    provider_settings, fakes
):
    vendor = fakes["openai"]
    vendor.fail_next("rate_limit", retry_after=3600)
    provider = get_chat_provider("openai")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    provider.sleep = sleep
    result = run(provider.complete(REQUEST))
    assert result.text.startswith("Echo:")
    assert waits == [MAX_RETRY_AFTER_SECONDS]
    assert len(vendor.chat_requests) == 2


# -- closing the vendor stream -----------------------------------------------------------


def test_a_stream_left_after_its_first_chunk_closes_the_vendor_stream():
    vendor = DoubleVendor(VendorStream([ChatChunk(text="first"), ChatChunk(text="more"), FINISH]))
    provider, _ = reliable(vendor)

    async def take_one() -> tuple[str, bool]:
        stream = provider.stream(REQUEST)
        first = await anext(stream)
        await stream.aclose()
        return first.text, vendor.streams[0].closed

    assert run(take_one()) == ("first", True)


def test_a_cancelled_reader_closes_the_stalled_vendor_stream():
    vendor = DoubleVendor(VendorStream([ChatChunk(text="first")], stall=True))
    provider, _ = reliable(vendor)

    async def cancel_mid_answer() -> bool:
        async def read() -> None:
            async for _chunk in provider.stream(REQUEST):
                pass

        task = asyncio.create_task(read())
        while not vendor.streams:
            await asyncio.sleep(0)
        await vendor.streams[0].stalled.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return vendor.streams[0].closed

    assert run(cancel_mid_answer()) is True


def test_a_failed_attempt_is_closed_before_the_retry_and_the_last_one_at_the_end():
    vendor = DoubleVendor(
        VendorStream([], error=rate_limited(1)),
        VendorStream([ChatChunk(text="ok"), FINISH]),
    )
    provider, _ = reliable(vendor)
    closed_before_retry: list[bool] = []
    inner_stream = vendor.stream

    def stream(request: ChatRequest) -> Any:
        closed_before_retry.extend(s.closed for s in vendor.streams)
        return inner_stream(request)

    vendor.stream = stream  # type: ignore[method-assign]

    async def read() -> tuple[str, bool]:
        text = "".join([chunk.text async for chunk in provider.stream(REQUEST)])
        return text, vendor.streams[-1].closed

    assert run(read()) == ("ok", True)
    assert closed_before_retry == [True]
