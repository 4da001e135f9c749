"""Health (healthy and unhealthy against a real server process) and setup_indexes."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tests.live_services import start_daphne, stop_process
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_health_has_the_seed_shape(anon):
    response = anon.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["database"]["connected"] is True
    assert body["database"]["collections"] >= 8
    assert body["agents"] == {"initialized": True}
    assert body["providers"]["count"] == len(body["providers"]["available"])


@pytest.mark.django_db
def test_status_reports_database_redis_and_providers(api):
    body = api.get("/api/v1/status").json()
    assert body["database"]["connected"] is True
    assert body["database"]["supports_vector_search"] is False
    assert body["redis"] == {"configured": True, "reachable": True}
    assert body["versions"]["django"].startswith("6.1")
    assert "available" in body["providers"]


def test_health_is_503_unhealthy_when_database_is_unreachable(tmp_path):
    env = {
        **os.environ,
        "MONGODB_URI": f"mongodb://127.0.0.1:{free_port()}/",
        "MONGODB_TIMEOUT_MS": "300",
        "LLMPLATFORM_SKIP_DOTENV": "1",
    }
    server = start_daphne(env, tmp_path / "daphne.log")
    try:
        with pytest.raises(urllib.error.HTTPError) as answered:
            urllib.request.urlopen(f"{server.url}/api/v1/health", timeout=10)
        assert answered.value.code == 503
        body = json.loads(answered.value.read())
        assert body["status"] == "unhealthy"
        assert body["database"] == {"connected": False, "collections": 0}
    finally:
        stop_process(server.process)


@pytest.mark.django_db
def test_setup_indexes_reports_and_recreates_missing_indexes():
    out = StringIO()
    call_command("setup_indexes", stdout=out)
    report = out.getvalue()
    assert "queries.queries_user_id" in report
    assert "skipped  queries.vector_index" in report  # the embedded server has no search
    connection.database["queries"].drop_index("queries_session_id")
    with pytest.raises(CommandError, match="missing"):
        call_command("setup_indexes", "--check", stdout=StringIO())
    out = StringIO()
    call_command("setup_indexes", stdout=out)
    assert "created  queries.queries_session_id" in out.getvalue()
    assert "queries_session_id" in connection.database["queries"].index_information()


@pytest.mark.django_db
def test_seed_indexes_exist_after_migrate():
    expected = {
        "queries": {"user_id", "session_id", "timestamp"},
        "sessions": {"user_id", "session_id", "start_t"},
        "summaries": {"user_id", "session_id", "created_at"},
        "products": {"search_query", "created_at"},
        "files": {"user_id", "uploaded_at"},
    }
    for collection, fields in expected.items():
        info = connection.database[collection].index_information()
        single_keys = {spec["key"][0][0] for spec in info.values() if len(spec["key"]) == 1}
        assert fields <= single_keys, (collection, single_keys)


@pytest.mark.django_db
def test_status_answers_when_redis_is_down(api, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = api.get("/api/v1/status")
    assert response.status_code == 200
    body = response.json()
    assert body["redis"]["reachable"] is False
    assert body["celery"]["workers"] == []
