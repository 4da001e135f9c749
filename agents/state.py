"""What the agents of one query share while the engine runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.ports import Emit, MemoryReads, MemoryScope, Scope
from agents.providers.base import (
    ChatMessage,
    Citation,
    ImageInput,
    ResponseFormat,
    Sampling,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    Usage,
)


@dataclass
class RunState:
    scope: Scope
    text: str
    mode: str
    provider: str
    model: str
    temperature: float
    max_tokens: int
    web_search: bool
    use_memory: bool
    selected_option: str | None
    images: list[ImageInput]
    system_prompt_override: str | None
    emit: Emit
    # The client's own earlier turns (the OpenAI-compatible API): when given, the writer
    # sends these instead of the session's stored history; ``text`` is the last user turn.
    client_messages: list[ChatMessage] | None = None
    # Structured output the client asked for (the writer's answer is that JSON).
    response_format: ResponseFormat | None = None
    # Tool calling the client asked for: the functions the writer's model may call, whether
    # and which it must call, whether several at once (None: the vendor's default), and
    # the turns after the question (the calls made so far and their results).
    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    tool_turns: list[ChatMessage] = field(default_factory=list)
    # stop, seed and the penalties the client asked for (checked honoured at the start).
    sampling: Sampling = field(default_factory=Sampling)
    # Answer from these document file ids only (checked ready and owned at the start),
    # or from all of the end user's ready documents (use_documents).
    documents: list[str] = field(default_factory=list)
    use_documents: bool = False
    # With use_memory: whose past questions may be recalled (``agents.ports.MEMORY_SCOPES``).
    memory_scope: MemoryScope = "user"
    # The memory reads the question's start began (a run in the process that admitted
    # it); None: the memory agent makes them.
    memory_reads: MemoryReads | None = None
    # Filled in by the agents, in pipeline order.
    intent: str = "chat"
    intent_classified_by_model: bool = False
    route: list[str] = field(default_factory=list)
    embedding: list[float] | None = None
    embedding_model: str = ""
    memory_items: list[dict[str, Any]] = field(default_factory=list)
    summary: str | None = None
    history: list[tuple[str, str]] = field(default_factory=list)
    # The DocumentsAgent's passages for the prompt: file_id, title, page, text, score.
    document_passages: list[dict[str, Any]] = field(default_factory=list)
    # A shopping question ends the turn without the writer: the answer is the question.
    shopping_question: str | None = None
    options: list[str] = field(default_factory=list)
    shopping_needs: dict[str, str] = field(default_factory=dict)
    product_query: str | None = None
    product_cards: list[dict[str, Any]] = field(default_factory=list)
    products_note: str | None = None
    vision_notes: str | None = None
    response: str = ""
    # With Sampling.logprobs: the answer's per-token log probabilities (OpenAI's shape).
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    # The calls the writer's model answered with instead of (or beside) text.
    tool_calls: list[ToolCall] = field(default_factory=list)
    # Why the writer's model stopped, as the vendor said it (stop, length, tool_calls...).
    finish_reason: str | None = None
    citations: list[Citation] = field(default_factory=list)
    # No model call costs nothing; an unpriced one makes the cost unknown (None).
    usage: Usage = field(default_factory=lambda: Usage(cost_usd=0.0))
    time_to_first_token_ms: float | None = None
    # Chunks the writer streamed: what a stopped answer's usage is estimated from.
    streamed_chunks: int = 0
    cancelled: bool = False
    usage_estimated: bool = False
    agents_used: list[str] = field(default_factory=list)
    agent_timings_ms: dict[str, float] = field(default_factory=dict)

    def add_usage(self, usage: Usage) -> None:
        """Sum the usage of every model call the query made (vision, writer)."""
        self.usage.input_tokens += usage.input_tokens
        self.usage.output_tokens += usage.output_tokens
        self.usage.cached_tokens += usage.cached_tokens
        self.usage.reasoning_tokens += usage.reasoning_tokens
        if usage.cost_usd is None or self.usage.cost_usd is None:
            # One unpriced call makes the total unknown, not smaller.
            self.usage.cost_usd = None
        else:
            self.usage.cost_usd += usage.cost_usd
