"""CoordinatorAgent: decides which agents answer a query, by rules first.

Rules decide what is clear (shopping mode, attachments, "buy ... headphones", small
talk). Only a question the rules are unsure about (it names a product but not a wish to
buy, or a wish to buy but no product) costs a short model call to classify it.
"""

from __future__ import annotations

import logging
import re

from agents.ports import Ports
from agents.providers.base import ChatMessage, ChatRequest
from agents.providers.provider_errors import ProviderError
from agents.providers.registry import get_chat_provider
from agents.state import RunState
from llmplatform.core import tracing

logger = logging.getLogger(__name__)

# Words that say the user wants to buy or compare products.
_BUYING = re.compile(
    r"\b(buy|purchase|recommend(ation)?s?|cheapest|best .{1,40} (for|under)|under \$?\d+|"
    r"price[sd]?|deal|shop(ping)?|which .{1,30} should i (get|buy))\b",
    re.IGNORECASE,
)
_PRODUCT = re.compile(
    r"\b(headphones?|earbuds?|laptops?|phones?|smartphones?|shoes?|sneakers?|cameras?|tv|"
    r"monitors?|keyboards?|mouse|chairs?|desks?|watch(es)?|speakers?|tablets?|backpacks?)\b",
    re.IGNORECASE,
)
CLASSIFIER_PROMPT = (
    "You route questions on a chat platform. Reply with exactly one word: "
    "PRODUCTS if the user wants to find, compare or buy a product, otherwise CHAT."
)
# One word is the whole answer; admission (queries.admission) reserves this much for it.
CLASSIFIER_MAX_TOKENS = 5


def classify_intent(*, text: str, mode: str, has_images: bool) -> tuple[str, bool]:
    """``(intent, sure)`` from the request alone: shopping, vision, product_search or chat."""
    if mode == "shopping":
        return "shopping", True
    if has_images:
        return "vision", True
    buying, product = bool(_BUYING.search(text)), bool(_PRODUCT.search(text))
    if buying and product:
        return "product_search", True
    return "chat", not (buying or product)


async def _classify_with_model(state: RunState) -> str:
    with tracing.span("classifier", {"gen_ai.request.model": state.model}) as span:
        intent = await _classified_by_model(state)
        span.set_attribute("llmplatform.intent", intent)
        return intent


async def _classified_by_model(state: RunState) -> str:
    try:
        result = await get_chat_provider(state.provider).complete(
            ChatRequest(
                model=state.model,
                system=CLASSIFIER_PROMPT,
                messages=(ChatMessage(role="user", content=state.text),),
                temperature=0.0,
                max_tokens=CLASSIFIER_MAX_TOKENS,
            )
        )
    except ProviderError as exc:
        # Routing is an aid: if the model can't say, answer as a chat.
        logger.warning("intent classification failed, routing as chat: %s", exc.message)
        return "chat"
    state.add_usage(result.usage)
    state.intent_classified_by_model = True
    return "product_search" if "PRODUCT" in result.text.upper() else "chat"


async def run(state: RunState, ports: Ports) -> None:
    intent, sure = classify_intent(text=state.text, mode=state.mode, has_images=bool(state.images))
    state.intent = intent if sure else await _classify_with_model(state)
    tracing.annotate(llmplatform__intent=state.intent, llmplatform__intent_by_rules=sure)
    route = ["MemoryAgent"] if state.use_memory else []
    if state.intent == "shopping":
        route.append("ShoppingAgent")
    if state.intent == "product_search":
        route.append("ProductAgent")
    if state.images:
        route.append("VisionAgent")
    route.append("WriterAgent")
    state.route = route
    tracing.annotate(llmplatform__route=route)
