"""manage.py import_seed_data: seed-shaped documents (the collection layout of
shared/seed/llm-platform-backend.md) written by the test to a second database on the test
server, imported as one owner's; reruns, dry runs, invalid documents, --since, resuming."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from io import StringIO

import pytest
from bson import ObjectId
from django.conf import settings
from django.core.management import CommandError, call_command
from pymongo import MongoClient

from analytics.models import QueryDay
from files.models import File
from imports.models import ImportedRecord
from products.models import ProductSearch
from queries.models import Query, Summary
from sessions.models import Event, Session

pytestmark = pytest.mark.django_db

JAN = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
FEB = datetime(2025, 2, 10, 9, 0, tzinfo=UTC)
MAR = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)


def _vector(seed: int) -> list[float]:
    return [((seed * 31 + i) % 97) / 97.0 for i in range(1536)]


IDS = {name: ObjectId() for name in ("q1", "q2", "q3", "q4", "q5", "s1", "s2", "s3", "sum1")}


def _seed_documents() -> dict[str, list[dict]]:
    return {
        "queries": [
            {
                "_id": IDS["q1"],
                "user_id": "user_123",
                "session_id": "sess_abc",
                "query": "What are the best headphones?",
                "response": "Here are some excellent options...",
                "embedding": _vector(1),
                "citations": [{"title": "Review Site", "url": "https://example.com/r"}],
                "product_cards": [
                    {"title": "Sony WH-1000XM5", "price": "$399", "url": "https://example.com/p"}
                ],
                "intent": "shopping",
                "model_provider": "openai",
                "model_name": "gpt-4o-mini",
                "timestamp": JAN,
                "agents_used": ["MemoryAgent", "ShoppingAgent", "WriterAgent"],
                "metadata": {"web_search": True},
            },
            {
                "_id": IDS["q2"],
                "user_id": "user_123",
                "session_id": "sess_abc",
                "query": "And under $200?",
                "response": "Consider these...",
                "embedding": _vector(2),
                "intent": "shopping",
                "model_provider": "anthropic",
                "model_name": "claude-3-5-haiku",
                "timestamp": FEB,
                "agents_used": ["WriterAgent"],
                "metadata": {},
            },
            {
                "_id": IDS["q3"],
                "user_id": "user_456",
                "session_id": "sess_def",
                "query": "Hello",
                "response": "Hi!",
                "embedding": _vector(3),
                "intent": "chat",
                "model_provider": "openai",
                "model_name": "gpt-4o-mini",
                "timestamp": MAR,
                "agents_used": ["WriterAgent"],
                "metadata": {},
            },
            # Invalid: no question.
            {"_id": IDS["q4"], "user_id": "u", "session_id": "s", "timestamp": MAR},
            # Invalid: an embedding of the wrong size.
            {
                "_id": IDS["q5"],
                "user_id": "u",
                "session_id": "s",
                "query": "short vector",
                "embedding": [0.1, 0.2, 0.3],
                "timestamp": MAR,
            },
        ],
        "sessions": [
            {
                "_id": IDS["s1"],
                "session_id": "sess_abc",
                "user_id": "user_123",
                "environment": {"device": "Desktop", "browser": "Chrome 120", "os": "macOS"},
                "start_t": JAN,
                "end_t": FEB,
                "events": [
                    {"t": 1736499600000, "type": "page_view", "data": {"page": "/"}},
                    {"t": 1736499601000, "type": "click", "data": {"element": "submit_button"}},
                    {"t": 1736499602000, "type": "hover", "data": {"element": "logo"}},
                ],
            },
            {
                "_id": IDS["s2"],
                "session_id": "sess_def",
                "user_id": "user_456",
                "environment": {"device": "Mobile"},
                "start_t": 1741597200000,  # epoch milliseconds (2025-03-10)
                "events": [],
            },
            # Invalid: no usable start time.
            {"_id": IDS["s3"], "session_id": "sess_bad", "user_id": "u", "start_t": "yesterday"},
        ],
        "summaries": [
            {
                "_id": IDS["sum1"],
                "user_id": "user_123",
                "session_id": "sess_abc",
                "summary": "The user wants headphones under $200.",
                "created_at": datetime(2025, 2, 11, tzinfo=UTC),
            }
        ],
        "products": [
            {
                "search_query": "wireless headphones",
                "results": [{"title": "Sony WH-1000XM5", "price": "$399"}],
                "created_at": FEB,
            }
        ],
        "files": [
            {
                "user_id": "user_123",
                "filename": "receipt.png",
                "content_type": "image/png",
                "size": 2048,
                "file_path": "uploads/user_123/receipt.png",
                "uploaded_at": FEB,
            },
            {"user_id": "user_123", "filename": "broken.bin", "size": -1, "uploaded_at": FEB},
        ],
    }


@pytest.fixture
def seed_db():
    """A second database on the test server, filled as the seed service left it."""
    client = MongoClient(settings.DATABASES["default"]["HOST"], tz_aware=True)
    name = f"seed_{uuid.uuid4().hex[:10]}"
    database = client[name]
    for collection, documents in _seed_documents().items():
        database[collection].insert_many(documents)
    yield {"uri": settings.DATABASES["default"]["HOST"], "db": name, "database": database}
    client.drop_database(name)
    client.close()


@pytest.fixture
def alice(make_owner):
    return make_owner("alice")[0]


def run(seed_db, *extra: str) -> str:
    out = StringIO()
    call_command(
        "import_seed_data",
        "--source-uri",
        seed_db["uri"],
        "--source-db",
        seed_db["db"],
        "--owner",
        "alice",
        *extra,
        stdout=out,
        stderr=StringIO(),
    )
    return out.getvalue()


def _row(report: str, collection: str) -> list[int]:
    line = next(line for line in report.splitlines() if line.split()[:1] == [collection])
    return [int(n) for n in line.split()[1:]]


def test_the_seed_becomes_the_owners_documents(seed_db, alice):
    report = run(seed_db)
    # read, imported, already imported, invalid
    assert _row(report, "queries") == [5, 3, 0, 2]
    assert _row(report, "sessions") == [3, 2, 0, 1]
    assert _row(report, "summaries") == [1, 1, 0, 0]
    assert _row(report, "products") == [1, 1, 0, 0]
    assert _row(report, "files") == [2, 1, 0, 1]
    assert f"invalid queries {IDS['q4']}: missing query" in report
    assert f"invalid queries {IDS['q5']}: embedding: 3 numbers" in report
    assert f"invalid sessions {IDS['s3']}: start_t is not a date" in report
    assert "invalid files" in report and "size is not a byte count" in report

    q1 = Query.objects.get(pk=IDS["q1"])
    assert q1.owner == alice and q1.status == "completed"
    assert q1.timestamp == JAN and q1.embedding_model == "text-embedding-3-small"
    assert len(q1.embedding) == 1536 and q1.embedding[5] == pytest.approx(_vector(1)[5])
    assert q1.citations[0]["url"] == "https://example.com/r"
    assert q1.agents_used == ["MemoryAgent", "ShoppingAgent", "WriterAgent"]
    assert q1.metadata["imported_from"] == {"db": seed_db["db"], "id": str(IDS["q1"])}
    assert set(Query.objects.values_list("owner_id", flat=True)) == {alice.pk}

    session = Session.objects.get(owner=alice, session_id="sess_abc")
    assert session.device == "Desktop" and session.end_t == FEB
    events = list(Event.objects.filter(owner=alice, session_id="sess_abc").order_by("t"))
    assert [e.type for e in events] == ["page_view", "click", "custom"]
    assert events[2].data == {"element": "logo", "original_type": "hover"}
    assert session.event_count == 3 and session.query_count == 2  # final metrics stored
    later = Session.objects.get(owner=alice, session_id="sess_def")
    assert later.start_t == MAR and later.end_t is None

    summary = Summary.objects.get(owner=alice)
    assert summary.pair_count == 2  # the session's questions before the summary
    assert ProductSearch.objects.get().results[0]["title"] == "Sony WH-1000XM5"
    stored_file = File.objects.get(owner=alice)
    assert (stored_file.filename, stored_file.size) == ("receipt.png", 2048)
    assert stored_file.storage_path == "uploads/user_123/receipt.png"

    # Backdated rows are in the day rollups.
    days = {row.day: row.queries for row in QueryDay.objects.filter(owner=alice)}
    assert days == {date(2025, 1, 10): 1, date(2025, 2, 10): 1, date(2025, 3, 10): 1}
    assert "Analytics rollups rebuilt." in report
    assert ImportedRecord.objects.count() == 3 + 2 + 1 + 1 + 1


def test_a_rerun_adds_nothing(seed_db, alice):
    run(seed_db)
    counts = [m.objects.count() for m in (Query, Session, Event, Summary, ProductSearch, File)]
    report = run(seed_db)
    assert [m.objects.count() for m in (Query, Session, Event, Summary, ProductSearch, File)] == (
        counts
    )
    assert _row(report, "queries") == [5, 0, 3, 2]
    assert _row(report, "sessions") == [3, 0, 2, 1]
    assert _row(report, "products") == [1, 0, 1, 0]
    assert "rollups rebuilt" not in report


def test_a_dry_run_writes_nothing(seed_db, alice):
    report = run(seed_db, "--dry-run")
    assert report.startswith("Dry run")
    assert _row(report, "queries") == [5, 3, 0, 2]
    for model in (Query, Session, Event, Summary, ProductSearch, File, ImportedRecord, QueryDay):
        assert not model.objects.exists(), model


def test_since_imports_only_documents_from_that_date_on(seed_db, alice):
    report = run(seed_db, "--since", "2025-02-01")
    assert set(Query.objects.values_list("pk", flat=True)) == {IDS["q2"], IDS["q3"]}
    # Sessions by start: sess_abc started in January; sess_def's epoch-ms start is in March.
    assert list(Session.objects.values_list("session_id", flat=True)) == ["sess_def"]
    assert _row(report, "queries") == [4, 2, 0, 2]
    # The rest comes with a later run without --since, nothing twice.
    run(seed_db)
    assert Query.objects.count() == 3 and Session.objects.count() == 2


def test_an_interrupted_run_is_finished_by_the_next_without_duplicates(seed_db, alice):
    run(seed_db)
    # As if the run stopped after writing these documents and before recording them.
    ImportedRecord.objects.filter(source_id__in=[str(IDS["q2"]), str(IDS["s1"])]).delete()
    Event.objects.filter(session_id="sess_abc", type="custom").delete()
    report = run(seed_db)
    assert Query.objects.count() == 3 and Session.objects.count() == 2
    assert Event.objects.filter(session_id="sess_abc").count() == 3  # the missing one restored
    assert ImportedRecord.objects.filter(source_id=str(IDS["q2"])).exists()
    assert _row(report, "queries") == [5, 0, 3, 2]


class FakeEmbedder:
    model = "fake-embedder-8"
    dimensions = 8

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.texts += texts
        return [[float(len(text))] * self.dimensions for text in texts]


def test_reembed_replaces_the_imported_embeddings(seed_db, alice, monkeypatch):
    embedder = FakeEmbedder()
    monkeypatch.setattr(
        "imports.management.commands.import_seed_data.get_embedder", lambda: embedder
    )
    report = run(seed_db, "--reembed")
    # With --reembed a wrong-size seed vector is no reason to drop the question.
    assert _row(report, "queries") == [5, 4, 0, 1]
    assert "Re-embedded 4 queries with fake-embedder-8." in report
    q5 = Query.objects.get(pk=IDS["q5"])
    assert q5.embedding_model == "fake-embedder-8" and q5.embedding == [12.0] * 8
    assert sorted(embedder.texts) == sorted(q.query for q in Query.objects.all())
    # A rerun has nothing left to re-embed.
    assert "Re-embedded 0 queries" in run(seed_db, "--reembed")


def test_an_unknown_owner_or_database_is_an_error(seed_db, alice):
    with pytest.raises(CommandError, match="No user"):
        call_command(
            "import_seed_data",
            "--source-uri",
            seed_db["uri"],
            "--source-db",
            seed_db["db"],
            "--owner",
            "nobody",
        )
    with pytest.raises(CommandError, match="no database"):
        run({**seed_db, "db": "no_such_seed_db"})
    with pytest.raises(CommandError, match="--since"):
        run(seed_db, "--since", "last tuesday")
