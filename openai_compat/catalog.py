"""Which models /v1 serves, named ``provider/model`` (``openai/gpt-4o-mini``).

The served chat models are ``agents.providers.catalogue.chat_models`` (the chat UI's
model picker lists the same ones); this edge names and resolves them.
"""

from __future__ import annotations

from agents.providers.catalogue import ServedModel, chat_models
from agents.providers.embeddings import LOCAL_EMBEDDING_MODEL
from agents.providers.registry import available_providers
from llmplatform.core.config import provider_config
from llmplatform.core.errors import ApplicationError

# `owned_by` of the embedding model, by what computes it.
_EMBEDDING_OWNERS = {LOCAL_EMBEDDING_MODEL: "local"}


# The vendor whose naming a bare model name follows: the provider a client that hardcodes
# OpenAI's (or Anthropic's, Google's) names means, when several configured ones serve it.
_FAMILIES = (("gpt-", "openai"), ("chatgpt-", "openai"), ("claude-", "anthropic"),
             ("gemini-", "google"))  # fmt: skip


def _family(name: str) -> str | None:
    lowered = name.lower()
    if len(lowered) > 1 and lowered[0] == "o" and lowered[1].isdigit():  # o1, o3, o4-mini
        return "openai"
    return next((vendor for prefix, vendor in _FAMILIES if lowered.startswith(prefix)), None)


def model_aliases() -> dict[str, ServedModel]:
    """MODEL_ALIASES whose provider this deployment serves, alias -> the model it names."""
    available = set(available_providers())
    aliases = {}
    for alias, target in provider_config().model_aliases.items():
        provider, _, model = target.partition("/")
        if provider in available:
            aliases[alias] = ServedModel(provider=provider, model=model)
    return aliases


def configured_aliases() -> dict[str, str]:
    """Every MODEL_ALIASES entry, alias -> provider/model (served here or not)."""
    return provider_config().model_aliases


def alias_target(name: str) -> str | None:
    """``provider/model`` of the MODEL_ALIASES entry ``name`` (any provider), else None."""
    return configured_aliases().get(name)


def _not_found(model_id: str) -> ApplicationError:
    return ApplicationError(
        f"The model {model_id!r} does not exist here or is not served by this deployment. "
        "GET /v1/models lists the ones it serves, as provider/model.",
        code="model_not_found",
        status=404,
        extra={"param": "model"},
    )


def _bare_candidates(name: str, served: list[ServedModel]) -> list[ServedModel]:
    """Served models a bare name can mean: its own name, or (OpenRouter) vendor/name."""
    lowered = name.lower()
    return [
        candidate
        for candidate in served
        if candidate.model.lower() == lowered
        or (
            "/" in candidate.model
            and "/" not in lowered
            and candidate.model.lower().partition("/")[2] == lowered
        )
    ]


def chat_model_resolve(model_id: str) -> ServedModel:
    """The served model for an alias (MODEL_ALIASES), ``provider/model``, or a bare model
    name. A bare name served by several providers is the one its family names (``gpt-*``,
    ``o1``.. openai, ``claude-*`` anthropic, ``gemini-*`` google) when that one serves it.
    Raises ApplicationError (404 model_not_found; 400 ambiguous_model listing the choices)."""
    aliases = model_aliases()
    if model_id in aliases:
        return aliases[model_id]
    if alias_target(model_id) is not None:  # an alias of a provider not configured here
        raise _not_found(model_id)
    served = chat_models()
    provider, _, model = model_id.partition("/")
    for candidate in served:
        if (candidate.provider, candidate.model.lower()) == (provider, model.lower()):
            return candidate
    candidates = _bare_candidates(model_id, served)
    family = [c for c in candidates if c.provider == _family(model_id)]
    if len(candidates) == 1 or len(family) == 1:
        return candidates[0] if len(candidates) == 1 else family[0]
    if not candidates:
        raise _not_found(model_id)
    choices = [candidate.id for candidate in candidates]
    raise ApplicationError(
        f"The model name {model_id!r} is served by several providers here: "
        f"{', '.join(choices)}. Send one of these ids (provider/model).",
        code="ambiguous_model",
        status=400,
        extra={"param": "model", "choices": choices},
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
