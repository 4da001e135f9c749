"""A long ingestion never holds up questions: another owner's question is answered, and
its after-completion work done, while a document is still being embedded."""

from __future__ import annotations

import threading
import time

import pytest

from agents.providers import embeddings
from llmplatform.core.dispatch import dispatcher
from tests.files.conftest import ask, upload, wait_ingested
from tests.files.pdfs import facts_pdf

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process", "uploads")]

HOLD_S = 60


def test_a_question_asked_during_a_long_ingestion_is_answered_before_it_ends(
    api, other_api, monkeypatch
):
    embedding_started = threading.Event()
    answered = threading.Event()
    real = embeddings.LocalEmbeddings.embed_bulk_sync

    def long_ingestion(self, texts):
        # A long document, as the embedder sees it: passages keep being embedded on the
        # background session until the question has been answered (at most HOLD_S).
        embedding_started.set()
        deadline = time.monotonic() + HOLD_S
        while not answered.is_set() and time.monotonic() < deadline:
            real(self, texts[:1])
        return real(self, texts)

    monkeypatch.setattr(embeddings.LocalEmbeddings, "embed_bulk_sync", long_ingestion)
    file_id = upload(api, "handbook.pdf", facts_pdf(), "application/pdf").json()["file_id"]
    assert embedding_started.wait(timeout=HOLD_S)
    try:
        response = ask(other_api, "What is a good name for a cat?", use_memory=True)
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "completed"
        assert response.json()["response"]
        # The answer's after-completion work is not queued behind the ingestion either.
        dispatcher()._background.submit(lambda: None).result(timeout=HOLD_S)
        assert api.get(f"/api/v1/files/{file_id}").json()["ingestion"]["status"] == "processing"
    finally:
        answered.set()
    assert wait_ingested(api, file_id)["ingestion"]["status"] == "ready"
