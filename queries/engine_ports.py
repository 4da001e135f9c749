"""The engine's ports, implemented with the apps' models and services.

The run owner hands these to ``agents.engine``; the engine never imports an app.
"""

from __future__ import annotations

from typing import Any

from agents.ports import Ports, ProductResults, Scope
from files.document_store import ChunkDocumentStore
from llmplatform.core.bridge import to_thread
from products.services import MAX_QUERY_LENGTH, product_search
from queries.memory_store import QueryMemoryStore
from sessions.models import Session


class SessionInterviewStore:
    """The shopping interview, kept on the session so any process can continue it."""

    @staticmethod
    def _load(scope: Scope) -> dict[str, Any]:
        # query_start made sure the session exists (through session_start).
        state = (
            Session.objects.filter(owner_id=scope.owner_id, session_id=scope.session_id)
            .values_list("shopping_state", flat=True)
            .first()
        )
        return dict(state or {})

    @staticmethod
    def _save(scope: Scope, interview: dict[str, Any]) -> None:
        Session.objects.filter(owner_id=scope.owner_id, session_id=scope.session_id).update(
            shopping_state=interview
        )

    async def load(self, scope: Scope) -> dict[str, Any]:
        return await to_thread(self._load)(scope)

    async def save(self, scope: Scope, interview: dict[str, Any]) -> None:
        await to_thread(self._save)(scope, interview)


class CachedProductSearch:
    """SerpAPI Google Shopping through the products app's cache."""

    async def search(self, *, query: str) -> ProductResults:
        result = await to_thread(product_search)(query=query[:MAX_QUERY_LENGTH])
        return ProductResults(
            cards=result.cards, available=result.available, message=result.message
        )


ENGINE_PORTS = Ports(
    memory=QueryMemoryStore(),
    interviews=SessionInterviewStore(),
    products=CachedProductSearch(),
    documents=ChunkDocumentStore(),
)
