"""Google Gemini through ``google-genai`` (the maintained successor of
``google-generativeai``), Gemini Developer API with an API key."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

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
    connection_error,
    incomplete_stream_error,
    malformed_error,
    parse_retry_after,
    status_error,
    timeout_error,
)
from agents.providers.vendor import (
    VendorChatProvider,
    VendorConfig,
    normalise_finish_reason,
    unique_citations,
)

_GOOGLE_SEARCH = types.Tool(google_search=types.GoogleSearch())
_SDK_ERRORS = (
    genai_errors.APIError,
    genai_errors.UnknownApiResponseError,
    httpx2.TransportError,
    json.JSONDecodeError,
)


class GoogleProvider(VendorChatProvider):
    name = "google"
    description = "Google Gemini (vision; grounding with Google Search)."
    key_setting: ClassVar[str] = "GOOGLE_API_KEY"

    def __init__(self, config: VendorConfig) -> None:
        super().__init__(config)
        # google-genai takes one timeout in milliseconds and applies it to connect and to
        # each read alike; the read timeout is the one that bounds a silent vendor.
        self.client = genai.Client(
            api_key=config.api_key,
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=config.base_url,
                timeout=int(config.read_timeout * 1000),
                # No retry_options: google-genai then makes one attempt, and
                # agents.providers.reliability retries.
            ),
        )

    def request_params(self, request: ChatRequest) -> dict[str, Any]:
        contents = []
        for message in request.messages:
            parts = [
                types.Part.from_bytes(data=i.data, mime_type=i.media_type) for i in message.images
            ]
            parts.append(types.Part.from_text(text=message.content))
            contents.append(
                types.Content(role="model" if message.role == "assistant" else "user", parts=parts)
            )
        config = types.GenerateContentConfig(
            system_instruction=request.system or None,
            temperature=request.temperature,
            max_output_tokens=request.max_tokens,
            tools=[_GOOGLE_SEARCH] if request.web_search else None,
        )
        return {"model": self.model_for(request), "contents": contents, "config": config}

    async def complete(self, request: ChatRequest) -> ChatResult:
        params = self.request_params(request)
        started = time.perf_counter()
        try:
            response = await self.client.aio.models.generate_content(**params)
        except _SDK_ERRORS as exc:
            raise self.map_error(exc) from exc
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        candidate = response.candidates[0] if response.candidates else None
        if candidate is None or candidate.finish_reason is None:
            raise incomplete_stream_error(provider=self.name)
        return ChatResult(
            provider=self.name,
            model=response.model_version or params["model"],
            text=_text(candidate),
            finish_reason=normalise_finish_reason(_finish_name(candidate.finish_reason)),
            citations=unique_citations(_citations(candidate)),
            usage=_usage(response.usage_metadata),
            timings=Timings(time_to_first_token_ms=elapsed_ms, total_ms=elapsed_ms),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        params = self.request_params(request)
        model = params["model"]
        finish_reason: str | None = None
        usage_metadata: Any = None
        citations: list[Citation] = []
        try:
            responses = await self.client.aio.models.generate_content_stream(**params)
            try:
                async for response in responses:
                    model = response.model_version or model
                    # Gemini repeats (growing) usage on every chunk: the last one counts.
                    if response.usage_metadata is not None:
                        usage_metadata = response.usage_metadata
                    if not response.candidates:
                        continue
                    candidate = response.candidates[0]
                    citations.extend(_citations(candidate))
                    if candidate.finish_reason is not None:
                        finish_reason = _finish_name(candidate.finish_reason)
                    text = _text(candidate)
                    if text:
                        yield ChatChunk(text=text)
            finally:
                await responses.aclose()
        except _SDK_ERRORS as exc:
            raise self.map_error(exc) from exc
        if finish_reason is None:
            raise incomplete_stream_error(provider=self.name)
        yield ChatChunk(
            citations=tuple(unique_citations(citations)),
            usage=None if usage_metadata is None else _usage(usage_metadata),
            finish_reason=normalise_finish_reason(finish_reason),
            model=model,
        )

    def map_error(self, exc: BaseException) -> ProviderError:
        if isinstance(exc, genai_errors.UnknownApiResponseError | json.JSONDecodeError):
            return malformed_error(provider=self.name)
        if isinstance(exc, httpx2.TimeoutException):
            return timeout_error(provider=self.name)
        if isinstance(exc, httpx2.TransportError):
            return connection_error(provider=self.name)
        if isinstance(exc, genai_errors.APIError):
            response = getattr(exc, "response", None)
            headers = getattr(response, "headers", None)
            return status_error(
                provider=self.name,
                key_setting=self.key_setting,
                status=int(exc.code or 502),
                retry_after=parse_retry_after(headers),
                vendor_message=exc.message,
                # Gemini answers a bad key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID.
                auth_failed="API_KEY_INVALID" in json.dumps(exc.details, default=str),
            )
        return ProviderError(f"{self.name} call failed.", provider=self.name, retryable=True)


def _finish_name(reason: Any) -> str:
    return str(getattr(reason, "value", reason))


def _text(candidate: types.Candidate) -> str:
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    # Thought summaries are not part of the answer.
    return "".join(p.text for p in parts if p.text and not p.thought)


def _citations(candidate: types.Candidate) -> list[Citation]:
    grounding = candidate.grounding_metadata
    if grounding is None or not grounding.grounding_chunks:
        return []
    return [
        Citation(url=chunk.web.uri, title=chunk.web.title or "")
        for chunk in grounding.grounding_chunks
        if chunk.web is not None and chunk.web.uri
    ]


def _usage(metadata: types.GenerateContentResponseUsageMetadata | None) -> Usage:
    """Gemini counts thoughts and tool-use prompts apart; ours include them (billed alike)."""
    if metadata is None:
        return Usage()
    thoughts = metadata.thoughts_token_count or 0
    return Usage(
        input_tokens=(metadata.prompt_token_count or 0)
        + (metadata.tool_use_prompt_token_count or 0),
        output_tokens=(metadata.candidates_token_count or 0) + thoughts,
        cached_tokens=metadata.cached_content_token_count or 0,
        reasoning_tokens=thoughts,
    )
