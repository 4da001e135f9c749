"""What the cloud vendor providers share: their configuration and finish-reason names."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import ClassVar

from agents.providers.base import ChatProvider, ChatRequest, Citation, ImageInput


@dataclass(frozen=True)
class VendorConfig:
    api_key: str
    base_url: str | None  # None: the SDK's default (the vendor's public endpoint)
    connect_timeout: float  # seconds
    read_timeout: float  # seconds
    default_model: str


class VendorChatProvider(ChatProvider):
    """A chat provider backed by a vendor SDK client, built once and shared."""

    #: The setting an operator must fix when the vendor rejects the key.
    key_setting: ClassVar[str]
    # Every cloud vendor here searches the web (a search model, a tool or grounding).
    supports_web_search = True

    def __init__(self, config: VendorConfig) -> None:
        self.config = config
        self.default_model = config.default_model

    def model_for(self, request: ChatRequest) -> str:
        return request.model or self.default_model


# One vocabulary for clients, whatever vendor answered.
_FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content_filter",
    "refusal": "content_filter",
    "safety": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "spii": "content_filter",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
}


def normalise_finish_reason(reason: str) -> str:
    """``stop``, ``length``, ``content_filter``, ``tool_calls`` or the vendor's own word."""
    lowered = reason.lower()
    return _FINISH_REASONS.get(lowered, lowered)


def data_url(image: ImageInput) -> str:
    return f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def base64_text(image: ImageInput) -> str:
    return base64.b64encode(image.data).decode("ascii")


def unique_citations(citations: list[Citation]) -> list[Citation]:
    seen: set[str] = set()
    unique = []
    for citation in citations:
        if citation.url and citation.url not in seen:
            seen.add(citation.url)
            unique.append(citation)
    return unique
