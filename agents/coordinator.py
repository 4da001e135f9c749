"""CoordinatorAgent: decides which agents answer a query, by rules first."""

from __future__ import annotations

import re

from agents.state import PipelineState

# Words that say the user wants to buy or compare products.
_SHOPPING = re.compile(
    r"\b(buy|purchase|recommend(ation)?s?|cheapest|best .{1,40} (for|under)|under \$?\d+|"
    r"price[sd]?|deal|shop(ping)?|which .{1,30} should i (get|buy))\b",
    re.IGNORECASE,
)
_PRODUCTISH = re.compile(
    r"\b(headphones?|laptops?|phones?|shoes?|cameras?|tv|monitors?|"
    r"keyboards?|chairs?|watch(es)?|speakers?|tablets?)\b",
    re.IGNORECASE,
)


def classify_intent(*, text: str, mode: str, has_images: bool) -> str:
    """``shopping``, ``vision`` or ``chat``, from the request alone."""
    if mode == "shopping":
        return "shopping"
    if has_images:
        return "vision"
    if _SHOPPING.search(text) and _PRODUCTISH.search(text):
        return "product_search"
    return "chat"


async def run(state: PipelineState) -> None:
    state.intent = classify_intent(text=state.text, mode=state.mode, has_images=bool(state.images))
    route = ["MemoryAgent"] if state.use_memory else []
    if state.intent == "shopping":
        route.append("ShoppingAgent")
    if state.intent == "product_search":
        route.append("ProductAgent")
    if state.images:
        route.append("VisionAgent")
    route.append("WriterAgent")
    state.route = route
