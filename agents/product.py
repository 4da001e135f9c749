"""ProductAgent: product cards from SerpAPI Google Shopping, degrading instead of failing."""

from __future__ import annotations

import logging

from agents.ports import Ports
from agents.state import RunState
from llmplatform.core.errors import ApplicationError

logger = logging.getLogger(__name__)


async def run(state: RunState, ports: Ports) -> None:
    try:
        result = await ports.products.search(query=state.product_query or state.text)
    except ApplicationError as exc:
        # A broken shop search must not cost the user their answer.
        logger.warning("product search failed: %s", exc.message)
        state.products_note = "Product search is temporarily unavailable."
        return
    state.product_cards = result.cards
    if not result.available:
        state.products_note = result.message
