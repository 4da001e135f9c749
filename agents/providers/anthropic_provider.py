"""Anthropic's Messages API through the official ``anthropic`` SDK."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import anthropic
import httpx2
from anthropic.types import Message

from agents.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    Citation,
    ProviderError,
    Timings,
    Usage,
)
from agents.providers.provider_errors import (
    incomplete_stream_error,
    map_sdk_error,
)
from agents.providers.vendor import (
    VendorChatProvider,
    VendorConfig,
    base64_text,
    normalise_finish_reason,
    unique_citations,
)

# Anthropic requires max_tokens on every request; this answers a chat turn comfortably.
DEFAULT_MAX_TOKENS = 1024
# Anthropic's server-side web search tool (results come back as text-block citations).
WEB_SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}


class AnthropicProvider(VendorChatProvider):
    name = "anthropic"
    description = "Anthropic Claude through the Messages API (vision; web search tool)."
    key_setting: ClassVar[str] = "ANTHROPIC_API_KEY"

    def __init__(self, config: VendorConfig) -> None:
        super().__init__(config)
        self.client = anthropic.AsyncAnthropic(
            api_key=config.api_key,
            base_url=config.base_url,
            timeout=anthropic.Timeout(config.read_timeout, connect=config.connect_timeout),
            max_retries=0,  # agents.providers.reliability retries
        )

    def request_params(self, request: ChatRequest) -> dict[str, Any]:
        messages = []
        for message in request.messages:
            if message.images:
                # Images first: Anthropic documents better results with the image before
                # the question about it.
                content: Any = [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": image.media_type,
                            "data": base64_text(image),
                        },
                    }
                    for image in message.images
                ] + [{"type": "text", "text": message.content}]
            else:
                content = message.content
            messages.append({"role": message.role, "content": content})
        params: dict[str, Any] = {
            "model": self.model_for(request),
            "messages": messages,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        }
        if request.system:
            params["system"] = request.system
        if request.temperature is not None:
            # anthropic>=1.0 dropped temperature from the typed signature (newer Claude
            # models reject it); the API still takes it for the models that support it.
            params["extra_body"] = {"temperature": request.temperature}
        if request.web_search:
            params["tools"] = [WEB_SEARCH_TOOL]
        return params

    async def complete(self, request: ChatRequest) -> ChatResult:
        params = self.request_params(request)
        started = time.perf_counter()
        try:
            message = await self.client.messages.create(**params)
        except (anthropic.APIError, httpx2.TransportError, json.JSONDecodeError) as exc:
            raise self.map_error(exc) from exc
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        if not isinstance(message, Message) or message.stop_reason is None:
            raise incomplete_stream_error(provider=self.name)
        texts: list[str] = []
        citations: list[Citation] = []
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
                citations.extend(_citation(c) for c in (block.citations or []))
        return ChatResult(
            provider=self.name,
            model=message.model or params["model"],
            text="".join(texts),
            finish_reason=normalise_finish_reason(message.stop_reason),
            citations=unique_citations([c for c in citations if c is not None]),
            usage=_usage(message.usage),
            timings=Timings(time_to_first_token_ms=elapsed_ms, total_ms=elapsed_ms),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        params = self.request_params(request)
        model = params["model"]
        usage = Usage()
        stop_reason: str | None = None
        stopped = False
        citations: list[Citation] = []
        try:
            events = await self.client.messages.create(**params, stream=True)
            try:
                async for event in events:
                    if event.type == "message_start":
                        model = event.message.model or model
                        usage = _usage(event.message.usage)
                    elif event.type == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta" and delta.text:
                            yield ChatChunk(text=delta.text)
                        elif delta.type == "citations_delta":
                            found = _citation(delta.citation)
                            if found is not None:
                                citations.append(found)
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        usage = _merge_delta_usage(usage, event.usage)
                    elif event.type == "message_stop":
                        stopped = True
            finally:
                await events.close()
        except (anthropic.APIError, httpx2.TransportError, json.JSONDecodeError) as exc:
            raise self.map_error(exc) from exc
        if not stopped or stop_reason is None:
            raise incomplete_stream_error(provider=self.name)
        yield ChatChunk(
            citations=tuple(unique_citations(citations)),
            usage=usage,
            finish_reason=normalise_finish_reason(stop_reason),
            model=model,
        )

    def map_error(self, exc: BaseException) -> ProviderError:
        return map_sdk_error(exc, sdk=anthropic, provider=self.name, key_setting=self.key_setting)


def _usage(usage: Any) -> Usage:
    """Anthropic counts cache reads and writes apart from ``input_tokens``; ours include them."""
    cache_read = getattr(usage, "cache_read_input_tokens", None) or 0
    cache_write = getattr(usage, "cache_creation_input_tokens", None) or 0
    details = getattr(usage, "output_tokens_details", None)
    return Usage(
        input_tokens=(usage.input_tokens or 0) + cache_read + cache_write,
        output_tokens=usage.output_tokens or 0,
        cached_tokens=cache_read,
        reasoning_tokens=getattr(details, "thinking_tokens", None) or 0,
    )


def _merge_delta_usage(usage: Usage, delta: Any) -> Usage:
    """message_delta usage is cumulative; fields it leaves out keep message_start's value."""
    merged = Usage(
        input_tokens=usage.input_tokens,
        output_tokens=delta.output_tokens
        if delta.output_tokens is not None
        else usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
    )
    if getattr(delta, "input_tokens", None) is not None:
        cache_read = getattr(delta, "cache_read_input_tokens", None)
        cache_write = getattr(delta, "cache_creation_input_tokens", None) or 0
        merged.cached_tokens = usage.cached_tokens if cache_read is None else cache_read
        merged.input_tokens = delta.input_tokens + merged.cached_tokens + cache_write
    details = getattr(delta, "output_tokens_details", None)
    if details is not None:
        merged.reasoning_tokens = getattr(details, "thinking_tokens", None) or 0
    return merged


def _citation(citation: Any) -> Citation | None:
    url = getattr(citation, "url", None)
    if not url:
        return None  # document citations (char/page locations) have no URL to show
    return Citation(url=url, title=getattr(citation, "title", None) or "")
