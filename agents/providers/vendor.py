"""What the cloud vendor providers share: their configuration and finish-reason names."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from agents.providers.base import (
    ChatMessage,
    ChatProvider,
    ChatRequest,
    Citation,
    ImageInput,
    ToolCall,
)
from agents.providers.provider_errors import ProviderError


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
    # Every cloud vendor here searches the web (a search model, a tool or grounding),
    # calls tools and answers in JSON (translated to each vendor's form).
    supports_web_search = True
    supports_tools = True
    supports_response_format = True

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


def invalid_conversation_error(*, provider: str, message: str) -> ProviderError:
    """A 400 for a conversation the vendor's format cannot express (never retried)."""
    return ProviderError(
        message, provider=provider, retryable=False, code="invalid_conversation", status=400
    )


def tool_arguments(call: ToolCall, *, provider: str) -> dict[str, Any]:
    """A tool call's arguments as the JSON object vendors other than OpenAI want.

    Raises ProviderError (400) when they are not a JSON object.
    """
    if not call.arguments.strip():
        return {}
    try:
        parsed = json.loads(call.arguments)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise invalid_conversation_error(
            provider=provider,
            message=f"The arguments of tool call {call.id!r} are not a JSON object; send "
            "them as the model returned them.",
        )
    return parsed


def tool_call_names(messages: tuple[ChatMessage, ...]) -> dict[str, str]:
    """Function name by tool call id, over every assistant turn (a later id wins).

    Vendors without call ids (Gemini) need the name on each tool result.
    """
    return {
        call.id: call.name
        for message in messages
        if message.role == "assistant"
        for call in message.tool_calls
    }
