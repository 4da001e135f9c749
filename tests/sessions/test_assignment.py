"""Experiment assignment: deterministic, sticky, and honouring weights (no database)."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from llmplatform.core.errors import ApplicationError
from sessions.assignment import (
    assignment_point,
    control_variant_name,
    variant_at,
    variant_for_user,
    variants_clean,
)

VARIANTS = [
    {"name": "control", "weight": 50},
    {"name": "b", "weight": 30},
    {"name": "c", "weight": 20},
]


def test_point_is_deterministic_and_in_unit_interval():
    first = assignment_point(owner_id="o1", user_id="u1", experiment_key="exp")
    assert first == assignment_point(owner_id="o1", user_id="u1", experiment_key="exp")
    assert 0 <= first < 1
    # Each part of the triple matters.
    assert first != assignment_point(owner_id="o2", user_id="u1", experiment_key="exp")
    assert first != assignment_point(owner_id="o1", user_id="u2", experiment_key="exp")
    assert first != assignment_point(owner_id="o1", user_id="u1", experiment_key="exp2")


def test_point_is_pinned_across_releases():
    # Changing the hash would silently move every user to another variant mid-experiment.
    assert assignment_point(owner_id="o", user_id="u", experiment_key="k") == pytest.approx(
        int.from_bytes(hashlib.sha256(b"o\x1fk\x1fu").digest()[:8], "big") / 2**64
    )


def test_variant_at_boundaries():
    assert variant_at(VARIANTS, 0.0) == "control"
    assert variant_at(VARIANTS, 0.4999) == "control"
    assert variant_at(VARIANTS, 0.5) == "b"
    assert variant_at(VARIANTS, 0.7999) == "b"
    assert variant_at(VARIANTS, 0.8) == "c"
    assert variant_at(VARIANTS, 0.999999) == "c"


def test_weights_honoured_over_10000_users():
    counts = Counter(
        variant_for_user(
            owner_id="65f0c0ffee0000000000abcd",
            user_id=f"user-{i}",
            experiment_key="model-test",
            variants=VARIANTS,
        )
        for i in range(10_000)
    )
    expected = {"control": 5000, "b": 3000, "c": 2000}
    chi_square = sum((counts[name] - n) ** 2 / n for name, n in expected.items())
    # 2 degrees of freedom: P(chi2 > 13.82) = 0.001, so a correct hash fails 1 run in 1000
    # (never, in fact: the inputs are fixed, so the result is too).
    assert chi_square < 13.82, counts
    for name, n in expected.items():
        assert abs(counts[name] - n) / 10_000 < 0.02, counts


def test_assignment_is_sticky_per_user_and_independent_across_experiments():
    users = [f"u{i}" for i in range(2000)]
    first = [
        variant_for_user(owner_id="o", user_id=u, experiment_key="a", variants=VARIANTS)
        for u in users
    ]
    again = [
        variant_for_user(owner_id="o", user_id=u, experiment_key="a", variants=VARIANTS)
        for u in users
    ]
    other = [
        variant_for_user(owner_id="o", user_id=u, experiment_key="b", variants=VARIANTS)
        for u in users
    ]
    assert first == again
    # Another experiment reshuffles users: agreement is about chance level (0.38), not 1.
    agreement = sum(x == y for x, y in zip(first, other, strict=True)) / len(users)
    assert 0.3 < agreement < 0.46


def test_control_variant_name():
    assert control_variant_name(VARIANTS) == "control"
    assert control_variant_name([{"name": "x", "weight": 1}, {"name": "y", "weight": 1}]) == "x"


def test_variants_clean_accepts_overrides():
    cleaned = variants_clean(
        [
            {"name": "control", "weight": 1},
            {
                "name": "claude",
                "weight": 1.5,
                "overrides": {
                    "model_provider": "anthropic",
                    "model_name": "claude-sonnet-4-5",
                    "temperature": 0.2,
                    "system_prompt": "",
                },
            },
        ]
    )
    assert cleaned[0]["overrides"] == {}
    assert cleaned[1]["overrides"] == {
        "model_provider": "anthropic",
        "model_name": "claude-sonnet-4-5",
        "temperature": 0.2,
    }


@pytest.mark.parametrize(
    ("variants", "fragment"),
    [
        ("control", "list"),
        ([{"name": "only", "weight": 1}], "2 to 10"),
        ([{"name": "a", "weight": 1}, {"name": "a", "weight": 1}], "used twice"),
        ([{"name": "a", "weight": 0}, {"name": "b", "weight": 1}], "weight"),
        ([{"name": "a", "weight": True}, {"name": "b", "weight": 1}], "weight"),
        ([{"name": "a", "weight": "1"}, {"name": "b", "weight": 1}], "weight"),
        ([{"name": "A B", "weight": 1}, {"name": "b", "weight": 1}], "name"),
        (
            [{"name": "a", "weight": 1, "overrides": {"top_p": 1}}, {"name": "b", "weight": 1}],
            "top_p",
        ),
        (
            [
                {"name": "a", "weight": 1, "overrides": {"temperature": 3}},
                {"name": "b", "weight": 1},
            ],
            "temperature",
        ),
        (
            [
                {"name": "a", "weight": 1, "overrides": {"model_name": 4}},
                {"name": "b", "weight": 1},
            ],
            "type",
        ),
        ([{"name": "a", "weight": 1, "colour": 1}, {"name": "b", "weight": 1}], "colour"),
        (
            [
                {"name": "a", "weight": 1, "overrides": {"temperature": -0.1}},
                {"name": "b", "weight": 1},
            ],
            "temperature",
        ),
        (
            [
                {"name": "a", "weight": 1, "overrides": {"temperature": True}},
                {"name": "b", "weight": 1},
            ],
            "type",
        ),
        (
            [
                {"name": "a", "weight": 1, "overrides": {"system_prompt": "x" * 20_001}},
                {"name": "b", "weight": 1},
            ],
            "longer than 20000",
        ),
        ([{"name": f"v{i}", "weight": 1} for i in range(11)], "2 to 10"),
        ([{"name": "a", "weight": float("nan")}, {"name": "b", "weight": 1}], "weight"),
        ([{"name": "a", "weight": float("inf")}, {"name": "b", "weight": 1}], "weight"),
        ([{"name": "a", "weight": -1}, {"name": "b", "weight": 1}], "weight"),
    ],
)
def test_variants_clean_rejects(variants, fragment):
    with pytest.raises(ApplicationError) as caught:
        variants_clean(variants)
    assert caught.value.code == "invalid_variants"
    assert fragment in caught.value.message


def test_variants_clean_accepts_the_limits_themselves():
    variants = [{"name": f"v{i}", "weight": 1} for i in range(10)]
    variants[0]["overrides"] = {"temperature": 0, "system_prompt": "x" * 20_000}
    variants[1]["overrides"] = {"temperature": 2.0}
    cleaned = variants_clean(variants)
    assert len(cleaned) == 10
    assert cleaned[0]["overrides"]["temperature"] == 0
    assert cleaned[1]["overrides"]["temperature"] == 2.0
