"""Managing chat conversations over the page's JSON API (#21): search, delete with its
data, export and share links. Each is scoped to the signed-in user's own conversations:
another account (and another end user of the same account) gets a 404 and changes
nothing. Django's test client against the embedded database, no mocks."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from bson import ObjectId
from django.core.files.base import ContentFile
from django.utils import timezone

from agents.ports import Scope
from agents.providers.catalogue import chat_models
from files.models import DocumentChunk, File
from files.storage import upload_storage
from queries.memory_store import similar_query_rows
from queries.models import Query, Summary
from sessions.conversation_data import conversation_document_add
from sessions.models import ConversationShare, Event, Session
from tests.ui.test_chat_api import csrf, signed_in, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def dana():
    return signed_in("dana")


@pytest.fixture
def mallory():
    return signed_in("mallory")


def ask(user, session_id: str, question: str, *, minutes_ago: int = 0, **fields) -> Query:
    row = {
        "owner": user,
        "user_id": user.get_username(),
        "session_id": session_id,
        "query": question,
        "response": "Answer to " + question,
        "status": "completed",
        "model_provider": "openai",
        "model_name": "gpt-4o-mini",
        "timestamp": timezone.now() - timedelta(minutes=minutes_ago),
    }
    return Query.objects.create(**{**row, **fields})


def search(client, text: str) -> list[dict]:
    response = client.get("/chat/api/search", {"q": text})
    assert response.status_code == 200, response.content
    return response.json()["conversations"]


def test_search_finds_conversations_by_title_question_and_answer_of_this_user_only(dana, mallory):
    client, user = dana
    other_client, other = mallory
    for session_id in ("trip", "eggs", "renamed"):
        start(client, session_id)
    ask(user, "trip", "Where should I travel in May?")
    ask(user, "eggs", "How long do I boil an egg?", response="Seven minutes for a Jammy yolk.")
    client.patch(
        "/chat/api/conversations/renamed",
        {"title": "Quarterly TAXES"},
        content_type="application/json",
        **csrf(client),
    )
    # The same words in another account, and in another end user's session of this one.
    start(other_client, "theirs")
    ask(other, "theirs", "My jammy yolk secret", response="jammy")
    Session.objects.create(owner=user, session_id="api-client", user_id="someone-else")
    ask(user, "api-client", "jammy yolk for someone else", user_id="someone-else")

    by_answer = search(client, "  jammy   YOLK ")
    assert [(h["session_id"], h["matched"]) for h in by_answer] == [("eggs", "answer")]
    assert by_answer[0]["title"] == "How long do I boil an egg?"
    assert "Jammy yolk" in by_answer[0]["snippet"]
    assert [(h["session_id"], h["matched"]) for h in search(client, "travel in may")] == [
        ("trip", "question")
    ]
    assert [(h["session_id"], h["matched"]) for h in search(client, "taxes")] == [
        ("renamed", "title")
    ]
    # Regular-expression characters are plain text.
    assert search(client, ".*") == []
    assert search(client, "") == []
    assert [h["session_id"] for h in search(other_client, "jammy")] == ["theirs"]
    too_long = client.get("/chat/api/search", {"q": "x" * 201})
    assert too_long.status_code == 400


def _stored_file(user, name: str, *, content_type="text/markdown") -> File:
    path = upload_storage().save(f"{user.pk}/test/{name}", ContentFile(b"# notes\n"))
    stored = File.objects.create(
        owner=user,
        user_id=user.get_username(),
        filename=name,
        content_type=content_type,
        size=8,
        sha256="0" * 64,
        storage_path=path,
        ingestion_status="ready" if content_type == "text/markdown" else "none",
    )
    if content_type == "text/markdown":
        DocumentChunk.objects.create(
            owner=user,
            user_id=user.get_username(),
            file=stored,
            index=0,
            char_start=0,
            char_end=5,
            text="notes",
            embedding_model="test",
        )
    return stored


def test_delete_takes_the_questions_summaries_events_shares_and_files_only_it_used(dana, mallory):
    client, user = dana
    other_client, _ = mallory
    start(client, "doomed")
    start(client, "kept")
    only_here = _stored_file(user, "only-here.md")
    shared_doc = _stored_file(user, "shared.md")
    image_here = _stored_file(user, "dot.png", content_type="image/png")
    image_elsewhere = _stored_file(user, "kept.png", content_type="image/png")
    Session.objects.filter(session_id="doomed").update(
        document_ids=[str(only_here.pk), str(shared_doc.pk)]
    )
    Session.objects.filter(session_id="kept").update(document_ids=[str(shared_doc.pk)])
    asked = [
        ask(user, "doomed", "first", request={"attachments": [str(image_here.pk)]}),
        ask(user, "doomed", "second", request={"attachments": [str(image_elsewhere.pk)]}),
    ]
    ask(user, "kept", "elsewhere", request={"attachments": [str(image_elsewhere.pk)]})
    Summary.objects.create(
        owner=user, user_id="dana", session_id="doomed", summary="s", pair_count=2
    )
    client.post(
        "/chat/api/conversations/doomed/activity",
        {"type": "click", "t": 1},
        content_type="application/json",
        **csrf(client),
    )
    share = client.post("/chat/api/conversations/doomed/share", **csrf(client)).json()["share"]
    assert Event.objects.filter(session_id="doomed").count() == 1

    # Another account cannot delete it, nor learn that it exists.
    refused = other_client.delete("/chat/api/conversations/doomed", **csrf(other_client))
    assert refused.status_code == 404
    assert Session.objects.filter(session_id="doomed").exists()

    response = client.delete("/chat/api/conversations/doomed", **csrf(client))
    assert response.status_code == 200, response.content
    assert response.json()["deleted"] == {"questions": 2, "files": 2}
    assert not Session.objects.filter(session_id="doomed").exists()
    assert not Query.objects.filter(pk__in=[q.pk for q in asked]).exists()
    assert not Summary.objects.filter(session_id="doomed").exists()
    assert not Event.objects.filter(session_id="doomed").exists()
    assert not ConversationShare.objects.filter(session_id="doomed").exists()
    assert set(File.objects.values_list("filename", flat=True)) == {"shared.md", "kept.png"}
    assert not DocumentChunk.objects.filter(file_id=only_here.pk).exists()
    assert DocumentChunk.objects.filter(file_id=shared_doc.pk).count() == 1
    assert not upload_storage().exists(only_here.storage_path)
    assert Query.objects.filter(session_id="kept").count() == 1
    assert client.get(share["url"].split("testserver", 1)[1]).status_code == 404
    assert client.get("/chat/api/conversations/doomed").status_code == 404


def test_a_conversation_is_not_deleted_while_an_answer_runs(dana):
    client, user = dana
    start(client, "busy")
    ask(user, "busy", "still thinking", status="running")
    response = client.delete("/chat/api/conversations/busy", **csrf(client))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conversation_busy"
    assert Query.objects.filter(session_id="busy").count() == 1
    assert Session.objects.filter(session_id="busy").exists()


def test_export_as_markdown_and_json_of_the_own_conversation_only(dana, mallory):
    client, user = dana
    other_client, _ = mallory
    start(client, "c-export")
    ask(user, "c-export", "What is **2+2**?", minutes_ago=2, response="It is 4.")
    ask(
        user,
        "c-export",
        "And 3+3?",
        minutes_ago=1,
        response="6",
        citations=[{"title": "Maths", "url": "https://example.com/m"}],
    )

    markdown = client.get("/chat/api/conversations/c-export/export/md")
    assert markdown.status_code == 200
    assert markdown["Content-Type"] == "text/markdown; charset=utf-8"
    assert markdown["Content-Disposition"] == 'attachment; filename="What-is-2-2.md"'
    text = markdown.content.decode()
    assert text.startswith("# What is **2+2**?\n")
    assert text.index("> What is **2+2**?") < text.index("It is 4.") < text.index("> And 3+3?")
    assert "1. [Maths](https://example.com/m)" in text

    exported = client.get("/chat/api/conversations/c-export/export/json")
    assert exported["Content-Disposition"] == 'attachment; filename="What-is-2-2.json"'
    document = json.loads(exported.content)
    assert document["session_id"] == "c-export"
    assert [(t["question"], t["answer"]) for t in document["turns"]] == [
        ("What is **2+2**?", "It is 4."),
        ("And 3+3?", "6"),
    ]
    assert document["turns"][0]["model_name"] == "gpt-4o-mini"

    assert client.get("/chat/api/conversations/c-export/export/pdf").status_code == 404
    for kind in ("md", "json"):
        assert (
            other_client.get(f"/chat/api/conversations/c-export/export/{kind}").status_code == 404
        )


def test_a_share_link_shows_only_that_conversation_to_anyone_until_revoked(dana, mallory):
    from django.test import Client

    client, user = dana
    other_client, _ = mallory
    start(client, "c-shared")
    start(client, "c-private")
    ask(user, "c-shared", "What is the shared secret?", response="Shared answer here.")
    ask(user, "c-private", "Private question nobody sees", response="Private answer.")

    # Another account can neither share nor revoke it.
    assert (
        other_client.post(
            "/chat/api/conversations/c-shared/share", **csrf(other_client)
        ).status_code
        == 404
    )
    assert (
        other_client.delete(
            "/chat/api/conversations/c-shared/share", **csrf(other_client)
        ).status_code
        == 404
    )

    made = client.post("/chat/api/conversations/c-shared/share", **csrf(client))
    assert made.status_code == 201
    url = made.json()["share"]["url"]
    token = url.rsplit("/", 1)[1]
    assert len(token) >= 40
    # Sharing again gives the same link; opening the conversation shows it.
    again = client.post("/chat/api/conversations/c-shared/share", **csrf(client)).json()
    assert again["share"]["url"] == url
    assert client.get("/chat/api/conversations/c-shared").json()["share"]["url"] == url

    anyone = Client()
    page = anyone.get(f"/share/{token}")
    assert page.status_code == 200
    assert page["X-Robots-Tag"] == "noindex, nofollow"
    html = page.content.decode()
    assert '<meta name="robots" content="noindex, nofollow">' in html
    assert "What is the shared secret?" in html and "Shared answer here." in html
    assert "Private" not in html and "dana" not in html and "c-private" not in html
    assert "gpt-4o-mini" not in html

    assert anyone.get(f"/share/{token}x").status_code == 404
    assert client.delete("/chat/api/conversations/c-shared/share", **csrf(client)).json() == {
        "revoked": 1
    }
    assert anyone.get(f"/share/{token}").status_code == 404
    assert client.get("/chat/api/conversations/c-shared").json()["share"] is None
    # Sharing after a revoke makes a new link; the old one stays dead.
    fresh = client.post("/chat/api/conversations/c-shared/share", **csrf(client)).json()
    assert fresh["share"]["url"] != url
    assert anyone.get(f"/share/{token}").status_code == 404


def test_concurrent_document_adds_keep_every_document_and_the_limit(dana):
    client, _ = dana
    start(client, "c-race")
    session = Session.objects.get(session_id="c-race")
    ids = [str(ObjectId(f"{n:024x}")) for n in range(1, 13)]
    # Twelve adds at once into a limit of ten: a read-modify-write would lose some of
    # them, or let both of two racing adds pass the limit.
    with ThreadPoolExecutor(max_workers=6) as pool:
        added = list(
            pool.map(lambda i: conversation_document_add(session=session, file_id=i, limit=10), ids)
        )
    stored = Session.objects.get(session_id="c-race").document_ids
    assert sum(added) == 10 == len(stored) == len(set(stored))
    assert {i for i, ok in zip(ids, added, strict=True) if ok} == set(stored)
    # Adding one that is there already is fine at the limit.
    assert conversation_document_add(session=session, file_id=stored[0], limit=10)


def test_answer_settings_are_stored_checked_against_the_catalogue_and_owner_scoped(dana, mallory):
    client, _ = dana
    other_client, _ = mallory
    start(client, "c-set")
    served = chat_models()[-1]

    def put(body, as_client=client, session_id="c-set"):
        return as_client.put(
            f"/chat/api/conversations/{session_id}/settings",
            body,
            content_type="application/json",
            **csrf(as_client),
        )

    wanted = {
        "model_provider": served.provider,
        "model_name": served.model,
        "temperature": 0.3,
        "system_prompt": "Answer like a pirate.",
    }
    response = put(wanted)
    assert response.status_code == 200, response.content
    assert Session.objects.get(session_id="c-set").answer_settings == wanted
    assert client.get("/chat/api/conversations/c-set").json()["settings"] == wanted

    for bad in (
        {"temperature": 2.5},
        {"model_provider": served.provider, "model_name": "no-such-model"},
        {"model_provider": "nobody"},
        {"model_name": served.model},
    ):
        refused = put(bad)
        assert refused.status_code == 400, bad
        assert refused.json()["error"]["code"] == "invalid_conversation_settings"
    assert Session.objects.get(session_id="c-set").answer_settings == wanted
    assert put(wanted, as_client=other_client).status_code == 404

    # Blank and null fields are "left open": all cleared.
    cleared = put({"model_provider": "", "model_name": None, "system_prompt": ""})
    assert cleared.json()["settings"] == {}


def test_a_deleted_conversations_questions_leave_memory_also_from_a_warm_matrix(dana):
    client, user = dana
    start(client, "forget-me")
    start(client, "keep-me")
    gone = ask(user, "forget-me", "secret recipe", embedding=[1.0, 0.0, 0.0], embedding_model="t")
    kept = ask(user, "keep-me", "public recipe", embedding=[0.6, 0.8, 0.0], embedding_model="t")
    scope = Scope(owner_id=str(user.pk), user_id="dana", session_id="new", query_id="")

    def recalled() -> list:
        rows = similar_query_rows(scope, vector=[1.0, 0.0, 0.0], embedding_model="t", limit=5)
        return [query.pk for query, _ in rows]

    # Read once, so the end user's matrix is cached with both rows.
    assert recalled() == [gone.pk, kept.pk]
    assert client.delete("/chat/api/conversations/forget-me", **csrf(client)).status_code == 200
    assert recalled() == [kept.pk]
