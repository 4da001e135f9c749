"""What a question reserves against its caller's budgets: the most it can use.

One place computes it, before the question is stored or any vendor is called: every model
call the run will make, each with every part its prompt will hold, and the most each
answer may be, priced at the model's price. The run settles the reservation to what the
vendors reported (``queries.run._settle_quota``), so a reservation only has to be an
upper bound; it is what bounds how far concurrent questions can overshoot a budget (at
most one reservation, ``llmplatform.core.quotas``).

The calls of one question (``agents.coordinator``, ``agents.vision``, ``agents.writer``):

- the classifier: only when the coordinator's rules are unsure of the intent; its prompt,
  the question, and ``CLASSIFIER_MAX_TOKENS`` out;
- vision: only with attached images; its prompt, each image at its vendor's image token
  price (``agents.providers.pricing.image_input_tokens``), at most ``VISION_MAX_TOKENS``
  (and ``max_tokens``) out;
- the writer: the system prompt (the client's or an experiment's, else the platform's)
  and the vendor's house style; the context (conversation summary, memory and document
  passages, the vision notes, products found); the client's messages, or else the
  stored history the memory agent adds (the session's last ``HISTORY_TURNS`` turns, as
  stored when the question is admitted); the question; the tool turns after it (a
  tool-calling loop); the tool definitions with the vendor's own tool-use prompt
  (``TOOL_USE_OVERHEAD_TOKENS``); and ``max_tokens`` out (the platform default when
  the request sets none). A tool call the model answers with is part of its answer, so
  within ``max_tokens``.

Text is counted at ``CHARS_PER_TOKEN`` characters a token, rounded up for each part, plus
``MESSAGE_OVERHEAD_TOKENS`` for each message of a call. The bounds are the engine's own
numbers, imported, never re-declared. The stored history is the one thing measured: a
bound (every turn as long as a request may ask for) would reserve about 100,000 tokens
for any question with memory, so a modest budget could run only one at a time. A turn
that completes in the same session between admission and the run can add at most that
answer to the prompt, which the settlement counts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings

from agents import coordinator, documents, memory, vision, writer
from agents.providers.base import Usage
from agents.providers.pricing import cost_for, image_input_tokens
from files.models import File
from llmplatform.core.contract import MAX_ANSWER_TOKENS
from queries.serializers import MAX_QUERY_CHARS
from queries.services import SUMMARY_MAX_TOKENS

# The rule of thumb the engine uses too (English averages about 4 characters a token).
CHARS_PER_TOKEN = documents.CHARS_PER_TOKEN
# The vendor's framing of one chat message (role, separators): OpenAI documents 3 to 4.
MESSAGE_OVERHEAD_TOKENS = 4
# A context section's heading (or its XML tags for Anthropic) in the writer's prompt.
SECTION_OVERHEAD_TOKENS = 16
# The system prompt a vendor adds when a request has tools (Anthropic documents up to 346
# tokens; OpenAI and Gemini do not publish theirs): a bound, not a measure.
TOOL_USE_OVERHEAD_TOKENS = 500
# One product card line (title | price | source | url) as the writer lists it.
PRODUCT_CARD_TOKENS = 100


def text_tokens(text: str) -> int:
    """``text`` at CHARS_PER_TOKEN characters a token, rounded up (0 for no text)."""
    return -(-len(text) // CHARS_PER_TOKEN)


@dataclass(frozen=True)
class CallReservation:
    """One model call: its input by part, and the most its answer may be."""

    name: str  # classifier | vision | writer
    parts: dict[str, int]
    output_tokens: int

    @property
    def input_tokens(self) -> int:
        return sum(self.parts.values())

    @property
    def usage(self) -> Usage:
        return Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens)


@dataclass(frozen=True)
class QuestionReservation:
    """Every call a question can make; its tokens and cost (None: the model is unpriced)."""

    calls: tuple[CallReservation, ...]
    usd: float | None = field(default=None)

    @property
    def tokens(self) -> int:
        return sum(call.input_tokens + call.output_tokens for call in self.calls)

    def call(self, name: str) -> CallReservation | None:
        return next((call for call in self.calls if call.name == name), None)


def turn_tokens(turn: dict) -> int:
    """A client turn: its text, and the JSON of the tool calls it carries."""
    calls = turn.get("tool_calls")
    return text_tokens(turn.get("content") or "") + (text_tokens(json.dumps(calls)) if calls else 0)


def _messages_overhead(count: int) -> int:
    return count * MESSAGE_OVERHEAD_TOKENS


def _classifier(text: str) -> CallReservation:
    return CallReservation(
        "classifier",
        {
            "prompt": text_tokens(coordinator.CLASSIFIER_PROMPT),
            "question": text_tokens(text),
            "messages": _messages_overhead(2),
        },
        coordinator.CLASSIFIER_MAX_TOKENS,
    )


def _vision(*, provider: str, text: str, images: int, max_tokens: int) -> CallReservation:
    return CallReservation(
        "vision",
        {
            "prompt": text_tokens(vision.VISION_PROMPT.format(question=text)),
            "images": images * image_input_tokens(provider),
            "messages": _messages_overhead(1),
        },
        min(max_tokens, vision.VISION_MAX_TOKENS),
    )


def _stored_history_bound() -> int:
    """The most the memory agent's history can hold: HISTORY_TURNS question/answer pairs,
    each question at most MAX_QUERY_CHARS and each answer at most MAX_ANSWER_TOKENS (what
    is reserved when the stored turns are not known)."""
    return memory.HISTORY_TURNS * (text_tokens("x" * MAX_QUERY_CHARS) + MAX_ANSWER_TOKENS)


def _stored_history(turns: Sequence[tuple[str, str]]) -> int:
    """The history the memory agent will add: these (question, answer) turns."""
    return sum(text_tokens(question) + text_tokens(answer) for question, answer in turns)


def _memory_items_bound() -> int:
    """MemoryAgent's related past questions: TOP_K items, each a question and its answer
    cut to MEMORY_TEXT_LIMIT, as the writer lays them out."""
    item = f"Q: {'x' * MAX_QUERY_CHARS}\nA: {'x' * memory.MEMORY_TEXT_LIMIT}\n"
    return memory.TOP_K * text_tokens(item)


def _passages_bound() -> int:
    """DocumentsAgent: passages and memory share CONTEXT_BUDGET_TOKENS; each passage also
    gets a numbered header with its file name and page."""
    header = (
        f"[{documents.TOP_K}] {'x' * File._meta.get_field('filename').max_length}, page 99999:\n\n"
    )
    intro = writer.DOCUMENTS_INTRO
    return (
        documents.CONTEXT_BUDGET_TOKENS + documents.TOP_K * text_tokens(header) + text_tokens(intro)
    )


def _writer(
    *,
    provider: str,
    text: str,
    mode: str,
    max_tokens: int,
    client_messages: list[dict] | None,
    system_prompt: str | None,
    use_memory: bool,
    use_documents: bool,
    images: int,
    may_search_products: bool,
    history: Sequence[tuple[str, str]] | None,
    tools: list[dict] | None,
    tool_turns: list[dict] | None,
) -> CallReservation:
    parts = {
        "system_prompt": text_tokens(system_prompt or writer.BASE_PROMPT),
        "provider_style": text_tokens(writer.PROVIDER_STYLE.get(provider, "")),
    }
    sections = 0
    if use_memory:
        parts["summary"] = SUMMARY_MAX_TOKENS
        sections += 1
    if use_documents:
        # Memory items are fitted into the passages' budget.
        parts["memory_and_passages"] = _passages_bound()
        sections += 2
    elif use_memory:
        parts["memory"] = _memory_items_bound()
        sections += 1
    if images:
        parts["vision_notes"] = min(max_tokens, vision.VISION_MAX_TOKENS)
        sections += 1
    if may_search_products:
        parts["products"] = settings.PRODUCT_SEARCH_MAX_RESULTS * PRODUCT_CARD_TOKENS
        sections += 1
        if mode == "shopping":
            parts["shopper_needs"] = text_tokens("x" * MAX_QUERY_CHARS)
            sections += 1
    parts["context_headings"] = sections * SECTION_OVERHEAD_TOKENS
    if client_messages is not None:
        turns = [turn for turn in client_messages if turn["role"] != "system"]
        parts["client_messages"] = sum(turn_tokens(turn) for turn in turns)
        messages = len(turns)
    elif use_memory:
        turns = history[: memory.HISTORY_TURNS] if history is not None else None
        if turns is None:
            parts["history"] = _stored_history_bound()
            messages = 2 * memory.HISTORY_TURNS
        else:
            parts["history"] = _stored_history(turns)
            messages = 2 * len(turns)
    else:
        messages = 0
    parts["question"] = text_tokens(text)
    if tool_turns:
        parts["tool_turns"] = sum(turn_tokens(turn) for turn in tool_turns)
        messages += len(tool_turns)
    if tools:
        parts["tools"] = text_tokens(json.dumps(tools)) + TOOL_USE_OVERHEAD_TOKENS
    # The system message, the earlier turns, the question (and the tool turns after it).
    parts["messages"] = _messages_overhead(1 + messages + 1)
    return CallReservation("writer", parts, max_tokens)


def question_reservation(
    *,
    provider: str,
    model: str,
    text: str,
    mode: str,
    max_tokens: int,
    client_messages: list[dict] | None,
    system_prompt: str | None,
    use_memory: bool,
    use_documents: bool,
    images: int,
    history: Sequence[tuple[str, str]] | None = None,
    tools: list[dict] | None = None,
    tool_turns: list[dict] | None = None,
    strict_answer: bool = False,
) -> QuestionReservation:
    """The most a question can use: every call it can make, priced at ``model``'s price.

    ``client_messages``: the client's turns (system turns included), None when the stored
    history is the context; ``system_prompt``: the client's or an experiment's, None for
    the platform's; ``images``: how many are attached; ``history``: the session's stored
    (question, answer) turns, newest first, when known (None: their bound); ``tools`` and
    ``tool_turns``: the request's tool definitions and the turns after the question, in
    OpenAI's shapes (``queries.client_turns``); ``strict_answer``: a strict json_schema
    answer, which the writer may ask for twice (``agents.writer.run``). Raises nothing.
    """
    intent, sure = coordinator.classify_intent(text=text, mode=mode, has_images=images > 0)
    calls = []
    if not sure:
        calls.append(_classifier(text))
    if images:
        calls.append(_vision(provider=provider, text=text, images=images, max_tokens=max_tokens))
    writer = _writer(
        provider=provider,
        text=text,
        mode=mode,
        max_tokens=max_tokens,
        client_messages=client_messages,
        system_prompt=system_prompt,
        use_memory=use_memory,
        use_documents=use_documents,
        images=images,
        may_search_products=not sure or intent in ("product_search", "shopping"),
        history=history,
        tools=tools,
        tool_turns=tool_turns,
    )
    # A strict answer that does not validate is asked for once more: both are paid.
    calls.extend([writer, writer] if strict_answer else [writer])
    costs = [cost_for(provider, model, call.usage) for call in calls]
    usd = None if any(cost is None for cost in costs) else round(sum(costs), 10)
    return QuestionReservation(calls=tuple(calls), usd=usd)
