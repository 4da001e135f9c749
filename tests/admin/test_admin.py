"""The operator console: pages render, actions call the services, permissions hold."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from llmplatform.core.models import ApiKey
from queries.models import Query
from sessions.models import Event, Experiment, Session
from sessions.services import session_query_record

pytestmark = pytest.mark.django_db

VARIANTS = [{"name": "control", "weight": 50}, {"name": "fast", "weight": 50}]


@pytest.fixture
def superuser_client() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client = Client()
    client.force_login(user)
    return client


def _staff(*perms: str) -> Client:
    user = get_user_model().objects.create_user("staff", password="pw-123456", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def data(make_owner):
    owner, _ = make_owner("acme")
    session = Session.objects.create(
        owner=owner, session_id="s-1", user_id="u-1", device="Mobile", experiments={"exp": "fast"}
    )
    Event.objects.bulk_create(
        Event(owner=owner, session_id="s-1", event_id=str(i), type="click", t=i) for i in range(60)
    )
    query = Query.objects.create(
        owner=owner,
        user_id="u-1",
        session_id="s-1",
        query="What is a pan?",
        response="A pan.",
        model_provider="openai",
        model_name="gpt-4o-mini",
        status="completed",
        usage={"total_tokens": 12, "cost_usd": 0.002},
        latency={"total_ms": 420},
        experiments={"exp": "fast"},
        feedback_rating=1,
    )
    # Stored directly, not by a run: count it in its session as the run does.
    session_query_record(session=session, at=query.timestamp)
    return owner, session


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/chat_sessions/session/",
        "/admin/chat_sessions/session/?q=u-1",
        "/admin/chat_sessions/session/?device=Mobile",
        "/admin/chat_sessions/session/?variant=exp%3Dfast",
        "/admin/chat_sessions/event/",
        "/admin/chat_sessions/experiment/",
        "/admin/chat_sessions/experiment/add/",
        "/admin/queries/query/",
        "/admin/queries/query/?model_provider=openai&status=completed",
        "/admin/queries/summary/",
        "/admin/files/file/",
        "/admin/products/productsearch/",
        "/admin/core/apikey/",
        "/admin/core/apikey/add/",
        "/admin/dashboard/",
    ],
)
def test_pages_render_for_superuser(superuser_client, data, url):
    Experiment.objects.create(key="exp", name="Exp", variants=VARIANTS)
    response = superuser_client.get(url)
    assert response.status_code == 200, url


def test_index_links_dashboard(superuser_client):
    assert b"/admin/dashboard/" in superuser_client.get("/admin/").content


def test_session_filters(superuser_client, data):
    owner, _ = data
    Session.objects.create(owner=owner, session_id="s-2", user_id="u-2", device="Desktop")
    Experiment.objects.create(key="exp", name="Exp", variants=VARIANTS)
    body = superuser_client.get("/admin/chat_sessions/session/?variant=exp%3Dfast").content
    assert b"s-1" in body and b"s-2" not in body
    body = superuser_client.get("/admin/chat_sessions/session/?device=Desktop").content
    assert b"s-2" in body and b">s-1<" not in body


def test_session_detail_shows_metrics_and_paginated_events(superuser_client, data):
    _, session = data
    url = f"/admin/chat_sessions/session/{session.pk}/change/"
    body = superuser_client.get(url).content.decode()
    assert "Events (60)" in body
    assert "page 1 of 2" in body
    assert "Queries</label> 1" in body
    page2 = superuser_client.get(url + "?events_page=2").content.decode()
    assert "page 2 of 2" in page2
    # Read-only: no save button, and posting changes nothing.
    assert 'name="_save"' not in body
    superuser_client.post(url, {"user_id": "hacked"})
    assert Session.objects.get(pk=session.pk).user_id == "u-1"


def test_query_admin_is_read_only(superuser_client, data):
    query = Query.objects.get()
    body = superuser_client.get(f"/admin/queries/query/{query.pk}/change/").content.decode()
    assert "What is a pan?" in body
    assert 'field-embedding"' not in body and "field-embedding " not in body
    assert superuser_client.get("/admin/queries/query/add/").status_code == 403


def test_experiment_create_validates_variants(superuser_client):
    response = superuser_client.post(
        "/admin/chat_sessions/experiment/add/",
        {"key": "exp", "name": "Exp", "description": "", "variants": json.dumps(VARIANTS[:1])},
    )
    assert response.status_code == 200
    assert b"2 to 10 variants" in response.content
    assert not Experiment.objects.exists()
    response = superuser_client.post(
        "/admin/chat_sessions/experiment/add/",
        {"key": "exp", "name": "Exp", "description": "", "variants": "{nope"},
    )
    assert b"Not valid JSON" in response.content
    response = superuser_client.post(
        "/admin/chat_sessions/experiment/add/",
        {"key": "exp", "name": "Exp", "description": "", "variants": json.dumps(VARIANTS)},
    )
    assert response.status_code == 302
    assert Experiment.objects.get().variants[1] == {"name": "fast", "weight": 50, "overrides": {}}


def test_experiment_start_stop_actions_and_running_lock(superuser_client):
    experiment = Experiment.objects.create(key="exp", name="Exp", variants=VARIANTS)
    changelist = "/admin/chat_sessions/experiment/"
    superuser_client.post(
        changelist, {"action": "start_experiments", "_selected_action": [str(experiment.pk)]}
    )
    experiment.refresh_from_db()
    assert experiment.status == "running" and experiment.started_at is not None
    response = superuser_client.post(
        f"{changelist}{experiment.pk}/change/",
        {
            "name": "Exp",
            "description": "",
            "variants": json.dumps(
                [{"name": "control", "weight": 90}, {"name": "fast", "weight": 10}]
            ),
        },
    )
    assert b"Stop the experiment" in response.content
    superuser_client.post(
        changelist, {"action": "stop_experiments", "_selected_action": [str(experiment.pk)]}
    )
    experiment.refresh_from_db()
    assert experiment.status == "stopped"


def test_experiment_results_page(superuser_client, data):
    experiment = Experiment.objects.create(
        key="exp", name="Exp", variants=VARIANTS, status="running"
    )
    body = superuser_client.get(
        f"/admin/chat_sessions/experiment/{experiment.pk}/results/"
    ).content.decode()
    row = re.search(r'<tr data-variant="fast">(.*?)</tr>', body, re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
    assert cells[2:6] == ["1", "1", "1", "100%"]  # sessions, queries, rated, thumbs-up rate
    assert 'class="bar"' in body


def test_api_key_created_once_and_revoked(superuser_client, make_owner):
    owner, _ = make_owner("keyholder")
    before = ApiKey.objects.count()
    response = superuser_client.post(
        "/admin/core/apikey/add/", {"owner": str(owner.pk), "name": "ci"}, follow=True
    )
    assert response.status_code == 200
    assert ApiKey.objects.count() == before + 1
    raw = re.search(r"llmp_[A-Za-z0-9_\-]{20,}", response.content.decode()).group(0)
    key = ApiKey.objects.get(name="ci")
    assert raw.startswith(key.prefix)
    # The raw key works against the API, and only the message ever showed it.
    assert raw not in superuser_client.get(f"/admin/core/apikey/{key.pk}/change/").content.decode()
    superuser_client.post(
        "/admin/core/apikey/", {"action": "revoke_keys", "_selected_action": [str(key.pk)]}
    )
    key.refresh_from_db()
    assert key.revoked_at is not None
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/analytics/summary").status_code == 401


def test_staff_without_permissions_sees_nothing(data):
    client = _staff()
    assert client.get("/admin/dashboard/").status_code == 403
    assert client.get("/admin/queries/query/").status_code == 403
    assert client.get("/admin/chat_sessions/session/").status_code == 403
    experiment = Experiment.objects.create(key="exp", name="Exp", variants=VARIANTS)
    assert (
        client.get(f"/admin/chat_sessions/experiment/{experiment.pk}/results/").status_code == 403
    )
    assert b"/admin/dashboard/" not in client.get("/admin/").content


def test_staff_with_view_permissions(data):
    client = _staff("queries.view_query", "chat_sessions.view_experiment")
    assert client.get("/admin/dashboard/").status_code == 200
    assert client.get("/admin/queries/query/").status_code == 200
    experiment = Experiment.objects.create(key="exp", name="Exp", variants=VARIANTS)
    assert (
        client.get(f"/admin/chat_sessions/experiment/{experiment.pk}/results/").status_code == 200
    )
    # Viewing is not changing: the start action is not offered.
    assert b"start_experiments" not in client.get("/admin/chat_sessions/experiment/").content
    assert client.get("/admin/chat_sessions/session/").status_code == 403


def test_dashboard_charts_have_data(superuser_client, data):
    Query.objects.filter().update(timestamp=timezone.now())
    body = superuser_client.get("/admin/dashboard/?days=7").content.decode()
    assert body.count('<svg class="chart"') == 4
    assert 'class="bar" data-value="1"' in body  # one query today
    assert 'data-series="p50" data-value="420.0"' in body
    assert 'id="total-queries">1<' in body
