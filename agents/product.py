"""ProductAgent: product cards from SerpAPI Google Shopping, degrading instead of failing."""

from __future__ import annotations

import logging

from agents.state import PipelineState
from llmplatform.core.errors import ApplicationError
from products.services import MAX_QUERY_LENGTH, product_search_async

logger = logging.getLogger(__name__)


async def run(state: PipelineState) -> None:
    query = (state.product_query or state.text)[:MAX_QUERY_LENGTH]
    try:
        result = await product_search_async(query=query)
    except ApplicationError as exc:
        # A broken shop search must not cost the user their answer.
        logger.warning("product search failed: %s", exc.message)
        state.products_note = "Product search is temporarily unavailable."
        return
    state.product_cards = result.cards
    if not result.available:
        state.products_note = result.message
