"""The coordinator's routing: rules first, a model call only when the rules are unsure."""

from __future__ import annotations

import pytest

from agents.coordinator import CLASSIFIER_PROMPT, classify_intent


@pytest.mark.parametrize(
    ("text", "mode", "images", "expected"),
    [
        (
            "Recommend noise-cancelling headphones under $200",
            "chat",
            False,
            ("product_search", True),
        ),
        ("anything", "shopping", False, ("shopping", True)),
        ("what is this?", "chat", True, ("vision", True)),
        ("What is the capital of France?", "chat", False, ("chat", True)),
        ("Is the new Sony camera any good?", "chat", False, ("chat", False)),  # product, no wish
        ("What is the best deal this week?", "chat", False, ("chat", False)),  # wish, no product
    ],
)
def test_rules(text, mode, images, expected):
    assert classify_intent(text=text, mode=mode, has_images=images) == expected


def _system_prompts(server) -> list[str]:
    return [request.body["messages"][0]["content"] for request in server.chat_requests]


@pytest.mark.django_db
def test_model_classifies_only_when_rules_are_unsure(api, in_process):
    sure = api.post(
        "/api/v1/query/",
        {
            "user_id": "u",
            "session_id": "s",
            "use_memory": False,
            "query": "What is the capital of France?",
            "model_provider": "openai",
        },
        format="json",
    ).json()
    assert sure["metadata"]["intent_classified_by_model"] is False
    assert len(in_process["openai"].chat_requests) == 1  # the writer only
    in_process["openai"].reset()
    unsure = api.post(
        "/api/v1/query/",
        {
            "user_id": "u",
            "session_id": "s2",
            "use_memory": False,
            "query": "Is the new Sony camera any good?",
            "model_provider": "openai",
        },
        format="json",
    ).json()
    assert unsure["metadata"]["intent_classified_by_model"] is True
    prompts = _system_prompts(in_process["openai"])
    assert prompts[0] == CLASSIFIER_PROMPT and len(prompts) == 2
    assert unsure["intent"] == "chat"  # the fake echoes; no PRODUCTS in the reply


def _ask(api, text: str, session: str):
    return api.post(
        "/api/v1/query/",
        {
            "user_id": "u",
            "session_id": session,
            "use_memory": False,
            "query": text,
            "model_provider": "openai",
        },
        format="json",
    ).json()


@pytest.mark.django_db
def test_a_chat_mode_product_request_goes_to_the_product_agent(api, in_process):
    answer = _ask(api, "Recommend headphones under $200", "shop-chat")
    assert answer["intent"] == "product_search"
    assert answer["agents_used"] == ["CoordinatorAgent", "ProductAgent", "WriterAgent"]
    assert answer["product_cards"]


@pytest.mark.django_db
def test_the_classifiers_answer_routes_the_query(api, in_process):
    # The rules are unsure (a product, no wish to buy); the fake echoes the question, so
    # its answer contains PRODUCT and the classifier says products.
    answer = _ask(api, "Is the new Sony camera a good product?", "classified")
    assert answer["metadata"]["intent_classified_by_model"] is True
    assert answer["intent"] == "product_search"
    assert "ProductAgent" in answer["agents_used"]


@pytest.mark.django_db
def test_a_failing_classifier_falls_back_to_chat(api, in_process):
    in_process["openai"].fail_next("auth")  # not retried: the classifier's one call fails
    answer = _ask(api, "Is the new Sony camera a good product?", "broken-classifier")
    assert answer["intent"] == "chat"
    assert answer["agents_used"] == ["CoordinatorAgent", "WriterAgent"]
    assert answer["response"].startswith("Echo:")


@pytest.mark.django_db
def test_the_classifier_call_is_billed(api, in_process):
    answer = _ask(api, "Is the new Sony camera any good?", "billed")
    replies = in_process["openai"].replies
    assert len(replies) == 2  # classifier, then writer
    assert answer["usage"]["input_tokens"] == sum(r.input_tokens for r in replies)
    assert answer["usage"]["output_tokens"] == sum(r.output_tokens for r in replies)
    assert answer["usage"]["input_tokens"] > replies[-1].input_tokens
