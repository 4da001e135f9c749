"""OpenAI chat completions through the official ``openai`` SDK.

Also the base of the OpenRouter provider and of any OpenAI-compatible server (Ollama,
vLLM, LM Studio) configured through ``OPENAI_BASE_URL``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx2
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

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
    unexpected_response_error,
)
from agents.providers.tool_calling import openai_tools
from agents.providers.vendor import (
    VendorChatProvider,
    VendorConfig,
    data_url,
    normalise_finish_reason,
    unique_citations,
)


class OpenAIProvider(VendorChatProvider):
    name = "openai"
    description = "OpenAI chat completions (vision; web search through *-search-preview models)."
    key_setting: ClassVar[str] = "OPENAI_API_KEY"
    #: OpenAI's search-preview models answer HTTP 400 to a temperature.
    search_rejects_temperature: ClassVar[bool] = True
    sampling_fields = frozenset(
        {"stop", "seed", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs"}
    )

    def __init__(
        self,
        config: VendorConfig,
        *,
        search_model: str = "gpt-4o-mini-search-preview",
        default_headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(config)
        self.search_model = search_model
        self.client = openai.AsyncOpenAI(
            api_key=config.api_key,
            base_url=config.base_url,
            timeout=openai.Timeout(config.read_timeout, connect=config.connect_timeout),
            # Retries belong to agents.providers.reliability, which knows about streams
            # and fallbacks; SDK retries would multiply with ours.
            max_retries=0,
            default_headers=default_headers,
        )
        # OpenAI's own API deprecated max_tokens for chat models; OpenAI-compatible
        # servers behind a custom base URL mostly only know max_tokens.
        self._max_tokens_param = (
            "max_completion_tokens" if config.base_url is None else "max_tokens"
        )

    # -- request -----------------------------------------------------------------------------

    def is_search_model(self, model: str) -> bool:
        return model.endswith("-search-preview")

    def model_for(self, request: ChatRequest) -> str:
        model = super().model_for(request)
        if request.web_search and not self.is_search_model(model):
            return self.search_model
        return model

    def request_params(self, request: ChatRequest) -> dict[str, Any]:
        model = self.model_for(request)
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        for message in request.messages:
            messages.append(_message(message))
        params: dict[str, Any] = {"model": model, "messages": messages}
        params.update(openai_tool_params(request))
        # stop, seed, the penalties and logprobs under OpenAI's own names (set ones only).
        params.update(request.sampling.stored())
        skip_temperature = self.search_rejects_temperature and self.is_search_model(model)
        if request.temperature is not None and not skip_temperature:
            params["temperature"] = request.temperature
        if request.max_tokens is not None:
            params[self._max_tokens_param] = request.max_tokens
        return params

    # -- response ----------------------------------------------------------------------------

    def usage_from(self, usage: Any) -> Usage:
        prompt_details = getattr(usage, "prompt_tokens_details", None)
        completion_details = getattr(usage, "completion_tokens_details", None)
        return Usage(
            input_tokens=usage.prompt_tokens or 0,
            output_tokens=usage.completion_tokens or 0,
            cached_tokens=(getattr(prompt_details, "cached_tokens", None) or 0),
            reasoning_tokens=(getattr(completion_details, "reasoning_tokens", None) or 0),
        )

    def citations_from(self, holder: Any, annotated: Any) -> list[Citation]:
        """Citations from ``url_citation`` annotations on a message or delta.

        ``holder`` is the completion or chunk (OpenRouter puts a ``citations`` list there).
        """
        citations = []
        for annotation in getattr(annotated, "annotations", None) or []:
            kind = _field(annotation, "type")
            found = _field(annotation, "url_citation")
            if kind == "url_citation" and found is not None:
                citations.append(
                    Citation(url=_field(found, "url") or "", title=_field(found, "title") or "")
                )
        return citations

    # -- calls -------------------------------------------------------------------------------

    async def complete(self, request: ChatRequest) -> ChatResult:
        params = self.request_params(request)
        started = time.perf_counter()
        try:
            completion = await self.client.chat.completions.create(**params)
        except (openai.APIError, httpx2.TransportError, json.JSONDecodeError) as exc:
            raise self.map_error(exc) from exc
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        if not isinstance(completion, ChatCompletion) or not completion.choices:
            raise unexpected_response_error(provider=self.name, what="no chat completion choices")
        choice = completion.choices[0]
        if choice.finish_reason is None:
            raise incomplete_stream_error(provider=self.name)
        return ChatResult(
            provider=self.name,
            model=completion.model or params["model"],
            text=choice.message.content or "",
            finish_reason=normalise_finish_reason(choice.finish_reason),
            citations=unique_citations(self.citations_from(completion, choice.message)),
            usage=self.usage_from(completion.usage) if completion.usage else Usage(),
            timings=Timings(time_to_first_token_ms=elapsed_ms, total_ms=elapsed_ms),
            tool_calls=[
                ToolCall(
                    id=call.id,
                    name=call.function.name,
                    arguments=call.function.arguments or "",
                )
                for call in choice.message.tool_calls or []
                if call.type == "function"
            ],
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        params = self.request_params(request)
        model = params["model"]
        finish_reason: str | None = None
        usage: Usage | None = None
        citations: list[Citation] = []
        try:
            chunks = await self.client.chat.completions.create(
                **params, stream=True, stream_options={"include_usage": True}
            )
            try:
                async for chunk in chunks:
                    if not isinstance(chunk, ChatCompletionChunk):
                        raise unexpected_response_error(provider=self.name, what="not a chunk")
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = self.usage_from(chunk.usage)
                    delta = chunk.choices[0].delta if chunk.choices else None
                    citations.extend(self.citations_from(chunk, delta))
                    if chunk.choices and chunk.choices[0].finish_reason is not None:
                        finish_reason = chunk.choices[0].finish_reason
                    logprobs = _token_logprobs(chunk) if request.sampling.logprobs else ()
                    if delta is not None and (delta.content or logprobs):
                        yield ChatChunk(text=delta.content or "", logprobs=logprobs)
                    if delta is not None and delta.tool_calls:
                        yield ChatChunk(tool_calls=tuple(_tool_delta(d) for d in delta.tool_calls))
            finally:
                await chunks.close()
        except (openai.APIError, httpx2.TransportError, json.JSONDecodeError) as exc:
            raise self.map_error(exc) from exc
        if finish_reason is None:
            raise incomplete_stream_error(provider=self.name)
        # include_usage sends usage after the finish chunk, so the last chunk is built here.
        yield ChatChunk(
            citations=tuple(unique_citations(citations)),
            usage=usage,
            finish_reason=normalise_finish_reason(finish_reason),
            model=model,
        )

    # -- errors ------------------------------------------------------------------------------

    def map_error(self, exc: BaseException) -> ProviderError:
        return map_sdk_error(exc, sdk=openai, provider=self.name, key_setting=self.key_setting)


def _message(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.images:
        content: Any = [{"type": "text", "text": message.content}] + [
            {"type": "image_url", "image_url": {"url": data_url(image)}} for image in message.images
        ]
    else:
        content = message.content
    out: dict[str, Any] = {"role": message.role, "content": content}
    if message.tool_calls:
        # OpenAI wants null, not "", beside tool calls that came without text.
        out["content"] = content or None
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    return out


def openai_tool_params(request: ChatRequest) -> dict[str, Any]:
    """``tools``, ``tool_choice``, ``parallel_tool_calls`` and ``response_format`` as
    OpenAI's chat completions API (and every OpenAI-compatible one) takes them."""
    params: dict[str, Any] = {}
    if request.tools:
        params["tools"] = openai_tools(request.tools)
    choice = request.tool_choice
    if choice is not None:
        params["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}}
            if choice.mode == "function"
            else choice.mode
        )
    if request.parallel_tool_calls is not None:
        params["parallel_tool_calls"] = request.parallel_tool_calls
    response_format = request.response_format
    if response_format is not None:
        if response_format.type == "json_object":
            params["response_format"] = {"type": "json_object"}
        else:
            schema: dict[str, Any] = {
                "name": response_format.name,
                "schema": dict(response_format.schema or {}),
                "strict": response_format.strict,
            }
            if response_format.description:
                schema["description"] = response_format.description
            params["response_format"] = {"type": "json_schema", "json_schema": schema}
    return params


def _tool_delta(delta: Any) -> ToolCallDelta:
    function = delta.function
    return ToolCallDelta(
        index=delta.index,
        id=delta.id or None,
        name=(function.name if function is not None else None) or None,
        arguments=(function.arguments if function is not None else None) or "",
    )


def _token_logprobs(chunk: ChatCompletionChunk) -> tuple[dict[str, Any], ...]:
    """The chunk's per-token log probabilities (``choices[0].logprobs.content``) as the
    vendor sent them."""
    logprobs = chunk.choices[0].logprobs if chunk.choices else None
    if logprobs is None or not logprobs.content:
        return ()
    return tuple(token.model_dump(mode="json") for token in logprobs.content)


def _field(obj: Any, name: str) -> Any:
    """``name`` of a parsed SDK model or of a plain dict (extra fields stay dicts)."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)
