"""Import of the seed-era service's MongoDB (queries, sessions with their events, summaries,
products, files metadata) as one owner's documents.

Idempotent and resumable: every written document is recorded in ``ImportedRecord`` by its
source collection and ``_id``, and takes the source ``_id`` as its own primary key when it
is an ObjectId, so a run interrupted between the write and the record is repaired by the
next run instead of writing the document twice.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from django.db import IntegrityError
from pymongo.database import Database

from agents.providers.embeddings import OPENAI_EMBEDDING_DIMENSIONS, OPENAI_EMBEDDING_MODEL
from analytics.services import rollups_rebuild
from files.models import File
from imports.models import ImportedRecord
from llmplatform.core.bridge import run_sync
from products.models import ProductSearch
from products.services import CACHE_TTL
from queries.models import Query, Summary
from sessions.models import Event, Session
from sessions.selectors import session_metrics
from sessions.services import EVENT_TYPES

# Queries first: session metrics and summary spans count the imported queries.
COLLECTIONS = ("queries", "sessions", "summaries", "products", "files")
DATE_FIELDS = {
    "queries": "timestamp",
    "sessions": "start_t",
    "summaries": "created_at",
    "products": "created_at",
    "files": "uploaded_at",
}
# The seed stored text-embedding-3-small vectors without saying so.
SEED_EMBEDDING_MODEL = OPENAI_EMBEDDING_MODEL
MAX_LISTED_PROBLEMS = 20
REEMBED_BATCH = 64
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class InvalidDocument(Exception):
    """A source document that cannot become a platform document; the reason says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class CollectionReport:
    name: str
    read: int = 0
    imported: int = 0
    already_imported: int = 0
    invalid: int = 0
    reasons: Counter = field(default_factory=Counter)
    # (source _id, reason) of the first MAX_LISTED_PROBLEMS invalid documents.
    problems: list[tuple[str, str]] = field(default_factory=list)

    def reject(self, source_id: str, reason: str) -> None:
        self.invalid += 1
        self.reasons[reason.split(":")[0]] += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append((source_id, reason))


@dataclass
class ImportReport:
    source_db: str
    dry_run: bool
    collections: dict[str, CollectionReport]
    reembedded: int = 0
    embedding_model: str = ""
    rollups_rebuilt: bool = False


class Progress:
    """What the command shows while a collection is read (tqdm there, nothing here)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


ProgressFactory = Callable[[str, int], Progress]


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


# ----- writing -----


def _insert(target: Any) -> bool:
    """Insert ``target``; False when a document with its primary key is already there."""
    try:
        target.save(force_insert=True)
    except IntegrityError:
        if target.pk is not None and type(target).objects.filter(pk=target.pk).exists():
            return False  # written by an interrupted run, before its record
        raise InvalidDocument(
            f"conflict: the owner already has a {type(target)._meta.verbose_name} like it"
        ) from None
    return True


def _write_session(session: Session, events: list[Event]) -> None:
    _insert(session)
    stored = set(
        Event.objects.filter(owner=session.owner, session_id=session.session_id).values_list(
            "event_id", flat=True
        )
    )
    fresh = {event.event_id: event for event in events if event.event_id not in stored}
    if fresh:
        Event.objects.bulk_create(list(fresh.values()))
    if session.end_t is not None:
        # An ended session keeps its final metrics, as session_end stores them.
        metrics = session_metrics(session=session, now=session.end_t)
        Session.objects.filter(pk=session.pk).update(
            metrics=metrics.as_document(),
            query_count=metrics.query_count,
            event_count=metrics.event_count,
            first_query_at=metrics.first_query_at,
        )


def _source_documents(source: Database, name: str, since: datetime | None) -> tuple[Any, int]:
    filter_: dict[str, Any] = {}
    if since is not None:
        date_field = DATE_FIELDS[name]
        # Dates are BSON dates in the seed; sessions' times may be epoch milliseconds.
        filter_ = {
            "$or": [
                {date_field: {"$gte": since}},
                {date_field: {"$gte": int(since.timestamp() * 1000)}},
            ]
        }
    collection = source[name]
    return collection.find(filter_).sort("_id", 1), collection.count_documents(filter_)


def _convert(name: str, doc: dict, *, owner, source: Database, reembed: bool) -> Any:
    if name == "queries":
        return _query(doc, owner=owner, source_db=source.name, reembed=reembed)
    if name == "sessions":
        return _session(doc, owner=owner)
    if name == "summaries":
        return _summary(doc, owner=owner, source=source)
    if name == "products":
        return _product(doc)
    return _file(doc, owner=owner)


def _import_collection(
    name: str,
    *,
    source: Database,
    owner,
    since: datetime | None,
    dry_run: bool,
    reembed: bool,
    progress: ProgressFactory,
) -> CollectionReport:
    report = CollectionReport(name)
    done = set(
        ImportedRecord.objects.filter(source_collection=name).values_list("source_id", flat=True)
    )
    documents, total = _source_documents(source, name, since)
    bar = progress(name, total)
    try:
        for doc in documents:
            bar.update()
            report.read += 1
            source_id = str(doc.get("_id"))
            if source_id in done:
                report.already_imported += 1
                continue
            try:
                target = _convert(name, doc, owner=owner, source=source, reembed=reembed)
                if dry_run:
                    report.imported += 1
                    continue
                if name == "sessions":
                    _write_session(*target)
                    target = target[0]
                elif not _insert(target):
                    report.already_imported += 1
                    _record(name, source_id, source.name, target, owner)
                    continue
            except InvalidDocument as problem:
                report.reject(source_id, problem.reason)
                continue
            _record(name, source_id, source.name, target, owner)
            report.imported += 1
    finally:
        bar.close()
    return report


def _record(name: str, source_id: str, source_db: str, target: Any, owner) -> None:
    ImportedRecord.objects.create(
        source_collection=name,
        source_id=source_id,
        source_db=source_db,
        target_id=str(target.pk),
        owner=owner,
    )


def _batches(ids: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in ids:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def imported_queries_reembed(*, owner, embedder: Any, progress: ProgressFactory) -> int:
    """Re-embed the owner's imported queries that another model embedded. Raises
    ProviderError (the embedder's)."""
    target_ids = ImportedRecord.objects.filter(
        source_collection="queries", owner=owner
    ).values_list("target_id", flat=True)
    stale = list(
        Query.objects.filter(pk__in=[ObjectId(t) for t in target_ids])
        .exclude(embedding_model=embedder.model)
        .values_list("pk", flat=True)
    )
    bar = progress("re-embedding", len(stale))
    done = 0
    try:
        for batch in _batches([str(pk) for pk in stale], REEMBED_BATCH):
            queries = list(Query.objects.filter(pk__in=[ObjectId(pk) for pk in batch]))
            vectors = run_sync(embedder.embed([query.query for query in queries]))
            for query, vector in zip(queries, vectors, strict=True):
                Query.objects.filter(pk=query.pk).update(
                    embedding=[float(x) for x in vector], embedding_model=embedder.model
                )
            done += len(queries)
            bar.update(len(queries))
    finally:
        bar.close()
    return done


def seed_import(
    *,
    source: Database,
    owner,
    since: datetime | None = None,
    dry_run: bool = False,
    reembed: bool = False,
    embedder: Any = None,
    progress: ProgressFactory = lambda name, total: Progress(),
) -> ImportReport:
    """Import every seed collection as ``owner``'s. Raises PyMongoError (the source),
    ProviderError (re-embedding); a bad document is reported, never raised."""
    report = ImportReport(
        source_db=source.name,
        dry_run=dry_run,
        collections={
            name: _import_collection(
                name,
                source=source,
                owner=owner,
                since=since,
                dry_run=dry_run,
                reembed=reembed,
                progress=progress,
            )
            for name in COLLECTIONS
        },
    )
    if dry_run:
        return report
    if reembed:
        report.embedding_model = embedder.model
        report.reembedded = imported_queries_reembed(
            owner=owner, embedder=embedder, progress=progress
        )
    if any(c.imported for c in report.collections.values()):
        # Imported rows are backdated: the day rollups are folded again from scratch.
        rollups_rebuild()
        report.rollups_rebuilt = True
    return report
