from __future__ import annotations

import time

import pytest

from files.vector_cache import clear_vector_cache
from tests.files.pdfs import facts_pdf

READY_TIMEOUT_S = 90


@pytest.fixture(autouse=True)
def _fresh_vector_cache():
    clear_vector_cache()
    yield
    clear_vector_cache()


@pytest.fixture
def uploads(settings, tmp_path):
    settings.UPLOAD_DIR = tmp_path
    return tmp_path


@pytest.fixture
def facts_file(api) -> dict:
    """The handbook PDF of ``tests.files.pdfs.FACTS``, uploaded by u1 and ingested."""
    response = upload(api, "handbook.pdf", facts_pdf(), "application/pdf")
    assert response.status_code == 201, response.content
    return wait_ingested(api, response.json()["file_id"])


def upload(api, name: str, data: bytes, content_type: str, *, user: str = "u1"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return api.post(
        "/api/v1/files/upload",
        {"file": SimpleUploadedFile(name, data, content_type=content_type), "user_id": user},
        format="multipart",
    )


def wait_ingested(api, file_id: str, *, timeout: float = READY_TIMEOUT_S) -> dict:
    """The file's metadata once its ingestion is ready or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"/api/v1/files/{file_id}").json()
        if body["ingestion"]["status"] in ("ready", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"ingestion of {file_id} did not finish: {body['ingestion']}")


def ask(api, text: str, *, user: str = "u1", session: str = "s1", **extra):
    body = {"user_id": user, "session_id": session, "query": text, "use_memory": False, **extra}
    return api.post("/api/v1/query/", body, format="json")
