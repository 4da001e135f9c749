"""Which models /v1 serves, named ``provider/model`` (``openai/gpt-4o-mini``).

The served chat models are ``agents.providers.catalogue.chat_models`` (the chat UI's
model picker lists the same ones); this edge names and resolves them.
"""

from __future__ import annotations

from agents.providers.catalogue import ServedModel, chat_models
from agents.providers.embeddings import LOCAL_EMBEDDING_MODEL
from llmplatform.core.errors import ApplicationError

# `owned_by` of the embedding model, by what computes it.
_EMBEDDING_OWNERS = {LOCAL_EMBEDDING_MODEL: "local"}


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
