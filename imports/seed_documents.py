"""What a seed document becomes: each source collection's documents checked and turned
into the platform's models (unsaved), or refused with the reason.

The seed stored what its clients sent, so every field is checked here, once: a document
that cannot become a valid platform document raises ``InvalidDocument`` and is reported
by the import, never written.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.database import Database

from agents.providers.embeddings import OPENAI_EMBEDDING_DIMENSIONS, OPENAI_EMBEDDING_MODEL
from files.models import File
from products.models import ProductSearch
from products.services import CACHE_TTL
from queries.models import Query, Summary
from sessions.models import Event, Session
from sessions.services import EVENT_TYPES

# The seed stored text-embedding-3-small vectors without saying so.
SEED_EMBEDDING_MODEL = OPENAI_EMBEDDING_MODEL
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class InvalidDocument(Exception):
    """A source document that cannot become a platform document; the reason says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ----- reading source values -----


def _when(value: Any, name: str, *, required: bool = True) -> datetime | None:
    """A datetime from a BSON date, an ISO string or epoch milliseconds."""
    if value is None:
        if required:
            raise InvalidDocument(f"missing {name}")
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise InvalidDocument(f"{name} is not a date")
    if (
        isinstance(value, (int, float))
        and math.isfinite(value)
        and 0 <= value < 253_402_300_800_000
    ):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidDocument(f"{name} is not a date: {value[:40]!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise InvalidDocument(f"{name} is not a date")


def _text(
    doc: dict, name: str, *, max_length: int | None = None, default: str | None = None
) -> str:
    value = doc.get(name)
    if value in (None, "") and default is not None:
        return default
    if value is None or value == "":
        raise InvalidDocument(f"missing {name}")
    if not isinstance(value, str) or not value.strip():
        raise InvalidDocument(f"{name} is not text")
    if max_length is not None and len(value) > max_length:
        raise InvalidDocument(f"{name} is longer than {max_length} characters")
    return value


def _object(doc: dict, name: str, kind: type, default: Any) -> Any:
    value = doc.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise InvalidDocument(f"{name} is not a{'n' if kind is dict else ''} {kind.__name__}")
    return value


def _embedding(doc: dict, *, reembed: bool) -> tuple[list[float] | None, str]:
    vector = doc.get("embedding")
    if vector is None:
        return None, ""
    valid = (
        isinstance(vector, list)
        and len(vector) == OPENAI_EMBEDDING_DIMENSIONS
        and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            for x in vector
        )
    )
    if not valid:
        if reembed:
            return None, ""  # replaced by the re-embedding pass anyway
        size = len(vector) if isinstance(vector, list) else "no"
        raise InvalidDocument(
            f"embedding: {size} numbers, expected {OPENAI_EMBEDDING_DIMENSIONS} finite floats "
            "(import with --reembed to compute new ones)"
        )
    return [float(x) for x in vector], str(doc.get("embedding_model") or SEED_EMBEDDING_MODEL)


def _pk(doc: dict) -> ObjectId | None:
    source_id = doc.get("_id")
    return source_id if isinstance(source_id, ObjectId) else None


# ----- one document each -----


def _query(doc: dict, *, owner, source_db: str, reembed: bool) -> Query:
    when = _when(doc.get("timestamp"), "timestamp")
    embedding, embedding_model = _embedding(doc, reembed=reembed)
    metadata = _object(doc, "metadata", dict, {})
    return Query(
        pk=_pk(doc),
        owner=owner,
        user_id=_text(doc, "user_id", max_length=128),
        session_id=_text(doc, "session_id", max_length=128),
        query=_text(doc, "query"),
        response=doc.get("response") if isinstance(doc.get("response"), str) else "",
        embedding=embedding,
        embedding_model=embedding_model,
        citations=_object(doc, "citations", list, []),
        product_cards=_object(doc, "product_cards", list, []),
        options=_object(doc, "options", list, []),
        intent=_text(doc, "intent", max_length=50, default=""),
        mode=_text(doc, "mode", max_length=20, default="chat"),
        model_provider=_text(doc, "model_provider", max_length=50, default="unknown"),
        model_name=_text(doc, "model_name", max_length=200, default="unknown"),
        status=Query.Status.COMPLETED,
        usage=_object(doc, "usage", dict, {}),
        latency=_object(doc, "latency", dict, {}),
        agents_used=_object(doc, "agents_used", list, []),
        metadata={**metadata, "imported_from": {"db": source_db, "id": str(doc.get("_id"))}},
        timestamp=when,
        completed_at=when,
    )


def _events(doc: dict, *, owner, session_id: str) -> list[Event]:
    raw_events = _object(doc, "events", list, [])
    events = []
    for index, raw in enumerate(raw_events):
        if not isinstance(raw, dict):
            raise InvalidDocument(f"events: event {index} is not an object")
        t = raw.get("t")
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise InvalidDocument(f"events: event {index} has no integer time t")
        kind = raw.get("type")
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        if kind not in EVENT_TYPES:
            # Kept, as the API's escape hatch keeps what it has no type for.
            data = {**data, "original_type": str(kind)[:40]}
            kind = "custom"
        event_id = raw.get("id") if isinstance(raw.get("id"), str) else f"seed-{index}"
        events.append(
            Event(
                owner=owner,
                session_id=session_id,
                event_id=event_id[:128],
                type=kind,
                t=t,
                data=data,
                received_at=_when(t, "t"),
            )
        )
    return events


def _session(doc: dict, *, owner) -> tuple[Session, list[Event]]:
    session_id = _text(doc, "session_id", max_length=128)
    environment = _object(doc, "environment", dict, {})
    start_t = _when(doc.get("start_t"), "start_t")
    end_t = _when(doc.get("end_t"), "end_t", required=False)
    if end_t is not None and end_t < start_t:
        raise InvalidDocument("end_t is before start_t")
    events = _events(doc, owner=owner, session_id=session_id)
    session = Session(
        pk=_pk(doc),
        owner=owner,
        session_id=session_id,
        user_id=_text(doc, "user_id", max_length=128),
        environment=environment,
        device=str(environment.get("device") or "")[:50],
        start_t=start_t,
        end_t=end_t,
        event_count=len(events),
    )
    return session, events


def _summary(doc: dict, *, owner, source: Database) -> Summary:
    text = doc.get("summary") or doc.get("content") or doc.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidDocument("missing summary")
    session_id = _text(doc, "session_id", max_length=128)
    user_id = _text(doc, "user_id", max_length=128)
    created_at = _when(doc.get("created_at"), "created_at")
    pair_count = doc.get("pair_count")
    if pair_count is None:
        # The seed did not store the span: the session's questions up to the summary.
        pair_count = source["queries"].count_documents(
            {"session_id": session_id, "user_id": user_id, "timestamp": {"$lte": created_at}}
        )
    if isinstance(pair_count, bool) or not isinstance(pair_count, int) or pair_count < 1:
        raise InvalidDocument("pair_count: the summary covers no question of its session")
    return Summary(
        pk=_pk(doc),
        owner=owner,
        user_id=user_id,
        session_id=session_id,
        summary=text,
        pair_count=pair_count,
        model_provider=_text(doc, "model_provider", max_length=50, default=""),
        model_name=_text(doc, "model_name", max_length=200, default=""),
        created_at=created_at,
    )


def _product(doc: dict) -> ProductSearch:
    created_at = _when(doc.get("created_at"), "created_at")
    results = doc.get("results", doc.get("products"))
    if not isinstance(results, list):
        raise InvalidDocument("results is not a list")
    return ProductSearch(
        pk=_pk(doc),
        search_query=_text(doc, "search_query", max_length=500),
        results=results,
        created_at=created_at,
        expires_at=_when(doc.get("expires_at"), "expires_at", required=False)
        or created_at + CACHE_TTL,
    )


def _file(doc: dict, *, owner) -> File:
    size = doc.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidDocument("size is not a byte count")
    sha256 = doc.get("sha256") if isinstance(doc.get("sha256"), str) else ""
    storage_path = doc.get("storage_path") or doc.get("file_path") or doc.get("path") or ""
    return File(
        pk=_pk(doc),
        owner=owner,
        user_id=_text(doc, "user_id", max_length=128),
        filename=_text(doc, "filename", max_length=255),
        content_type=_text(doc, "content_type", max_length=100, default="application/octet-stream"),
        size=size,
        sha256=sha256.lower() if _SHA256.match(sha256.lower()) else "",
        storage_path=str(storage_path)[:255],
        uploaded_at=_when(doc.get("uploaded_at"), "uploaded_at"),
    )


def seed_document_convert(name: str, doc: dict, *, owner, source: Database, reembed: bool) -> Any:
    """The unsaved platform document(s) for ``doc`` of collection ``name``: a model, or a
    session with its events. Raises InvalidDocument."""
    if name == "queries":
        return _query(doc, owner=owner, source_db=source.name, reembed=reembed)
    if name == "sessions":
        return _session(doc, owner=owner)
    if name == "summaries":
        return _summary(doc, owner=owner, source=source)
    if name == "products":
        return _product(doc)
    return _file(doc, owner=owner)
