"""Every path that pays a model is admitted against the caller's limits: ``/v1/embeddings``
(with the real ``openai`` SDK against a live server), ``/api/v1/search``, document
ingestion (charged to the uploading key) and summaries (charged to the key whose answer
caused them); and the per-owner storage quota, shown at ``/api/v1/usage``."""

from __future__ import annotations

import base64
import logging
import time
from datetime import UTC, datetime

import httpx2
import openai
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from files.charges import embedding_tokens
from files.ingestion import document_ingest
from files.models import DocumentChunk, File
from llmplatform.core import quotas
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import ApiKey
from llmplatform.core.quotas import quota_admit
from llmplatform.core.services import api_key_set_limits
from queries.models import Query, Summary
from queries.services import query_completed
from tests.openai_compat.clients import sdk

pytestmark = [pytest.mark.django_db(transaction=True)]

EMBEDDING_MODEL = "all-MiniLM-L6-v2"  # the local embedder the tests run with
# A document of a few passages (about 2,000 words): big enough to cost tokens.
DOCUMENT = "\n\n".join(
    f"Section {n}. The lighthouse keeper logged the weather at dawn and at dusk. " * 12
    for n in range(20)
).encode()
PNG_HEAD = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def held_minute(monkeypatch):
    """This process's windows read from a clock held mid-minute: a test's calls never
    straddle two windows."""
    held = datetime.now(UTC).replace(second=30, microsecond=0)
    monkeypatch.setattr(quotas, "quota_now", lambda: held)


@pytest.fixture
def uploads(settings, tmp_path):
    settings.UPLOAD_DIR = tmp_path
    return tmp_path


@pytest.fixture
def queued(monkeypatch):
    """Ingestions are queued, not run: the test runs each (as the worker would) when it
    chooses, so what happens between upload and ingestion is under its control."""
    files: list[str] = []

    class _Queue:
        def submit_background(self, task_name: str, file_id: str) -> None:
            assert task_name == "files.ingest_document"
            files.append(file_id)

    monkeypatch.setattr("files.services.dispatcher", lambda: _Queue())
    return files


def key_of(owner) -> ApiKey:
    return ApiKey.objects.get(owner=owner[0])


def limit(owner, **limits) -> ApiKey:
    return api_key_set_limits(api_key=key_of(owner), limits=limits)


def spend_tokens(owner, tokens: int, *, user_id: str = "u1") -> None:
    """Use up ``tokens`` of the key's token budget, as answers would."""
    quota_admit(api_key=key_of(owner), user_id=user_id, tokens_estimate=tokens, usd_estimate=None)


def upload(api, name: str, data: bytes, content_type: str, *, user: str = "u1"):
    return api.post(
        "/api/v1/files/upload",
        {"file": SimpleUploadedFile(name, data, content_type=content_type), "user_id": user},
        format="multipart",
    )


def search(api, q: str = "lighthouse weather", user: str = "u1"):
    return api.get("/api/v1/search", {"q": q, "user_id": user, "scope": "all"})


def usage(api) -> dict:
    response = api.get("/api/v1/usage")
    assert response.status_code == 200
    return response.json()


def _fresh_minute(server, key: str) -> None:
    """Start a test against a live server (whose clock cannot be held) early in a minute
    window, so that its few calls fall in one window."""
    body = httpx2.get(
        f"{server.url}/api/v1/usage", headers={"Authorization": f"Bearer {key}"}, timeout=10
    ).json()
    resets_in_s = body["limits"]["requests_per_minute"]["resets_in_s"]
    if resets_in_s < 20:
        time.sleep(resets_in_s + 0.5)  # not synchronisation: skip a window's last seconds


# ----- /v1/embeddings, with the real SDK against a live server -----


@pytest.mark.slow
def test_v1_embeddings_count_against_the_per_minute_limit(live_daphne_in_process, owner):
    limit(owner, requests_per_minute=5)
    _fresh_minute(live_daphne_in_process, owner[1])
    client = sdk(live_daphne_in_process, owner[1])
    for n in range(5):
        assert client.embeddings.create(model=EMBEDDING_MODEL, input=f"text {n}").data

    with pytest.raises(openai.RateLimitError) as refused:
        client.embeddings.create(model=EMBEDDING_MODEL, input="one too many")

    assert refused.value.code == "rate_limited"
    assert int(refused.value.response.headers["Retry-After"]) >= 1
    assert refused.value.body["type"] == "rate_limit_error"  # OpenAI's error shape


@pytest.mark.slow
def test_v1_embeddings_are_refused_once_the_token_budget_is_spent(live_daphne_in_process, owner):
    limit(owner, tokens_per_day=1000)
    client = sdk(live_daphne_in_process, owner[1])
    texts = [" ".join(["word"] * 500)] * 2  # about 1,250 tokens
    embedded = client.embeddings.create(model=EMBEDDING_MODEL, input=texts)
    # The tokens counted are reported as the call's usage, and are what /usage shows.
    assert embedded.usage.prompt_tokens == embedding_tokens(texts)
    used = httpx2.get(
        f"{live_daphne_in_process.url}/api/v1/usage",
        headers={"Authorization": f"Bearer {owner[1]}"},
        timeout=10,
    ).json()["limits"]["tokens_per_day"]["used"]
    assert used == embedding_tokens(texts)

    with pytest.raises(openai.RateLimitError) as refused:
        client.embeddings.create(model=EMBEDDING_MODEL, input=["x" * 8000] * 50)

    assert refused.value.code == "budget_exceeded"
    assert "Retry-After" in refused.value.response.headers


# ----- /api/v1/search -----


@pytest.mark.usefixtures("in_process", "held_minute")
def test_search_counts_against_the_per_minute_limit(api, owner):
    limit(owner, requests_per_minute=5)
    for _ in range(5):
        assert search(api).status_code == 200

    refused = search(api)

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused["Retry-After"] == "30"
    assert usage(api)["limits"]["requests_per_minute"]["used"] == 5


@pytest.mark.usefixtures("in_process", "held_minute")
def test_search_embeddings_are_charged_and_refused_once_the_budget_is_spent(api, owner):
    limit(owner, tokens_per_day=100)
    q = "where did the lighthouse keeper write down the weather"
    assert search(api, q).status_code == 200
    assert usage(api)["limits"]["tokens_per_day"]["used"] == embedding_tokens([q])
    spend_tokens(owner, 100)

    refused = search(api, q)

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"


# ----- document ingestion, charged to the uploading key -----


@pytest.mark.usefixtures("in_process", "held_minute", "uploads")
def test_ingestion_is_charged_to_the_uploading_key_and_shown_in_usage(api, owner, queued):
    limit(owner, tokens_per_day=1_000_000)
    response = upload(api, "log.txt", DOCUMENT, "text/plain")
    assert response.status_code == 201
    assert File.objects.get(pk=response.json()["file_id"]).api_key_id == key_of(owner).pk
    assert usage(api)["limits"]["tokens_per_day"]["used"] == 0  # nothing embedded yet

    document_ingest(file_id=queued[0])

    stored = File.objects.get(pk=queued[0])
    assert stored.ingestion_status == File.Ingestion.READY
    passages = list(DocumentChunk.objects.filter(file_id=stored.pk).values_list("text", flat=True))
    assert len(passages) > 1
    limits = usage(api)["limits"]
    assert limits["tokens_per_day"]["used"] == embedding_tokens(passages)
    assert limits["requests_per_minute"]["used"] == 1  # one paid call, as a question is


@pytest.mark.usefixtures("in_process", "held_minute", "uploads")
def test_an_upload_is_refused_up_front_when_the_budget_is_spent(api, owner, queued):
    limit(owner, tokens_per_day=50)
    spend_tokens(owner, 50)

    refused = upload(api, "log.txt", DOCUMENT, "text/plain")

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded"
    assert "starts over" in error["message"]
    assert refused["Retry-After"]
    assert not File.objects.exists() and queued == []


@pytest.mark.usefixtures("in_process", "held_minute", "uploads")
def test_a_queued_ingestion_fails_when_the_budget_was_spent_meanwhile(api, owner, queued):
    limit(owner, tokens_per_day=500)
    assert upload(api, "log.txt", DOCUMENT, "text/plain").status_code == 201
    spend_tokens(owner, 500)  # answers used the budget before a worker took the file
    used_before = usage(api)["limits"]["tokens_per_day"]["used"]

    document_ingest(file_id=queued[0])

    body = api.get(f"/api/v1/files/{queued[0]}").json()
    assert body["ingestion"]["status"] == "failed"
    assert body["ingestion"]["error"]["code"] == "budget_exceeded"
    assert "upload it again" in body["ingestion"]["error"]["message"]
    assert not DocumentChunk.objects.exists()
    assert usage(api)["limits"]["tokens_per_day"]["used"] == used_before  # charged nothing


@pytest.mark.usefixtures("in_process", "held_minute", "uploads")
def test_an_ingestion_larger_than_what_is_left_runs_once_then_the_budget_refuses(
    api, owner, queued
):
    """A budget refuses only once it is used up (as for questions): the overshoot is at
    most one document's reservation."""
    limit(owner, tokens_per_day=100)
    upload(api, "one.txt", DOCUMENT, "text/plain")
    upload(api, "two.txt", DOCUMENT, "text/plain")

    document_ingest(file_id=queued[0])
    document_ingest(file_id=queued[1])

    first, second = (File.objects.get(pk=file_id) for file_id in queued)
    assert first.ingestion_status == File.Ingestion.READY
    assert second.ingestion_status == File.Ingestion.FAILED
    assert second.ingestion_error["code"] == "budget_exceeded"


# ----- summaries, charged to the key whose answer caused them -----


def _ask(api, text: str, *, session: str) -> dict:
    body = {"user_id": "u1", "session_id": session, "query": text, "use_memory": False}
    response = api.post("/api/v1/query/", body, format="json")
    assert response.status_code == 200
    return response.json()


def _answers_tokens(session: str) -> int:
    return sum(
        q.usage["input_tokens"] + q.usage["output_tokens"]
        for q in Query.objects.filter(session_id=session)
    )


@pytest.mark.usefixtures("held_minute")
def test_a_summary_is_charged_to_the_key_whose_answer_caused_it(
    api, owner, in_process, monkeypatch
):
    # MEMORY_SUMMARY_INTERVAL is 2 here: the second answer makes a summary, in the
    # background, which this test runs itself (as the worker would).
    monkeypatch.setattr("queries.run.dispatcher", _no_background())
    limit(owner, tokens_per_day=1_000_000)
    _ask(api, "What is a lighthouse for?", session="sum")
    second = _ask(api, "Who keeps it?", session="sum")
    before = usage(api)["limits"]["tokens_per_day"]["used"]
    assert before == _answers_tokens("sum")

    summary_id = query_completed(query_id=second["query_id"])

    assert summary_id is not None
    reply = in_process["openai"].replies[-1]  # the summary's, as the vendor reported it
    after = usage(api)["limits"]["tokens_per_day"]["used"]
    assert after - before == reply.input_tokens + reply.output_tokens > 0


@pytest.mark.usefixtures("held_minute")
def test_a_spent_budget_skips_the_summary_and_keeps_the_answer(
    api, owner, in_process, caplog, monkeypatch
):
    monkeypatch.setattr("queries.run.dispatcher", _no_background())
    limit(owner, tokens_per_day=1_000_000)
    _ask(api, "What is a lighthouse for?", session="skip")
    second = _ask(api, "Who keeps it?", session="skip")
    limit(owner, tokens_per_day=1)
    calls = len(in_process["openai"].chat_requests)

    with caplog.at_level(logging.INFO, logger="queries.services"):
        assert query_completed(query_id=second["query_id"]) is None

    assert len(in_process["openai"].chat_requests) == calls  # no vendor call
    assert not Summary.objects.filter(session_id="skip").exists()
    assert "skipped: budget_exceeded" in caplog.text
    assert Query.objects.get(pk=second["query_id"]).response == second["response"]


def _no_background():
    """The run's dispatcher, with the after-answer work (the summary) left to the test."""
    from llmplatform.core.dispatch import dispatcher as real_dispatcher

    runs = real_dispatcher()

    class _Runs:
        starts_runs_at_once = runs.starts_runs_at_once

        def __getattr__(self, name):
            return getattr(runs, name)

        def submit_background(self, task_name: str, *args) -> None:
            pass

    return lambda: _Runs()


# ----- the storage quota -----


def _png(size: int) -> bytes:
    return PNG_HEAD + b"\0" * (size - len(PNG_HEAD))


@pytest.mark.usefixtures("in_process", "uploads")
def test_the_storage_quota_refuses_the_upload_that_would_cross_it(api, owner):
    limit(owner, storage_mb=1)
    first = upload(api, "a.png", _png(600_000), "image/png")
    assert first.status_code == 201

    refused = upload(api, "b.png", _png(600_000), "image/png")

    assert refused.status_code == 413
    error = refused.json()["error"]
    assert error["code"] == "storage_quota_exceeded"
    assert (error["details"]["used_bytes"], error["details"]["limit_bytes"]) == (
        600_000,
        1024 * 1024,
    )
    assert "Delete files" in error["message"]
    assert File.objects.count() == 1

    # Deleting a file frees its bytes at once.
    assert api.delete(f"/api/v1/files/{first.json()['file_id']}").status_code == 204
    assert upload(api, "b.png", _png(600_000), "image/png").status_code == 201


@pytest.mark.usefixtures("in_process", "uploads")
def test_an_image_sent_with_a_question_counts_against_the_storage_quota(api, owner):
    limit(owner, storage_mb=1)
    assert upload(api, "a.png", _png(600_000), "image/png").status_code == 201
    image = base64.b64encode(_png(600_000)).decode()

    refused = api.post(
        "/api/v1/query/",
        {
            "user_id": "user_1",
            "session_id": "s-image",
            "query": "What is in this picture?",
            "attachments": [f"data:image/png;base64,{image}"],
        },
        format="json",
    )

    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "storage_quota_exceeded"
    assert File.objects.count() == 1
    assert not Query.objects.filter(session_id="s-image").exists()


@pytest.mark.usefixtures("in_process", "uploads")
def test_the_default_storage_quota_comes_from_settings(api, settings):
    settings.DEFAULT_STORAGE_MB = 1
    assert upload(api, "a.png", _png(700_000), "image/png").status_code == 201
    assert upload(api, "b.png", _png(700_000), "image/png").status_code == 413
    settings.DEFAULT_STORAGE_MB = None  # no limit
    assert upload(api, "b.png", _png(700_000), "image/png").status_code == 201


@pytest.mark.usefixtures("in_process", "held_minute", "uploads")
def test_usage_shows_storage_with_the_stored_passages(api, owner, queued):
    limit(owner, storage_mb=2)
    upload(api, "a.png", _png(100_000), "image/png")
    upload(api, "log.txt", DOCUMENT, "text/plain")
    document_ingest(file_id=queued[0])
    passages = DocumentChunk.objects.values_list("text", flat=True)
    stored = 100_000 + len(DOCUMENT) + sum(len(text.encode()) for text in passages)

    storage = usage(api)["storage_mb"]

    assert storage["limit"] == 2
    assert storage["used"] == pytest.approx(stored / 1024 / 1024, abs=0.001)
    assert storage["remaining"] == pytest.approx(2 - stored / 1024 / 1024, abs=0.001)


@pytest.mark.usefixtures("in_process", "held_minute", "uploads")
def test_an_ingestion_whose_passages_would_cross_the_storage_quota_fails(api, owner, queued):
    limit(owner, storage_mb=1)
    almost_full = _png(1024 * 1024 - len(DOCUMENT) - 100)
    assert upload(api, "a.png", almost_full, "image/png").status_code == 201
    assert upload(api, "log.txt", DOCUMENT, "text/plain").status_code == 201

    document_ingest(file_id=queued[0])

    failed = File.objects.get(pk=queued[0])
    assert failed.ingestion_status == File.Ingestion.FAILED
    assert failed.ingestion_error["code"] == "storage_quota_exceeded"
    assert usage(api)["limits"]["tokens_per_day"]["used"] == 0  # refused before embedding


def test_create_api_key_sets_the_storage_quota(db):
    from io import StringIO

    from django.core.management import call_command

    call_command(
        "create_api_key", "--name=stored", "--storage-mb=250", stdout=StringIO(), stderr=StringIO()
    )
    assert ApiKey.objects.get(name="stored").storage_mb == 250


# ----- the signed-in chat UI (no key): its account pays -----


@pytest.mark.usefixtures("in_process", "held_minute", "uploads")
def test_without_a_key_the_account_pays_and_its_storage_limit_applies(owner, queued):
    from files.services import document_upload
    from llmplatform.core.models import AccountLimits
    from llmplatform.core.quotas import quota_windows

    user = owner[0]
    AccountLimits.objects.create(user=user, storage_mb=1)
    stored = document_upload(
        owner=user,
        user_id="web",
        upload=SimpleUploadedFile("log.txt", DOCUMENT, content_type="text/plain"),
    )
    assert stored.api_key_id is None

    document_ingest(file_id=queued[0])

    passages = list(DocumentChunk.objects.values_list("text", flat=True))
    tokens = {w.name: w.used for w in quota_windows(account=user)}["tokens_per_day"]
    assert tokens == embedding_tokens(passages) > 0
    with pytest.raises(ApplicationError) as refused:
        document_upload(
            owner=user,
            user_id="web",
            upload=SimpleUploadedFile("big.png", _png(1024 * 1024), content_type="image/png"),
        )
    assert refused.value.code == "storage_quota_exceeded"
