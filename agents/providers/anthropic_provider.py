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
    ChatMessage,
    ChatRequest,
    ChatResult,
    Citation,
    Timings,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from agents.providers.provider_errors import (
    ProviderError,
    incomplete_stream_error,
    map_sdk_error,
)
from agents.providers.vendor import (
    VendorChatProvider,
    VendorConfig,
    base64_text,
    invalid_conversation_error,
    normalise_finish_reason,
    tool_arguments,
    unique_citations,
)

# Anthropic requires max_tokens on every request; this answers a chat turn comfortably.
DEFAULT_MAX_TOKENS = 1024
# Anthropic's server-side web search tool (results come back as text-block citations).
WEB_SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
# response_format json_object: Anthropic's native structured output needs a schema, so the
# model is made to call this tool, whose input (any JSON object) becomes the answer text.
JSON_OBJECT_TOOL = {
    "name": "json_answer",
    "description": "Give your whole answer as one JSON object.",
    "input_schema": {"type": "object"},
}


class AnthropicProvider(VendorChatProvider):
    name = "anthropic"
    description = "Anthropic Claude through the Messages API (vision; web search tool)."
    key_setting: ClassVar[str] = "ANTHROPIC_API_KEY"
    # The Messages API has stop sequences, but no seed and no penalties.
    sampling_fields = frozenset({"stop"})

    def __init__(self, config: VendorConfig) -> None:
        super().__init__(config)
        self.client = anthropic.AsyncAnthropic(
            api_key=config.api_key,
            base_url=config.base_url,
            timeout=anthropic.Timeout(config.read_timeout, connect=config.connect_timeout),
            max_retries=0,  # agents.providers.reliability retries
        )

    def request_params(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model_for(request),
            "messages": anthropic_messages(request.messages, provider=self.name),
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        }
        if request.system:
            params["system"] = request.system
        if request.sampling.stop:
            params["stop_sequences"] = list(request.sampling.stop)
        if request.temperature is not None:
            # anthropic>=1.0 dropped temperature from the typed signature (newer Claude
            # models reject it); the API still takes it for the models that support it.
            params["extra_body"] = {"temperature": request.temperature}
        tools: list[dict[str, Any]] = [WEB_SEARCH_TOOL] if request.web_search else []
        tools += [_tool(tool) for tool in request.tools]
        tool_choice = _tool_choice(request)
        response_format = request.response_format
        if response_format is not None and response_format.type == "json_schema":
            # Native structured output (constrained decoding to the schema).
            params["output_config"] = {
                "format": {"type": "json_schema", "schema": dict(response_format.schema or {})}
            }
        elif response_format is not None:
            if request.tools or request.tool_choice is not None:
                raise ProviderError(
                    "anthropic answers response_format json_object through a forced tool "
                    "call, which cannot be combined with your own tools. Use response_format "
                    "json_schema (native structured output) with tools instead.",
                    provider=self.name,
                    retryable=False,
                    code="response_format_unsupported",
                    status=400,
                )
            tools.append(JSON_OBJECT_TOOL)
            tool_choice = {"type": "tool", "name": JSON_OBJECT_TOOL["name"]}
        if tools:
            params["tools"] = tools
        if tool_choice is not None:
            params["tool_choice"] = tool_choice
        return params

    def _json_object_mode(self, request: ChatRequest) -> bool:
        return request.response_format is not None and request.response_format.type == (
            "json_object"
        )

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
        json_mode = self._json_object_mode(request)
        texts: list[str] = []
        citations: list[Citation] = []
        tool_calls: list[ToolCall] = []
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
                citations.extend(_citation(c) for c in (block.citations or []))
            elif block.type == "tool_use":
                arguments = json.dumps(block.input, ensure_ascii=False)
                if json_mode and block.name == JSON_OBJECT_TOOL["name"]:
                    texts.append(arguments)
                else:
                    tool_calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments))
        return ChatResult(
            provider=self.name,
            model=message.model or params["model"],
            text="".join(texts),
            finish_reason=_finish(message.stop_reason, json_mode=json_mode),
            citations=unique_citations([c for c in citations if c is not None]),
            usage=_usage(message.usage),
            timings=Timings(time_to_first_token_ms=elapsed_ms, total_ms=elapsed_ms),
            tool_calls=tool_calls,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        params = self.request_params(request)
        model = params["model"]
        usage = Usage()
        stop_reason: str | None = None
        stopped = False
        citations: list[Citation] = []
        json_mode = self._json_object_mode(request)
        # Anthropic numbers content blocks (text and tool_use alike); ours count tool calls.
        tool_index: dict[int, int] = {}
        answer_blocks: set[int] = set()  # json_object mode: the forced tool's block
        try:
            events = await self.client.messages.create(**params, stream=True)
            try:
                async for event in events:
                    if event.type == "message_start":
                        model = event.message.model or model
                        usage = _usage(event.message.usage)
                    elif event.type == "content_block_start":
                        block = event.content_block
                        if block.type != "tool_use":
                            continue
                        if json_mode and block.name == JSON_OBJECT_TOOL["name"]:
                            answer_blocks.add(event.index)
                            continue
                        tool_index[event.index] = len(tool_index)
                        yield ChatChunk(
                            tool_calls=(
                                ToolCallDelta(
                                    index=tool_index[event.index], id=block.id, name=block.name
                                ),
                            )
                        )
                    elif event.type == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta" and delta.text:
                            yield ChatChunk(text=delta.text)
                        elif delta.type == "input_json_delta" and delta.partial_json:
                            if event.index in answer_blocks:
                                yield ChatChunk(text=delta.partial_json)
                            elif event.index in tool_index:
                                yield ChatChunk(
                                    tool_calls=(
                                        ToolCallDelta(
                                            index=tool_index[event.index],
                                            arguments=delta.partial_json,
                                        ),
                                    )
                                )
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
            finish_reason=_finish(stop_reason, json_mode=json_mode),
            model=model,
        )

    def map_error(self, exc: BaseException) -> ProviderError:
        return map_sdk_error(exc, sdk=anthropic, provider=self.name, key_setting=self.key_setting)


def _finish(stop_reason: str, *, json_mode: bool) -> str:
    # The forced json_answer call is the answer itself, not a call for the client to make.
    if json_mode and stop_reason == "tool_use":
        return "stop"
    return normalise_finish_reason(stop_reason)


def _tool(tool: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": tool.name,
        # Anthropic requires an input schema; a function without parameters takes {}.
        "input_schema": dict(tool.parameters)
        if tool.parameters is not None
        else {"type": "object", "properties": {}},
    }
    if tool.description:
        out["description"] = tool.description
    if tool.strict:
        out["strict"] = True
    return out


def _tool_choice(request: ChatRequest) -> dict[str, Any] | None:
    """Anthropic's tool_choice; parallel_tool_calls=false rides on it as
    ``disable_parallel_tool_use`` (so it needs one: auto when none was given)."""
    choice = request.tool_choice
    no_parallel = request.parallel_tool_calls is False and bool(request.tools)
    if choice is None:
        return {"type": "auto", "disable_parallel_tool_use": True} if no_parallel else None
    if choice.mode == "none":
        return {"type": "none"}
    out: dict[str, Any] = (
        {"type": "tool", "name": choice.name}
        if choice.mode == "function"
        else {"type": "any" if choice.mode == "required" else "auto"}
    )
    if no_parallel:
        out["disable_parallel_tool_use"] = True
    return out


def anthropic_messages(messages: tuple[ChatMessage, ...], *, provider: str) -> list[dict]:
    """Our turns as Anthropic's: tool calls become ``tool_use`` blocks of the assistant
    turn, tool results ``tool_result`` blocks of a user turn; consecutive turns of one
    role are merged (all results of one step must sit in the one user turn after it)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = "user" if message.role == "tool" else message.role
        blocks = _blocks(message, provider=provider)
        if out and out[-1]["role"] == role:
            previous = out[-1]["content"]
            if isinstance(previous, str):
                previous = [{"type": "text", "text": previous}] if previous else []
            if isinstance(blocks, str):
                blocks = [{"type": "text", "text": blocks}] if blocks else []
            out[-1]["content"] = previous + blocks
        else:
            out.append({"role": role, "content": blocks})
    return out


def _blocks(message: ChatMessage, *, provider: str) -> Any:
    if message.role == "tool":
        if not message.tool_call_id:
            raise invalid_conversation_error(
                provider=provider, message="A tool message needs the tool_call_id it answers."
            )
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
            }
        ]
    if message.images:
        # Images first: Anthropic documents better results with the image before the
        # question about it.
        return [
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
    if message.tool_calls:
        # Anthropic refuses empty text blocks.
        text = [{"type": "text", "text": message.content}] if message.content else []
        return text + [
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": tool_arguments(call, provider=provider),
            }
            for call in message.tool_calls
        ]
    return message.content


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
