"""Per-vendor wire adapters for the fake servers: paths, JSON shapes, SSE framing, errors.

Shapes follow the vendors' public API references and what the installed SDKs parse
(``openai``/``anthropic`` ``types``, ``google.genai`` ``_from_mldev`` converters).

Over 500 lines on purpose: four vendors' wire formats side by side, so a change to the
shared fake server is checked against all of them in one place.
"""

from __future__ import annotations

import array
import base64
import hashlib
import json
import math
import re
import time
from typing import Any
from urllib.parse import quote

from tests.fakes.server import (
    FakeVendorServer,
    Operation,
    RecordedRequest,
    Reply,
    split_into_chunks,
)


def _words(text: str) -> int:
    return len(text.split())


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


class WireAdapter:
    """What a vendor's API looks like on the wire. Subclasses fill in each shape."""

    name = "vendor"
    base_path = ""  # what the SDK's base URL adds after host:port
    leading_frames = 0  # stream frames sent before the first text chunk

    def route(self, method: str, path: str, query: dict[str, str]) -> Operation | None:
        raise NotImplementedError

    def resolve(self, operation: Operation, request: RecordedRequest) -> Operation:
        """The operation with what only the body says (stream flag, model) filled in."""
        return operation

    def build_reply(
        self, fake: FakeVendorServer, operation: Operation, request: RecordedRequest
    ) -> Reply:
        prompt, all_text, search = self.read_prompt(operation, request.body or {})
        return fake.build_reply(
            model=operation.model, prompt=prompt, input_words=_words(all_text), search=search
        )

    def read_prompt(self, operation: Operation, body: dict[str, Any]) -> tuple[str, str, bool]:
        """(last user text, all text sent, whether web search was asked for)."""
        raise NotImplementedError

    def completion_body(self, reply: Reply, request: RecordedRequest) -> Any:
        raise NotImplementedError

    def stream_frames(self, reply: Reply) -> list[bytes]:
        raise NotImplementedError

    def malformed_frame(self) -> bytes:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        raise NotImplementedError

    def auth_error(self) -> tuple[int, Any]:
        return 401, self.error_body(401, "Invalid API key provided.")

    def embeddings_body(self, request: RecordedRequest) -> Any:
        raise NotImplementedError

    def token_logprobs(self, reply: Reply) -> list[dict[str, Any]]:
        """The log probabilities this fake sent with ``reply``, in OpenAI's
        ``logprobs.content`` shape (empty: not asked for)."""
        if reply.top_logprobs is None:
            return []
        return [fake_token_logprobs(piece, reply.top_logprobs) for piece in reply.chunks]

    def shopping_body(self, request: RecordedRequest) -> Any:
        raise NotImplementedError


# -- OpenAI and OpenRouter ---------------------------------------------------------------


def _openai_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or [] if p.get("type") == "text")


def bag_of_words_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector in which texts sharing words point the same way."""
    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimensions
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    # A faint text-specific component keeps empty or one-word texts non-zero and distinct.
    seed = hashlib.blake2b(text.encode(), digest_size=8).digest()
    vector[int.from_bytes(seed[:4], "little") % dimensions] += 0.01
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _fake_token(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode())}


def fake_token_logprobs(piece: str, top: int) -> dict[str, Any]:
    """OpenAI's ``logprobs.content`` entry for one streamed piece (one token here), with
    ``top`` alternatives (the piece first): deterministic, and distinct per piece."""
    logprob = -round(len(piece) / 10, 4)
    alternatives = [
        _fake_token(piece if rank == 0 else f"{piece}~{rank}", logprob - rank)
        for rank in range(top)
    ]
    return {**_fake_token(piece, logprob), "top_logprobs": alternatives}


class OpenAIWire(WireAdapter):
    name = "openai"
    base_path = "/v1"
    leading_frames = 1  # the role chunk

    def route(self, method: str, path: str, query: dict[str, str]) -> Operation | None:
        if method != "POST":
            return None
        if path == f"{self.base_path}/chat/completions":
            return Operation("chat")  # stream/model are read from the body in build_reply
        if path == f"{self.base_path}/embeddings":
            return Operation("embeddings")
        return None

    def resolve(self, operation: Operation, request: RecordedRequest) -> Operation:
        body = request.body or {}
        if operation.kind != "chat":
            return operation
        return Operation("chat", stream=bool(body.get("stream")), model=body.get("model", ""))

    def is_search(self, model: str) -> bool:
        return "search-preview" in model

    def build_reply(
        self, fake: FakeVendorServer, operation: Operation, request: RecordedRequest
    ) -> Reply:
        reply = super().build_reply(fake, operation, request)
        body = request.body or {}
        if body.get("logprobs"):
            reply.top_logprobs = body.get("top_logprobs") or 0
        return reply

    def _logprobs(self, reply: Reply, pieces: list[str]) -> dict[str, Any] | None:
        if reply.top_logprobs is None:
            return None
        content = [fake_token_logprobs(piece, reply.top_logprobs) for piece in pieces]
        return {"content": content, "refusal": None}

    def read_prompt(self, operation: Operation, body: dict[str, Any]) -> tuple[str, str, bool]:
        messages = body.get("messages") or []
        texts = [_openai_text(m.get("content")) for m in messages]
        users = [_openai_text(m.get("content")) for m in messages if m.get("role") == "user"]
        return (users[-1] if users else ""), " ".join(texts), self.is_search(operation.model)

    def _usage(self, reply: Reply) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reply.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _annotations(self, reply: Reply) -> list[dict[str, Any]]:
        end = len(reply.text)
        return [
            {
                "type": "url_citation",
                "url_citation": {"start_index": 0, "end_index": end, "url": url, "title": title},
            }
            for url, title in reply.citations
        ]

    def _envelope(self, reply: Reply, obj: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake0001",
            "object": obj,
            "created": int(time.time()),
            "model": reply.model,
            "system_fingerprint": "fp_fake",
            "service_tier": "default",
        }

    def _tool_call_list(self, reply: Reply) -> list[dict[str, Any]]:
        return [
            {
                "id": f"call_fake{index}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for index, (name, arguments) in enumerate(reply.tool_calls)
        ]

    def _tool_call_frames(self, reply: Reply) -> list[bytes]:
        """Parallel calls as OpenAI streams them: each call's first delta carries index,
        id and name, then fragments of its arguments; the next call follows."""
        frames = [
            _sse(self._chunk(reply, {"role": "assistant", "content": None, "refusal": None}, None))
        ]
        for index, call in enumerate(self._tool_call_list(reply)):
            head = {**call, "index": index, "function": {**call["function"], "arguments": ""}}
            frames.append(_sse(self._chunk(reply, {"tool_calls": [head]}, None)))
            for piece in split_into_chunks(call["function"]["arguments"], 3):
                fragment = {"index": index, "function": {"arguments": piece}}
                frames.append(_sse(self._chunk(reply, {"tool_calls": [fragment]}, None)))
        frames.append(_sse(self._chunk(reply, {}, "tool_calls")))
        frames.append(
            _sse(
                {
                    **self._envelope(reply, "chat.completion.chunk"),
                    "choices": [],
                    "usage": self._usage(reply),
                }
            )
        )
        frames.append(b"data: [DONE]\n\n")
        return frames

    def completion_body(self, reply: Reply, request: RecordedRequest) -> Any:
        if reply.tool_calls:
            message = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": self._tool_call_list(reply),
            }
            return {
                **self._envelope(reply, "chat.completion"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls",
                    }
                ],
                "usage": self._usage(reply),
            }
        message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
        message["annotations"] = self._annotations(reply)
        logprobs = self._logprobs(reply, reply.chunks)
        return {
            **self._envelope(reply, "chat.completion"),
            "choices": [
                {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": "stop"}
            ],
            "usage": self._usage(reply),
        }

    def _chunk(
        self,
        reply: Reply,
        delta: dict[str, Any],
        finish: str | None,
        logprobs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            **self._envelope(reply, "chat.completion.chunk"),
            "choices": [
                {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            ],
            "usage": None,
        }

    def stream_frames(self, reply: Reply) -> list[bytes]:
        if reply.tool_calls:
            return self._tool_call_frames(reply)
        frames = [
            _sse(self._chunk(reply, {"role": "assistant", "content": "", "refusal": None}, None))
        ]
        frames += [
            _sse(self._chunk(reply, {"content": piece}, None, self._logprobs(reply, [piece])))
            for piece in reply.chunks
        ]
        if reply.citations:
            frames.append(_sse(self._chunk(reply, {"annotations": self._annotations(reply)}, None)))
        frames.append(_sse(self._chunk(reply, {}, "stop")))
        # The SDK is always asked for include_usage by our provider; a client that does not
        # ask simply ignores this chunk's shape (choices is empty).
        frames.append(
            _sse(
                {
                    **self._envelope(reply, "chat.completion.chunk"),
                    "choices": [],
                    "usage": self._usage(reply),
                }
            )
        )
        frames.append(b"data: [DONE]\n\n")
        return frames

    def malformed_frame(self) -> bytes:
        return b'data: {"id": "chatcmpl-fake0001", "choices": [{"delta": {"cont\n\n'

    def error_body(self, status: int, message: str) -> Any:
        kind = {429: "requests", 401: "invalid_request_error", 404: "invalid_request_error"}
        code = {429: "rate_limit_exceeded", 401: "invalid_api_key"}
        return {
            "error": {
                "message": message,
                "type": kind.get(status, "server_error"),
                "param": None,
                "code": code.get(status),
            }
        }

    def embeddings_body(self, request: RecordedRequest) -> Any:
        body = request.body or {}
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        model = body.get("model", "")
        dimensions = body.get("dimensions") or (3072 if model.endswith("-large") else 1536)
        data = []
        for index, text in enumerate(texts):
            vector = bag_of_words_vector(str(text), dimensions)
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(array.array("f", vector).tobytes()).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(_words(str(t)) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


class OpenRouterWire(OpenAIWire):
    name = "openrouter"
    base_path = "/api/v1"
    leading_frames = 2  # the processing comment and the role chunk

    def is_search(self, model: str) -> bool:
        return model.endswith(":online") or model.startswith("perplexity/")

    def _envelope(self, reply: Reply, obj: str) -> dict[str, Any]:
        envelope = {**super()._envelope(reply, obj), "id": "gen-fake0001", "provider": "FakeRouter"}
        if reply.model.startswith("perplexity/"):
            # Perplexity models on OpenRouter: a top-level list of URLs, on every chunk.
            envelope["citations"] = [url for url, _ in reply.citations]
        return envelope

    def _annotations(self, reply: Reply) -> list[dict[str, Any]]:
        # The :online web plugin answers with OpenAI-style url_citation annotations;
        # Perplexity models only with the top-level citations list.
        if reply.model.startswith("perplexity/"):
            return []
        return super()._annotations(reply)

    def stream_frames(self, reply: Reply) -> list[bytes]:
        return [b": OPENROUTER PROCESSING\n\n", *super().stream_frames(reply)]


# -- Anthropic ---------------------------------------------------------------------------


def _anthropic_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content or [] if b.get("type") == "text")


class AnthropicWire(WireAdapter):
    name = "anthropic"
    base_path = ""
    leading_frames = 3  # message_start, content_block_start, ping

    def route(self, method: str, path: str, query: dict[str, str]) -> Operation | None:
        if method == "POST" and path == "/v1/messages":
            return Operation("chat")
        return None

    def resolve(self, operation: Operation, request: RecordedRequest) -> Operation:
        body = request.body or {}
        if operation.kind != "chat":
            return operation
        return Operation("chat", stream=bool(body.get("stream")), model=body.get("model", ""))

    def read_prompt(self, operation: Operation, body: dict[str, Any]) -> tuple[str, str, bool]:
        messages = body.get("messages") or []
        system = body.get("system") or ""
        if not isinstance(system, str):
            system = _anthropic_text(system)
        texts = [system] + [_anthropic_text(m.get("content")) for m in messages]
        users = [_anthropic_text(m.get("content")) for m in messages if m.get("role") == "user"]
        search = any(
            str(tool.get("type", "")).startswith("web_search") for tool in body.get("tools") or []
        )
        return (users[-1] if users else ""), " ".join(texts), search

    def _citations(self, reply: Reply) -> list[dict[str, Any]]:
        return [
            {
                "type": "web_search_result_location",
                "url": url,
                "title": title,
                "encrypted_index": "ZmFrZQ==",
                "cited_text": reply.text[:40],
            }
            for url, title in reply.citations
        ]

    def _usage(self, reply: Reply, *, output_tokens: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "input_tokens": reply.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": reply.cached_tokens,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }
        if reply.reasoning_tokens:
            usage["output_tokens_details"] = {"thinking_tokens": reply.reasoning_tokens}
        if reply.citations:
            usage["server_tool_use"] = {"web_search_requests": 1}
        return usage

    def _message(self, reply: Reply, content: list[Any], stop: str | None, out: int) -> Any:
        return {
            "id": "msg_fake0001",
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": self._usage(reply, output_tokens=out),
        }

    def _tool_use_blocks(self, reply: Reply) -> list[dict[str, Any]]:
        return [
            {"type": "tool_use", "id": f"toolu_fake{index}", "name": name, "input": arguments}
            for index, (name, arguments) in enumerate(reply.tool_calls)
        ]

    def _tool_use_frames(self, reply: Reply) -> list[bytes]:
        """Each tool_use block as Anthropic streams it: content_block_start with id and
        name (empty input), input_json_delta fragments, content_block_stop."""
        frames = [
            _sse(
                {"type": "message_start", "message": self._message(reply, [], None, 1)},
                "message_start",
            ),
            _sse({"type": "ping"}, "ping"),
        ]
        for index, block in enumerate(self._tool_use_blocks(reply)):
            frames.append(
                _sse(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {**block, "input": {}},
                    },
                    "content_block_start",
                )
            )
            for piece in split_into_chunks(json.dumps(block["input"]), 3):
                frames.append(
                    _sse(
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                        "content_block_delta",
                    )
                )
            frames.append(
                _sse({"type": "content_block_stop", "index": index}, "content_block_stop")
            )
        frames.append(
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                    "usage": {"output_tokens": reply.output_tokens},
                },
                "message_delta",
            )
        )
        frames.append(_sse({"type": "message_stop"}, "message_stop"))
        return frames

    def completion_body(self, reply: Reply, request: RecordedRequest) -> Any:
        if reply.tool_calls:
            return self._message(
                reply, self._tool_use_blocks(reply), "tool_use", reply.output_tokens
            )
        block: dict[str, Any] = {"type": "text", "text": reply.text}
        if reply.citations:
            block["citations"] = self._citations(reply)
        return self._message(reply, [block], "end_turn", reply.output_tokens)

    def stream_frames(self, reply: Reply) -> list[bytes]:
        if reply.tool_calls:
            return self._tool_use_frames(reply)
        frames = [
            _sse(
                {"type": "message_start", "message": self._message(reply, [], None, 1)},
                "message_start",
            ),
            _sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            _sse({"type": "ping"}, "ping"),
        ]
        for piece in reply.chunks:
            frames.append(
                _sse(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                    "content_block_delta",
                )
            )
        for citation in self._citations(reply):
            frames.append(
                _sse(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "citations_delta", "citation": citation},
                    },
                    "content_block_delta",
                )
            )
        frames.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        final_usage: dict[str, Any] = {"output_tokens": reply.output_tokens}
        if reply.reasoning_tokens:
            final_usage["output_tokens_details"] = {"thinking_tokens": reply.reasoning_tokens}
        frames.append(
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": final_usage,
                },
                "message_delta",
            )
        )
        frames.append(_sse({"type": "message_stop"}, "message_stop"))
        return frames

    def malformed_frame(self) -> bytes:
        return (
            b"event: content_block_delta\n"
            b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_de\n\n'
        )

    def error_body(self, status: int, message: str) -> Any:
        kinds = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            429: "rate_limit_error",
            529: "overloaded_error",
        }
        return {
            "type": "error",
            "error": {"type": kinds.get(status, "api_error"), "message": message},
            "request_id": "req_fake0001",
        }

    def auth_error(self) -> tuple[int, Any]:
        return 401, self.error_body(401, "invalid x-api-key")


# -- Google Gemini -----------------------------------------------------------------------

_GOOGLE_PATH = re.compile(r"^/(v1beta|v1alpha|v1)/models/(?P<model>[^:/]+):(?P<method>\w+)$")


def _gemini_text(content: Any) -> str:
    return " ".join(p.get("text", "") for p in (content or {}).get("parts", []) if "text" in p)


class GoogleWire(WireAdapter):
    name = "google"
    base_path = ""
    leading_frames = 0

    def route(self, method: str, path: str, query: dict[str, str]) -> Operation | None:
        match = _GOOGLE_PATH.match(path)
        if method != "POST" or match is None:
            return None
        if match["method"] == "generateContent":
            return Operation("chat", stream=False, model=match["model"])
        if match["method"] == "streamGenerateContent" and query.get("alt") == "sse":
            return Operation("chat", stream=True, model=match["model"])
        return None

    def read_prompt(self, operation: Operation, body: dict[str, Any]) -> tuple[str, str, bool]:
        contents = body.get("contents") or []
        system = _gemini_text(body.get("systemInstruction"))
        texts = [system] + [_gemini_text(c) for c in contents]
        users = [_gemini_text(c) for c in contents if c.get("role", "user") == "user"]
        search = any(
            "googleSearch" in tool or "google_search" in tool for tool in body.get("tools") or []
        )
        return (users[-1] if users else ""), " ".join(texts), search

    def build_reply(
        self, fake: FakeVendorServer, operation: Operation, request: RecordedRequest
    ) -> Reply:
        reply = super().build_reply(fake, operation, request)
        config = (request.body or {}).get("generationConfig") or {}
        if config.get("responseLogprobs"):
            reply.top_logprobs = config.get("logprobs") or 0
        return reply

    def logprobs_result(self, reply: Reply, pieces: list[str]) -> dict[str, Any]:
        """Gemini's ``logprobsResult`` for ``pieces`` (one token each), the values of
        ``fake_token_logprobs``; topCandidates only when ``logprobs`` asked for some."""
        tokens = [fake_token_logprobs(piece, reply.top_logprobs or 0) for piece in pieces]
        result: dict[str, Any] = {
            "chosenCandidates": [
                {"token": t["token"], "tokenId": 7, "logProbability": t["logprob"]} for t in tokens
            ]
        }
        if reply.top_logprobs:
            result["topCandidates"] = [
                {
                    "candidates": [
                        {"token": top["token"], "tokenId": 7, "logProbability": top["logprob"]}
                        for top in t["top_logprobs"]
                    ]
                }
                for t in tokens
            ]
        return result

    def _usage(self, reply: Reply, *, final: bool) -> dict[str, Any]:
        usage: dict[str, Any] = {"promptTokenCount": reply.input_tokens}
        if final:
            usage["candidatesTokenCount"] = reply.output_tokens
            usage["totalTokenCount"] = (
                reply.input_tokens + reply.output_tokens + reply.reasoning_tokens
            )
            if reply.cached_tokens:
                usage["cachedContentTokenCount"] = reply.cached_tokens
            if reply.reasoning_tokens:
                usage["thoughtsTokenCount"] = reply.reasoning_tokens
        else:
            usage["totalTokenCount"] = reply.input_tokens
        return usage

    def _grounding(self, reply: Reply) -> dict[str, Any]:
        return {
            "webSearchQueries": ["fake query"],
            "groundingChunks": [
                {"web": {"uri": url, "title": title}} for url, title in reply.citations
            ],
            "groundingSupports": [],
        }

    def _response(
        self, reply: Reply, text: str, *, final: bool, pieces: list[str] | None = None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {
            "content": {"parts": [{"text": text}], "role": "model"},
            "index": 0,
        }
        if reply.top_logprobs is not None and text:
            candidate["logprobsResult"] = self.logprobs_result(reply, pieces or [text])
        if final:
            candidate["finishReason"] = "STOP"
            if reply.citations:
                candidate["groundingMetadata"] = self._grounding(reply)
        return {
            "candidates": [candidate],
            "usageMetadata": self._usage(reply, final=final),
            "modelVersion": reply.model,
            "responseId": "fake0001",
        }

    def _function_call_parts(self, reply: Reply) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        for name, arguments in reply.tool_calls:
            part: dict[str, Any] = {"functionCall": {"name": name, "args": arguments}}
            if reply.thought_signature and not parts:  # Gemini 3 signs the first call
                part["thoughtSignature"] = reply.thought_signature
            parts.append(part)
        return parts

    def _function_call_response(
        self, reply: Reply, parts: list[dict[str, Any]], *, final: bool
    ) -> dict[str, Any]:
        response = self._response(reply, "", final=final)
        response["candidates"][0]["content"]["parts"] = parts
        return response

    def completion_body(self, reply: Reply, request: RecordedRequest) -> Any:
        if reply.tool_calls:
            return self._function_call_response(reply, self._function_call_parts(reply), final=True)
        return self._response(reply, reply.text, final=True, pieces=reply.chunks)

    def stream_frames(self, reply: Reply) -> list[bytes]:
        if reply.tool_calls:
            # One functionCall part per chunk, whole (Gemini does not stream arguments).
            parts = self._function_call_parts(reply)
            return [
                "data: {}\r\n\r\n".format(
                    json.dumps(
                        self._function_call_response(reply, [part], final=i == len(parts) - 1)
                    )
                ).encode()
                for i, part in enumerate(parts)
            ]
        last = len(reply.chunks) - 1
        return [
            f"data: {json.dumps(self._response(reply, piece, final=i == last))}\r\n\r\n".encode()
            for i, piece in enumerate(reply.chunks)
        ]

    def malformed_frame(self) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"te\r\n\r\n'

    def error_body(self, status: int, message: str) -> Any:
        statuses = {
            400: "INVALID_ARGUMENT",
            403: "PERMISSION_DENIED",
            404: "NOT_FOUND",
            429: "RESOURCE_EXHAUSTED",
            503: "UNAVAILABLE",
        }
        return {
            "error": {
                "code": status,
                "message": message,
                "status": statuses.get(status, "INTERNAL"),
            }
        }

    def auth_error(self) -> tuple[int, Any]:
        # Gemini answers a bad key with 400 INVALID_ARGUMENT and reason API_KEY_INVALID.
        body = self.error_body(400, "API key not valid. Please pass a valid API key.")
        body["error"]["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        ]
        return 400, body


# -- SerpAPI (Google Shopping) -----------------------------------------------------------


class SerpAPIWire(WireAdapter):
    name = "serpapi"
    base_path = ""

    def route(self, method: str, path: str, query: dict[str, str]) -> Operation | None:
        if method == "GET" and path == "/search.json":
            return Operation("shopping")
        return None

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message}

    def shopping_body(self, request: RecordedRequest) -> Any:
        query = request.query
        if query.get("engine") != "google_shopping":
            return {"error": f"Unsupported `{query.get('engine')}` search engine."}
        q = query.get("q", "")
        count = int(query.get("num", 5))
        results = []
        for position in range(1, count + 1):
            price = round(10 + position * 7.5 + len(q) % 10, 2)
            product_id = hashlib.blake2b(f"{q}:{position}".encode(), digest_size=8).hexdigest()
            results.append(
                {
                    "position": position,
                    "title": f"{q.title()} model {position}",
                    "product_id": product_id,
                    "product_link": f"https://www.google.com/shopping/product/{product_id}",
                    "link": f"https://shop{position}.example.com/p/{quote(q)}-{position}",
                    "source": f"Shop {position}",
                    "price": f"${price:.2f}",
                    "extracted_price": price,
                    "rating": round(3.5 + (position % 3) * 0.5, 1),
                    "reviews": 10 * position + len(q),
                    "thumbnail": f"https://encrypted-tbn0.gstatic.com/shopping?q=tbn:{product_id}",
                    "delivery": "Free delivery",
                }
            )
        return {
            "search_metadata": {"id": "fake0001", "status": "Success", "total_time_taken": 0.01},
            "search_parameters": {
                "engine": "google_shopping",
                "q": q,
                "google_domain": "google.com",
            },
            "shopping_results": results,
        }
