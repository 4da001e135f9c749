"""The query API's contract and bad input, with the pipeline run in-process (no Redis)."""

from __future__ import annotations

import base64

import pytest

from queries.models import Query
from tests.fakes.server import echo_reply_text

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]


def ask(api, text="Hi there", **extra):
    body = {"user_id": "u1", "session_id": "s1", "query": text, "use_memory": False, **extra}
    return api.post("/api/v1/query/", body, format="json")


def test_seed_request_answers_with_seed_fields(api):
    body = ask(api, model_provider="openai", model_name="gpt-4o-mini").json()
    for field in (
        "query_id",
        "response",
        "citations",
        "product_cards",
        "options",
        "intent",
        "agents_used",
        "model_provider",
        "model_name",
        "usage",
        "latency",
        "metadata",
    ):
        assert field in body, field
    assert body["response"] == echo_reply_text("Hi there")
    assert body["usage"]["cost_usd"] is not None


def test_missing_provider_uses_the_defaults(api, settings):
    settings.DEFAULT_MODEL_PROVIDER = "anthropic"
    settings.DEFAULT_MODEL_NAME = "claude-haiku-4-5"
    body = ask(api).json()
    assert (body["model_provider"], body["model_name"]) == ("anthropic", "claude-haiku-4-5")


def test_unknown_provider_is_400_listing_available(api):
    response = ask(api, model_provider="nope")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_provider"
    assert set(error["details"]["available"]) == {"openai", "anthropic", "google", "openrouter"}
    assert not Query.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"session_id": "s", "query": "q"}, "user_id"),
        ({"user_id": "u", "session_id": "s", "query": ""}, "query"),
        ({"user_id": "u", "session_id": "s", "query": "q", "mode": "party"}, "mode"),
        ({"user_id": "u", "session_id": "s", "query": "q", "temperature": 5}, "temperature"),
        (
            {
                "user_id": "u",
                "session_id": "s",
                "query": "q",
                "attachments": ["data:text/html;base64,AA=="],
            },
            "attachments",
        ),
    ],
)
def test_bad_input_is_400_naming_the_field(api, body, field):
    response = api.post("/api/v1/query/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["message"]


def test_malformed_json_is_400_envelope(api):
    response = api.post("/api/v1/query/", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_unknown_attachment_id_is_404(api):
    response = ask(api, attachments=["66f0c0ffee0000000000beef"])
    assert response.status_code == 404


def test_history_detail_feedback_and_tenancy(api, other_api):
    ids = [ask(api, f"question {n}").json()["query_id"] for n in range(3)]
    page = api.get("/api/v1/query/history", {"session_id": "s1", "limit": 2}).json()
    assert [item["query_id"] for item in page["results"]] == ids[::-1][:2]
    rest = api.get(page["next"]).json()
    assert [item["query_id"] for item in rest["results"]] == [ids[0]]
    assert api.get(f"/api/v1/query/{ids[0]}").json()["query"] == "question 0"
    rated = api.post(
        f"/api/v1/query/{ids[0]}/feedback", {"rating": -1, "comment": "meh"}, format="json"
    )
    assert rated.json()["feedback"] == {"rating": -1, "comment": "meh"}
    assert (
        api.post(f"/api/v1/query/{ids[0]}/feedback", {"rating": 3}, format="json").status_code
        == 400
    )
    for path in (f"/api/v1/query/{ids[0]}", f"/api/v1/query/{ids[0]}/cancel"):
        method = other_api.get if path.endswith(ids[0]) else other_api.post
        assert method(path).status_code == 404
    assert (
        other_api.post(f"/api/v1/query/{ids[0]}/feedback", {"rating": 1}, format="json").status_code
        == 404
    )
    assert other_api.get("/api/v1/query/history").json()["results"] == []


def test_cancelling_a_finished_query_is_a_clear_no_op(api):
    query_id = ask(api).json()["query_id"]
    body = api.post(f"/api/v1/query/{query_id}/cancel").json()
    assert body["cancel_requested"] is False
    assert "already completed" in body["message"]


def test_non_image_attachment_is_400_naming_it(api, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.UPLOAD_DIR = tmp_path
    upload = SimpleUploadedFile("notes.txt", b"plain text", content_type="text/plain")
    file_id = api.post(
        "/api/v1/files/upload", {"file": upload, "user_id": "u1"}, format="multipart"
    ).json()["file_id"]
    response = ask(api, attachments=[file_id])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unsupported_attachment"
    assert "notes.txt" in error["message"]


def test_a_rejected_query_stores_none_of_its_attachments(api, settings, tmp_path):
    from files.models import File

    settings.UPLOAD_DIR = tmp_path
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(16)).decode()
    response = ask(api, attachments=[png, "data:image/png;base64,!!not-base64!!"])
    assert response.status_code == 400
    wrong_content = ask(api, attachments=[png, "data:image/png;base64,aGVsbG8="])
    assert wrong_content.status_code == 415
    assert not File.objects.exists()
    assert not any(path.is_file() for path in tmp_path.rglob("*"))


def test_a_stream_broken_mid_answer_keeps_what_was_streamed(api, fakes):
    fakes["openai"].chunk_count = 4
    fakes["openai"].fail_next("cut", after_chunks=2)
    response = ask(api, "a long answer", model_provider="openai")
    assert response.status_code == 502
    stored = Query.objects.get(pk=response.json()["error"]["details"]["query_id"])
    assert stored.status == Query.Status.FAILED
    assert stored.response == "".join(fakes["openai"].replies[-1].chunks[:2])
    assert stored.response


def test_a_pipeline_past_its_deadline_fails_clearly(api, fakes, settings):
    settings.QUERY_TIMEOUT_S = 1
    fakes["openai"].fail_next("hang", times=3)
    response = ask(api, "this will hang", model_provider="openai")
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == "query_timeout"
    assert Query.objects.get(pk=error["details"]["query_id"]).status == Query.Status.FAILED
