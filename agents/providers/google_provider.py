"""Google Gemini through ``google-genai`` (the maintained successor of
``google-generativeai``), Gemini Developer API with an API key."""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

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
    invalid_conversation_error,
    normalise_finish_reason,
    tool_arguments,
    tool_call_names,
    unique_citations,
)

_GOOGLE_SEARCH = types.Tool(google_search=types.GoogleSearch())
_CALLING_MODES = {
    "auto": types.FunctionCallingConfigMode.AUTO,
    "none": types.FunctionCallingConfigMode.NONE,
    "required": types.FunctionCallingConfigMode.ANY,
    "function": types.FunctionCallingConfigMode.ANY,
}
# Gemini 3 signs its function calls and wants the signature back with the call in the next
# turn; OpenAI's shape has no place for it, so it travels inside the call id we make up.
_SIGNATURE_MARK = "__ts__"
# The JSON Schema keywords Gemini's response_json_schema / parameters_json_schema take
# (google-genai 3.3, GenerateContentConfig.response_json_schema).
_SCHEMA_KEYWORDS = frozenset(
    {
        "$id", "$defs", "$ref", "$anchor", "type", "format", "title", "description",
        "enum", "items", "prefixItems", "minItems", "maxItems", "minimum", "maximum",
        "anyOf", "oneOf", "properties", "additionalProperties", "required",
        "propertyOrdering",
    }
)  # fmt: skip
# Annotations that constrain nothing: left out rather than refused.
_SCHEMA_ANNOTATIONS = frozenset(
    {"$schema", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly"}
)
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
    # generationConfig has each (stopSequences, seed, presencePenalty, frequencyPenalty,
    # responseLogprobs and logprobs).
    sampling_fields = frozenset(
        {"stop", "seed", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs"}
    )

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
        tools: list[types.Tool] = [_GOOGLE_SEARCH] if request.web_search else []
        if request.tools:
            tools.append(
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name=tool.name,
                            description=tool.description or None,
                            parameters_json_schema=None
                            if tool.parameters is None
                            else gemini_json_schema(
                                tool.parameters, where=f"tool {tool.name!r} parameters"
                            ),
                        )
                        for tool in request.tools
                    ]
                )
            )
        tool_config = None
        if request.tool_choice is not None:
            choice = request.tool_choice
            tool_config = types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(
                    mode=_CALLING_MODES[choice.mode],
                    allowed_function_names=[choice.name] if choice.name else None,
                )
            )
        response_mime_type = None
        response_json_schema = None
        if request.response_format is not None:
            response_mime_type = "application/json"
            if request.response_format.schema is not None:
                response_json_schema = gemini_json_schema(
                    request.response_format.schema, where="response_format schema"
                )
        config = types.GenerateContentConfig(
            system_instruction=request.system or None,
            temperature=request.temperature,
            max_output_tokens=request.max_tokens,
            stop_sequences=list(request.sampling.stop) or None,
            seed=request.sampling.seed,
            presence_penalty=request.sampling.presence_penalty,
            frequency_penalty=request.sampling.frequency_penalty,
            response_logprobs=request.sampling.logprobs or None,
            # top_logprobs 0 (no alternatives) is Gemini's default: not sent.
            logprobs=(request.sampling.top_logprobs or None) if request.sampling.logprobs else None,
            tools=tools or None,
            tool_config=tool_config,
            response_mime_type=response_mime_type,
            response_json_schema=response_json_schema,
        )
        return {
            "model": self.model_for(request),
            "contents": gemini_contents(request.messages, provider=self.name),
            "config": config,
        }

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
        calls = _CallIds(response.response_id)
        tool_calls = [calls.tool_call(part) for part in _function_call_parts(candidate)][
            : None if request.parallel_tool_calls is not False else 1
        ]
        finish = normalise_finish_reason(_finish_name(candidate.finish_reason))
        return ChatResult(
            provider=self.name,
            model=response.model_version or params["model"],
            text=_text(candidate),
            # Gemini says STOP after function calls; clients look for tool_calls.
            finish_reason="tool_calls" if tool_calls and finish == "stop" else finish,
            citations=unique_citations(_citations(candidate)),
            usage=_usage(response.usage_metadata),
            timings=Timings(time_to_first_token_ms=elapsed_ms, total_ms=elapsed_ms),
            tool_calls=tool_calls,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        params = self.request_params(request)
        model = params["model"]
        finish_reason: str | None = None
        usage_metadata: Any = None
        citations: list[Citation] = []
        calls: _CallIds | None = None
        # Gemini has no switch for parallel calls: parallel_tool_calls=false keeps the first.
        max_calls = 1 if request.parallel_tool_calls is False else None
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
                    logprobs = _token_logprobs(candidate) if request.sampling.logprobs else ()
                    if text or logprobs:
                        yield ChatChunk(text=text, logprobs=logprobs)
                    for part in _function_call_parts(candidate):
                        if calls is None:
                            calls = _CallIds(response.response_id)
                        if max_calls is not None and calls.count >= max_calls:
                            continue
                        index = calls.count
                        call = calls.tool_call(part)
                        # Gemini sends each call whole: one delta carries all of it.
                        yield ChatChunk(
                            tool_calls=(
                                ToolCallDelta(
                                    index=index,
                                    id=call.id,
                                    name=call.name,
                                    arguments=call.arguments,
                                ),
                            )
                        )
            finally:
                await responses.aclose()
        except _SDK_ERRORS as exc:
            raise self.map_error(exc) from exc
        if finish_reason is None:
            raise incomplete_stream_error(provider=self.name)
        yield ChatChunk(
            citations=tuple(unique_citations(citations)),
            usage=None if usage_metadata is None else _usage(usage_metadata),
            finish_reason="tool_calls"
            if calls is not None and normalise_finish_reason(finish_reason) == "stop"
            else normalise_finish_reason(finish_reason),
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


class _CallIds:
    """Ids for one response's function calls: Gemini's own when it sends them, else
    ``call_<response id>_<n>`` (unique per response, the same in stream and result)."""

    def __init__(self, response_id: str | None) -> None:
        self.prefix = f"call_{response_id or uuid.uuid4().hex[:16]}_"
        self.count = 0

    def tool_call(self, part: types.Part) -> ToolCall:
        call = part.function_call
        assert call is not None
        call_id = call.id or f"{self.prefix}{self.count}"
        if part.thought_signature:
            signature = base64.urlsafe_b64encode(part.thought_signature).decode().rstrip("=")
            call_id += _SIGNATURE_MARK + signature
        self.count += 1
        return ToolCall(
            id=call_id,
            name=call.name or "",
            arguments=json.dumps(call.args or {}, ensure_ascii=False),
        )


def _token_logprob(token: str, logprob: float | None) -> dict[str, Any]:
    # Gemini's JSON leaves a zero out (proto3): no logProbability is a log probability of 0.
    return {"token": token, "logprob": logprob or 0.0, "bytes": list(token.encode())}


def _token_logprobs(candidate: types.Candidate) -> tuple[dict[str, Any], ...]:
    """The candidate's ``logprobsResult`` in OpenAI's ``logprobs.content`` shape: each
    chosen token (``bytes`` its UTF-8, which Gemini does not send) with the top
    candidates at its step (``top_logprobs``; empty unless ``logprobs`` asked for them)."""
    result = candidate.logprobs_result
    if result is None or not result.chosen_candidates:
        return ()
    tops = result.top_candidates or []
    entries = []
    for step, chosen in enumerate(result.chosen_candidates):
        alternatives = tops[step].candidates or [] if step < len(tops) else []
        entries.append(
            {
                **_token_logprob(chosen.token or "", chosen.log_probability),
                "top_logprobs": [
                    _token_logprob(top.token or "", top.log_probability) for top in alternatives
                ],
            }
        )
    return tuple(entries)


def _function_call_parts(candidate: types.Candidate) -> list[types.Part]:
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    return [p for p in parts if p.function_call is not None]


def _signature(call_id: str) -> bytes | None:
    """The thought signature carried in one of our call ids, if any."""
    _, mark, encoded = call_id.partition(_SIGNATURE_MARK)
    if not mark:
        return None
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None


def _vendor_id(call_id: str) -> str | None:
    """The id Gemini gave a call (ours are made up and mean nothing to it)."""
    base = call_id.partition(_SIGNATURE_MARK)[0]
    return None if base.startswith("call_") else base or None


def gemini_contents(messages: tuple[ChatMessage, ...], *, provider: str) -> list[types.Content]:
    """Our turns as Gemini contents: tool calls become ``functionCall`` parts of the model
    turn, tool results ``functionResponse`` parts of one user turn (named after the call
    they answer, which Gemini needs and OpenAI's shape does not carry)."""
    names = tool_call_names(messages)
    contents: list[types.Content] = []
    for message in messages:
        if message.role == "tool":
            name = names.get(message.tool_call_id or "")
            if name is None:
                raise invalid_conversation_error(
                    provider=provider,
                    message=f"The tool message for tool_call_id {message.tool_call_id!r} "
                    "answers no tool call of an earlier assistant message.",
                )
            part = types.Part(
                function_response=types.FunctionResponse(
                    id=_vendor_id(message.tool_call_id or ""),
                    name=name,
                    response={"output": _tool_output(message.content)},
                )
            )
            if contents and contents[-1].role == "user" and _all_responses(contents[-1]):
                (contents[-1].parts or []).append(part)
            else:
                contents.append(types.Content(role="user", parts=[part]))
            continue
        parts = [types.Part.from_bytes(data=i.data, mime_type=i.media_type) for i in message.images]
        if message.content or not message.tool_calls:
            parts.append(types.Part.from_text(text=message.content))
        for call in message.tool_calls:
            parts.append(
                types.Part(
                    function_call=types.FunctionCall(
                        id=_vendor_id(call.id),
                        name=call.name,
                        args=tool_arguments(call, provider=provider),
                    ),
                    thought_signature=_signature(call.id),
                )
            )
        contents.append(
            types.Content(role="model" if message.role == "assistant" else "user", parts=parts)
        )
    return contents


def _all_responses(content: types.Content) -> bool:
    return all(p.function_response is not None for p in content.parts or [])


def _tool_output(text: str) -> Any:
    """A tool result as Gemini's ``output``: parsed when it is JSON, else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def gemini_json_schema(schema: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """``schema`` in the JSON Schema subset Gemini takes.

    ``const`` becomes a one-value ``enum``; annotations (``default``, ``examples``, …) are
    left out. Raises ProviderError (400, ``schema_unsupported``) naming the first keyword
    Gemini cannot take (``pattern``, ``allOf``, ``minLength``, …), with its location.
    """
    return _translate_schema(schema, where=where, path="#")


def _translate_schema(schema: Any, *, where: str, path: str) -> Any:
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, Mapping):
        raise _schema_error(f"{where}: {path} is not a JSON Schema object.")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        here = f"{path}/{key}"
        if key in _SCHEMA_ANNOTATIONS:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key not in _SCHEMA_KEYWORDS:
            raise _schema_error(
                f"{where}: Gemini does not support the JSON Schema keyword {key!r} "
                f"(at {path}). Remove it, or use a provider without this limit "
                "(openai, anthropic, openrouter)."
            )
        elif key in ("properties", "$defs"):
            if not isinstance(value, Mapping):
                raise _schema_error(f"{where}: {here} must be an object.")
            out[key] = {
                name: _translate_schema(sub, where=where, path=f"{here}/{name}")
                for name, sub in value.items()
            }
        elif key in ("items", "additionalProperties"):
            out[key] = _translate_schema(value, where=where, path=here)
        elif key in ("prefixItems", "anyOf", "oneOf"):
            if not isinstance(value, list):
                raise _schema_error(f"{where}: {here} must be a list.")
            out[key] = [
                _translate_schema(sub, where=where, path=f"{here}/{n}")
                for n, sub in enumerate(value)
            ]
        else:
            out[key] = value
    return out


def _schema_error(message: str) -> ProviderError:
    return ProviderError(
        message, provider="google", retryable=False, code="schema_unsupported", status=400
    )


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
