"""Operations: the documents admin (status, pages, chunks, errors; re-ingest and delete)
and ``manage.py reindex_documents`` after an embedding model change."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from files.models import DocumentChunk, File
from llmplatform.core.dispatch import dispatcher
from tests.files.conftest import upload, wait_ingested
from tests.files.pdfs import facts_pdf

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process", "uploads")]


@pytest.fixture
def admin_client() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def documents(api) -> tuple[dict, dict]:
    good = upload(api, "handbook.pdf", facts_pdf(), "application/pdf").json()
    bad = upload(api, "scan.pdf", b"%PDF-1.4\n garbage", "application/pdf").json()
    return wait_ingested(api, good["file_id"]), wait_ingested(api, bad["file_id"])


def test_admin_lists_documents_with_status_pages_chunks_and_errors(admin_client, documents):
    good, _ = documents
    page = admin_client.get("/admin/files/file/").content.decode()
    assert "handbook.pdf" in page and "scan.pdf" in page
    assert "ready" in page and "failed" in page
    assert "damaged" in page  # the failed file's error message
    assert f">{good['ingestion']['chunks']}<" in page
    filtered = admin_client.get("/admin/files/file/?ingestion_status__exact=failed")
    assert "scan.pdf" in filtered.content.decode()
    assert "handbook.pdf" not in filtered.content.decode()


def test_admin_reingest_action_queues_and_ingests_again(admin_client, documents):
    good, _ = documents
    before = set(DocumentChunk.objects.filter(file_id=good["file_id"]).values_list("pk"))
    response = admin_client.post(
        "/admin/files/file/",
        {"action": "reingest", "_selected_action": [good["file_id"]]},
        follow=True,
    )
    assert "1 document(s) queued" in response.content.decode()
    dispatcher()._long_background.submit(lambda: None).result(timeout=60)
    file = File.objects.get(pk=good["file_id"])
    assert file.ingestion_status == "ready"
    after = set(DocumentChunk.objects.filter(file_id=good["file_id"]).values_list("pk"))
    assert after and not (after & before)  # new chunks, the old ones gone


def test_admin_delete_removes_bytes_and_chunks(admin_client, documents, uploads):
    good, _ = documents
    stored = File.objects.get(pk=good["file_id"]).storage_path
    assert (uploads / stored).exists()
    response = admin_client.post(
        "/admin/files/file/",
        {"action": "delete_with_passages", "_selected_action": [good["file_id"]]},
        follow=True,
    )
    assert response.status_code == 200
    assert not File.objects.filter(pk=good["file_id"]).exists()
    assert not DocumentChunk.objects.filter(file_id=good["file_id"]).exists()
    assert not (uploads / stored).exists()


def test_reindex_re_embeds_documents_of_another_model(api, documents):
    good, _ = documents
    # As if the chunks had been embedded by a model the process no longer uses.
    File.objects.filter(pk=good["file_id"]).update(embedding_model="text-embedding-3-small")
    DocumentChunk.objects.filter(file_id=good["file_id"]).update(
        embedding_model="text-embedding-3-small"
    )
    out, err = io.StringIO(), io.StringIO()
    call_command("reindex_documents", stdout=out, stderr=err)
    # The stale one and the failed one were taken; the failed one fails again.
    assert "2 document(s): 1 ready, 1 failed" in out.getvalue()
    assert "re-embedding with all-MiniLM-L6-v2" in err.getvalue()  # the progress bar
    chunks = DocumentChunk.objects.filter(file_id=good["file_id"])
    assert {c.embedding_model for c in chunks} == {"all-MiniLM-L6-v2"}
    assert File.objects.get(pk=good["file_id"]).embedding_model == "all-MiniLM-L6-v2"
    # Nothing left to do: a second run takes only the failed file.
    out = io.StringIO()
    call_command("reindex_documents", "--user", "u1", stdout=out, stderr=io.StringIO())
    assert "1 document(s)" in out.getvalue()
    out = io.StringIO()
    call_command("reindex_documents", "--file", good["file_id"], stdout=out, stderr=io.StringIO())
    assert "1 document(s): 1 ready, 0 failed" in out.getvalue()
    out = io.StringIO()
    call_command("reindex_documents", "--user", "nobody", stdout=out, stderr=io.StringIO())
    assert "0 document(s)" in out.getvalue()
