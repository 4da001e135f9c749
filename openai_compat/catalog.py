"""Which models /v1 serves, named ``provider/model`` (``openai/gpt-4o-mini``).

A deployment serves the providers it has keys for (``available_providers()``); each
offers its usual model and the models of the price table, so every model listed here
is one whose cost the platform records.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.providers.embeddings import LOCAL_EMBEDDING_MODEL
from agents.providers.pricing import price_table
from agents.providers.registry import DEFAULT_MODELS, available_providers, default_model_for
from llmplatform.core.errors import ApplicationError

# `owned_by` of the embedding model, by what computes it.
_EMBEDDING_OWNERS = {LOCAL_EMBEDDING_MODEL: "local"}


@dataclass(frozen=True)
class ServedModel:
    provider: str
    model: str

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.model}"


def chat_models() -> list[ServedModel]:
    """Every chat model this process can answer with, default models first."""
    served: list[ServedModel] = []
    prices = price_table().models
    for provider in available_providers():
        names = [default_model_for(provider), DEFAULT_MODELS.get(provider, "")]
        names += sorted(prices.get(provider, {}))
        for name in dict.fromkeys(n for n in names if n):
            served.append(ServedModel(provider=provider, model=name))
    return served


def chat_model_resolve(model_id: str) -> ServedModel:
    """The served model for ``provider/model``, or a bare model name that one provider
    serves (the first, in ``available_providers()`` order). Raises ApplicationError(404)."""
    served = chat_models()
    provider, _, model = model_id.partition("/")
    for candidate in served:
        if (candidate.provider, candidate.model.lower()) == (provider, model.lower()):
            return candidate
    for candidate in served:
        if candidate.model.lower() == model_id.lower():
            return candidate
    raise ApplicationError(
        f"The model {model_id!r} does not exist here or is not served by this deployment. "
        "GET /v1/models lists the ones it serves, as provider/model.",
        code="model_not_found",
        status=404,
        extra={"param": "model"},
    )


def embedding_owner(model: str) -> str:
    return _EMBEDDING_OWNERS.get(model, "openai")


def embedding_model_ids(model: str) -> list[str]:
    """The names a client may use for the embedder's ``model``: the model itself, the
    model as ``provider/model``, and (for the local model) its Hugging Face id."""
    owner = embedding_owner(model)
    names = [model, f"{owner}/{model}"]
    if owner == "local":
        names.append(f"sentence-transformers/{model}")
    return names
