"""Prometheus metrics: GET /metrics (token, format), the recording functions, request latency
per route through real requests, Celery task outcomes through real task runs, and queue
depth from Redis."""

from __future__ import annotations

import uuid

import pytest
import redis
from bson import ObjectId
from celery import shared_task
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from llmplatform.core import metrics
from queries.tasks import after_completion

TOKEN = "scrape-token-0123456789"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client: Client | None = None) -> dict[tuple[str, tuple], float]:
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


# ----- the endpoint -----


def test_off_without_a_token(settings):
    settings.METRICS_TOKEN = None
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN, "Bearer "])
def test_a_missing_or_wrong_token_is_a_401(token, header):
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = Client().get("/metrics", **extra)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"llmplatform_" not in response.content


def test_the_scrape_is_prometheus_text(token):
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {
        "llmplatform_http_request_duration_seconds",
        "llmplatform_time_to_first_token_seconds",
        "llmplatform_query_duration_seconds",
        "llmplatform_tokens",
        "llmplatform_cost_usd",
        "llmplatform_provider_errors",
        "llmplatform_provider_retries",
        "llmplatform_provider_fallbacks",
        "llmplatform_active_streams",
        "llmplatform_celery_tasks",
        "llmplatform_celery_queue_length",
        "llmplatform_background_jobs",
    } <= names
    assert Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


# ----- recording functions -----


def test_a_finished_query_is_recorded_per_provider_model_and_owner(token):
    labels = {"provider": "openai", "model": "gpt-4.1-nano"}
    before_cost = value("llmplatform_cost_usd_total", **labels, owner="owner-a")
    metrics.record_query_finished(
        **labels,
        owner="owner-a",
        status="completed",
        ttft_ms=420.0,
        total_ms=1500.0,
        input_tokens=100,
        output_tokens=30,
        cost_usd=0.002,
    )
    metrics.record_query_finished(
        **labels,
        owner="owner-b",
        status="failed",
        ttft_ms=None,
        total_ms=None,
        input_tokens=None,
        output_tokens=None,
        cost_usd=None,
    )
    samples = scrape()
    key = (("model", "gpt-4.1-nano"), ("provider", "openai"))
    assert samples[("llmplatform_queries_total", (*key, ("status", "completed")))] == 1
    assert samples[("llmplatform_queries_total", (*key, ("status", "failed")))] == 1
    assert samples[("llmplatform_time_to_first_token_seconds_count", key)] == 1
    assert samples[("llmplatform_time_to_first_token_seconds_bucket", (("le", "0.5"), *key))] == 1
    assert samples[("llmplatform_time_to_first_token_seconds_bucket", (("le", "0.25"), *key))] == 0
    assert samples[("llmplatform_query_duration_seconds_sum", key)] == pytest.approx(1.5)
    tokens = {
        direction: samples[
            (
                "llmplatform_tokens_total",
                (
                    ("direction", direction),
                    ("model", "gpt-4.1-nano"),
                    ("owner", "owner-a"),
                    ("provider", "openai"),
                ),
            )
        ]
        for direction in ("input", "output")
    }
    assert tokens == {"input": 100, "output": 30}
    after_cost = value("llmplatform_cost_usd_total", **labels, owner="owner-a")
    assert after_cost - before_cost == pytest.approx(0.002)
    # A failed run with no usage adds no token or cost series for its owner.
    assert not any(
        name in ("llmplatform_tokens_total", "llmplatform_cost_usd_total")
        and ("owner", "owner-b") in labels_
        for name, labels_ in samples
    )


def test_provider_errors_retries_and_fallbacks(token):
    before = value("llmplatform_provider_errors_total", provider="anthropic", code="rate_limited")
    metrics.record_provider_error("anthropic", "rate_limited")
    metrics.record_provider_error("anthropic", "rate_limited")
    metrics.record_retry("anthropic")
    metrics.record_fallback("anthropic", "openai")
    after = value("llmplatform_provider_errors_total", provider="anthropic", code="rate_limited")
    assert after - before == 2
    samples = scrape()
    assert samples[("llmplatform_provider_retries_total", (("provider", "anthropic"),))] >= 1
    fallback = (("from_provider", "anthropic"), ("to_provider", "openai"))
    assert samples[("llmplatform_provider_fallbacks_total", fallback)] >= 1


def test_active_streams_go_up_and_down_whatever_ends_the_stream(token):
    assert scrape()[("llmplatform_active_streams", (("kind", "websocket"),))] == value(
        "llmplatform_active_streams", kind="websocket"
    )
    start = value("llmplatform_active_streams", kind="sse")
    with metrics.stream_active("sse"):
        assert value("llmplatform_active_streams", kind="sse") == start + 1
    with pytest.raises(RuntimeError), metrics.stream_active("sse"):
        raise RuntimeError("client went away")
    assert value("llmplatform_active_streams", kind="sse") == start
    metrics.stream_opened("websocket")
    metrics.stream_closed("websocket")
    assert value("llmplatform_active_streams", kind="websocket") == 0


# ----- request latency, through real requests -----


@pytest.mark.django_db
def test_request_latency_is_labelled_by_route_pattern(token, api):
    route = "api/v1/files/<str:file_id>"
    count = "llmplatform_http_request_duration_seconds_count"
    before = value(count, route=route, method="GET", status="404")
    for file_id in (str(ObjectId()), str(ObjectId()), "not-an-id"):
        assert api.get(f"/api/v1/files/{file_id}").status_code == 404
    assert value(count, route=route, method="GET", status="404") - before == 3
    unmatched = value(count, route="<unmatched>", method="GET", status="404")
    raw_path = f"/no/such/{uuid.uuid4().hex}"
    Client().get(raw_path)
    assert value(count, route="<unmatched>", method="GET", status="404") == unmatched + 1
    # No label anywhere holds a raw path or an object id.
    body = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert raw_path not in body and file_id not in body
    # The scrape itself is a route: recorded once it has answered, seen by the next one.
    assert value(count, route="metrics", method="GET", status="200") >= 1


# ----- Celery, through real task runs -----


@shared_task(name="tests.metrics.fails")
def fails() -> None:
    raise ValueError("boom")


@shared_task(name="tests.metrics.retries", bind=True, max_retries=1)
def retries(self) -> str:
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    return "ok"


@pytest.mark.django_db
def test_celery_task_outcomes_and_the_summary_job(token):
    task = "queries.after_completion"
    success = value("llmplatform_celery_tasks_total", task=task, outcome="success")
    not_due = value("llmplatform_background_jobs_total", job="summary", outcome="not_due")
    # A query that does not exist: the task succeeds, no summary was due.
    after_completion.apply(args=[str(ObjectId())])
    assert value("llmplatform_celery_tasks_total", task=task, outcome="success") == success + 1
    assert (
        value("llmplatform_background_jobs_total", job="summary", outcome="not_due") == not_due + 1
    )
    assert value("llmplatform_celery_task_duration_seconds_count", task=task) >= 1

    failed = value("llmplatform_celery_tasks_total", task="tests.metrics.fails", outcome="failure")
    fails.apply()
    after = value("llmplatform_celery_tasks_total", task="tests.metrics.fails", outcome="failure")
    assert after == failed + 1

    retried = value("llmplatform_celery_tasks_total", task="tests.metrics.retries", outcome="retry")
    retries.apply()
    after = value("llmplatform_celery_tasks_total", task="tests.metrics.retries", outcome="retry")
    assert after == retried + 1


def test_a_summary_written_is_counted_as_written():
    written = value("llmplatform_background_jobs_total", job="summary", outcome="written")
    metrics.record_task_outcome("queries.after_completion", "success", result="65a0c0ffee")
    metrics.record_task_outcome("queries.sweep_runs", "success", result=3)  # not a job
    assert value("llmplatform_background_jobs_total", job="summary", outcome="written") == (
        written + 1
    )


def test_queue_depth_is_read_from_redis_at_scrape_time(token, settings):
    settings.CELERY_KEY_PREFIX = f"metrics-test-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(settings.REDIS_URL)
    agents = f"{settings.CELERY_KEY_PREFIX}agents"
    try:
        client.rpush(agents, "a", "b", "c")
        samples = scrape()
        assert samples[("llmplatform_celery_queue_length", (("queue", "agents"),))] == 3
        assert samples[("llmplatform_celery_queue_length", (("queue", "default"),))] == 0
        client.lpop(agents)
        assert scrape()[("llmplatform_celery_queue_length", (("queue", "agents"),))] == 2
    finally:
        client.delete(agents)


def test_without_redis_the_scrape_has_no_queue_depth(token, settings):
    settings.REDIS_URL = None
    samples = scrape()
    assert not [key for key in samples if key[0] == "llmplatform_celery_queue_length"]


def test_an_unreachable_redis_does_not_break_the_scrape(token, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    samples = scrape()
    assert not [key for key in samples if key[0] == "llmplatform_celery_queue_length"]
    assert any(key[0] == "llmplatform_active_streams" for key in samples)
