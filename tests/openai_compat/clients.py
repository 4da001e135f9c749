"""What the /v1 tests share: the real `openai` SDK pointed at a live server, each vendor's
model id as /v1/models lists it, and the stored query behind a chat completion id."""

from __future__ import annotations

import openai

from queries.models import Query

VENDOR_MODELS = {
    "openai": "openai/gpt-4o-mini",
    "openrouter": "openrouter/openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "google": "google/gemini-2.0-flash",
}


def sdk(server, key: str, *, timeout: float = 30) -> openai.OpenAI:
    """The SDK as a client application holds it, without retries (a test sees each answer)."""
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=timeout)


def stored_query(completion_id: str) -> Query:
    """The query a ``chatcmpl-<id>`` answered."""
    assert completion_id.startswith("chatcmpl-")
    return Query.objects.get(pk=completion_id.removeprefix("chatcmpl-"))
