"""What a call cost, from the versioned price table in ``prices.json``.

Token semantics (every vendor module normalises to these before pricing):
``input_tokens`` counts all input, cached included; ``cached_tokens`` is the part read
from the vendor's cache; ``output_tokens`` includes reasoning tokens. A model that is not
in the table costs ``None`` (unknown), never 0.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.providers.base import Usage

PRICES_FILE = Path(__file__).with_name("prices.json")

# Vendors answer with dated snapshots and aliases of the names in the table.
_SNAPSHOT_SUFFIXES = (
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # gpt-4o-mini-2024-07-18
    re.compile(r"-\d{8}$"),  # claude-3-5-haiku-20241022
    re.compile(r"-latest$"),  # claude-3-5-haiku-latest
    re.compile(r"-\d{3}$"),  # gemini-2.0-flash-001
    re.compile(r"-preview-\d{2}-\d{2}$"),  # gemini-2.5-flash-preview-05-20
)

# The most input tokens one attached image is billed as, by vendor: what a question's
# admission reserves per image (queries.admission), from each vendor's documented image
# accounting for the largest image it accepts.
# - openai: "high" detail scales an image to fit 2048x2048, then its short side to 768 px:
#   at most 2 x 4 tiles of 512 px at 170 tokens each, plus 85 = 1,445.
# - anthropic: about width x height / 750, images over ~1.15 megapixels being scaled
#   down first: at most about 1,600.
# - google: 258 tokens per 768 x 768 tile (Gemini 2.x); 24 tiles cover a 12-megapixel
#   (4000 x 3000) photo: 6,192.
# - openrouter routes to any of these, and a vendor not listed may be any: the largest.
IMAGE_INPUT_TOKENS = {"openai": 1445, "anthropic": 1600, "google": 258 * 24}


def image_input_tokens(provider: str) -> int:
    """The most input tokens ``provider`` bills for one image."""
    return IMAGE_INPUT_TOKENS.get(provider, max(IMAGE_INPUT_TOKENS.values()))


@dataclass(frozen=True)
class ModelPrice:
    input: float
    output: float
    cached_input: float | None = None  # None: cache reads are billed as input
    per_request: float = 0.0


@dataclass(frozen=True)
class PriceTable:
    version: int
    taken_on: str
    models: dict[str, dict[str, ModelPrice]]

    def price_for(self, *, provider: str, model: str) -> ModelPrice | None:
        by_model = self.models.get(provider, {})
        for candidate in _candidate_names(model):
            if candidate in by_model:
                return by_model[candidate]
        return None


def _candidate_names(model: str) -> list[str]:
    name = model.strip().lower().removeprefix("models/")
    candidates = [name]
    changed = True
    while changed:
        changed = False
        for suffix in _SNAPSHOT_SUFFIXES:
            stripped = suffix.sub("", name)
            if stripped != name:
                name = stripped
                candidates.append(name)
                changed = True
    return candidates


@functools.cache
def price_table() -> PriceTable:
    raw: dict[str, Any] = json.loads(PRICES_FILE.read_text())
    models = {
        provider: {name.lower(): ModelPrice(**entry) for name, entry in entries.items()}
        for provider, entries in raw["models"].items()
    }
    return PriceTable(version=int(raw["version"]), taken_on=str(raw["taken_on"]), models=models)


def cost_for(provider: str, model: str, usage: Usage) -> float | None:
    """USD for ``usage`` of ``model`` at ``provider``; None when the model is not priced."""
    price = price_table().price_for(provider=provider, model=model)
    if price is None:
        return None
    cached = min(usage.cached_tokens, usage.input_tokens)
    cached_rate = price.input if price.cached_input is None else price.cached_input
    cost = (
        (usage.input_tokens - cached) * price.input
        + cached * cached_rate
        + usage.output_tokens * price.output
    ) / 1_000_000 + price.per_request
    return round(cost, 10)


def priced(usage: Usage, *, provider: str, model: str) -> Usage:
    """``usage`` with ``cost_usd`` filled in (a copy; already priced usage is kept)."""
    if usage.cost_usd is not None:
        return usage
    return dataclasses.replace(usage, cost_usd=cost_for(provider, model, usage))
