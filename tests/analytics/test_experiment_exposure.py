"""Exposure end to end: real questions through POST /api/v1/query/ (the in-process run and
the fake vendors), then the experiment's results over REST.

The case this guards: a control arm without overrides was credited with no queries,
because a query counted for a variant only when one of its overrides "shaped" it.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from queries.models import Query
from queries.question import QuestionParams
from queries.start import query_start
from queries.streams import query_wait
from sessions.experiments import experiment_start
from sessions.models import Experiment, Session

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]

WARM = "Answer warmly."
VARIANTS = [
    {"name": "control", "weight": 50, "overrides": {}},
    {"name": "warm", "weight": 50, "overrides": {"system_prompt": WARM, "temperature": 0.9}},
]


def _ask(api, session_id: str, **extra) -> dict:
    body = {
        "user_id": f"user-{session_id}",
        "session_id": session_id,
        "query": "Hello",
        "use_memory": False,
        "model_provider": "openai",
        **extra,
    }
    response = api.post("/api/v1/query/", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _system_sent(fakes) -> str:
    return json.dumps(fakes["openai"].chat_requests[-1].body["messages"][0])


def test_a_control_without_overrides_is_credited_and_a_request_setting_the_field_excluded(
    api, owner, in_process
):
    created = api.post(
        "/api/v1/experiments", {"key": "tone", "name": "Tone", "variants": VARIANTS}, format="json"
    ).json()
    api.post(f"/api/v1/experiments/{created['id']}/start")
    arms: dict[str, list[str]] = {"control": [], "warm": []}
    n = 0
    # Assignment hashes the owner's id, new in every test: ask until both arms have two.
    while min(len(sessions) for sessions in arms.values()) < 2:
        assert n < 40, arms
        session_id = f"s{n}"
        answer = _ask(api, session_id)
        variant = Session.objects.get(session_id=session_id).experiments["tone"]
        arms[variant].append(session_id)
        # Every arm's query is credited to its arm, control included.
        assert answer["experiments"] == {"tone": variant}
        assert (WARM in _system_sent(in_process)) == (variant == "warm")
        rated = api.post(f"/api/v1/query/{answer['query_id']}/feedback", {"rating": 1})
        assert rated.status_code == 200, rated.content
        n += 1
    # A request that sets a varied field itself (here the temperature) is, in either arm,
    # not exposed: it is answered as asked and counted as excluded from its arm.
    for variant in ("control", "warm"):
        own = _ask(api, arms[variant][0], temperature=0.2)
        assert own["experiments"] == {}
        sent = in_process["openai"].chat_requests[-1].body
        assert sent["temperature"] == 0.2 and WARM not in json.dumps(sent["messages"][0])
        assert Query.objects.get(pk=own["query_id"]).experiments_excluded == {
            "tone": {"variant": variant, "reason": "request_set:temperature"}
        }
    # So is one whose client sends its own system prompt (the OpenAI-compatible edge's
    # messages, through the same query_start every edge uses).
    session_id = arms["warm"][1]
    own = query_wait(
        query=query_start(
            owner=owner[0],
            params=QuestionParams(
                user_id=f"user-{session_id}",
                session_id=session_id,
                query="Hello",
                use_memory=False,
                model_provider="openai",
                messages=[{"role": "system", "content": "Answer in French."}],
            ),
        )
    )
    assert own.experiments == {} and WARM not in _system_sent(in_process)
    assert own.experiments_excluded == {
        "tone": {"variant": "warm", "reason": "request_set:system_prompt"}
    }

    body = api.get(f"/api/v1/experiments/{created['id']}/results").json()
    rows = {row["name"]: row for row in body["variants"]}
    for variant, sessions in arms.items():
        row = rows[variant]
        assert row["sessions"] == len(sessions)
        assert (row["queries"], row["rated"], row["thumbs_up"]) == (len(sessions),) * 3
        assert row["thumbs_up_rate"] == 1.0 and row["error_rate"] == 0.0
        assert row["latency_p50_ms"] is not None and row["tokens_per_query"] > 0
    assert (rows["control"]["excluded_queries"], rows["warm"]["excluded_queries"]) == (1, 2)
    assert rows["control"]["excluded_reasons"] == {"request_set:temperature": 1}
    assert rows["warm"]["excluded_reasons"] == {
        "request_set:temperature": 1,
        "request_set:system_prompt": 1,
    }
    assert body["control"] == "control" and rows["control"]["is_control"]
    # Too few ratings for an interval: said, not guessed.
    assert rows["warm"]["thumbs_up_comparison"]["status"] == "not_enough_data"


def test_two_experiments_varying_one_field_the_older_wins_and_the_younger_is_excluded(
    api, in_process
):
    for key, temperature in (("older", 0.3), ("younger", 0.7)):
        experiment = Experiment.objects.create(
            key=key,
            name=key,
            # Everyone in "b", so the assignment is known; "a" has no overrides.
            variants=[
                {"name": "a", "weight": 0.0001, "overrides": {}},
                {"name": "b", "weight": 100, "overrides": {"temperature": temperature}},
            ],
        )
        experiment_start(experiment=experiment)
    Experiment.objects.filter(key="older").update(started_at=timezone.now() - timedelta(days=1))
    Experiment.objects.filter(key="younger").update(started_at=timezone.now())
    answer = _ask(api, "s1")
    assert in_process["openai"].chat_requests[-1].body["temperature"] == 0.3
    assert answer["experiments"] == {"older": "b"}
    assert Query.objects.get(pk=answer["query_id"]).experiments_excluded == {
        "younger": {"variant": "b", "reason": "conflict:temperature"}
    }
    # Setting the field itself: excluded from both, for that reason first.
    own = _ask(api, "s1", temperature=1.0)
    assert own["experiments"] == {}
    assert Query.objects.get(pk=own["query_id"]).experiments_excluded == {
        "older": {"variant": "b", "reason": "request_set:temperature"},
        "younger": {"variant": "b", "reason": "request_set:temperature"},
    }
