"""/v1's refusals in OpenAI's error shape, with the statuses the SDKs map to exceptions.

In process (the test client); the pipeline runs in-process against the fake vendors.
"""

from __future__ import annotations

import base64

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

import openai_compat.chat_choices
from llmplatform.core.errors import ApplicationError
from queries.models import Query

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()


# A sample path for each route with a parameter.
SAMPLES = {
    "v1/models/<path:model_id>": "v1/models/openai/gpt-4o-mini",
    "v1/responses/<str:response_id>": "v1/responses/resp_1",
    "v1/^(?P<path>.*)$": "v1/no/such/path",
}


def _v1_routes() -> list[tuple[str, str]]:
    """Every /v1 route and method, from the URLconf: a new one is covered without a test."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = SAMPLES.get(prefix + str(pattern.pattern), prefix + str(pattern.pattern))
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("v1/"):
                view = pattern.callback.view_class
                for method in ("get", "post", "delete"):
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
        ("get", "/v1/models/openai/gpt-4o-mini"),
        ("post", "/v1/chat/completions"),
        ("post", "/v1/responses"),
        ("get", "/v1/responses/resp_1"),
        ("post", "/v1/embeddings"),
        ("get", "/v1/no/such/path"),
        ("post", "/v1/no/such/path"),
        ("delete", "/v1/no/such/path"),
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
        ({"n": 9}, "n"),
        ({"n": 0}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}, "tools"),
        ({"tools": [{"type": "retrieval"}]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"function_call": "always"}, "function_call"),
        ({"metadata": {"use_memory": "maybe"}}, "metadata"),
        ({"metadata": {"use_memory": "true", "memory_scope": "everyone"}}, "metadata"),
        ({"model": ["openai/gpt-4o-mini"]}, "model"),
        # Fields this API does not honour are refused, never dropped (their defaults pass).
        ({"top_p": 0.5}, "top_p"),
        ({"logprobs": "maybe"}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs: true
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"stop": 7}, "stop"),
        ({"seed": "seven"}, "seed"),
        # Honoured by OpenAI, not by Anthropic: refused there (tests/openai_compat/
        # test_sampling_fields.py has each vendor).
        ({"model": "anthropic/claude-haiku-4-5", "seed": 7}, "seed"),
        ({"model": "anthropic/claude-haiku-4-5", "logprobs": True}, "logprobs"),
        ({"some_vendor_extension": 1}, "some_vendor_extension"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
            "response_format",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "no-such-type"}},
                }
            },
            "response_format",
        ),
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

    # The chat completion's n queries are started by openai_compat.chat_choices.
    monkeypatch.setattr(openai_compat.chat_choices, "query_start", refuse)
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


def test_openai_defaults_sdks_send_unasked_are_accepted(api, fakes):
    response = chat(
        api,
        top_p=1,
        presence_penalty=0,
        frequency_penalty=0.0,
        logprobs=False,
        stop=None,
        seed=None,
        tools=[],
        service_tier="auto",
        response_format={"type": "text"},
    )
    assert response.status_code == 200, response.content
    assert "response_format" not in fakes["openai"].chat_requests[-1].body


def test_the_local_model_refuses_response_format_before_any_call(api, settings, fakes):
    settings.LOCAL_MODEL_ENABLED = True
    error = assert_openai_error(
        chat(api, model="local/smollm2-135m-instruct", response_format={"type": "json_object"}),
        400,
        "response_format_unsupported",
    )
    assert error["param"] == "response_format"
    assert "openai" in error["message"]
    assert not Query.objects.exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/responses/resp_1/input_items"),
        ("post", "/v1/completions"),
        ("delete", "/v1/files/x"),
        ("get", "/v1/models/"),
    ],
)
def test_an_unknown_path_is_openais_json_404(api, method, path):
    error = assert_openai_error(getattr(api, method)(path, {}, format="json"), 404, "not_found")
    assert path in error["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/v1/models"),
        ("get", "/v1/chat/completions"),
        ("delete", "/v1/embeddings"),
        ("get", "/v1/responses"),
        ("delete", "/v1/responses/resp_1"),
        ("post", "/v1/models/openai/gpt-4o-mini"),
    ],
)
def test_a_wrong_method_is_openais_json_405(api, method, path):
    assert_openai_error(getattr(api, method)(path, {}, format="json"), 405)


def test_a_model_is_retrieved_by_its_id_with_a_slash(api):
    response = api.get("/v1/models/openai/gpt-4o-mini")
    assert response.status_code == 200
    assert response.json() == {
        "id": "openai/gpt-4o-mini",
        "object": "model",
        "created": 0,
        "owned_by": "openai",
    }
    error = assert_openai_error(api.get("/v1/models/openai/no-such"), 404, "model_not_found")
    assert error["param"] == "model"


@pytest.mark.parametrize("tokens", [[1, 2, 3], [[1, 2], [3]]])
def test_token_array_embeddings_are_400_naming_the_workaround(api, tokens):
    response = api.post(
        "/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": tokens}, format="json"
    )
    error = assert_openai_error(response, 400)
    assert error["param"] == "input"
    assert "check_embedding_ctx_length=False" in error["message"]
