"""Ask your documents through the real servers: daphne with a real Celery worker over
Redis (ingestion is a Celery task there), and daphne in the embedded default (ingestion
on its background thread). Upload over HTTP, then ask over SSE and the websocket."""

from __future__ import annotations

import json
import time

import httpx2
import pytest
from websockets.sync.client import connect

from files.models import DocumentChunk
from tests.files.pdfs import facts_pdf
from tests.live_services import sse_frames

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(autouse=True)
def _wired(vendor_settings):
    """Vendors pointed at the fakes (the servers were started with the same)."""


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _upload(url: str, key: str, *, user: str = "u1") -> str:
    response = httpx2.post(
        f"{url}/api/v1/files/upload",
        files={"file": ("handbook.pdf", facts_pdf(), "application/pdf")},
        data={"user_id": user},
        headers=auth(key),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.json()["ingestion"]["status"] in ("pending", "processing", "ready")
    return response.json()["file_id"]


def _wait_ready(url: str, key: str, file_id: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ingestion = httpx2.get(
            f"{url}/api/v1/files/{file_id}", headers=auth(key), timeout=10
        ).json()["ingestion"]
        if ingestion["status"] in ("ready", "failed"):
            return ingestion
        time.sleep(0.2)
    raise AssertionError(f"not ingested: {ingestion}")


def _question(**extra) -> dict:
    return {
        "user_id": "u1",
        "session_id": "docs",
        "query": "What is the name of the company mascot?",
        "use_memory": False,
        "model_provider": "openai",
        **extra,
    }


def _document_pages(citations: list[dict]) -> list[int]:
    return [c["page"] for c in citations if c["type"] == "document"]


def test_upload_ingest_and_ask_over_sse_and_websocket(daphne, owner):
    file_id = _upload(daphne.url, owner[1])
    ingestion = _wait_ready(daphne.url, owner[1], file_id)
    assert ingestion["status"] == "ready" and ingestion["pages"] == 4, ingestion
    assert DocumentChunk.objects.filter(file_id=file_id).count() == ingestion["chunks"]

    with httpx2.stream(
        "POST",
        f"{daphne.url}/api/v1/query/stream",
        json=_question(documents=[file_id]),
        headers=auth(owner[1]),
        timeout=60,
    ) as response:
        assert response.status_code == 200
        events = [frame.event for frame in sse_frames(response) if frame.event is not None]
    assert {"type": "node", "node": "DocumentsAgent"} in events
    [final] = [event for event in events if event["type"] == "final"]
    assert _document_pages(final["citations"])[0] == 2

    with connect(
        daphne.url.replace("http", "ws") + "/ws/chat/", additional_headers=auth(owner[1])
    ) as ws:
        ws.send(json.dumps({"type": "query", **_question(use_documents=True)}))
        received = []
        while not received or received[-1]["type"] != "done":
            received.append(json.loads(ws.recv(timeout=60)))
    [final] = [event for event in received if event["type"] == "final"]
    assert _document_pages(final["citations"])[0] == 2
    assert all(c["url"] == f"/api/v1/files/{file_id}/content" for c in final["citations"])


def test_sse_and_websocket_refuse_documents_that_are_not_ready_or_not_yours(
    daphne, owner, make_owner
):
    _, other_key = make_owner("mallory")
    theirs = _upload(daphne.url, other_key)
    response = httpx2.post(
        f"{daphne.url}/api/v1/query/stream",
        json=_question(documents=[theirs]),
        headers=auth(owner[1]),
        timeout=30,
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    with connect(
        daphne.url.replace("http", "ws") + "/ws/chat/", additional_headers=auth(owner[1])
    ) as ws:
        ws.send(json.dumps({"type": "query", **_question(documents=[theirs])}))
        error = json.loads(ws.recv(timeout=30))
    assert error["error"]["code"] == "not_found", error
