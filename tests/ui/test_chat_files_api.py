"""The chat page's files (#21): the signed-in user's list with status, the bytes through
the login session (thumbnails and source links; never the API key's route), and delete
with the data, all owner- and end-user-scoped."""

from __future__ import annotations

import pytest
from django.test import Client

from files.models import File
from sessions.models import Session
from tests.ui.test_chat_api import PNG_1X1, _png, csrf, signed_in, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def dana():
    return signed_in("dana")


@pytest.fixture
def mallory():
    return signed_in("mallory")


def upload(client, name: str) -> str:
    response = client.post("/chat/api/files", {"file": _png(name)}, **csrf(client))
    assert response.status_code == 201, response.content
    return response.json()["file_id"]


def test_files_are_listed_newest_first_served_by_session_and_deleted_with_their_data(dana, mallory):
    client, _ = dana
    other, _ = mallory
    first, second = upload(client, "one.png"), upload(client, "two.png")
    theirs = upload(other, "theirs.png")
    listed = client.get("/chat/api/files").json()["files"]
    assert [f["file_id"] for f in listed] == [second, first]
    assert listed[0]["filename"] == "two.png" and listed[0]["size"] == len(PNG_1X1)

    content = client.get(f"/chat/api/files/{first}/content")
    assert content.status_code == 200
    assert b"".join(content.streaming_content) == PNG_1X1
    assert content["Content-Type"] == "image/png"
    assert content["X-Content-Type-Options"] == "nosniff"
    # The login session is the credential: without it, nothing.
    assert Client().get(f"/chat/api/files/{first}/content").status_code in (401, 403)

    # A conversation's document that is deleted leaves its list too.
    start(client, "c-files")
    Session.objects.filter(session_id="c-files").update(document_ids=[first])
    assert client.delete(f"/chat/api/files/{first}", **csrf(client)).status_code == 204
    assert not File.objects.filter(pk=first).exists()
    assert client.get("/chat/api/conversations/c-files").json()["documents"] == []
    assert [f["file_id"] for f in client.get("/chat/api/files").json()["files"]] == [second]

    # Another account's file: a 404 for every way in, and it stays.
    for method in ("get", "delete"):
        response = getattr(client, method)(f"/chat/api/files/{theirs}", **csrf(client))
        assert response.status_code == 404
    assert client.get(f"/chat/api/files/{theirs}/content").status_code == 404
    assert File.objects.filter(pk=theirs).exists()
    assert theirs not in [f["file_id"] for f in client.get("/chat/api/files").json()["files"]]
