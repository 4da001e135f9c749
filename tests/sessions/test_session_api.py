"""The session API: start, events, read, end; every bad input; tenant isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from queries.models import Query
from sessions.models import Event, Experiment, Session
from sessions.services import session_query_record
from tests.sessions.conftest import START

pytestmark = pytest.mark.django_db


def _event(t=1703001234567, type="click", **extra):
    return {"t": t, "type": type, "data": {"element": "submit_button"}, **extra}


def _error(response):
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


# ----- start -----


def test_start_creates_session_with_environment(api, started):
    assert started["session_id"] == "sess_abc"
    assert started["user_id"] == "user_123"
    assert started["device"] == "Desktop"
    assert started["environment"]["viewport"] == {"width": 1920, "height": 1080}
    assert started["status"] == "active"
    assert started["experiments"] == {}


def test_start_is_idempotent(api, started):
    again = api.post("/api/v1/session/start", START, format="json")
    assert again.status_code == 200
    assert again.json()["start_t"] == started["start_t"]
    assert Session.objects.filter(session_id="sess_abc").count() == 1


def test_start_same_id_other_user_conflicts(api, started):
    response = api.post(
        "/api/v1/session/start", {**START, "user_id": "someone_else"}, format="json"
    )
    assert response.status_code == 409
    assert _error(response)["code"] == "session_conflict"


def test_same_session_id_for_two_owners_are_two_sessions(api, other_api, started):
    response = other_api.post("/api/v1/session/start", START, format="json")
    assert response.status_code == 201
    assert Session.objects.filter(session_id="sess_abc").count() == 2


def test_start_assigns_running_experiments_once(api):
    Experiment.objects.create(
        key="model-test",
        name="Model test",
        status="running",
        variants=[{"name": "control", "weight": 1}, {"name": "b", "weight": 1}],
    )
    Experiment.objects.create(
        key="draft-test", name="Draft", variants=[{"name": "control", "weight": 1}]
    )
    body = api.post("/api/v1/session/start", START, format="json").json()
    assert set(body["experiments"]) == {"model-test"}
    assert body["experiments"]["model-test"] in {"control", "b"}
    # Exposure is recorded at start: a later experiment does not join an existing session.
    Experiment.objects.create(
        key="later", name="Later", status="running", variants=[{"name": "x", "weight": 1}]
    )
    again = api.post("/api/v1/session/start", START, format="json").json()
    assert again["experiments"] == body["experiments"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"user_id": "u"}, "session_id"),
        ({"session_id": "s"}, "user_id"),
        ({"session_id": "has space", "user_id": "u"}, "session_id"),
        ({"session_id": "x" * 129, "user_id": "u"}, "session_id"),
        ({"session_id": "events", "user_id": "u"}, "session_id"),
        ({"session_id": "s", "user_id": "u" * 129}, "user_id"),
        ({"session_id": "s", "user_id": "u", "environment": "Desktop"}, "environment"),
        ({"session_id": "s", "user_id": "u", "environment": {"device": "d" * 51}}, "environment"),
        (
            {"session_id": "s", "user_id": "u", "environment": {"viewport": {"width": -1}}},
            "environment",
        ),
    ],
)
def test_start_bad_input(api, payload, field):
    response = api.post("/api/v1/session/start", payload, format="json")
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "validation_error"
    assert field in error["details"]["fields"]
    assert not Session.objects.exists()


def test_start_needs_api_key(anon):
    response = anon.post("/api/v1/session/start", START, format="json")
    assert response.status_code == 401


def test_malformed_json_is_400(api):
    response = api.post("/api/v1/session/start", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert _error(response)["code"] == "malformed_request"


# ----- single event -----


def test_event_is_stored_and_counted(api, started):
    response = api.post(
        "/api/v1/session/event", {"session_id": "sess_abc", "event": _event()}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["stored"] == 1
    event = Event.objects.get()
    assert (event.type, event.t, event.data) == (
        "click",
        1703001234567,
        {"element": "submit_button"},
    )
    assert len(event.event_id) == 32  # generated: the client sent none
    assert Session.objects.get().event_count == 1


def test_event_resent_with_same_id_is_stored_once(api, started):
    payload = {"session_id": "sess_abc", "event": _event(id="evt-1")}
    assert api.post("/api/v1/session/event", payload, format="json").status_code == 201
    again = api.post("/api/v1/session/event", payload, format="json")
    assert again.status_code == 200
    assert again.json()["stored"] == 0
    assert again.json()["duplicates"] == 1
    assert Event.objects.count() == 1
    assert Session.objects.get().event_count == 1


def test_event_unknown_session_is_404(api):
    response = api.post(
        "/api/v1/session/event", {"session_id": "nope", "event": _event()}, format="json"
    )
    assert response.status_code == 404
    assert "nope" in _error(response)["message"]


def test_event_for_ended_session_is_409(api, started):
    api.post("/api/v1/session/end", {"session_id": "sess_abc"}, format="json")
    response = api.post(
        "/api/v1/session/event", {"session_id": "sess_abc", "event": _event()}, format="json"
    )
    assert response.status_code == 409
    assert _error(response)["code"] == "session_ended"
    assert not Event.objects.exists()


def test_event_unknown_type_is_400(api, started):
    response = api.post(
        "/api/v1/session/event",
        {"session_id": "sess_abc", "event": _event(type="teleport")},
        format="json",
    )
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "unknown_event_type"
    assert "teleport" in error["message"]
    assert "page_view" in error["message"]


def test_event_data_over_16kb_is_413(api, started):
    event = {"t": 1, "type": "custom", "data": {"blob": "x" * (16 * 1024)}}
    response = api.post(
        "/api/v1/session/event", {"session_id": "sess_abc", "event": event}, format="json"
    )
    assert response.status_code == 413
    assert _error(response)["code"] == "event_data_too_large"
    assert not Event.objects.exists()


def test_event_data_just_under_limit_is_stored(api, started):
    # {"blob":"..."} is 11 bytes of JSON around the string.
    event = {"t": 1, "type": "custom", "data": {"blob": "x" * (16 * 1024 - 11)}}
    response = api.post(
        "/api/v1/session/event", {"session_id": "sess_abc", "event": event}, format="json"
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "event",
    [
        {"type": "click", "data": {}},  # no t
        {"t": "yesterday", "type": "click"},
        {"t": -5, "type": "click"},
        {"t": 1, "data": {}},  # no type
        {"t": 1, "type": "click", "data": [1, 2]},
        {"t": 1, "type": "click", "id": ""},
        {"t": 1, "type": "click", "id": "x" * 129},
        {"t": 1, "type": "click", "colour": "red"},
        "click",
    ],
)
def test_event_invalid_shape_is_400(api, started, event):
    response = api.post(
        "/api/v1/session/event", {"session_id": "sess_abc", "event": event}, format="json"
    )
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_event"
    assert not Event.objects.exists()


def test_event_missing_event_is_400(api, started):
    response = api.post("/api/v1/session/event", {"session_id": "sess_abc"}, format="json")
    assert response.status_code == 400
    assert "event" in _error(response)["details"]["fields"]


# ----- batch -----


def test_batch_stores_valid_and_lists_rejected(api, started):
    events = [
        _event(t=1, id="a"),
        _event(t=2, type="warp", id="b"),
        {"t": 3, "type": "custom", "data": {"x": "y" * 17000}},
        _event(t=4, id="a"),  # same id twice in one batch
        _event(t=5, type="scroll"),
        "nonsense",
    ]
    response = api.post(
        "/api/v1/session/events", {"session_id": "sess_abc", "events": events}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["received"] == 6
    assert body["stored"] == 2
    assert body["duplicates"] == 1
    rejected = {item["index"]: item for item in body["rejected"]}
    assert set(rejected) == {1, 2, 5}
    assert rejected[1]["code"] == "unknown_event_type"
    assert rejected[1]["id"] == "b"
    assert rejected[2]["code"] == "event_data_too_large"
    assert rejected[5]["code"] == "invalid_event"
    assert sorted(Event.objects.values_list("t", flat=True)) == [1, 5]
    assert Session.objects.get().event_count == 2


def test_batch_over_500_is_rejected_whole(api, started):
    events = [_event(t=i) for i in range(501)]
    response = api.post(
        "/api/v1/session/events", {"session_id": "sess_abc", "events": events}, format="json"
    )
    assert response.status_code == 413
    assert _error(response)["code"] == "batch_too_large"
    assert not Event.objects.exists()


def test_batch_empty_is_400(api, started):
    response = api.post(
        "/api/v1/session/events", {"session_id": "sess_abc", "events": []}, format="json"
    )
    assert response.status_code == 400
    assert _error(response)["code"] == "empty_batch"


def test_batch_events_not_a_list_is_400(api, started):
    response = api.post(
        "/api/v1/session/events", {"session_id": "sess_abc", "events": {"t": 1}}, format="json"
    )
    assert response.status_code == 400
    assert "events" in _error(response)["details"]["fields"]


def test_batch_unknown_and_ended_session(api, started):
    batch = {"session_id": "ghost", "events": [_event()]}
    assert api.post("/api/v1/session/events", batch, format="json").status_code == 404
    api.post("/api/v1/session/end", {"session_id": "sess_abc"}, format="json")
    batch["session_id"] = "sess_abc"
    response = api.post("/api/v1/session/events", batch, format="json")
    assert response.status_code == 409
    assert not Event.objects.exists()


def test_thousand_events_in_two_batches_resent_are_stored_once(api, started):
    batches = [
        [_event(t=1_000 + i, id=f"e{i:04d}") for i in range(start, start + 500)]
        for start in (0, 500)
    ]
    for batch in batches:
        response = api.post(
            "/api/v1/session/events", {"session_id": "sess_abc", "events": batch}, format="json"
        )
        assert response.json()["stored"] == 500
    # The client lost the response to the second batch and sends it again.
    again = api.post(
        "/api/v1/session/events", {"session_id": "sess_abc", "events": batches[1]}, format="json"
    )
    assert again.json()["stored"] == 0
    assert again.json()["duplicates"] == 500
    ids = list(Event.objects.values_list("event_id", flat=True))
    assert len(ids) == 1000
    assert set(ids) == {f"e{i:04d}" for i in range(1000)}
    assert Session.objects.get().event_count == 1000


def test_batch_partly_resent_stores_only_new(api, started):
    first = [_event(t=i, id=f"p{i}") for i in range(10)]
    api.post("/api/v1/session/events", {"session_id": "sess_abc", "events": first}, format="json")
    mixed = first[5:] + [_event(t=100 + i, id=f"q{i}") for i in range(5)]
    body = api.post(
        "/api/v1/session/events", {"session_id": "sess_abc", "events": mixed}, format="json"
    ).json()
    assert (body["stored"], body["duplicates"]) == (5, 5)
    assert Event.objects.count() == 15
    assert Session.objects.get().event_count == 15


# ----- read -----


def _track(api, events):
    response = api.post(
        "/api/v1/session/events", {"session_id": "sess_abc", "events": events}, format="json"
    )
    assert response.status_code == 200
    return response.json()


def test_get_session_with_metrics(api, started, owner):
    _track(api, [_event(t=i, type="click") for i in range(3)] + [_event(t=9, type="scroll")])
    session = Session.objects.get()
    Session.objects.filter(pk=session.pk).update(start_t=timezone.now() - timedelta(minutes=2))
    query = Query.objects.create(
        owner=owner[0],
        user_id="user_123",
        session_id="sess_abc",
        query="hi",
        model_provider="openai",
        model_name="gpt-4o-mini",
        timestamp=timezone.now() - timedelta(minutes=1),
    )
    # What the run does when it stores a query (queries call down into sessions).
    session_query_record(session=session, at=query.timestamp)
    body = api.get("/api/v1/session/sess_abc").json()
    metrics = body["metrics"]
    assert metrics["event_count"] == 4
    assert metrics["event_counts_by_type"] == {"click": 3, "scroll": 1}
    assert metrics["query_count"] == 1
    assert body["query_count"] == 1
    assert 119 <= metrics["duration_seconds"] <= 125
    assert 59 <= metrics["time_to_first_query_seconds"] <= 61
    assert metrics["events_per_minute"] == pytest.approx(
        4 / (metrics["duration_seconds"] / 60), abs=0.01
    )
    assert "events" not in body


def test_query_of_another_owner_is_not_counted(api, other_api, started, make_owner):
    stranger, _ = make_owner("stranger")
    Query.objects.create(
        owner=stranger,
        user_id="user_123",
        session_id="sess_abc",
        query="x",
        model_provider="openai",
        model_name="m",
    )
    assert api.get("/api/v1/session/sess_abc").json()["metrics"]["query_count"] == 0


def test_get_session_events_paginated(api, started):
    # Equal t values check that pagination breaks ties without losing events.
    _track(api, [_event(t=i // 2, id=f"e{i}") for i in range(7)])
    seen, cursor, pages = [], None, 0
    while True:
        url = "/api/v1/session/sess_abc?include_events=true&events_limit=3"
        if cursor:
            url += f"&events_cursor={cursor}"
        body = api.get(url).json()
        seen += [event["id"] for event in body["events"]]
        pages += 1
        cursor = body["events_next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(f"e{i}" for i in range(7))
    assert len(seen) == 7


@pytest.mark.parametrize(
    "query",
    [
        "include_events=maybe",
        "include_events=true&events_limit=0",
        "include_events=true&events_limit=501",
        "include_events=true&events_limit=ten",
        "include_events=true&events_cursor=garbage!",
    ],
)
def test_get_session_bad_parameters(api, started, query):
    response = api.get(f"/api/v1/session/sess_abc?{query}")
    assert response.status_code == 400
    assert _error(response)["code"] in {"invalid_parameter", "invalid_cursor"}


def test_other_owners_session_is_404(api, other_api, started):
    assert other_api.get("/api/v1/session/sess_abc").status_code == 404
    response = other_api.post(
        "/api/v1/session/event", {"session_id": "sess_abc", "event": _event()}, format="json"
    )
    assert response.status_code == 404
    response = other_api.post(
        "/api/v1/session/events", {"session_id": "sess_abc", "events": [_event()]}, format="json"
    )
    assert response.status_code == 404
    assert (
        other_api.post("/api/v1/session/end", {"session_id": "sess_abc"}, format="json").status_code
        == 404
    )
    assert not Event.objects.exists()
    assert Session.objects.get().end_t is None


def test_unknown_session_is_404(api):
    response = api.get("/api/v1/session/missing")
    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"


# ----- end -----


def test_end_computes_final_metrics_and_twice_is_noop(api, started):
    _track(api, [_event(t=1), _event(t=2, type="input")])
    first = api.post("/api/v1/session/end", {"session_id": "sess_abc"}, format="json")
    assert first.status_code == 200
    body = first.json()
    assert body["status"] == "ended"
    assert body["already_ended"] is False
    assert body["metrics"]["event_counts_by_type"] == {"click": 1, "input": 1}
    second = api.post("/api/v1/session/end", {"session_id": "sess_abc"}, format="json")
    assert second.status_code == 200
    assert second.json()["already_ended"] is True
    assert second.json()["end_t"] == body["end_t"]
    assert second.json()["metrics"] == body["metrics"]
    read = api.get("/api/v1/session/sess_abc").json()
    assert read["metrics"] == body["metrics"]


def test_end_bad_input(api):
    response = api.post("/api/v1/session/end", {}, format="json")
    assert response.status_code == 400
    assert api.post("/api/v1/session/end", {"session_id": "nope"}, format="json").status_code == 404
