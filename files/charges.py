"""Who pays for an embedding, and its admission: the one place every paid embedding
(``/v1/embeddings``, ``/api/v1/search``, document ingestion) is counted against its
caller's limits before the embedder is called, and settled after.

An embedding is admitted like a question (``llmplatform.core.quotas``): one request
against the requests-per-minute limits, its estimated input tokens against the token
budgets, and its cost, where the embedder has a price, against the USD budget. A refusal
is the same 429 (``rate_limited`` or ``budget_exceeded``, ``retry_after`` in the details)
and costs no embedder call. The embedders report no token counts, so what is settled is
the estimate of what was actually embedded (nothing when the embedder failed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId
from django.contrib.auth.models import User

from agents.providers.embeddings import OPENAI_EMBEDDING_MODEL
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import ApiKey
from llmplatform.core.quotas import quota_admit, quota_settle, quota_windows

# The same rule of thumb a question's admission uses for its text.
CHARS_PER_TOKEN = 4
# USD per million input tokens, by embedding model (the chat price table lists chat models
# only, and /v1/models serves its entries as chat models). A model not listed here is
# counted in tokens only. OpenAI list price, standard tier, taken 2026-11-25.
EMBEDDING_PRICES_USD_PER_MILLION = {OPENAI_EMBEDDING_MODEL: 0.02}


@dataclass(frozen=True)
class Payer:
    """Whose limits a paid call counts against: an API key, or (the signed-in chat UI,
    which has no key) the account; ``user_id`` is the end user inside the key."""

    api_key: ApiKey | None
    account: User | None = None
    user_id: str = ""


def payer_for(*, owner: User, api_key: ApiKey | None, user_id: str) -> Payer:
    """Who pays for a caller's embeddings: its API key; without one (the signed-in chat
    UI) the owner's own account."""
    if api_key is not None:
        return Payer(api_key=api_key, user_id=user_id)
    return Payer(api_key=None, account=owner, user_id=user_id)


@dataclass
class EmbeddingCharge:
    """An admitted embedding: its reservation, and the tokens embedded so far."""

    reservation: dict[str, Any] | None
    model: str
    reserved_tokens: int
    run_id: str = field(default_factory=lambda: f"embedding-{ObjectId()}")
    embedded_tokens: int = 0

    def embedded(self, tokens: int) -> None:
        """Record that ``tokens`` more were sent to the embedder."""
        self.embedded_tokens += tokens


def embedding_tokens(texts: list[str]) -> int:
    """The tokens ``texts`` are counted as (about 4 characters a token, at least one)."""
    return sum(len(text) // CHARS_PER_TOKEN + 1 for text in texts)


def embedding_cost(*, model: str, tokens: int) -> float | None:
    """USD for embedding ``tokens`` with ``model``; None when the model has no price."""
    price = EMBEDDING_PRICES_USD_PER_MILLION.get(model)
    return None if price is None else round(tokens * price / 1_000_000, 10)


def payer_quota_keywords(payer: Payer) -> dict[str, Any]:
    """The ``llmplatform.core.quotas`` keywords naming ``payer``: its key, else its account."""
    if payer.api_key is not None:
        return {"api_key": payer.api_key}
    return {"api_key": None, "account": payer.account}


def embedding_admit(*, payer: Payer, model: str, tokens: int) -> EmbeddingCharge:
    """Count one embedding call of ``tokens`` against ``payer``'s limits, reserving them.

    Raises ApplicationError (429 ``rate_limited`` or ``budget_exceeded``) and counts
    nothing when over a limit.
    """
    reservation = quota_admit(
        **payer_quota_keywords(payer),
        user_id=payer.user_id,
        tokens_estimate=tokens,
        usd_estimate=embedding_cost(model=model, tokens=tokens),
    )
    return EmbeddingCharge(reservation=reservation, model=model, reserved_tokens=tokens)


def embedding_settle(charge: EmbeddingCharge) -> None:
    """Replace the reservation with the tokens (and their cost) really embedded; once.
    Raises nothing."""
    quota_settle(
        charge.reservation,
        run_id=charge.run_id,
        tokens=charge.embedded_tokens,
        usd=embedding_cost(model=charge.model, tokens=charge.embedded_tokens),
    )


@contextmanager
def embedding_charged(*, payer: Payer, model: str, texts: list[str]) -> Iterator[EmbeddingCharge]:
    """Admit embedding ``texts``, run the block (which embeds them), settle.

    The block's success counts every text as embedded; an exception counts none (the
    embedder failed before it answered). Raises ApplicationError (429) before the block.
    """
    tokens = embedding_tokens(texts)
    charge = embedding_admit(payer=payer, model=model, tokens=tokens)
    try:
        yield charge
        charge.embedded(tokens)
    finally:
        embedding_settle(charge)


_WHOSE = {
    "key": "this API key",
    "user": "this end user (user_id)",
    "account": "your account",
}


def budget_check_left(*, payer: Payer) -> None:
    """Refuse up front work that would be charged to a budget already used up (an upload
    whose ingestion would be refused). Counts nothing.

    Raises ApplicationError (429 ``budget_exceeded``).
    """
    windows = quota_windows(**payer_quota_keywords(payer), user_id=payer.user_id or None)
    for window in windows:
        if window.name == "requests_per_minute" or window.limit is None:
            continue
        if window.remaining:
            continue
        whose = _WHOSE.get(window.scope, "this API key")
        budget = (
            f"${float(window.limit):.2f} a month"
            if window.name == "usd_per_month"
            else f"{int(window.limit)} tokens a day"
        )
        raise ApplicationError(
            f"The budget of {whose} ({budget}) is used up, and this work would be charged "
            f"to it. It starts over in {window.resets_in_s} s; try again then, or ask an "
            "operator to raise the budget in admin.",
            code="budget_exceeded",
            status=429,
            extra={
                "retry_after": window.resets_in_s,
                "window": window.name,
                "scope": window.scope,
                "limit": float(window.limit) if window.name == "usd_per_month" else window.limit,
                "remaining": 0,
            },
        )


def charge_unreserved(
    reservation: dict[str, Any] | None, *, run_id: str, tokens: int, usd: float | None
) -> bool:
    """Count ``tokens`` and ``usd`` that were not reserved (the summary a question caused,
    in the background) on the budget counters of that question's ``reservation``; once per
    ``run_id``. Returns whether it counted. Raises nothing."""
    if not reservation or not reservation.get("budgets"):
        return False
    unreserved = {
        **reservation,
        "budgets": [{**budget, "reserved": 0} for budget in reservation["budgets"]],
    }
    return quota_settle(unreserved, run_id=run_id, tokens=tokens, usd=usd)
