"""VisionAgent: describes attached images so the writer can use what they show."""

from __future__ import annotations

from agents.ports import Ports
from agents.providers.base import ChatMessage, ChatRequest
from agents.providers.registry import get_chat_provider
from agents.state import RunState

VISION_PROMPT = (
    "Describe these images in detail for someone who cannot see them: objects, text, "
    "people, setting, and anything relevant to this question: {question}"
)
# The description's length, at most (and at most the run's max_tokens).
VISION_MAX_TOKENS = 512


async def run(state: RunState, ports: Ports) -> None:
    provider = get_chat_provider(state.provider)
    result = await provider.complete(
        ChatRequest(
            model=state.model,
            messages=(
                ChatMessage(
                    role="user",
                    content=VISION_PROMPT.format(question=state.text),
                    images=tuple(state.images),
                ),
            ),
            temperature=0.2,
            max_tokens=min(state.max_tokens, VISION_MAX_TOKENS),
        )
    )
    state.vision_notes = result.text.strip()
    state.add_usage(result.usage)
