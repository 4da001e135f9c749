"""Metric labels stay bounded whatever model names clients send: only catalogue models
(agents.providers.catalogue) are named, anything else is ``other``. Through real REST
questions answered (or refused) by the fake vendor, and real scrapes of /metrics."""

from __future__ import annotations

import random
import string

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from llmplatform.core import metrics

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]

TOKEN = "scrape-token-labels-0123456789"


@pytest.fixture(autouse=True)
def _token(settings):
    settings.METRICS_TOKEN = TOKEN


def series() -> set[tuple[str, tuple]]:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def ask(api, model: str, number: int):
    body = {
        "user_id": "u1",
        "session_id": f"labels-{number}",  # one pair per session: no summary is due
        "query": "Hello",
        "use_memory": False,
        "model_provider": "openai",
        "model_name": model,
    }
    return api.post("/api/v1/query/", body, format="json")


def random_model(rng: random.Random) -> str:
    return "m-" + "".join(rng.choices(string.ascii_lowercase + string.digits + "-.", k=12))


def test_a_hundred_client_chosen_model_names_add_no_series(api, fakes):
    rng = random.Random(19)
    # The vendor accepts some names and refuses the others (404 model not found).
    fakes["openai"].refuses_model = lambda model: (
        model.startswith("m-") and model.endswith(tuple("01234abcdefghijklm"))
    )
    accepted, refused = "m-accepted-z", "m-refused-a"
    assert ask(api, accepted, 0).status_code == 200
    assert ask(api, refused, 1).status_code >= 400
    ask(api, "gpt-4o-mini", 2)  # a catalogue model keeps its name
    series()  # the scrape's own route is a series from its second scrape on
    before = series()
    statuses = set()
    for number in range(100):
        statuses.add(ask(api, random_model(rng), 3 + number).status_code)
    after = series()
    assert statuses >= {200} and any(status >= 400 for status in statuses)  # both kinds sent
    assert after - before == set(), sorted(after - before)[:10]
    queries = {labels for name, labels in after if name == "llmplatform_queries_total"}
    assert (("model", "other"), ("provider", "openai"), ("status", "completed")) in queries
    assert (("model", "other"), ("provider", "openai"), ("status", "failed")) in queries
    assert (("model", "gpt-4o-mini"), ("provider", "openai"), ("status", "completed")) in queries
    models = {dict(labels).get("model") for _, labels in after}
    assert not any(str(model).startswith("m-") for model in models)


def test_labels_are_catalogue_names_or_other():
    assert metrics.model_labels("openai", "GPT-4o-mini") == ("openai", "gpt-4o-mini")
    assert metrics.model_labels("anthropic", "claude-haiku-4-5") == (
        "anthropic",
        "claude-haiku-4-5",
    )
    assert metrics.model_labels("openai", "claude-haiku-4-5") == ("openai", "other")
    assert metrics.model_labels("openai", "my-own-model") == ("openai", "other")
    assert metrics.model_labels("made-up", "gpt-4o-mini") == ("other", "other")
    assert metrics.model_labels("openai", None) == ("openai", "other")


def test_the_configured_default_model_is_in_the_catalogue(settings):
    settings.DEFAULT_MODEL_PROVIDER = "openai"
    settings.DEFAULT_MODEL_NAME = "ft:gpt-4o-mini:acme:2026"
    assert metrics.model_labels("openai", "ft:gpt-4o-mini:acme:2026") == (
        "openai",
        "ft:gpt-4o-mini:acme:2026",
    )
