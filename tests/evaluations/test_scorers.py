"""Each scorer's score in [0, 1] and its reason, without a run around it."""

from __future__ import annotations

import pytest

from evaluations.scorers import (
    Item,
    parse_judge_reply,
    parse_pairwise_reply,
    score,
    scorers_check,
)
from files.charges import Payer
from llmplatform.core.errors import ApplicationError

ITEM = Item(input="What is the capital of France?", reference="Paris")
NOBODY = Payer(api_key=None)


def scored(spec, answer, item=ITEM):
    return score(spec=scorers_check([spec])[0], item=item, answer=answer, payer=NOBODY)


def test_exact_contains_and_regex():
    assert scored("exact", " Paris ")["score"] == 1.0
    assert scored("exact", "It is Paris.")["score"] == 0.0
    assert scored("contains", "It is paris, of course.")["score"] == 1.0
    miss = scored("contains", "It is Lyon.")
    assert miss["score"] == 0.0 and "not found" in miss["reason"]
    assert scored({"type": "regex", "pattern": r"^\d+$"}, "1234")["score"] == 1.0
    assert scored({"type": "regex", "pattern": r"^\d+$"}, "12a")["score"] == 0.0


def test_reference_scorers_do_not_score_items_without_a_reference():
    result = scored("contains", "anything", Item(input="q", reference=""))
    assert result["score"] is None and "no reference" in result["reason"]


def test_json_schema_validity():
    spec = {
        "type": "json_schema",
        "schema": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}},
        },
    }
    assert scored(spec, '{"city": "Paris"}')["score"] == 1.0
    invalid = scored(spec, '{"town": "Paris"}')
    assert invalid["score"] == 0.0 and "city" in invalid["reason"]
    assert scored(spec, "Paris")["reason"].startswith("not JSON")


def test_bad_scorer_specs_are_refused_before_a_run_starts():
    for bad in ([], ["bleu"], [{"type": "regex", "pattern": "("}], ["exact", "exact"]):
        with pytest.raises(ApplicationError) as refused:
            scorers_check(bad)
        assert refused.value.status == 400


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"score": 0.8, "reason": "close"}', (0.8, "close")),
        ('Sure! ```json\n{"score": 1, "reason": "right"}\n```', (1.0, "right")),
        ('{"score": 7, "reason": "?"}', None),
        ("I think it is fine", None),
    ],
)
def test_judge_replies_are_parsed_or_left_unscored(reply, expected):
    value, reason = parse_judge_reply(reply)
    if expected is None:
        assert value is None and reason
    else:
        assert (value, reason) == expected


@pytest.mark.usefixtures("vendor_settings")
def test_embedding_similarity_ranks_a_paraphrase_above_an_unrelated_answer():
    item = Item(input="Where is the Eiffel Tower?", reference="The Eiffel Tower is in Paris.")
    close = scored("embedding", "It stands in Paris, France.", item)
    far = scored("embedding", "Bananas are rich in potassium.", item)
    assert 0 <= far["score"] < close["score"] <= 1
    assert "cosine" in close["reason"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"winner": "B", "reason": "more precise"}', ("B", "more precise")),
        ('{"winner": "tie", "reason": "same"}', ("tie", "same")),
        ('{"winner": "C"}', None),
        ("A is better", None),
    ],
)
def test_pairwise_replies_are_parsed_or_left_unscored(reply, expected):
    winner, reason = parse_pairwise_reply(reply)
    if expected is None:
        assert winner is None and reason
    else:
        assert (winner, reason) == expected


def test_reference_free_checks_length_and_contains_a_text():
    no_reference = Item(input="q", reference="")
    short = {"type": "length", "min_chars": 2, "max_chars": 10}
    assert scored(short, "Paris", no_reference)["score"] == 1.0
    long = scored(short, "Paris, the capital", no_reference)
    assert long["score"] == 0.0 and long["reason"] == "18 characters (2 to 10 wanted)"
    link = {"type": "contains", "text": "https://"}
    assert scored(link, "See https://example.com", no_reference)["score"] == 1.0
    assert scored(link, "No link here", no_reference)["score"] == 0.0
    for bad in (
        {"type": "length"},
        {"type": "length", "min_chars": 5, "max_chars": 2},
        {"type": "length", "max_chars": -1},
        {"type": "contains", "text": " "},
        {"type": "judge", "model": 5},
        {"type": "exact", "name": ["x"]},
    ):
        with pytest.raises(ApplicationError) as refused:
            scorers_check([bad])
        assert refused.value.code == "invalid_scorers"
