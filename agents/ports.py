"""What the engine needs from storage, as small typed ports.

The engine (``agents``) imports no app: the run owner (``queries.run``) hands it objects
that implement these Protocols with the apps' models and services. Tests can hand it
their own. Every method is async; implementations run their database calls through
``llmplatform.core.bridge``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

Emit = Callable[[dict[str, Any]], Awaitable[None]]

# Which past questions memory may recall: all of the end user's conversations ("user"),
# or only the running question's conversation ("session"). The session's own recent
# turns and summary are its context either way.
MemoryScope = Literal["user", "session"]
MEMORY_SCOPES: tuple[MemoryScope, ...] = ("user", "session")


@dataclass(frozen=True)
class Scope:
    """Whose data a run may see: one owner's end user and session, never wider."""

    owner_id: str
    user_id: str
    session_id: str
    query_id: str


@dataclass(frozen=True)
class MemoryHit:
    query_id: str
    query: str
    response: str
    score: float


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str


@dataclass(frozen=True)
class MemoryReads:
    """The memory step's reads that a question's start began, in the process that runs
    it, while it made its choices and admitted the question: the run takes them instead
    of reading again, so they are not between the question and its first token.

    ``recent_turns``: the session's turns (newest first) that admission reserved for;
    None when the client sent its own messages. ``summary``: the session's summary.
    ``vectors_refresh``: the read that brings the end user's stored vectors up to date,
    begun at ``vectors_since`` (``similar`` with this ``fresh_since`` waits for it instead
    of reading again; the run awaits it too, so what it raised is not lost). The last
    three are None where the run is a worker's (it reads them itself)."""

    recent_turns: Future[list[Turn]] | None
    summary: Future[str | None] | None
    vectors_refresh: Future[None] | None
    vectors_since: datetime | None


class MemoryStore(Protocol):
    async def refresh(self, scope: Scope, *, embedding_model: str, dimensions: int) -> None:
        """Bring what ``similar`` searches for the scope's end user up to date (a store
        holding vectors in memory reads what changed); run while the question is being
        embedded. Raises nothing: ``similar`` reads what this could not."""
        ...

    async def similar(
        self,
        scope: Scope,
        *,
        vector: list[float],
        embedding_model: str,
        limit: int,
        text: str = "",
        session_only: bool = False,
        fresh_since: datetime | None = None,
    ) -> list[MemoryHit]:
        """The end user's completed queries closest to the question ``text`` (its
        ``vector``), best first: a store may rank by the words too (names, codes).
        ``session_only``: only the queries of the scope's session (a real filter: the
        other sessions' queries are never candidates).

        Only vectors of ``embedding_model`` (two models' vectors are not comparable), and
        never the running query itself. Scores are cosine similarities in [-1, 1]. What
        a ``refresh`` that started at or after ``fresh_since`` read is not read again.
        """
        ...

    async def recent_turns(self, scope: Scope, *, limit: int) -> list[Turn]:
        """The session's last ``limit`` answered turns, newest first."""
        ...

    async def latest_summary(self, scope: Scope) -> str | None:
        """The session's newest conversation summary, if one was made."""
        ...


class InterviewStore(Protocol):
    async def load(self, scope: Scope) -> dict[str, Any]:
        """The session's shopping interview (empty when none is under way)."""
        ...

    async def save(self, scope: Scope, interview: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class ProductResults:
    cards: list[dict[str, Any]] = field(default_factory=list)
    available: bool = True
    message: str | None = None


class ProductSearch(Protocol):
    async def search(self, *, query: str) -> ProductResults:
        """Product cards for ``query``. Raises ApplicationError when the search failed."""
        ...


@dataclass(frozen=True)
class DocumentPassage:
    """A passage of one of the end user's ready documents."""

    chunk_id: str
    file_id: str
    title: str
    # 1-based page for paginated formats (PDF), else None.
    page: int | None
    text: str
    score: float


class DocumentStore(Protocol):
    async def search(
        self,
        scope: Scope,
        *,
        vector: list[float],
        embedding_model: str,
        file_ids: list[str] | None,
        limit: int,
        text: str = "",
    ) -> list[DocumentPassage]:
        """Passages of the end user's ready documents closest to the question ``text``
        (its ``vector``), best first: a store may rank by the words too.

        Only these files when ``file_ids`` is given, else every ready document of the
        end user; only chunks embedded with ``embedding_model``. Cosine scores.
        """
        ...


class NoDocuments:
    """A DocumentStore with no documents (engines run without one in some tests)."""

    async def search(self, scope: Scope, **_: Any) -> list[DocumentPassage]:
        return []


@dataclass(frozen=True)
class Ports:
    memory: MemoryStore
    interviews: InterviewStore
    products: ProductSearch
    documents: DocumentStore = field(default_factory=NoDocuments)
