"""The run records what operators scrape: every finished query, provider errors, retries and
fallbacks, through real runs against the fake vendors (not by calling the recorders)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def ask(api, **extra):
    body = {"user_id": "u1", "session_id": "m1", "query": "Hello", "use_memory": False, **extra}
    return api.post("/api/v1/query/", body, format="json")


def test_a_finished_query_is_counted_with_its_tokens(api, owner):
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    before = value("llmplatform_queries_total", **labels, status="completed")
    tokens_before = value(
        "llmplatform_tokens_total", **labels, owner=str(owner[0].pk), direction="output"
    )
    answer = ask(api, model_provider="openai").json()
    assert value("llmplatform_queries_total", **labels, status="completed") == before + 1
    tokens_after = value(
        "llmplatform_tokens_total", **labels, owner=str(owner[0].pk), direction="output"
    )
    assert tokens_after - tokens_before == answer["usage"]["output_tokens"] > 0


def test_a_failed_query_is_counted_as_failed(api, fakes):
    fakes["openai"].fail_next("auth")
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    before = value("llmplatform_queries_total", **labels, status="failed")
    assert ask(api, model_provider="openai").status_code >= 400
    assert value("llmplatform_queries_total", **labels, status="failed") == before + 1


def test_retries_errors_and_fallbacks_are_counted(api, fakes, settings):
    settings.PROVIDER_FALLBACKS = "openai->anthropic"
    fakes["openai"].fail_next("server_error", times=3)  # the first try and both retries
    retries = value("llmplatform_provider_retries_total", provider="openai")
    errors = value("llmplatform_provider_errors_total", provider="openai", code="provider_error")
    fallbacks = value(
        "llmplatform_provider_fallbacks_total", from_provider="openai", to_provider="anthropic"
    )
    assert ask(api, model_provider="openai").status_code == 200
    assert value("llmplatform_provider_retries_total", provider="openai") == retries + 2
    assert (
        value("llmplatform_provider_errors_total", provider="openai", code="provider_error")
        == errors + 3
    )
    assert (
        value(
            "llmplatform_provider_fallbacks_total",
            from_provider="openai",
            to_provider="anthropic",
        )
        == fallbacks + 1
    )
