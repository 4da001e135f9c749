"""``GET /api/v1/search``, end to end in the embedded default: an ingested handbook and
past queries, ranked together by meaning, scoped to the caller's owner and end user."""

from __future__ import annotations

import pytest

from tests.files.conftest import ask

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process", "uploads")]


def test_search_finds_documents_and_queries_best_first(api, facts_file):
    ask(api, "Tell me about sourdough bread baking")
    response = api.get(
        "/api/v1/search", {"q": "vacation days per year", "user_id": "u1", "scope": "all"}
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["type"] == "document"
    assert results[0]["page"] == 4 and results[0]["title"] == "handbook.pdf"
    assert results[0]["file_id"] == facts_file["file_id"]
    assert "31 days" in results[0]["snippet"]
    # The unrelated past question ranks below every passage that scores higher.
    [bread] = [i for i, r in enumerate(results) if r["type"] == "query"]
    assert all(r["score"] >= results[bread]["score"] for r in results[:bread])

    queries = api.get(
        "/api/v1/search", {"q": "bread", "user_id": "u1", "scope": "queries", "limit": 3}
    ).json()["results"]
    assert queries and {r["type"] for r in queries} == {"query"}
    assert set(queries[0]) >= {"query_id", "session_id", "timestamp", "score", "snippet"}
    assert "sourdough" in queries[0]["snippet"]

    documents = api.get(
        "/api/v1/search", {"q": "bread", "user_id": "u1", "scope": "documents", "limit": 2}
    ).json()["results"]
    assert len(documents) == 2 and {r["type"] for r in documents} == {"document"}


def test_search_never_crosses_owners_or_end_users(api, other_api, facts_file):
    for client, user in ((other_api, "u1"), (api, "u2")):
        results = client.get(
            "/api/v1/search", {"q": "company mascot", "user_id": user, "scope": "all"}
        ).json()["results"]
        assert results == [], user


@pytest.mark.parametrize(
    "params",
    [{"user_id": "u1"}, {"q": "x"}, {"q": "x", "user_id": "u1", "scope": "everything"}]
    + [{"q": "x", "user_id": "u1", "limit": bad} for bad in ("0", "51", "abc")],
)
def test_search_bad_parameters_are_400(api, params):
    assert api.get("/api/v1/search", params).status_code == 400


def test_openapi_documents_search(api):
    paths = api.get("/openapi.json").json()["paths"]
    search_params = {p["name"] for p in paths["/api/v1/search"]["get"]["parameters"]}
    assert {"q", "user_id", "scope", "limit"} <= search_params


def test_an_empty_scope_is_a_wrong_choice_not_the_default(api):
    response = api.get("/api/v1/search", {"q": "x", "user_id": "u1", "scope": ""})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
