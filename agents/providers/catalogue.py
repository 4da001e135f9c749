"""The chat models the platform knows, by provider: the only model names metrics may carry.

A client can ask for any ``model_name``; the vendor may accept it or not. Metric labels must
not follow the client, so they are limited to this catalogue: each provider's usual model,
the configured default model, and every model of the price table (``GET /v1/models`` lists
the part of it this deployment serves). It is registered with ``llmplatform.core.metrics``
at start-up (``agents.apps``), since core cannot import it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from agents.providers.pricing import price_table
from agents.providers.registry import DEFAULT_MODELS, available_providers, default_model_for
from llmplatform.core.config import on_config_change, provider_config

_lock = threading.Lock()
_known: frozenset[tuple[str, str]] | None = None


def _build() -> frozenset[tuple[str, str]]:
    config = provider_config()
    pairs = {(provider, model.lower()) for provider, model in DEFAULT_MODELS.items()}
    for provider, models in price_table().models.items():
        pairs.update((provider, model.lower()) for model in models)
    if config.default_provider and config.default_model:
        pairs.add((config.default_provider, config.default_model.lower()))
    return frozenset(pairs)


def known_chat_models() -> frozenset[tuple[str, str]]:
    """Every (provider, lower-cased model) pair of the catalogue."""
    global _known
    with _lock:
        if _known is None:
            _known = _build()
        return _known


@on_config_change
def _forget() -> None:
    global _known
    with _lock:
        _known = None


@dataclass(frozen=True)
class ServedModel:
    provider: str
    model: str

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.model}"


def chat_models() -> list[ServedModel]:
    """Every chat model this process can answer with, default models first: the
    providers it has keys for (``available_providers()``), each with its usual model and
    the models of the price table, so every one is a model whose cost is recorded.
    ``GET /v1/models`` and the chat UI's model picker list these."""
    served: list[ServedModel] = []
    prices = price_table().models
    for provider in available_providers():
        names = [default_model_for(provider), DEFAULT_MODELS.get(provider, "")]
        names += sorted(prices.get(provider, {}))
        for name in dict.fromkeys(n for n in names if n):
            served.append(ServedModel(provider=provider, model=name))
    return served
