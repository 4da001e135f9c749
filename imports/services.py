"""Import of the seed-era service's MongoDB (queries, sessions with their events, summaries,
products, files metadata) as one owner's documents.

Idempotent and resumable: every written document is recorded in ``ImportedRecord`` by its
source collection and ``_id``, and takes the source ``_id`` as its own primary key when it
is an ObjectId, so a run interrupted between the write and the record is repaired by the
next run instead of writing the document twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from django.db import IntegrityError
from django.db.models import Count, Min
from django.utils import timezone
from pymongo.database import Database

from analytics.services import rollups_rebuild
from imports.models import ImportedRecord
from imports.seed_documents import InvalidDocument, seed_document_convert
from llmplatform.core.bridge import run_sync
from queries.models import Query
from sessions.models import Event, Session
from sessions.selectors import session_metrics

# Queries first: session metrics and summary spans count the imported queries.
COLLECTIONS = ("queries", "sessions", "summaries", "products", "files")
DATE_FIELDS = {
    "queries": "timestamp",
    "sessions": "start_t",
    "summaries": "created_at",
    "products": "created_at",
    "files": "uploaded_at",
}
MAX_LISTED_PROBLEMS = 20
REEMBED_BATCH = 64


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
    # A session counts its queries as the run stores them (session_query_record); imported
    # queries never went through the run, so the session takes their numbers here. The
    # queries are imported first (COLLECTIONS), so they are all there.
    asked = Query.objects.filter(owner=session.owner, session_id=session.session_id).aggregate(
        n=Count("id"), first=Min("timestamp")
    )
    session.query_count, session.first_query_at = asked["n"] or 0, asked["first"]
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
                target = seed_document_convert(
                    name, doc, owner=owner, source=source, reembed=reembed
                )
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
                # A new model's vector: new to that model's warm matrices.
                Query.objects.filter(pk=query.pk).update(
                    embedding=[float(x) for x in vector],
                    embedding_model=embedder.model,
                    indexed_at=timezone.now(),
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
