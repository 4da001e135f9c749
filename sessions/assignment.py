"""Experiment assignment: which variant a user gets, and what a variant may change.

Pure functions, no database: the same inputs give the same variant on every server and
in every session, which is what makes assignment sticky without storing it per user.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from llmplatform.core.contract import MAX_TEMPERATURE, MIN_TEMPERATURE
from llmplatform.core.errors import ApplicationError

# What a variant may change in the agent pipeline, with the type each value must have.
OVERRIDE_KEYS: dict[str, tuple[type, ...]] = {
    "model_provider": (str,),
    "model_name": (str,),
    "system_prompt": (str,),
    "temperature": (int, float),
}
MIN_VARIANTS = 2
MAX_VARIANTS = 10
MAX_SYSTEM_PROMPT = 20_000
CONTROL_VARIANT = "control"
VARIANT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
_VARIANT_NAME = re.compile(VARIANT_NAME_PATTERN)
# 2**64 buckets: far finer than any weight an operator can type, so weights are exact.
_SCALE = float(2**64)


def assignment_point(*, owner_id: str, user_id: str, experiment_key: str) -> float:
    """Where (owner, user, experiment) falls in [0, 1); uniform and stable forever."""
    # user_id goes last so no separator choice inside it can collide with another triple
    # (owner ids are hex and experiment keys are slugs, neither can hold \x1f).
    material = f"{owner_id}\x1f{experiment_key}\x1f{user_id}".encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big") / _SCALE


def variant_at(variants: Sequence[Mapping[str, Any]], point: float) -> str:
    """The variant whose share of the cumulative weight contains ``point``."""
    total = sum(float(variant["weight"]) for variant in variants)
    threshold = point * total
    cumulative = 0.0
    for variant in variants:
        cumulative += float(variant["weight"])
        if threshold < cumulative:
            return str(variant["name"])
    # Only float rounding at the very top of the range gets here.
    return str(variants[-1]["name"])


def variant_for_user(
    *, owner_id: str, user_id: str, experiment_key: str, variants: Sequence[Mapping[str, Any]]
) -> str:
    point = assignment_point(owner_id=owner_id, user_id=user_id, experiment_key=experiment_key)
    return variant_at(variants, point)


def control_variant_name(variants: Sequence[Mapping[str, Any]]) -> str:
    """The baseline results compare against: the variant named "control", else the first."""
    for variant in variants:
        if variant.get("name") == CONTROL_VARIANT:
            return CONTROL_VARIANT
    return str(variants[0]["name"])


def _invalid(message: str, *, index: int | None = None) -> ApplicationError:
    where = f"Variant {index + 1}: " if index is not None else ""
    return ApplicationError(where + message, code="invalid_variants", status=400)


def overrides_clean(raw: Any, *, where: str, code: str = "invalid_variants") -> dict[str, Any]:
    """The overrides a variant (or an evaluation's target) may set, checked: known keys,
    their types, the temperature range and lengths; empty fields dropped. ``where`` starts
    each message ("Variant 2: "). Raises ApplicationError (400, ``code``)."""

    def invalid(message: str) -> ApplicationError:
        return ApplicationError(where + message, code=code, status=400)

    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise invalid('"overrides" must be an object.')
    unknown = sorted(set(raw) - set(OVERRIDE_KEYS))
    if unknown:
        raise invalid(
            f"unknown override(s) {', '.join(unknown)}; allowed: {', '.join(OVERRIDE_KEYS)}."
        )
    overrides: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or value == "":
            continue  # an empty field in the form means "no change"
        if isinstance(value, bool) or not isinstance(value, OVERRIDE_KEYS[key]):
            raise invalid(f'override "{key}" has the wrong type.')
        if key == "temperature" and not MIN_TEMPERATURE <= value <= MAX_TEMPERATURE:
            raise invalid(f"temperature must be between {MIN_TEMPERATURE} and {MAX_TEMPERATURE}.")
        if key == "system_prompt" and len(value) > MAX_SYSTEM_PROMPT:
            raise invalid(f"system_prompt is longer than {MAX_SYSTEM_PROMPT} characters.")
        if key in ("model_provider", "model_name") and len(value) > 200:
            raise invalid(f"{key} is longer than 200 characters.")
        overrides[key] = value
    return overrides


def variants_clean(raw: Any) -> list[dict[str, Any]]:
    """Normalised variants. Raises ApplicationError (code invalid_variants) naming the problem."""
    if not isinstance(raw, list):
        raise _invalid("Variants must be a list of objects with name, weight and overrides.")
    if not MIN_VARIANTS <= len(raw) <= MAX_VARIANTS:
        raise _invalid(f"An experiment needs {MIN_VARIANTS} to {MAX_VARIANTS} variants.")
    cleaned: list[dict[str, Any]] = []
    names: set[str] = set()
    for index, variant in enumerate(raw):
        if not isinstance(variant, dict):
            raise _invalid("must be an object.", index=index)
        unknown = sorted(set(variant) - {"name", "weight", "overrides"})
        if unknown:
            raise _invalid(f"unknown field(s) {', '.join(unknown)}.", index=index)
        name = variant.get("name")
        if not isinstance(name, str) or not _VARIANT_NAME.match(name):
            raise _invalid(
                "name must be 1-40 lowercase letters, digits, '-' or '_', starting with a "
                "letter or digit.",
                index=index,
            )
        if name in names:
            raise _invalid(f'the name "{name}" is used twice.', index=index)
        names.add(name)
        weight = variant.get("weight")
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not math.isfinite(weight)
            or weight <= 0
        ):
            raise _invalid("weight must be a number greater than 0.", index=index)
        cleaned.append(
            {
                "name": name,
                "weight": weight,
                "overrides": overrides_clean(
                    variant.get("overrides"), where=f"Variant {index + 1}: "
                ),
            }
        )
    return cleaned
