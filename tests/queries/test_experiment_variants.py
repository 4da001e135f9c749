"""Experiment variants shape queries: provider, model, prompt and temperature, recorded."""

from __future__ import annotations

import json

import pytest

from queries.models import Query
from sessions.experiments import experiment_start, experiment_stop
from sessions.models import Experiment

pytestmark = pytest.mark.django_db


def test_a_running_experiment_changes_and_is_recorded_on_queries(api, in_process):
    experiment = Experiment.objects.create(
        key="prompt-test",
        name="Prompt test",
        # One variant takes everyone, so the assignment is known.
        variants=[
            {"name": "control", "weight": 0.0001, "overrides": {}},
            {
                "name": "claude",
                "weight": 100,
                "overrides": {
                    "model_provider": "anthropic",
                    "model_name": "claude-haiku-4-5",
                    "system_prompt": "You are a pirate.",
                    "temperature": 0.1,
                },
            },
        ],
    )
    experiment_start(experiment=experiment)
    started = api.post(
        "/api/v1/session/start",
        {"session_id": "exp-s", "user_id": "u1", "environment": {}},
        format="json",
    ).json()
    assert started["experiments"] == {"prompt-test": "claude"}

    answer = api.post(
        "/api/v1/query/",
        {"user_id": "u1", "session_id": "exp-s", "query": "Hello", "use_memory": False},
        format="json",
    ).json()
    assert (answer["model_provider"], answer["model_name"]) == ("anthropic", "claude-haiku-4-5")
    assert answer["experiments"] == {"prompt-test": "claude"}
    sent = in_process["anthropic"].chat_requests[-1].body
    assert "You are a pirate." in json.dumps(sent["system"])
    assert sent["temperature"] == 0.1
    assert Query.objects.get(pk=answer["query_id"]).experiments == {"prompt-test": "claude"}

    # The request's own choice wins over the variant; a stopped experiment changes nothing.
    chosen = api.post(
        "/api/v1/query/",
        {
            "user_id": "u1",
            "session_id": "exp-s",
            "query": "Hi",
            "model_provider": "openai",
            "use_memory": False,
        },
        format="json",
    ).json()
    assert chosen["model_provider"] == "openai"
    experiment_stop(experiment=experiment)
    after = api.post(
        "/api/v1/query/",
        {"user_id": "u1", "session_id": "exp-s", "query": "Hey", "use_memory": False},
        format="json",
    ).json()
    assert after["experiments"] == {}
    assert after["model_provider"] == "openai"  # DEFAULT_MODEL_PROVIDER again
