"""/v1's refusals in OpenAI's error shape, with the statuses the SDKs map to exceptions.

In process (the test client); the pipeline runs in-process against the fake vendors.
"""

from __future__ import annotations

import base64

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

import openai_compat.views
from llmplatform.core.errors import ApplicationError
from queries.models import Query

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()


def _v1_routes() -> list[tuple[str, str]]:
    """Every /v1 route and method, from the URLconf: a new one is covered without a test."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("v1/"):
                view = pattern.callback.view_class
                for method in ("get", "post"):
                    if hasattr(view, method):
                        yield method, "/" + route

    return sorted(walk(get_resolver().url_patterns))


V1_ROUTES = _v1_routes()


def assert_openai_error(response, status: int, code: str | None = None):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def chat(api, **body):
    return api.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], **body},
        format="json",
    )


def test_every_v1_route_is_listed():
    assert set(V1_ROUTES) == {
        ("get", "/v1/models"),
        ("post", "/v1/chat/completions"),
        ("post", "/v1/embeddings"),
    }


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
@pytest.mark.parametrize("key", [None, "llmp_wrong-key-0123456789"])
def test_without_a_valid_key_every_route_is_401(method, path, key):
    client = APIClient()
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = getattr(client, method)(path, {}, format="json")
    error = assert_openai_error(response, 401)
    assert error["type"] == "authentication_error"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_key_is_401(make_owner):
    from llmplatform.core.models import ApiKey
    from llmplatform.core.services import api_key_revoke

    user, raw = make_owner("revoked")
    api_key_revoke(api_key=ApiKey.objects.get(owner=user))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert_openai_error(client.get("/v1/models"), 401)


def test_unknown_model_is_404_model_not_found(api):
    error = assert_openai_error(chat(api, model="openai/no-such-model"), 404, "model_not_found")
    assert error["param"] == "model"
    # A provider this deployment has no key for is not served either.
    assert_openai_error(chat(api, model="nobody/gpt-4o-mini"), 404, "model_not_found")
    assert not Query.objects.exists()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "assistant", "content": "Hi"}]}, "messages"),
        ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "x"}]}, "messages"),
        ({"messages": [{"role": "user", "content": 7}]}, "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "messages"),
        ({"messages": [{"role": "user", "content": "  "}]}, "messages"),
        ({"messages": [{"role": "user", "content": "x" * 8001}]}, "messages"),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"metadata": {"use_memory": "maybe"}}, "metadata"),
        ({"model": ["openai/gpt-4o-mini"]}, "model"),
    ],
)
def test_bad_requests_are_400_naming_the_param(api, body, param):
    error = assert_openai_error(chat(api, **body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert not Query.objects.exists()


def test_an_http_image_url_is_refused_asking_for_a_data_url(api, fakes):
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/cat.png"}},
    ]
    error = assert_openai_error(chat(api, messages=[{"role": "user", "content": parts}]), 400)
    assert "data URL" in error["message"]
    assert not Query.objects.exists()


def test_a_broken_data_url_is_400_not_500(api):
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}},
    ]
    assert_openai_error(chat(api, messages=[{"role": "user", "content": parts}]), 400)


def test_malformed_json_is_400(api):
    response = api.generic(
        "POST", "/v1/chat/completions", b"{not json", content_type="application/json"
    )
    assert_openai_error(response, 400)


def test_a_body_over_the_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = chat(api, messages=[{"role": "user", "content": "x" * 2000}])
    assert_openai_error(response, 413, "payload_too_large")


def test_a_refusal_from_the_run_entry_keeps_its_status_code_and_retry_after(api, monkeypatch):
    # What the per-key limits raise from query_start: rendered generically.
    def refuse(**kwargs):
        raise ApplicationError(
            "Budget for this key is used up.",
            code="budget_exceeded",
            status=429,
            extra={"retry_after": 120},
        )

    monkeypatch.setattr(openai_compat.views, "query_start", refuse)
    response = chat(api)
    error = assert_openai_error(response, 429, "budget_exceeded")
    assert error["type"] == "rate_limit_error"
    assert response["Retry-After"] == "120"


def test_a_failed_run_is_the_stored_error_not_a_completion(api, fakes):
    fakes["openai"].fail_next("auth", times=5)
    response = chat(api)
    assert response.status_code >= 400
    assert_openai_error(response, response.status_code)
    assert Query.objects.get().status == Query.Status.FAILED


def test_an_image_data_url_becomes_an_attachment(api, fakes):
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    response = chat(api, messages=[{"role": "user", "content": parts}])
    assert response.status_code == 200, response.content
    query = Query.objects.get()
    assert len(query.request["attachments"]) == 1
    assert "VisionAgent" in query.agents_used


def test_models_are_listed_even_when_the_embedder_is_misconfigured(api, settings):
    settings.EMBEDDING_PROVIDER = "openai"
    settings.OPENAI_API_KEY = ""  # the embedder cannot be built; chat providers still serve
    response = api.get("/v1/models")
    assert response.status_code == 200, response.content
    ids = [model["id"] for model in response.json()["data"]]
    assert "anthropic/claude-haiku-4-5" in ids
    assert not any("embedding" in i or "MiniLM" in i for i in ids)
