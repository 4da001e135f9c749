"""Model names as clients send them: bare vendor names (``gpt-4o-mini``, as clients that
hardcode OpenAI's names and the OpenAI Agents SDK send them) and the operator's aliases
(MODEL_ALIASES) reach the provider they name, on chat, embeddings and model retrieval.

In process (the test client); the pipeline runs in-process against the fake vendors.
"""

from __future__ import annotations

import pytest

from queries.models import Query
from tests.openai_compat.test_errors import assert_openai_error, chat

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]


@pytest.fixture
def aliased(settings):
    settings.MODEL_ALIASES = (
        "fast=openai/gpt-4o-mini, smart=anthropic/claude-opus-4-5,"
        "embed=local/all-MiniLM-L6-v2, gone=nobody/some-model"
    )


def _answered_by(api, fakes, model: str) -> tuple[str, str]:
    """(the provider/model the run used, the vendor that received the question)."""
    vendors = ("openai", "anthropic", "google", "openrouter")
    before = {name: len(fakes[name].chat_requests) for name in vendors}
    response = chat(api, model=model)
    assert response.status_code == 200, response.content
    query = Query.objects.get(pk=response.json()["id"].removeprefix("chatcmpl-"))
    asked = [name for name in vendors if len(fakes[name].chat_requests) > before[name]]
    assert len(asked) == 1
    assert response.json()["model"] == f"{query.model_provider}/{query.model_name}"
    return f"{query.model_provider}/{query.model_name}", asked[-1]


@pytest.mark.parametrize(
    ("model", "resolved", "vendor"),
    [
        # The vendor that names its models so serves the bare name, OpenRouter too.
        ("gpt-4o-mini", "openai/gpt-4o-mini", "openai"),
        ("GPT-4o", "openai/gpt-4o", "openai"),
        ("o4-mini", "openai/o4-mini", "openai"),
        ("claude-haiku-4-5", "anthropic/claude-haiku-4-5", "anthropic"),
        ("gemini-2.5-flash", "google/gemini-2.5-flash", "google"),
        # Only OpenRouter serves it: its vendor prefix may be left out.
        ("sonar-pro", "openrouter/perplexity/sonar-pro", "openrouter"),
        # OpenRouter's own id, provider left out (the Agents SDK strips "openai/").
        ("meta-llama/llama-3.3-70b-instruct", "openrouter/meta-llama/llama-3.3-70b-instruct",
         "openrouter"),
    ],
)  # fmt: skip
def test_a_bare_model_name_reaches_the_provider_that_serves_it(api, fakes, model, resolved, vendor):
    assert _answered_by(api, fakes, model) == (resolved, vendor)
    sent = fakes[vendor].chat_requests[-1]
    # Gemini names the model in the path, the others in the body.
    sent_model = sent.body.get("model") or sent.path.split("/models/")[1].split(":")[0]
    assert sent_model == resolved.partition("/")[2]


def test_without_the_vendors_key_a_bare_name_goes_to_openrouter(api, fakes, settings):
    settings.OPENAI_API_KEY = ""
    assert _answered_by(api, fakes, "gpt-4o-mini") == (
        "openrouter/openai/gpt-4o-mini",
        "openrouter",
    )
    assert fakes["openrouter"].chat_requests[-1].body["model"] == "openai/gpt-4o-mini"


def test_a_name_two_providers_serve_is_400_listing_them(api, settings):
    # An OpenAI-compatible server (vLLM) serving a Llama that OpenRouter serves too.
    settings.DEFAULT_MODEL_NAME = "llama-3.3-70b-instruct"
    error = assert_openai_error(chat(api, model="llama-3.3-70b-instruct"), 400, "ambiguous_model")
    assert error["param"] == "model"
    assert "openai/llama-3.3-70b-instruct" in error["message"]
    assert "openrouter/meta-llama/llama-3.3-70b-instruct" in error["message"]
    assert not Query.objects.exists()


def test_an_alias_reaches_its_model(api, fakes, aliased):
    assert _answered_by(api, fakes, "smart") == ("anthropic/claude-opus-4-5", "anthropic")
    assert fakes["anthropic"].chat_requests[-1].body["model"] == "claude-opus-4-5"
    assert _answered_by(api, fakes, "fast") == ("openai/gpt-4o-mini", "openai")


def test_unknown_names_stay_404(api, aliased):
    for model in ("gpt-9-ultra", "gone", "nobody/gpt-4o-mini", "fast/extra"):
        error = assert_openai_error(chat(api, model=model), 404, "model_not_found")
        assert error["param"] == "model"
    assert not Query.objects.exists()


def test_aliases_are_listed_and_retrieved(api, aliased):
    listed = {m["id"]: m["owned_by"] for m in api.get("/v1/models").json()["data"]}
    assert listed["fast"] == "openai"
    assert listed["smart"] == "anthropic"
    assert listed["embed"] == "local"
    assert "gone" not in listed  # its provider is not configured here
    assert api.get("/v1/models/smart").json() == {
        "id": "smart",
        "object": "model",
        "created": 0,
        "owned_by": "anthropic",
    }
    assert_openai_error(api.get("/v1/models/gone"), 404, "model_not_found")


def test_a_bare_name_is_retrieved_as_what_it_resolves_to(api):
    response = api.get("/v1/models/claude-haiku-4-5")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == "anthropic/claude-haiku-4-5"
    assert response.json()["owned_by"] == "anthropic"
    assert_openai_error(api.get("/v1/models/claude-9"), 404, "model_not_found")


def test_an_alias_names_the_embedding_model(api, aliased):
    response = api.post("/v1/embeddings", {"model": "embed", "input": ["hello"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["model"] == "all-MiniLM-L6-v2"
    assert len(response.json()["data"][0]["embedding"]) == 384
