"""The ingestion's states and their ways out: broken files end ``failed`` with advice and
nothing else lost, limits hold, a redelivered task does nothing twice, and the sweeper
fails what a dead worker or an empty queue left in progress."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.providers import embeddings
from agents.providers.provider_errors import ProviderError
from files.ingestion import document_ingest, documents_sweep
from files.models import DocumentChunk, File
from files.tasks import ingest_document
from llmplatform.core.dispatch import dispatcher
from tests.files.conftest import upload, wait_ingested
from tests.files.pdfs import facts_pdf, make_image_only_pdf, make_pdf

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process", "uploads")]

PDF = "application/pdf"


@pytest.mark.parametrize(
    ("data", "code", "advice"),
    [
        (make_pdf(["Secret plans."], user_password="hunter2"), "document_encrypted", "password"),
        (b"%PDF-1.7\n1 0 obj <</Type /Catalog>> garbage", "document_corrupt", "PDF viewer"),
        (make_image_only_pdf(), "document_no_text", "OCR"),
    ],
    ids=["encrypted", "corrupt", "image-only"],
)
def test_broken_pdfs_end_failed_with_advice_and_keep_everything_else(api, data, code, advice):
    good = wait_ingested(api, upload(api, "good.pdf", facts_pdf(), PDF).json()["file_id"])
    response = upload(api, "bad.pdf", data, PDF)
    assert response.status_code == 201  # accepted: the problem shows in its ingestion
    done = wait_ingested(api, response.json()["file_id"])
    assert done["ingestion"]["status"] == "failed"
    assert done["ingestion"]["error"]["code"] == code
    assert advice in done["ingestion"]["error"]["message"]
    assert done["ingestion"]["chunks"] == 0
    assert not DocumentChunk.objects.filter(file_id=done["file_id"]).exists()
    # The file itself, and every other document, are untouched.
    assert api.get(f"/api/v1/files/{done['file_id']}/content").status_code == 200
    assert api.get(f"/api/v1/files/{good['file_id']}").json()["ingestion"]["status"] == "ready"
    assert (
        DocumentChunk.objects.filter(file_id=good["file_id"]).count() == good["ingestion"]["chunks"]
    )


def test_page_limit(api, settings):
    settings.DOCUMENT_MAX_PAGES = 3
    done = wait_ingested(api, upload(api, "long.pdf", facts_pdf(), PDF).json()["file_id"])
    assert done["ingestion"]["error"]["code"] == "document_too_many_pages"
    assert "DOCUMENT_MAX_PAGES" in done["ingestion"]["error"]["message"]


def test_chunk_limit(api, settings):
    settings.DOCUMENT_MAX_CHUNKS = 2
    done = wait_ingested(api, upload(api, "long.pdf", facts_pdf(), PDF).json()["file_id"])
    assert done["ingestion"]["error"]["code"] == "document_too_many_chunks"
    assert "DOCUMENT_MAX_CHUNKS" in done["ingestion"]["error"]["message"]
    assert not DocumentChunk.objects.exists()


def test_time_limit_per_file(api, settings, monkeypatch):
    settings.DOCUMENT_INGEST_TIMEOUT_S = 0.5
    real = embeddings.LocalEmbeddings.embed_bulk_sync

    def slow(self, texts):
        import time

        time.sleep(0.3)
        return real(self, texts)

    # Each embedding batch takes 0.3 s: the per-file deadline passes between batches.
    monkeypatch.setattr(embeddings.LocalEmbeddings, "embed_bulk_sync", slow)
    monkeypatch.setattr("files.ingestion.EMBED_BATCH", 1)
    done = wait_ingested(api, upload(api, "slow.pdf", facts_pdf(), PDF).json()["file_id"])
    assert done["ingestion"]["error"]["code"] == "document_too_slow"
    assert not DocumentChunk.objects.exists()


def test_embedding_failure_ends_failed_saying_what_to_do(api, monkeypatch):
    def broken(self, texts):
        raise ProviderError("model unavailable", provider="local", retryable=False)

    monkeypatch.setattr(embeddings.LocalEmbeddings, "embed_bulk_sync", broken)
    done = wait_ingested(
        api, upload(api, "a.txt", b"Some text here.", "text/plain").json()["file_id"]
    )
    assert done["ingestion"]["error"]["code"] == "embedding_failed"
    assert "re-ingest" in done["ingestion"]["error"]["message"].lower()


def test_a_redelivered_task_does_nothing_twice(api):
    done = wait_ingested(api, upload(api, "h.pdf", facts_pdf(), PDF).json()["file_id"])
    chunk_ids = set(DocumentChunk.objects.filter(file_id=done["file_id"]).values_list("pk"))
    ingest_document.apply(args=[done["file_id"]])
    document_ingest(file_id=done["file_id"])
    assert set(DocumentChunk.objects.filter(file_id=done["file_id"]).values_list("pk")) == chunk_ids


def test_a_live_processing_file_is_left_to_its_worker(api):
    done = wait_ingested(api, upload(api, "h.pdf", facts_pdf(), PDF).json()["file_id"])
    File.objects.filter(pk=done["file_id"]).update(
        ingestion_status="processing", ingestion_heartbeat_at=timezone.now()
    )
    document_ingest(file_id=done["file_id"])
    assert File.objects.get(pk=done["file_id"]).ingestion_status == "processing"


def test_a_processing_file_whose_worker_died_is_taken_over_by_a_redelivery(api, settings):
    done = wait_ingested(api, upload(api, "h.pdf", facts_pdf(), PDF).json()["file_id"])
    File.objects.filter(pk=done["file_id"]).update(
        ingestion_status="processing",
        ingestion_heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    document_ingest(file_id=done["file_id"])
    assert File.objects.get(pk=done["file_id"]).ingestion_status == "ready"


def test_sweep_fails_stuck_ingestions_and_leaves_live_ones(api, settings):
    stuck, queued, live = (
        upload(api, f"{n}.txt", b"text " * 10, "text/plain").json()["file_id"]
        for n in ("stuck", "queued", "live")
    )
    for file_id in (stuck, queued, live):
        wait_ingested(api, file_id)
    now = timezone.now()
    File.objects.filter(pk=stuck).update(
        ingestion_status="processing", ingestion_heartbeat_at=now - timedelta(hours=1)
    )
    File.objects.filter(pk=queued).update(
        ingestion_status="pending",
        ingestion_queued_at=now - timedelta(seconds=settings.DOCUMENT_PENDING_TIMEOUT_S + 5),
    )
    File.objects.filter(pk=live).update(ingestion_status="processing", ingestion_heartbeat_at=now)
    assert documents_sweep() == 2
    statuses = {
        str(pk): (status, (error or {}).get("code"))
        for pk, status, error in File.objects.values_list(
            "pk", "ingestion_status", "ingestion_error"
        )
    }
    assert statuses[stuck] == ("failed", "worker_lost")
    assert statuses[queued] == ("failed", "ingestion_not_started")
    assert statuses[live] == ("processing", None)
    assert not DocumentChunk.objects.filter(file_id__in=[stuck, queued]).exists()
    # The sweep is on the schedule that beat (or the in-process scheduler) runs.
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "files.sweep_ingestions" in tasks


def test_a_file_deleted_during_ingestion_leaves_no_chunks(api, monkeypatch):
    from files import ingestion

    real_store = ingestion._store_chunks

    def delete_then_store(file, *args):
        File.objects.filter(pk=file.pk).delete()
        real_store(file, *args)

    monkeypatch.setattr(ingestion, "_store_chunks", delete_then_store)
    file_id = upload(api, "h.txt", b"Some text here.", "text/plain").json()["file_id"]
    # The in-process lane for long work runs one job at a time: a no-op after the
    # ingestion returns once the ingestion has finished.
    dispatcher()._long_background.submit(lambda: None).result(timeout=60)
    assert not File.objects.filter(pk=file_id).exists()
    assert not DocumentChunk.objects.filter(file_id=file_id).exists()
