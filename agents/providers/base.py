"""The provider interface every vendor plugin implements.

Everything above this package (agents, services, views) speaks only these types;
vendor SDKs are imported in the vendor modules of this package and nowhere else.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from llmplatform.core.errors import ApplicationError


@dataclass(frozen=True)
class ImageInput:
    """An image given to a vision-capable model: raw bytes with their media type."""

    data: bytes
    media_type: str  # "image/png", "image/jpeg", "image/webp" or "image/gif"


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["user", "assistant"]
    content: str
    images: tuple[ImageInput, ...] = ()


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    # Ask for a web-grounded answer (search-preview models, grounding, online models).
    web_search: bool = False


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

    Text chunks carry ``text``; the last chunk of a successful stream carries
    ``finish_reason`` and ``usage`` (and any citations the vendor sent at the end).
    """

    text: str = ""
    citations: tuple[Citation, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None
    # The model that answered, as the vendor named it (set on the last chunk): pricing and
    # ChatResult.model use it, since it can differ from the request (search models,
    # dated snapshots, fallbacks).
    model: str | None = None


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


class ProviderError(ApplicationError):
    """A vendor call failed. ``retryable`` says whether trying again may succeed.

    The message never contains keys or request bodies: it names the provider, what
    went wrong and what the caller can do.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retryable: bool,
        code: str = "provider_error",
        status: int = 502,
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            code=code,
            status=status,
            extra={
                "provider": provider,
                "retryable": retryable,
                "upstream_status": upstream_status,
            },
        )
        self.provider = provider
        self.retryable = retryable
        self.upstream_status = upstream_status
        self.retry_after = retry_after


class ChatProvider(abc.ABC):
    """A chat model vendor. One instance per configured vendor, shared by all requests."""

    name: str
    #: What the API and the UI say about this provider (e.g. "demo-quality local model").
    description: str = ""
    #: Whether ``ChatRequest.web_search`` works (the vendor searches the web itself).
    supports_web_search: bool = False

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Yield the answer as it is generated. Raises ProviderError."""

    async def complete(self, request: ChatRequest) -> ChatResult:
        """The whole answer at once. Raises ProviderError."""
        from agents.providers.collect import collect_stream

        return await collect_stream(self, request)


class EmbeddingProvider(abc.ABC):
    """Turns texts into vectors. ``model`` is recorded next to every stored vector."""

    model: str
    dimensions: int

    @abc.abstractmethod
    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One unit-length-or-not vector per text, in order. Raises ProviderError."""
