"""The provider interface every vendor plugin implements, and its default ``complete``
(the stream collected into one ChatResult).

Everything above this package (agents, services, views) speaks only these types;
vendor SDKs are imported in the vendor modules of this package and nowhere else. Errors
are ``provider_errors``', which imports nothing of this package.
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agents.providers.provider_errors import incomplete_stream_error
from llmplatform.core.errors import ApplicationError


@dataclass(frozen=True)
class ImageInput:
    """An image given to a vision-capable model: raw bytes with their media type."""

    data: bytes
    media_type: str  # "image/png", "image/jpeg", "image/webp" or "image/gif"


@dataclass(frozen=True)
class ToolDefinition:
    """A function the model may call: its name, what it does and its JSON Schema parameters."""

    name: str
    description: str = ""
    # A JSON Schema describing an object (the arguments); None: the function takes none.
    parameters: Mapping[str, Any] | None = None
    # OpenAI's strict function calling (arguments guaranteed to match ``parameters``);
    # passed to the vendors that have it (OpenAI, OpenRouter, Anthropic), None: not asked.
    strict: bool | None = None


@dataclass(frozen=True)
class ToolChoice:
    """Whether and which tools the model must call.

    ``auto``: the model decides; ``none``: no tool call; ``required``: at least one call;
    ``function``: a call of the function called ``name``.
    """

    mode: Literal["auto", "none", "required", "function"] = "auto"
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.mode == "function") != bool(self.name):
            raise ValueError("a tool choice names a function exactly when its mode is 'function'")


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for. ``arguments`` is JSON text, as OpenAI returns it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a streamed tool call, as OpenAI streams them.

    The first delta of an ``index`` carries ``id`` and ``name``; later ones carry only
    fragments of the arguments' JSON text. Several calls' deltas may interleave.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class ResponseFormat:
    """Structured output: any JSON object, or JSON matching ``schema``.

    ``strict`` (json_schema only) asks for the answer to be validated against the schema
    (``agents.providers.structured``); ``name`` and ``description`` are the schema's, as
    OpenAI's ``response_format.json_schema`` carries them.
    """

    type: Literal["json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None
    name: str = "response"
    description: str | None = None
    strict: bool = False

    def __post_init__(self) -> None:
        if (self.type == "json_schema") != (self.schema is not None):
            raise ValueError("a response format has a schema exactly when its type is json_schema")


# OpenAI's cap on stop sequences (Anthropic and Gemini take at least as many).
MAX_STOP_SEQUENCES = 4
# OpenAI's cap on the alternatives per token ``top_logprobs`` asks for.
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True)
class Sampling:
    """Sampling options beyond temperature and max_tokens, as OpenAI names them; each unset
    (empty, None) is the vendor's default. A provider honours those in its
    ``sampling_fields``; a request using another is refused (``check_capabilities``),
    never sent without it."""

    stop: tuple[str, ...] = ()  # the answer ends before any of these
    seed: int | None = None  # best-effort reproducible sampling
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # Per-token log probabilities of the answer (``ChatChunk.logprobs``), with the
    # ``top_logprobs`` likeliest alternatives at each position (0..MAX_TOP_LOGPROBS).
    logprobs: bool = False
    top_logprobs: int | None = None

    def __post_init__(self) -> None:
        # A penalty of 0 is OpenAI's default: unset, so every vendor takes it.
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) == 0:
                object.__setattr__(self, name, None)

    def used(self) -> list[str]:
        """The fields set, by name."""
        return list(self.stored())

    def stored(self) -> dict[str, Any]:
        """The set fields in OpenAI's shapes (what a run stores and reads back with
        ``Sampling.of``)."""
        values = {
            "stop": list(self.stop),
            "seed": self.seed,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "logprobs": self.logprobs or None,
            "top_logprobs": self.top_logprobs,
        }
        return {name: value for name, value in values.items() if value not in (None, [])}

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None) -> Sampling:
        stored = stored or {}
        stop = stored.get("stop") or ()
        return cls(
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            seed=stored.get("seed"),
            presence_penalty=stored.get("presence_penalty"),
            frequency_penalty=stored.get("frequency_penalty"),
            logprobs=bool(stored.get("logprobs")),
            top_logprobs=stored.get("top_logprobs"),
        )


@dataclass(frozen=True)
class ChatMessage:
    """One turn of the conversation.

    An ``assistant`` turn may carry the ``tool_calls`` the model made (its ``content`` then
    often empty); each result comes back as a ``tool`` turn whose ``tool_call_id`` names
    the call and whose ``content`` is the result's text.
    """

    role: Literal["user", "assistant", "tool"]
    content: str
    images: tuple[ImageInput, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    # Ask for a web-grounded answer (search-preview models, grounding, online models).
    web_search: bool = False
    # Functions the model may call (providers with ``supports_tools``).
    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: ToolChoice | None = None  # None: the vendor's default (auto with tools)
    parallel_tool_calls: bool | None = None  # None: the vendor's default (allowed)
    # Structured output (providers with ``supports_response_format``).
    response_format: ResponseFormat | None = None
    # stop, seed and the penalties (each provider honours its ``sampling_fields``).
    sampling: Sampling = field(default_factory=Sampling)

    @property
    def uses_tools(self) -> bool:
        """Whether the request needs tool support (tools, a tool choice or tool turns)."""
        return bool(self.tools) or any(m.role == "tool" or m.tool_calls for m in self.messages)


@dataclass(frozen=True)
class Citation:
    """A source of the answer: a web page (from the vendor) or a document passage."""

    url: str
    title: str = ""
    type: Literal["web", "document"] = "web"
    # Documents only: the file, its 1-based page (None for formats without pages) and
    # the passage's text as shown to the model.
    file_id: str | None = None
    page: int | None = None
    snippet: str | None = None
    # Documents only: whether the answer cites the passage ([n]); the uncited ones were
    # searched and shown to the model, not relied on.
    cited: bool = False

    def as_dict(self) -> dict[str, object]:
        """As stored on the query and sent to clients (the API's citation shape)."""
        if self.type == "document":
            return {
                "type": "document",
                "file_id": self.file_id,
                "title": self.title,
                "page": self.page,
                "snippet": self.snippet,
                "url": self.url,
                "cited": self.cited,
            }
        return {"type": "web", "title": self.title, "url": self.url}


@dataclass
class Usage:
    """Token counts as the vendor reported them, and the cost we computed from them.

    ``cost_usd`` is ``None`` when the model is not in the price table: unknown is not
    free.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None

    def as_dict(self) -> dict[str, int | float | None]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cost_usd": self.cost_usd,
        }


@dataclass(frozen=True)
class ChatChunk:
    """One piece of a streamed answer.

    Text chunks carry ``text``, tool-call chunks ``tool_calls``; the last chunk of a
    successful stream carries ``finish_reason`` and ``usage`` (and any citations the
    vendor sent at the end).
    """

    text: str = ""
    citations: tuple[Citation, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None
    # Pieces of the tool calls the model is making (see ToolCallDelta).
    tool_calls: tuple[ToolCallDelta, ...] = ()
    # The model that answered, as the vendor named it (set on the last chunk): pricing and
    # ChatResult.model use it, since it can differ from the request (search models,
    # dated snapshots, fallbacks).
    model: str | None = None
    # With ``Sampling.logprobs``: the log probabilities of this chunk's tokens in OpenAI's
    # shape (``{"token", "logprob", "bytes", "top_logprobs"}`` each), as the vendor sent them.
    logprobs: tuple[dict[str, Any], ...] = ()


@dataclass
class Timings:
    time_to_first_token_ms: float | None = None
    total_ms: float = 0.0


@dataclass
class ChatResult:
    provider: str
    model: str
    text: str
    finish_reason: str | None
    citations: list[Citation] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    # The calls the model asked for (finish_reason "tool_calls"), in order.
    tool_calls: list[ToolCall] = field(default_factory=list)


class ChatProvider(abc.ABC):
    """A chat model vendor. One instance per configured vendor, shared by all requests."""

    name: str
    #: What the API and the UI say about this provider (e.g. "demo-quality local model").
    description: str = ""
    #: Whether ``ChatRequest.web_search`` works (the vendor searches the web itself).
    supports_web_search: bool = False
    #: Whether tools, tool choices and tool turns in the conversation work.
    supports_tools: bool = False
    #: Whether ``ChatRequest.response_format`` works.
    supports_response_format: bool = False
    #: The ``ChatRequest.sampling`` fields this vendor honours (``Sampling`` names).
    sampling_fields: frozenset[str] = frozenset()

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Yield the answer as it is generated. Raises ProviderError."""

    async def complete(self, request: ChatRequest) -> ChatResult:
        """The whole answer at once. Raises ProviderError."""
        return await collect_stream(self, request)


class EmbeddingProvider(abc.ABC):
    """Turns texts into vectors. ``model`` is recorded next to every stored vector."""

    model: str
    dimensions: int

    @abc.abstractmethod
    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One unit-length-or-not vector per text, in order. Raises ProviderError."""

    async def embed_bulk(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed` for background work (document ingestion), which must not slow
        requests down; the same vectors. A provider that runs on this machine's CPU
        overrides it to yield to requests; a remote one has nothing to yield."""
        return await self.embed(texts)


def capability_error(
    *, provider: str, feature: Literal["tools", "response_format"], supported_by: list[str]
) -> ApplicationError:
    """The 400 for a request that needs ``feature`` from a provider that lacks it.

    ``supported_by`` names the providers that have it, so the caller knows where to go.
    """
    listed = ", ".join(supported_by) if supported_by else "none is configured here"
    if feature == "tools":
        what, fix = "call tools", "Send the request without tools or tool messages"
    else:
        what, fix = "produce structured output", "Send the request without response_format"
    return ApplicationError(
        f"Provider {provider!r} cannot {what}. {fix}, or use a provider that can: {listed}.",
        code=f"{feature}_unsupported",
        status=400,
        extra={f"providers_with_{feature}": supported_by},
    )


def sampling_error(*, provider: str, name: str, supported_by: list[str]) -> ApplicationError:
    """OpenAI's 400 for a sampling field (``name``) that ``provider`` cannot honour,
    naming the providers that can."""
    listed = ", ".join(supported_by) if supported_by else "none is configured here"
    return ApplicationError(
        f"Provider {provider!r} does not support {name}. Send the request without {name}, "
        f"or use a provider that supports it: {listed}.",
        code="unsupported_parameter",
        status=400,
        extra={"param": name, "providers_with_parameter": supported_by},
    )


def check_capabilities(
    provider: ChatProvider, request: ChatRequest, *, supported_by: dict[str, list[str]]
) -> None:
    """Refuse (400) a request using tools or response_format that ``provider`` lacks.

    ``supported_by`` maps "tools" and "response_format" to the provider names that have
    them (the edge knows which are configured), and each sampling field its own.
    Raises ApplicationError.
    """
    for name in request.sampling.used():
        if name not in provider.sampling_fields:
            raise sampling_error(
                provider=provider.name, name=name, supported_by=supported_by.get(name, [])
            )
    if (request.uses_tools or request.tool_choice is not None) and not provider.supports_tools:
        raise capability_error(
            provider=provider.name, feature="tools", supported_by=supported_by.get("tools", [])
        )
    if request.response_format is not None and not provider.supports_response_format:
        raise capability_error(
            provider=provider.name,
            feature="response_format",
            supported_by=supported_by.get("response_format", []),
        )


# -- the default complete(): a stream collected into one ChatResult ------------------------


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
