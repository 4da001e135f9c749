"""Ask your documents, end to end in the embedded default: upload → background ingestion
(the in-process dispatcher's background thread) → chunks in SecantusDB → questions whose
prompt carries the passages and whose answer cites file and page → deletion (search has
its own suite, ``tests/search``).

Real PDFs generated here with known facts on known pages, the real local embedder, the
fake OpenAI server as the model.
"""

from __future__ import annotations

import hashlib
import io

import pypdf
import pytest

from files.models import DocumentChunk, File
from queries.models import Query
from tests.files.conftest import ask, upload, wait_ingested
from tests.files.pdfs import FACTS, facts_pdf, make_docx

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process", "uploads")]

PDF = "application/pdf"


def _system_prompt(fakes) -> str:
    [request] = [r for r in fakes["openai"].chat_requests if "messages" in (r.body or {})][-1:]
    return "\n".join(
        m["content"] for m in request.body["messages"] if m["role"] in ("system", "developer")
    )


def test_upload_returns_pending_ingestion_then_ready_with_pages_and_chunks(api):
    response = upload(api, "handbook.pdf", facts_pdf(), PDF)
    assert response.status_code == 201
    body = response.json()
    # Upload never waits for ingestion: the 201 describes it as queued or under way.
    assert body["ingestion"]["status"] in ("pending", "processing", "ready")
    assert set(body["ingestion"]) == {"status", "pages", "chunks", "progress", "error"}
    assert body["content_url"] == f"/api/v1/files/{body['file_id']}/content"
    done = wait_ingested(api, body["file_id"])
    assert done["ingestion"] == {
        "status": "ready",
        "pages": 4,
        "chunks": done["ingestion"]["chunks"],
        "progress": 1.0,
        "error": None,
    }
    chunks = DocumentChunk.objects.filter(file_id=File.objects.get().pk).order_by("index")
    assert done["ingestion"]["chunks"] == len(chunks) >= 4
    # Every fact is in a chunk of its own page (PDF lines wrap: compared without them),
    # and every chunk is the page's text at the offsets it records.
    pages = [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(facts_pdf())).pages]
    for page, fact, _ in FACTS:
        holding = [c for c in chunks if fact in " ".join(c.text.split())]
        assert holding and all(c.page == page for c in holding), fact
    for chunk in chunks:
        assert pages[chunk.page - 1][chunk.char_start : chunk.char_end].strip() == chunk.text
    assert all(c.embedding_model == "all-MiniLM-L6-v2" and len(c.embedding) == 384 for c in chunks)


def test_images_have_no_ingestion(api):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    body = upload(api, "pic.png", png, "image/png").json()
    assert body["ingestion"] is None
    assert File.objects.get().ingestion_status == ""


def test_asking_a_document_puts_its_passage_in_the_prompt_and_cites_the_page(
    api, facts_file, fakes
):
    response = ask(
        api, "What is the name of the company mascot?", documents=[facts_file["file_id"]]
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert "DocumentsAgent" in body["agents_used"]
    assert "purple axolotl named Bartholomew" in _system_prompt(fakes)
    documents = [c for c in body["citations"] if c["type"] == "document"]
    assert documents[0] == {
        "type": "document",
        "file_id": facts_file["file_id"],
        "title": "handbook.pdf",
        "page": 2,
        "snippet": documents[0]["snippet"],
        "url": f"/api/v1/files/{facts_file['file_id']}/content",
        # The fake's answer cites no [n]: searched, not relied on.
        "cited": False,
    }
    assert "Bartholomew" in documents[0]["snippet"]
    # Stored with the query as sent.
    assert Query.objects.get(pk=body["query_id"]).citations == body["citations"]


def test_use_documents_searches_all_of_the_users_ready_documents(api, facts_file, fakes):
    body = ask(api, "Where is the rowing regatta held?", use_documents=True).json()
    assert "Lake Bled" in _system_prompt(fakes)
    assert next(c["page"] for c in body["citations"] if c["type"] == "document") == 3


def test_questions_without_documents_run_no_documents_agent(api, facts_file, fakes):
    body = ask(api, "Where is the rowing regatta held?").json()
    assert "DocumentsAgent" not in body["agents_used"]
    assert "Lake Bled" not in _system_prompt(fakes)
    assert body["citations"] == []


def test_web_citations_are_typed_web(api, fakes):
    fakes["openai"].citations = [("https://example.com/a", "Example A")]
    body = ask(api, "What happened today?", web_search=True, model_provider="openai").json()
    assert body["citations"] == [
        {"type": "web", "title": "Example A", "url": "https://example.com/a"}
    ]


def test_another_owners_or_unknown_document_is_404(api, other_api, facts_file):
    theirs = upload(other_api, "theirs.txt", b"Their secret is 99.", "text/plain").json()
    for file_id in (theirs["file_id"], "0" * 24, "not-an-id"):
        response = ask(api, "What is the secret?", documents=[file_id])
        assert response.status_code == 404, file_id
        assert response.json()["error"]["code"] == "not_found"
    assert not Query.objects.filter(owner__username="alice").exists()


def test_another_end_users_document_is_404(api, facts_file):
    response = ask(api, "mascot?", user="u2", documents=[facts_file["file_id"]])
    assert response.status_code == 404


@pytest.mark.parametrize("status", ["pending", "processing", "failed"])
def test_a_document_that_is_not_ready_is_409_naming_its_status(api, facts_file, status):
    File.objects.filter(pk=facts_file["file_id"]).update(
        ingestion_status=status, ingestion_error={"code": "x", "message": "Broken."}
    )
    response = ask(api, "mascot?", documents=[facts_file["file_id"]])
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "document_not_ready"
    assert status in error["message"]
    assert error["details"] == {"file_id": facts_file["file_id"], "status": status}


def test_delete_removes_chunks_and_no_search_or_answer_sees_the_file(api, facts_file, fakes):
    file_id = facts_file["file_id"]
    # Warm the cache first: deletion must also beat a matrix that holds the chunks.
    first = api.get("/api/v1/search", {"q": "mascot", "user_id": "u1", "scope": "documents"})
    assert first.json()["results"]
    assert api.delete(f"/api/v1/files/{file_id}").status_code == 204
    assert not DocumentChunk.objects.filter(file_id=file_id).exists()
    after = api.get("/api/v1/search", {"q": "mascot", "user_id": "u1", "scope": "documents"})
    assert after.json()["results"] == []
    body = ask(api, "What is the name of the company mascot?", use_documents=True).json()
    assert [c for c in body["citations"] if c["type"] == "document"] == []
    assert "Bartholomew" not in _system_prompt(fakes)
    assert ask(api, "mascot?", documents=[file_id]).status_code == 404


def test_download_is_owner_scoped_with_safe_headers(api, other_api, facts_file):
    file_id = facts_file["file_id"]
    response = api.get(f"/api/v1/files/{file_id}/content")
    assert response.status_code == 200
    # The bytes as uploaded (fpdf2 stamps the time, so compared by their recorded hash).
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == facts_file["sha256"]
    assert response["Content-Type"] == PDF
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("inline;")
    assert other_api.get(f"/api/v1/files/{file_id}/content").status_code == 404

    text = upload(api, "notes.md", b"# Notes\nThe answer is 42.\n", "text/markdown").json()
    download = api.get(f"/api/v1/files/{text['file_id']}/content")
    assert download["Content-Disposition"].startswith("attachment;")
    assert download["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("name", "data", "content_type", "fact"),
    [
        ("notes.txt", b"Plain notes. The ferry leaves at 7:15.", "text/plain", "7:15"),
        ("notes.md", b"# Ferry\n\nThe ferry leaves at **7:15**.", "text/markdown", "7:15"),
        ("t.csv", b"route,departs\nferry,7:15\nbus,8:00\n", "text/csv", "departs: 7:15"),
        ("t.json", b'{"ferry": {"departs": "7:15"}}', "application/json", "ferry.departs: 7:15"),
        (
            "t.html",
            b"<html><head><script>x()</script></head><body><p>Ferry at 7:15</p></body></html>",
            "text/html",
            "Ferry at 7:15",
        ),
        (
            "t.docx",
            make_docx(["Ferry timetable", "The ferry leaves at 7:15."]),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "The ferry leaves at 7:15.",
        ),
    ],
)
def test_each_document_type_is_ingested_without_pages(api, name, data, content_type, fact):
    response = upload(api, name, data, content_type)
    assert response.status_code == 201, response.content
    done = wait_ingested(api, response.json()["file_id"])
    assert done["ingestion"]["status"] == "ready", done["ingestion"]
    assert done["ingestion"]["pages"] is None
    [chunk] = DocumentChunk.objects.filter(file_id=done["file_id"])
    assert fact in chunk.text and chunk.page is None
    assert "x()" not in chunk.text  # scripts are not text


def test_openapi_documents_the_new_endpoints(api):
    schema = api.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/api/v1/files/upload", "/api/v1/files/{file_id}/content"} <= set(paths)
    query_body = schema["components"]["schemas"]["QueryRequestRequest"]["properties"]
    assert {"documents", "use_documents"} <= set(query_body)
    file_schema = schema["components"]["schemas"]["File"]["properties"]
    assert "ingestion" in file_schema
