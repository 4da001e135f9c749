"""Turn a provider's stream into one ChatResult (the default ``ChatProvider.complete``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agents.providers.base import ChatResult, Citation, Timings, ToolCall, ToolCallDelta, Usage
from agents.providers.provider_errors import incomplete_stream_error

if TYPE_CHECKING:
    from agents.providers.base import ChatProvider, ChatRequest


def merge_citations(into: list[Citation], new: tuple[Citation, ...] | list[Citation]) -> None:
    """Append ``new`` citations whose URL is not in ``into`` yet (vendors repeat them)."""
    seen = {c.url for c in into}
    for citation in new:
        if citation.url not in seen:
            seen.add(citation.url)
            into.append(citation)


class ToolCallAssembler:
    """Builds whole ToolCalls from streamed ToolCallDeltas (interleaved or not)."""

    def __init__(self) -> None:
        self._ids: dict[int, str] = {}
        self._names: dict[int, str] = {}
        self._arguments: dict[int, list[str]] = {}

    def add(self, delta: ToolCallDelta) -> None:
        if delta.id:
            self._ids[delta.index] = delta.id
        if delta.name:
            self._names[delta.index] = delta.name
        self._arguments.setdefault(delta.index, []).append(delta.arguments)

    def calls(self) -> list[ToolCall]:
        """The calls in index order; a call whose first delta never came has no id/name."""
        return [
            ToolCall(
                id=self._ids.get(index, ""),
                name=self._names.get(index, ""),
                arguments="".join(self._arguments[index]),
            )
            for index in sorted(self._arguments)
        ]


async def collect_stream(provider: ChatProvider, request: ChatRequest) -> ChatResult:
    """The whole streamed answer with time to first token and total time.

    Raises ProviderError, including when the stream ends without a finish chunk: a cut
    stream must never look like a short, successful answer.
    """
    started = time.perf_counter()
    first_token_at: float | None = None
    parts: list[str] = []
    citations: list[Citation] = []
    usage: Usage | None = None
    finish_reason: str | None = None
    model = request.model
    tool_calls = ToolCallAssembler()
    stream = provider.stream(request)
    try:
        async for chunk in stream:
            if chunk.text:
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                parts.append(chunk.text)
            if chunk.tool_calls:
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                for delta in chunk.tool_calls:
                    tool_calls.add(delta)
            if chunk.citations:
                merge_citations(citations, chunk.citations)
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.model:
                model = chunk.model
            if chunk.finish_reason is not None:
                finish_reason = chunk.finish_reason
    finally:
        # Close the vendor stream (and its connection) even when the consumer fails.
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    if finish_reason is None:
        raise incomplete_stream_error(provider=provider.name)
    ended = time.perf_counter()
    return ChatResult(
        provider=provider.name,
        model=model,
        text="".join(parts),
        finish_reason=finish_reason,
        citations=citations,
        usage=usage if usage is not None else Usage(),
        timings=Timings(
            time_to_first_token_ms=None
            if first_token_at is None
            else (first_token_at - started) * 1000.0,
            total_ms=(ended - started) * 1000.0,
        ),
        tool_calls=tool_calls.calls(),
    )
