"""``/v1/embeddings`` with the platform's own embedder (the one memory uses)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from agents.providers.embeddings import get_embedder
from files.charges import Payer, embedding_admit, embedding_settle, embedding_tokens
from llmplatform.core.bridge import to_thread
from llmplatform.core.errors import ApplicationError
from openai_compat.catalog import alias_target, embedding_model_ids


def _vector(values: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        # What OpenAI sends (and its SDK asks for by default): little-endian float32 bytes.
        return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode("ascii")
    return values


async def embeddings_create(
    *, payer: Payer, texts: list[str], model: str, encoding_format: str, dimensions: int | None
) -> dict[str, Any]:
    """OpenAI's embedding list for ``texts``, admitted against ``payer``'s limits first and
    settled after (``files.charges``). Raises ApplicationError (404 model_not_found, 400
    for other dimensions, 429 rate_limited or budget_exceeded) and ProviderError."""
    embedder = get_embedder()
    # An operator's alias (MODEL_ALIASES) names the embedding model as provider/model.
    model = alias_target(model) or model
    if model not in embedding_model_ids(embedder.model):
        raise ApplicationError(
            f"The embedding model {model!r} is not served here; this deployment embeds with "
            f"{embedder.model!r} ({embedder.dimensions} dimensions).",
            code="model_not_found",
            status=404,
            extra={"param": "model"},
        )
    if dimensions is not None and dimensions != embedder.dimensions:
        raise ApplicationError(
            f"{embedder.model} has {embedder.dimensions} dimensions and cannot be shortened "
            "here; leave dimensions out.",
            code="invalid_request",
            extra={"param": "dimensions"},
        )
    tokens = embedding_tokens(texts)
    charge = await to_thread(embedding_admit)(payer=payer, model=embedder.model, tokens=tokens)
    try:
        vectors = await embedder.embed(texts)
        charge.embedded(tokens)
    finally:
        await to_thread(embedding_settle)(charge)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": _vector(vector, encoding_format)}
            for index, vector in enumerate(vectors)
        ],
        "model": embedder.model,
        # The embedders report no token counts: these are the tokens counted against the
        # caller's budget (about 4 characters a token).
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
