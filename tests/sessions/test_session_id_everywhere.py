"""One ``session_id`` rule on every way in: a question cannot create a session that
``POST /api/v1/session/start`` would refuse (a reserved route name would make it
unreadable at ``GET /api/v1/session/{id}``); and each stored query counts in its session.
"""

from __future__ import annotations

import pytest

from queries.models import Query
from sessions.models import Session
from sessions.serializers import RESERVED_SESSION_IDS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]


def ask(api, session_id: str):
    body = {"user_id": "u1", "session_id": session_id, "query": "Hello", "use_memory": False}
    return api.post("/api/v1/query/", body, format="json")


@pytest.mark.parametrize(
    "session_id", [*sorted(RESERVED_SESSION_IDS), "has space", "a/b", "", "x" * 129]
)
def test_the_query_api_refuses_what_session_start_refuses(api, session_id):
    refused_by_start = api.post(
        "/api/v1/session/start", {"session_id": session_id, "user_id": "u1"}, format="json"
    )
    response = ask(api, session_id)
    assert (refused_by_start.status_code, response.status_code) == (400, 400)
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "session_id" in error["details"]["fields"]
    assert not Session.objects.exists()
    assert not Query.objects.exists()


def test_v1_refuses_a_reserved_session_header(api):
    response = api.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
        format="json",
        HTTP_X_SESSION_ID="events",
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "metadata"
    assert not Session.objects.exists()


def test_each_stored_query_counts_in_its_session(api, owner):
    assert ask(api, "s1").status_code == 200
    assert ask(api, "s1").status_code == 200
    session = Session.objects.get(owner=owner[0], session_id="s1")
    first = Query.objects.filter(session_id="s1").order_by("timestamp").first()
    assert (session.query_count, session.first_query_at) == (2, first.timestamp)
    metrics = api.get("/api/v1/session/s1").json()["metrics"]
    assert metrics["query_count"] == 2
