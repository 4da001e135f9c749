"""Scorers: each turns an answer into a score in [0, 1] and a reason.

``exact`` and ``contains`` compare with the item's reference (``contains`` with a ``text``
looks for that text instead); ``regex`` looks for a pattern; ``length`` checks the answer's
length in characters; ``json_schema`` checks the answer parses as JSON valid against a
schema (an empty schema: any JSON); ``embedding`` is
the cosine similarity of the answer and the reference with the current embedder;
``judge`` asks a model, on any configured provider, to grade the answer with a rubric;
``pairwise`` asks it which of two targets' answers is better (a win, a tie or a loss
against a baseline target, for questions without a reference).
The paid ones (``embedding``, ``judge``) are admitted against the payer's limits first and
settled to what they used, like a question.

A score of None means the scorer could not score this answer (no reference, a judge that
failed or replied out of format); it is left out of the means and its reason says why.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
from bson import ObjectId

from agents.providers.base import ChatMessage, ChatRequest, Usage
from agents.providers.embeddings import get_embedder
from agents.providers.pricing import cost_for
from agents.providers.provider_errors import ProviderError
from agents.providers.registry import default_model_for, default_provider, get_chat_provider
from files.charges import Payer, embedding_charged, embedding_cost, embedding_tokens
from llmplatform.core.bridge import run_sync
from llmplatform.core.config import provider_config
from llmplatform.core.errors import ApplicationError
from llmplatform.core.quotas import quota_admit, quota_settle
from queries.admission import text_tokens

SCORER_TYPES = (
    "exact",
    "contains",
    "regex",
    "length",
    "json_schema",
    "embedding",
    "judge",
    "pairwise",
)
# Scorers that need no reference answer and score one answer alone: what can score live
# answers of an experiment (``contains`` only with its own ``text``).
REFERENCE_FREE_TYPES = ("contains", "regex", "length", "json_schema", "judge")
# Scored once every target has answered an item: against the baseline target's answer.
PAIRWISE_TYPES = ("pairwise",)
# The judge answers with a short JSON object; this bounds what it may cost.
JUDGE_MAX_TOKENS = 300
JUDGE_DEFAULT_TEMPERATURE = 0.0
DEFAULT_RUBRIC = (
    "Score how well the answer responds to the question: correct, complete and to the "
    "point. When a reference answer is given, an answer that agrees with it scores high."
)
JUDGE_INSTRUCTIONS = (
    "You are grading an answer. Rubric: {rubric}\n\n"
    "Reply with only a JSON object: "
    '{{"score": <a number from 0 to 1>, "reason": "<one or two sentences>"}}.'
)
PAIRWISE_INSTRUCTIONS = (
    "You are comparing two answers to the same question. Rubric: {rubric}\n\n"
    "Reply with only a JSON object: "
    '{{"winner": "A" | "B" | "tie", "reason": "<one or two sentences>"}}. Say tie when '
    "neither is better; the order they are shown in means nothing."
)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True)
class Item:
    """What a scorer reads of a dataset item."""

    input: str
    reference: str


def scorer_name(spec: dict[str, Any]) -> str:
    return spec.get("name") or spec["type"]


def scorers_check(scorers: Any) -> list[dict[str, Any]]:
    """The scorer specs, normalised (a bare name is ``{"type": name}``); checked up front
    so a run never fails on its first item. Raises ApplicationError (400)."""
    if not isinstance(scorers, list) or not scorers:
        raise ApplicationError(
            f"scorers must be a non-empty list of {', '.join(SCORER_TYPES)} (a name, or an "
            "object with a type).",
            code="invalid_scorers",
        )
    checked: list[dict[str, Any]] = []
    for index, scorer in enumerate(scorers):
        spec = {"type": scorer} if isinstance(scorer, str) else scorer
        if not isinstance(spec, dict) or spec.get("type") not in SCORER_TYPES:
            raise ApplicationError(
                f"scorers[{index}] must name a type: one of {', '.join(SCORER_TYPES)}.",
                code="invalid_scorers",
            )
        spec = dict(spec)
        if "name" in spec and not _non_blank(spec["name"]):
            raise ApplicationError(
                f"scorers[{index}].name must be a non-empty string.", code="invalid_scorers"
            )
        if spec["type"] == "regex":
            try:
                re.compile(spec.get("pattern") or "")
            except (re.error, TypeError):
                raise ApplicationError(
                    f"scorers[{index}].pattern is not a valid regular expression.",
                    code="invalid_scorers",
                ) from None
            if not spec.get("pattern"):
                raise ApplicationError(
                    f"scorers[{index}] (regex) needs a pattern.", code="invalid_scorers"
                )
        if spec["type"] == "length":
            _check_length(index, spec)
        if spec["type"] == "contains" and "text" in spec and not _non_blank(spec["text"]):
            raise ApplicationError(
                f"scorers[{index}].text must be a non-empty string.", code="invalid_scorers"
            )
        if spec["type"] == "json_schema":
            try:
                jsonschema.Draft202012Validator.check_schema(spec.get("schema", {}))
            except jsonschema.SchemaError as exc:
                raise ApplicationError(
                    f"scorers[{index}].schema is not a valid JSON Schema: {exc.message}",
                    code="invalid_scorers",
                ) from None
        if spec["type"] in ("judge", *PAIRWISE_TYPES):
            spec.update(_judge_model(spec))
        checked.append(spec)
    names = [scorer_name(spec) for spec in checked]
    if len(set(names)) != len(names):
        raise ApplicationError(
            "Two scorers have the same name: give one a `name`.", code="invalid_scorers"
        )
    return checked


def _non_blank(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _check_length(index: int, spec: dict[str, Any]) -> None:
    bounds = [spec.get("min_chars"), spec.get("max_chars")]
    if all(bound is None for bound in bounds) or any(
        bound is not None and (isinstance(bound, bool) or not isinstance(bound, int) or bound < 0)
        for bound in bounds
    ):
        raise ApplicationError(
            f"scorers[{index}] (length) needs min_chars and/or max_chars, whole numbers from 0.",
            code="invalid_scorers",
        )
    if None not in bounds and bounds[0] > bounds[1]:
        raise ApplicationError(
            f"scorers[{index}]: min_chars is above max_chars.", code="invalid_scorers"
        )


def _judge_model(spec: dict[str, Any]) -> dict[str, Any]:
    """The judge's provider, model and temperature, fixed when the run is created so every
    score of a run comes from the same judge. Raises ApplicationError (400)."""
    for field in ("provider", "model", "rubric"):
        if spec.get(field) is not None and not isinstance(spec[field], str):
            raise ApplicationError(f"A judge's {field} must be a string.", code="invalid_scorers")
    provider = spec.get("provider") or default_provider() or provider_config().default_provider
    get_chat_provider(provider)  # raises a 400 listing the available providers
    temperature = spec.get("temperature", JUDGE_DEFAULT_TEMPERATURE)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        temperature = math.nan
    if not 0 <= temperature <= 2:
        raise ApplicationError("A judge's temperature must be from 0 to 2.", code="invalid_scorers")
    return {
        "provider": provider,
        "model": spec.get("model") or default_model_for(provider),
        "temperature": float(temperature),
        "rubric": spec.get("rubric") or DEFAULT_RUBRIC,
    }


def score(*, spec: dict[str, Any], item: Item, answer: str, payer: Payer) -> dict[str, Any]:
    """``{"score", "reason", ...}`` of ``answer`` by the scorer ``spec``; paid scorers add
    ``cost_usd``. Raises ApplicationError (429) when the payer's limits refuse a paid call."""
    kind = spec["type"]
    if kind == "json_schema":
        return _json_schema(spec, answer)
    if kind == "regex":
        matched = re.search(spec["pattern"], answer) is not None
        return _verdict(matched, f"pattern {spec['pattern']!r} {'' if matched else 'not '}found")
    if kind == "length":
        return _length(spec, answer)
    if kind == "contains" and spec.get("text"):
        found = spec["text"].strip().casefold() in answer.casefold()
        return _verdict(found, f"{spec['text']!r} {'' if found else 'not '}found in the answer")
    if kind == "judge":
        return _judge(spec=spec, item=item, answer=answer, payer=payer)
    if not item.reference:
        return {"score": None, "reason": "the item has no reference answer"}
    if kind == "exact":
        same = answer.strip() == item.reference.strip()
        return _verdict(same, "equal to the reference" if same else "differs from the reference")
    if kind == "contains":
        found = item.reference.strip().casefold() in answer.casefold()
        return _verdict(found, f"reference {'' if found else 'not '}found in the answer")
    if kind == "embedding":
        return _embedding(item=item, answer=answer, payer=payer)
    raise ValueError(f"{kind} scores two answers at once: see pairwise()")


def _verdict(passed: bool, reason: str) -> dict[str, Any]:
    return {"score": 1.0 if passed else 0.0, "reason": reason}


def _length(spec: dict[str, Any], answer: str) -> dict[str, Any]:
    low, high = spec.get("min_chars"), spec.get("max_chars")
    within = (low is None or len(answer) >= low) and (high is None or len(answer) <= high)
    bounds = f"{low if low is not None else 0} to {high if high is not None else 'any'}"
    return _verdict(within, f"{len(answer)} characters ({bounds} wanted)")


def _json_schema(spec: dict[str, Any], answer: str) -> dict[str, Any]:
    try:
        document = json.loads(answer)
    except ValueError as exc:
        return _verdict(False, f"not JSON: {exc}")
    errors = sorted(
        jsonschema.Draft202012Validator(spec.get("schema", {})).iter_errors(document),
        key=lambda error: list(error.path),
    )
    if errors:
        return _verdict(False, f"invalid: {errors[0].message}")
    return _verdict(True, "valid JSON for the schema")


def _embedding(*, item: Item, answer: str, payer: Payer) -> dict[str, Any]:
    embedder = get_embedder()
    texts = [answer, item.reference]
    try:
        with embedding_charged(payer=payer, model=embedder.model, texts=texts):
            first, second = run_sync(embedder.embed(texts))
    except ProviderError as exc:
        return {"score": None, "reason": f"the embedder failed: {exc.message}"}
    norms = math.hypot(*first) * math.hypot(*second)
    cosine = sum(a * b for a, b in zip(first, second, strict=True)) / norms if norms else 0.0
    return {
        "score": round(max(0.0, min(1.0, cosine)), 4),
        "reason": f"cosine similarity {cosine:.3f} to the reference ({embedder.model})",
        "model": embedder.model,
        "cost_usd": embedding_cost(model=embedder.model, tokens=embedding_tokens(texts)),
    }


def judge_prompt(*, rubric: str, item: Item, answer: str) -> tuple[str, str]:
    """(system, user) messages the judge is sent."""
    parts = [f"Question:\n{item.input}"]
    if item.reference:
        parts.append(f"Reference answer:\n{item.reference}")
    parts.append(f"Answer to grade:\n{answer}")
    return JUDGE_INSTRUCTIONS.format(rubric=rubric), "\n\n".join(parts)


def _verdict_object(text: str) -> dict[str, Any] | None:
    match = _JSON_OBJECT.search(text)
    try:
        verdict = json.loads(match.group(0)) if match else None
    except ValueError:
        return None
    return verdict if isinstance(verdict, dict) else None


def parse_judge_reply(text: str) -> tuple[float | None, str]:
    """(score, reason) from the judge's reply; (None, why) when it is out of format."""
    verdict = _verdict_object(text)
    if verdict is None:
        return None, f"the judge's reply is not a JSON object: {text[:200]!r}"
    value = verdict.get("score")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        return None, f"the judge's score is not a number from 0 to 1: {value!r}"
    return float(value), str(verdict.get("reason") or "")


def _judge_call(
    *, spec: dict[str, Any], system: str, user: str, payer: Payer
) -> tuple[dict[str, Any], str | None]:
    """Ask the judge, admitted against ``payer``'s limits and settled to what it used.

    Returns what is stored with the score (provider, model, temperature, prompt, cost,
    reply) and the reply's text (None, with the failure as ``reason``, when the judge
    failed). Raises ApplicationError (429) when the payer's limits refuse it.
    """
    provider, model = spec["provider"], spec["model"]
    stored: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "temperature": spec["temperature"],
        "prompt": {"system": system, "user": user},
    }
    input_tokens = text_tokens(system) + text_tokens(user)
    reservation = quota_admit(
        api_key=payer.api_key,
        account=payer.account,
        user_id=payer.user_id,
        tokens_estimate=input_tokens + JUDGE_MAX_TOKENS,
        usd_estimate=cost_for(
            provider, model, Usage(input_tokens=input_tokens, output_tokens=JUDGE_MAX_TOKENS)
        ),
    )
    request = ChatRequest(
        model=model,
        system=system,
        messages=(ChatMessage(role="user", content=user),),
        temperature=spec["temperature"],
        max_tokens=JUDGE_MAX_TOKENS,
    )
    run_id = f"judge-{ObjectId()}"
    try:
        result = run_sync(get_chat_provider(provider).complete(request))
    except ProviderError as exc:
        quota_settle(reservation, run_id=run_id, tokens=0, usd=0.0)
        return {**stored, "score": None, "reason": f"the judge failed: {exc.message}"}, None
    usage = result.usage
    quota_settle(
        reservation,
        run_id=run_id,
        tokens=usage.input_tokens + usage.output_tokens,
        usd=usage.cost_usd,
    )
    return {**stored, "reply": result.text, "cost_usd": usage.cost_usd}, result.text


def _judge(*, spec: dict[str, Any], item: Item, answer: str, payer: Payer) -> dict[str, Any]:
    system, user = judge_prompt(rubric=spec["rubric"], item=item, answer=answer)
    stored, reply = _judge_call(spec=spec, system=system, user=user, payer=payer)
    if reply is None:
        return stored
    value, reason = parse_judge_reply(reply)
    return {**stored, "score": value, "reason": reason}


def pairwise_prompt(*, rubric: str, item: Item, first: str, second: str) -> tuple[str, str]:
    """(system, user) messages a pairwise judge is sent: answers A and B, in that order."""
    parts = [f"Question:\n{item.input}"]
    if item.reference:
        parts.append(f"Reference answer:\n{item.reference}")
    parts.extend([f"Answer A:\n{first}", f"Answer B:\n{second}"])
    return PAIRWISE_INSTRUCTIONS.format(rubric=rubric), "\n\n".join(parts)


def parse_pairwise_reply(text: str) -> tuple[str | None, str]:
    """("A" | "B" | "tie", reason) from a pairwise judge's reply; (None, why) otherwise."""
    verdict = _verdict_object(text)
    winner = str((verdict or {}).get("winner", "")).strip().upper()
    if winner not in ("A", "B", "TIE"):
        return None, f"the judge named no winner (A, B or tie): {text[:200]!r}"
    return ("tie" if winner == "TIE" else winner), str(verdict.get("reason") or "")


def pairwise(
    *,
    spec: dict[str, Any],
    item: Item,
    answer: str,
    baseline: str,
    answer_first: bool,
    payer: Payer,
) -> dict[str, Any]:
    """``answer`` against ``baseline`` (the order they are shown in is ``answer_first``,
    chosen at random by the caller so position bias averages out): 1 a win, 0.5 a tie, 0 a
    loss. Raises ApplicationError (429) when the payer's limits refuse the judge."""
    first, second = (answer, baseline) if answer_first else (baseline, answer)
    system, user = pairwise_prompt(rubric=spec["rubric"], item=item, first=first, second=second)
    stored, reply = _judge_call(spec=spec, system=system, user=user, payer=payer)
    stored["answer_shown_as"] = "A" if answer_first else "B"
    if reply is None:
        return stored
    winner, reason = parse_pairwise_reply(reply)
    if winner is None:
        return {**stored, "score": None, "reason": reason}
    value = 0.5 if winner == "tie" else float(winner == stored["answer_shown_as"])
    outcome = {1.0: "win", 0.5: "tie", 0.0: "loss"}[value]
    return {**stored, "score": value, "outcome": outcome, "reason": reason}
