"""The agent pipeline end to end: API → Celery worker (real, over Redis) → fake vendors."""

from __future__ import annotations

import base64
import json
import time

import pytest
from pymongo.errors import AutoReconnect

from queries import start
from queries.models import Query, Summary
from queries.services import summary_create
from tests.fakes.server import echo_reply_text

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()


@pytest.fixture(autouse=True)
def _wired(celery_worker, vendor_settings):
    """A real worker, and vendors pointed at the fakes."""


def ask(api, text, *, session="s1", user="u1", **extra):
    body = {"user_id": user, "session_id": session, "query": text, **extra}
    return api.post("/api/v1/query/", body, format="json")


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google", "openrouter"])
def test_query_through_each_provider_is_stored_complete(api, provider, fakes):
    response = ask(api, "What is the capital of France?", model_provider=provider)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["response"] == echo_reply_text("What is the capital of France?")
    assert body["model_provider"] == provider
    assert body["agents_used"][0] == "CoordinatorAgent"
    assert body["agents_used"][-1] == "WriterAgent"
    assert body["usage"]["output_tokens"] > 0
    assert body["latency"]["total_ms"] > 0
    stored = Query.objects.get(pk=body["query_id"])
    assert stored.status == Query.Status.COMPLETED
    assert stored.response == body["response"]
    assert stored.embedding_model == "all-MiniLM-L6-v2" and len(stored.embedding) == 384
    assert len(fakes[provider].chat_requests) == 1


def test_related_question_retrieves_the_first_as_memory(api):
    first = ask(api, "How do I reset the admin password of my wifi router?").json()
    ask(api, "Bake bread with two cups of flour", session="s2")
    second = ask(api, "I forgot my router's admin password, what now?", session="s3").json()
    remembered = [item["query_id"] for item in second["metadata"]["memory"]]
    assert remembered[0] == first["query_id"]
    assert "MemoryAgent" in second["agents_used"]


def test_memory_never_crosses_owners_or_users(api, other_api):
    ask(api, "How do I reset the admin password of my wifi router?", user="u1")
    theirs = ask(other_api, "I forgot my router's admin password", user="u1").json()
    other_user = ask(api, "I forgot my router's admin password", user="u2").json()
    assert theirs["metadata"]["memory"] == []
    assert other_user["metadata"]["memory"] == []
    # Positive control: the same owner and user do get the first question back.
    mine = ask(api, "I forgot my router's admin password", user="u1").json()
    assert [m["query"] for m in mine["metadata"]["memory"]][:1] == [
        "How do I reset the admin password of my wifi router?"
    ]


def test_memory_of_this_conversation_sends_the_vendor_only_its_questions(api, fakes):
    ask(api, "How do I reset the admin password of my wifi router?", session="elsewhere")
    own = ask(api, "Which admin password did the technician set on my router?", session="here")
    ask(api, "Unrelated: bake bread with two cups of flour", session="here")
    ask(api, "Unrelated: plant tomatoes in spring", session="here")
    ask(api, "Unrelated: tune a guitar by ear", session="here")
    narrow = ask(
        api,
        "I forgot my router's admin password, what now?",
        session="here",
        model_provider="openai",
        memory_scope="session",
    ).json()
    prompt = json.dumps(fakes["openai"].chat_requests[-1].body)
    assert [item["query_id"] for item in narrow["metadata"]["memory"]] == [own.json()["query_id"]]
    assert "technician" in prompt and "reset the admin password" not in prompt
    # Positive control: all my conversations recalls the other conversation's question.
    wide = ask(
        api,
        "I forgot my router's admin password, what now?",
        session="here",
        model_provider="openai",
        memory_scope="user",
    ).json()
    assert "reset the admin password" in json.dumps(fakes["openai"].chat_requests[-1].body)
    assert "How do I reset the admin password of my wifi router?" in [
        item["query"] for item in wide["metadata"]["memory"]
    ]


def test_an_unknown_memory_scope_is_a_400_envelope(api):
    response = ask(api, "hello", memory_scope="everyone")
    assert response.status_code == 400
    assert "memory_scope" in response.json()["error"]["message"]


def test_an_edited_question_is_an_alternative_and_the_conversation_continues_from_it(
    api, other_api, fakes
):
    first = ask(api, "Name a colour", session="alt").json()
    second = ask(api, "Name a fruit", session="alt").json()
    edited = ask(api, "Name a vegetable", session="alt", alternative_of=second["query_id"]).json()
    assert edited["metadata"]["alternative_of"] == second["query_id"]
    # An alternative of an alternative joins the same turn.
    again = ask(api, "Name a vegetable", session="alt", alternative_of=edited["query_id"]).json()
    assert again["metadata"]["alternative_of"] == second["query_id"]
    ask(api, "And one more", session="alt", model_provider="openai")
    # The turns sent (after the system prompt, whose summary was written before the edit).
    history = json.dumps(fakes["openai"].chat_requests[-1].body["messages"][1:])
    assert "Name a vegetable" in history and "Name a colour" in history
    assert "Name a fruit" not in history  # replaced by its newest alternative
    assert first["query_id"] != second["query_id"]


def test_an_alternative_of_another_sessions_or_owners_query_is_a_404(api, other_api):
    mine = ask(api, "Name a colour", session="alt-a").json()
    assert ask(api, "x", session="alt-b", alternative_of=mine["query_id"]).status_code == 404
    theirs = ask(other_api, "x", session="alt-a", alternative_of=mine["query_id"])
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"
    assert ask(api, "x", session="alt-a", alternative_of="nope").status_code == 404


def test_summary_every_n_pairs_exactly_once(api, owner):
    for n in range(4):
        assert ask(api, f"Question number {n} about gardening", session="sum").status_code == 200
    deadline = time.monotonic() + 30
    while Summary.objects.filter(session_id="sum").count() < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sorted(
        Summary.objects.filter(session_id="sum").values_list("pair_count", flat=True)
    ) == [2, 4]
    again = summary_create(owner_id=str(owner[0].pk), session_id="sum", pair_count=2)
    assert Summary.objects.filter(session_id="sum").count() == 2
    assert again.pair_count == 2
    after = ask(api, "And one more", session="sum").json()
    assert after["metadata"]["summary_used"] is True


def test_three_round_shopping_interview_ends_with_product_cards(api, fakes):
    first = ask(api, "I need new headphones", mode="shopping", session="shop").json()
    assert first["options"] and "question 1 of 3" in first["response"]
    assert "ShoppingAgent" in first["agents_used"] and "WriterAgent" not in first["agents_used"]
    second = ask(
        api, "x", mode="shopping", session="shop", selected_option=first["options"][0]
    ).json()
    assert "question 2 of 3" in second["response"]
    third = ask(
        api, "x", mode="shopping", session="shop", selected_option=second["options"][1]
    ).json()
    assert "question 3 of 3" in third["response"]
    final = ask(
        api, "x", mode="shopping", session="shop", selected_option=third["options"][0]
    ).json()
    assert final["options"] == []
    assert "ProductAgent" in final["agents_used"] and final["agents_used"][-1] == "WriterAgent"
    assert 1 <= len(final["product_cards"]) <= 3
    assert {"title", "price", "url"} <= set(final["product_cards"][0])
    searched = fakes["serpapi"].requests[-1].query
    assert "headphones" in searched["q"]
    assert "api_key" in searched  # sent to SerpAPI, never logged


def test_shopping_user_can_skip_ahead(api):
    first = ask(api, "I want a laptop", mode="shopping", session="skip").json()
    final = ask(
        api, "x", mode="shopping", session="skip", selected_option=first["options"][-1]
    ).json()
    assert final["product_cards"]
    assert "ProductAgent" in final["agents_used"]


def test_image_attachment_goes_through_the_vision_agent(api, fakes):
    body = ask(
        api,
        "What is in this picture?",
        model_provider="openai",
        attachments=[f"data:image/png;base64,{PNG}"],
    ).json()
    assert body.get("agents_used", [])[-2:] == ["VisionAgent", "WriterAgent"], body
    vision_call = fakes["openai"].chat_requests[0].body
    parts = vision_call["messages"][-1]["content"]
    assert any(part["type"] == "image_url" and PNG in part["image_url"]["url"] for part in parts)


def test_provider_429_is_retried_then_succeeds(api, fakes):
    fakes["anthropic"].fail_next("rate_limit", retry_after=0.1)
    response = ask(api, "Hello after a rate limit", model_provider="anthropic")
    assert response.status_code == 200, response.content
    assert len(fakes["anthropic"].chat_requests) == 2


def test_provider_500_after_retries_is_an_envelope_and_a_failed_query(api, fakes):
    fakes["google"].fail_next("server_error", times=3)
    response = ask(api, "This will fail", model_provider="google")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "provider_error"
    assert "google" in error["message"].lower()
    stored = Query.objects.get(pk=error["details"]["query_id"])
    assert stored.status == Query.Status.FAILED
    assert stored.error["code"] == "provider_error"


def test_a_question_its_session_could_not_count_is_still_answered_by_the_worker(
    api, monkeypatch, caplog
):
    # The row is stored and the run sent before the count: a failed count must not turn
    # a question already on its way into a 500.
    def record_fails(*, session, at):
        raise AutoReconnect("connection closed")

    monkeypatch.setattr(start, "session_query_record", record_fails)
    answer = ask(api, "Hello", use_memory=False)
    assert answer.status_code == 200, answer.json()
    assert answer.json()["status"] == "completed"
    assert "a question was not counted" in caplog.text
