"""The chat UI's JSON endpoints (/chat/api/...) with Django's test client: signed-in users
only, CSRF-checked, every object scoped to its owner (another user's is a 404)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from files.models import File
from queries.models import Query
from sessions.models import Event, Experiment, Session

pytestmark = pytest.mark.django_db

PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5f6d1"
    "d50000000049454e44ae426082"
)


def signed_in(username: str) -> tuple[Client, object]:
    user = get_user_model().objects.create_user(username, password="pw-" + username)
    client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT="Mozilla/5.0 (TestBrowser)")
    client.force_login(user)
    # The page hands its CSRF token to the script; a test gets it the same way.
    client.get("/")
    return client, user


def csrf(client: Client) -> dict[str, str]:
    return {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}


def start(client: Client, session_id: str, **extra) -> object:
    return client.post(
        "/chat/api/conversations",
        {"session_id": session_id, "environment": {"device": "desktop"}, **extra},
        content_type="application/json",
        **csrf(client),
    )


def ask(
    user,
    session_id: str,
    question: str,
    *,
    minutes_ago: int = 0,
    user_id_override: str | None = None,
    **fields,
) -> Query:
    return Query.objects.create(
        owner=user,
        user_id=user_id_override or user.get_username(),
        session_id=session_id,
        query=question,
        response="Answer to " + question,
        status="completed",
        model_provider="openai",
        model_name="gpt-4o-mini",
        timestamp=timezone.now() - timedelta(minutes=minutes_ago),
        **fields,
    )


@pytest.fixture
def dana():
    return signed_in("dana")


@pytest.fixture
def mallory():
    return signed_in("mallory")


def test_signed_out_and_csrf_less_requests_are_refused(dana):
    client, _ = dana
    assert Client().get("/chat/api/conversations").status_code == 403
    no_token = client.post(
        "/chat/api/conversations", {"session_id": "c-1"}, content_type="application/json"
    )
    assert no_token.status_code == 403
    assert "CSRF" in no_token.json()["error"]["message"]
    assert not Session.objects.exists()


def test_a_conversation_is_a_session_started_with_the_browsers_environment(dana):
    client, user = dana
    Experiment.objects.create(
        key="tone",
        name="Tone",
        status="running",
        variants=[{"name": "a", "weight": 1, "overrides": {}}],
    )
    response = start(client, "c-1", language="en-GB", timezone="Europe/London")
    assert response.status_code == 201
    assert response.json()["experiments"] == {"tone": "a"}
    session = Session.objects.get(owner=user, session_id="c-1")
    assert session.user_id == "dana"
    assert session.environment == {
        "device": "desktop",
        "user_agent": "Mozilla/5.0 (TestBrowser)",
        "client": "chat-ui",
        "language": "en-GB",
        "timezone": "Europe/London",
    }
    assert session.device == "desktop"
    assert session.ends_after > timezone.now() + timedelta(minutes=29)
    assert start(client, "c-1").status_code == 200  # idempotent, like session/start


def test_the_list_is_newest_first_titled_by_the_first_question_and_renamable(dana, mallory):
    client, user = dana
    for session_id in ("old", "new", "empty"):
        assert start(client, session_id).status_code == 201
    Session.objects.filter(session_id="old").update(start_t=timezone.now() - timedelta(days=2))
    Session.objects.filter(session_id="empty").update(start_t=timezone.now() - timedelta(days=3))
    ask(user, "old", "  First   question\nof old ", minutes_ago=5)
    ask(user, "old", "Second question of old", minutes_ago=1)
    ask(user, "new", "Only question of new")
    other_client, other = mallory
    start(other_client, "theirs")
    ask(other, "theirs", "Not dana's")

    listed = client.get("/chat/api/conversations").json()["conversations"]
    assert [(row["session_id"], row["title"]) for row in listed] == [
        ("new", "Only question of new"),
        ("old", "First question of old"),
        ("empty", ""),
    ]

    renamed = client.patch(
        "/chat/api/conversations/old",
        {"title": "  Trip   planning "},
        content_type="application/json",
        **csrf(client),
    )
    assert renamed.status_code == 200 and renamed.json()["title"] == "Trip planning"
    listed = client.get("/chat/api/conversations").json()["conversations"]
    assert listed[1]["title"] == "Trip planning"
    too_long = client.patch(
        "/chat/api/conversations/old",
        {"title": "x" * 201},
        content_type="application/json",
        **csrf(client),
    )
    assert too_long.status_code == 400


def test_a_conversation_opens_with_its_turns_and_usage(dana):
    client, user = dana
    start(client, "c-1")
    first = ask(
        user,
        "c-1",
        "Hello",
        minutes_ago=2,
        usage={"input_tokens": 3, "output_tokens": 5, "total_tokens": 8, "cost_usd": 0.001},
        latency={"total_ms": 1200.0},
        citations=[{"type": "web", "title": "A", "url": "https://example.com/a"}],
        feedback_rating=1,
    )
    ask(
        user,
        "c-1",
        "Again",
        usage={"input_tokens": 4, "output_tokens": 6, "total_tokens": 10, "cost_usd": 0.002},
        latency={"total_ms": 800.0},
    )
    body = client.get("/chat/api/conversations/c-1").json()
    assert body["title"] == "Hello"
    assert [turn["question"] for turn in body["turns"]] == ["Hello", "Again"]
    assert body["turns"][0]["query_id"] == str(first.pk)
    assert body["turns"][0]["response"] == "Answer to Hello"
    assert body["turns"][0]["citations"][0]["url"] == "https://example.com/a"
    assert body["turns"][0]["feedback"] == {"rating": 1, "comment": ""}
    assert body["usage"] == {
        "answers": 2,
        "input_tokens": 7,
        "output_tokens": 11,
        "total_tokens": 18,
        "cost_usd": 0.003,
        "latency_ms_total": 2000.0,
    }


def test_another_users_conversation_answer_and_file_are_404(dana, mallory):
    client, _ = dana
    other_client, other = mallory
    start(other_client, "theirs")
    query = ask(other, "theirs", "Private")
    upload = other_client.post(
        "/chat/api/files",
        {"file": _png("dot.png")},
        **csrf(other_client),
    )
    assert upload.status_code == 201
    file_id = upload.json()["file_id"]

    assert client.get("/chat/api/conversations/theirs").status_code == 404
    for method, path, body in [
        ("patch", "/chat/api/conversations/theirs", {"title": "mine now"}),
        ("post", "/chat/api/conversations/theirs/activity", {"type": "query", "t": 1}),
        ("post", f"/chat/api/answers/{query.pk}/feedback", {"rating": -1}),
    ]:
        response = getattr(client, method)(
            path, body, content_type="application/json", **csrf(client)
        )
        assert response.status_code == 404, path
    assert client.post("/chat/api/conversations/theirs/leave", {}, **csrf(client)).status_code == (
        404
    )
    assert client.get(f"/chat/api/files/{file_id}").status_code == 404
    query.refresh_from_db()
    assert query.feedback_rating is None
    assert Session.objects.get(session_id="theirs").title == ""


def _png(name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, PNG_1X1, content_type="image/png")


def test_feedback_is_stored_through_the_feedback_service(dana):
    client, user = dana
    start(client, "c-1")
    query = ask(user, "c-1", "Rate me")
    response = client.post(
        f"/chat/api/answers/{query.pk}/feedback",
        {"rating": -1, "comment": "Wrong city"},
        content_type="application/json",
        **csrf(client),
    )
    assert response.status_code == 200
    query.refresh_from_db()
    assert (query.feedback_rating, query.feedback_comment) == (-1, "Wrong city")
    assert query.feedback_at is not None
    bad = client.post(
        f"/chat/api/answers/{query.pk}/feedback",
        {"rating": 5},
        content_type="application/json",
        **csrf(client),
    )
    assert bad.status_code == 400


def test_uploads_are_stored_for_the_signed_in_user_and_can_be_polled(dana):
    client, user = dana
    response = client.post(
        "/chat/api/files", {"file": _png("dot.png"), "user_id": "someone-else"}, **csrf(client)
    )
    assert response.status_code == 201
    stored = File.objects.get(pk=response.json()["file_id"])
    assert (stored.owner, stored.user_id, stored.content_type) == (user, "dana", "image/png")
    polled = client.get(f"/chat/api/files/{stored.pk}").json()
    assert polled["filename"] == "dot.png" and polled["file_id"] == str(stored.pk)
    not_an_image = client.post(
        "/chat/api/files",
        {"file": _fake_exe()},
        **csrf(client),
    )
    assert not_an_image.status_code == 415


def _fake_exe():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("x.exe", b"MZ\x90\x00" + b"\x00" * 64, content_type="image/png")


def test_activity_keeps_the_session_open_and_leaving_ends_it_soon(dana):
    client, user = dana
    start(client, "c-1")
    activity = client.post(
        "/chat/api/conversations/c-1/activity",
        {"type": "query", "t": 1_700_000_000_000, "data": {"mode": "chat"}},
        content_type="application/json",
        **csrf(client),
    )
    assert activity.status_code == 200 and activity.json() == {"stored": 1}
    assert Event.objects.filter(owner=user, session_id="c-1", type="query").count() == 1
    # A beacon is a form post carrying the token as a field.
    token = client.cookies["csrftoken"].value
    left = client.post("/chat/api/conversations/c-1/leave", {"csrfmiddlewaretoken": token})
    assert left.status_code == 204
    session = Session.objects.get(session_id="c-1")
    assert session.end_t is None
    assert session.ends_after <= timezone.now() + timedelta(seconds=61)


def test_the_page_acts_only_for_its_own_end_user(dana):
    """Sessions, answers and files the owner's API clients made for another end user are
    404s to the page, whatever ``user_id`` a request names (issue 19, defect 12)."""
    client, user = dana
    Session.objects.create(owner=user, session_id="shared", user_id="shared_user")
    theirs = ask(user, "shared", "Shared user's secret", user_id_override="shared_user")
    stored = File.objects.create(
        owner=user,
        user_id="shared_user",
        filename="theirs.png",
        content_type="image/png",
        size=len(PNG_1X1),
        storage_path="theirs.png",
        sha256="0" * 64,
    )
    as_them = "?user_id=shared_user"

    listed = client.get("/chat/api/conversations" + as_them).json()["conversations"]
    assert [row["session_id"] for row in listed] == []
    assert client.get("/chat/api/conversations/shared" + as_them).status_code == 404
    for method, path, body in [
        ("patch", "/chat/api/conversations/shared", {"title": "mine now", "user_id": "x"}),
        ("post", "/chat/api/conversations/shared/activity", {"type": "query", "t": 1}),
        ("post", f"/chat/api/answers/{theirs.pk}/feedback", {"rating": -1}),
    ]:
        response = getattr(client, method)(
            path + as_them, body, content_type="application/json", **csrf(client)
        )
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    left = client.post("/chat/api/conversations/shared/leave" + as_them, {}, **csrf(client))
    assert left.status_code == 404
    assert client.get(f"/chat/api/files/{stored.pk}" + as_them).status_code == 404

    session = Session.objects.get(owner=user, session_id="shared")
    assert (session.title, session.ends_after, session.event_count) == ("", None, 0)
    assert not Event.objects.filter(session_id="shared").exists()
    theirs.refresh_from_db()
    assert theirs.feedback_rating is None

    # In the page's own conversation, another end user's question (an API client may
    # name any session of its owner) is not one of its turns.
    start(client, "mine")
    ask(user, "mine", "Dana asks")
    ask(user, "mine", "Shared user asks", user_id_override="shared_user")
    body = client.get("/chat/api/conversations/mine" + as_them).json()
    assert [turn["question"] for turn in body["turns"]] == ["Dana asks"]
    assert body["usage"]["answers"] == 1


def test_the_list_holds_only_the_signed_in_owners_conversations(dana):
    """Another owner's API clients may use the same ``user_id`` as this account's user
    name; their sessions are not this account's conversations."""
    client, _ = dana
    start(client, "mine")
    other_owner = get_user_model().objects.create_user("api-owner")
    Session.objects.create(owner=other_owner, session_id="other-owners", user_id="dana")
    listed = client.get("/chat/api/conversations").json()["conversations"]
    assert [row["session_id"] for row in listed] == ["mine"]
    assert client.get("/chat/api/conversations/other-owners").status_code == 404


def test_the_conversation_list_selector_filters_on_the_owner(dana):
    from chat.selectors import conversation_list

    _, user = dana
    other_owner = get_user_model().objects.create_user("api-owner")
    Session.objects.create(owner=user, session_id="mine", user_id="shared")
    Session.objects.create(owner=other_owner, session_id="other-owners", user_id="shared")
    rows = conversation_list(owner=user, user_id="shared")
    assert [row.session_id for row in rows] == ["mine"]


def test_the_page_shows_the_signed_in_accounts_limits_and_usage(dana, mallory):
    """GET /chat/api/usage: the account's own windows (the page asks without a key) with
    what is used and left, and its storage; another account's questions do not count."""
    from decimal import Decimal

    from llmplatform.core.models import AccountLimits
    from llmplatform.core.quotas import quota_admit, quota_settle

    client, user = dana
    other_client, other = mallory
    AccountLimits.objects.create(
        user=user,
        requests_per_minute=5,
        tokens_per_day=1000,
        usd_per_month=Decimal("2.00"),
        storage_mb=1,
    )
    reservation = quota_admit(
        api_key=None, user_id="dana", tokens_estimate=100, usd_estimate=0.25, account=user
    )
    quota_settle(reservation, run_id="dana-q1", tokens=40, usd=0.1)
    quota_admit(api_key=None, user_id="mallory", tokens_estimate=7, usd_estimate=0.0, account=other)
    File.objects.create(
        owner=user,
        user_id="dana",
        filename="notes.pdf",
        content_type="application/pdf",
        size=256 * 1024,
        storage_path="notes.pdf",
        sha256="0" * 64,
    )

    body = client.get("/chat/api/usage").json()
    limits = body["limits"]
    assert {name: (w["limit"], w["used"], w["remaining"]) for name, w in limits.items()} == {
        "requests_per_minute": (5, 1, 4),
        "tokens_per_day": (1000, 40, 960),
        "usd_per_month": (2.0, 0.1, 1.9),
    }
    assert all(w["resets_in_s"] >= 0 and w["resets_at"] for w in limits.values())
    assert body["storage_mb"] == {"limit": 1.0, "used": 0.25, "remaining": 0.75}

    theirs = other_client.get("/chat/api/usage").json()["limits"]
    assert (theirs["requests_per_minute"]["used"], theirs["tokens_per_day"]["used"]) == (1, 7)
    assert Client().get("/chat/api/usage").status_code == 403
    page = client.get("/").content.decode()
    assert 'id="limits"' in page and "Your limits" in page


def _document(user, name: str, *, user_id: str | None = None, status: str = "ready") -> File:
    return File.objects.create(
        owner=user,
        user_id=user_id or user.get_username(),
        filename=name,
        content_type="text/markdown",
        size=10,
        sha256="0" * 64,
        storage_path=f"x/{name}",
        ingestion_status=status,
    )


def test_a_conversation_keeps_its_documents_until_one_is_removed(dana, mallory):
    client, user = dana
    other_client, other = mallory
    start(client, "c-docs")
    notes, manual = _document(user, "notes.md"), _document(user, "manual.md", status="pending")

    def attach(file_id, session_id="c-docs", as_client=client):
        return as_client.post(
            f"/chat/api/conversations/{session_id}/documents",
            {"file_id": str(file_id)},
            content_type="application/json",
            **csrf(as_client),
        )

    assert attach(notes.pk).status_code == 200
    # Attaching again changes nothing; a document still being read can be attached.
    assert attach(notes.pk).status_code == 200
    listed = attach(manual.pk).json()["documents"]
    assert [(d["filename"], d["ingestion"]["status"]) for d in listed] == [
        ("notes.md", "ready"),
        ("manual.md", "pending"),
    ]
    assert Session.objects.get(session_id="c-docs").document_ids == [str(notes.pk), str(manual.pk)]
    # Opening the conversation (a reload, or coming back to it) lists them.
    detail = client.get("/chat/api/conversations/c-docs").json()
    assert [d["file_id"] for d in detail["documents"]] == [str(notes.pk), str(manual.pk)]

    # Not an image, not another end user's file, not someone else's conversation.
    image = client.post("/chat/api/files", {"file": _png("dot.png")}, **csrf(client)).json()
    refused = attach(image["file_id"])
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "not_a_document"
    assert attach(_document(user, "theirs.md", user_id="someone-else").pk).status_code == 404
    assert attach(_document(other, "mallory.md").pk).status_code == 404
    start(other_client, "theirs")
    assert attach(notes.pk, session_id="theirs").status_code == 404
    assert (
        client.delete(
            f"/chat/api/conversations/theirs/documents/{notes.pk}", **csrf(client)
        ).status_code
        == 404
    )

    removed = client.delete(f"/chat/api/conversations/c-docs/documents/{notes.pk}", **csrf(client))
    assert [d["filename"] for d in removed.json()["documents"]] == ["manual.md"]
    # A file deleted since simply drops out of the conversation.
    manual.delete()
    assert client.get("/chat/api/conversations/c-docs").json()["documents"] == []


def test_a_conversation_holds_at_most_as_many_documents_as_a_question(dana, monkeypatch):
    monkeypatch.setattr("chat.services.MAX_DOCUMENTS", 2)
    client, user = dana
    start(client, "c-full")
    for name in ("a.md", "b.md", "c.md"):
        response = client.post(
            "/chat/api/conversations/c-full/documents",
            {"file_id": str(_document(user, name).pk)},
            content_type="application/json",
            **csrf(client),
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_conversation_documents"
    assert len(Session.objects.get(session_id="c-full").document_ids) == 2
