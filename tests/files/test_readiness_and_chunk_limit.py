"""Two rules each pinned at its edge (issue 19's surviving changes): a document that is not
``ready`` contributes nothing to search or answers, even while its old chunks are still
stored; and DOCUMENT_MAX_CHUNKS is the most passages a document may have (exactly that
many are accepted, one more is refused)."""

from __future__ import annotations

import pytest

from files.ingestion import document_requeue
from files.models import DocumentChunk, File
from tests.files.conftest import ask, upload, wait_ingested
from tests.files.pdfs import facts_pdf

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process", "uploads")]

PDF = "application/pdf"


def _search(api) -> list[dict]:
    response = api.get(
        "/api/v1/search", {"q": "company mascot axolotl", "user_id": "u1", "scope": "documents"}
    )
    assert response.status_code == 200
    return response.json()["results"]


@pytest.mark.parametrize("status", [File.Ingestion.PENDING, File.Ingestion.PROCESSING])
def test_a_file_being_reingested_contributes_no_passages(api, status):
    done = wait_ingested(api, upload(api, "handbook.pdf", facts_pdf(), PDF).json()["file_id"])
    file_id = done["file_id"]
    # Searched once while ready: the chunk matrix is cached with the file in it.
    assert {hit["file_id"] for hit in _search(api)} == {file_id}

    file = document_requeue(file=File.objects.get(pk=file_id))
    if status == File.Ingestion.PROCESSING:
        File.objects.filter(pk=file.pk).update(ingestion_status=status)
    # The old chunks are still stored (a re-ingestion replaces them when it finishes)...
    assert DocumentChunk.objects.filter(file_id=file_id).count() == done["ingestion"]["chunks"]
    # ...but no search and no answer sees them until the file is ready again.
    assert _search(api) == []
    body = ask(api, "What is the name of the company mascot?", use_documents=True).json()
    assert [c for c in body["citations"] if c["type"] == "document"] == []


def test_exactly_max_chunks_is_accepted_and_one_more_is_refused(api, settings):
    first = wait_ingested(api, upload(api, "a.pdf", facts_pdf(), PDF).json()["file_id"])
    chunks = first["ingestion"]["chunks"]
    assert first["ingestion"]["status"] == "ready" and chunks >= 2

    settings.DOCUMENT_MAX_CHUNKS = chunks
    at_limit = wait_ingested(api, upload(api, "b.pdf", facts_pdf(), PDF).json()["file_id"])
    assert at_limit["ingestion"]["status"] == "ready", at_limit["ingestion"]
    assert at_limit["ingestion"]["chunks"] == chunks

    settings.DOCUMENT_MAX_CHUNKS = chunks - 1
    over = wait_ingested(api, upload(api, "c.pdf", facts_pdf(), PDF).json()["file_id"])
    assert over["ingestion"]["status"] == "failed"
    assert over["ingestion"]["error"]["code"] == "document_too_many_chunks"
    assert f"more than {chunks - 1} passages" in over["ingestion"]["error"]["message"]
    assert not DocumentChunk.objects.filter(file_id=over["file_id"]).exists()
