"""``merged``, which puts the n choices' event streams into one: every item of every
stream, each stream's in its order, to the end of the last; an error ends it; closing it
closes every stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from openai_compat.chat_choices import merged

pytestmark = pytest.mark.timeout(10)


async def _items(name: str, count: int, *, delay: float, closed: list[str]) -> AsyncIterator[str]:
    try:
        for n in range(count):
            await asyncio.sleep(delay)
            yield f"{name}{n}"
    finally:
        closed.append(name)


def test_every_item_in_each_streams_order_until_the_last_ends():
    async def body() -> tuple[list[str], list[str]]:
        closed: list[str] = []
        streams = [
            _items("a", 3, delay=0.01, closed=closed),
            _items("b", 5, delay=0.003, closed=closed),
        ]
        return [item async for item in merged(streams)], closed

    items, closed = asyncio.run(body())
    assert sorted(items) == ["a0", "a1", "a2", "b0", "b1", "b2", "b3", "b4"]
    assert [i for i in items if i[0] == "a"] == ["a0", "a1", "a2"]
    assert items.index("b0") < items.index("a0")  # as they arrive, not one after the other
    assert sorted(closed) == ["a", "b"]


def test_an_error_ends_it_and_closing_closes_every_stream():
    async def failing() -> AsyncIterator[str]:
        yield "x0"
        await asyncio.sleep(0.01)
        raise RuntimeError("broken")

    async def body() -> list[str]:
        closed: list[str] = []
        streams = [failing(), _items("slow", 100, delay=0.05, closed=closed)]
        with pytest.raises(RuntimeError, match="broken"):
            async for _ in merged(streams):
                pass
        return closed

    assert asyncio.run(body()) == ["slow"]


def test_a_reader_that_stops_early_closes_every_stream():
    async def body() -> list[str]:
        closed: list[str] = []
        streams = [_items(name, 100, delay=0.01, closed=closed) for name in ("a", "b")]
        stream = merged(streams)
        await anext(stream)
        await stream.aclose()
        return closed

    assert sorted(asyncio.run(body())) == ["a", "b"]
