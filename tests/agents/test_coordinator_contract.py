"""What the coordinator promises, seen from outside: the request the vendor receives for
the routing call, and which route wins when a request is clear in two ways at once.

* The classifier asks for one word: its request carries ``max_tokens`` 5 and temperature
  0, whatever the run's own ``max_tokens`` is (a run's 300 tokens, or a vendor default,
  would be paid for a one-word answer).
* Shopping mode is the user's explicit choice and comes before the rules: a shopping-mode
  question with an image is a shopping interview (the image is still described by the
  VisionAgent), not a vision question.
"""

from __future__ import annotations

import json

import pytest

from agents.coordinator import CLASSIFIER_PROMPT, classify_intent
from tests.queries.test_query_pipeline import PNG

pytestmark = pytest.mark.django_db

# The rules are unsure (a product, no wish to buy): the model classifies.
UNSURE = "Is the new Sony camera any good?"


def ask(api, **fields):
    body = {"user_id": "u", "session_id": "s", "use_memory": False, **fields}
    response = api.post("/api/v1/query/", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def classifier_and_writer_requests(server):
    routed = [r for r in server.chat_requests if CLASSIFIER_PROMPT in json.dumps(r.body)]
    others = [r for r in server.chat_requests if r not in routed]
    return routed, others


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_the_classifier_asks_the_vendor_for_five_tokens_whatever_the_run_allows(
    api, in_process, vendor
):
    answer = ask(api, query=UNSURE, model_provider=vendor, max_tokens=300)
    assert answer["metadata"]["intent_classified_by_model"] is True
    [classifier], [writer] = classifier_and_writer_requests(in_process[vendor])
    assert classifier.body["max_tokens"] == 5
    assert classifier.body["temperature"] == 0
    assert writer.body["max_tokens"] == 300


def test_shopping_mode_wins_over_an_attached_image_in_the_rules():
    assert classify_intent(text="What is this?", mode="shopping", has_images=True) == (
        "shopping",
        True,
    )


def test_a_shopping_mode_question_with_an_image_is_a_shopping_interview(api, in_process):
    answer = ask(
        api,
        query="Find me something like this",
        mode="shopping",
        model_provider="openai",
        attachments=["data:image/png;base64," + PNG],
    )
    assert answer["intent"] == "shopping"
    assert "ShoppingAgent" in answer["agents_used"]
    assert "VisionAgent" in answer["agents_used"]
    assert answer["options"]  # the interview's first question, with its choices
