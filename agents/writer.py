"""WriterAgent: builds the final prompt and streams the answer as ``chunk`` events."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from agents.ports import Ports
from agents.providers.base import (
    ChatMessage,
    ChatProvider,
    ChatRequest,
    ToolCallAssembler,
    merge_citations,
)
from agents.providers.registry import get_chat_provider
from agents.providers.structured import answer_errors, needs_validation
from agents.state import RunState
from llmplatform.core.errors import ApplicationError

logger = logging.getLogger(__name__)

BASE_PROMPT = (
    "You are a helpful assistant on a chat platform. Answer the user's question accurately "
    "and concisely. Use the context below when it is relevant; do not mention it otherwise. "
    "If you are not sure, say so."
)
# Each vendor's models follow instructions best in a slightly different house style.
PROVIDER_STYLE = {
    "openai": "Format answers in Markdown; use short lists where they help.",
    "openrouter": "Format answers in Markdown; cite sources inline when you used the web.",
    "anthropic": "The context is given in XML tags. Answer in plain prose or Markdown.",
    "google": "Be direct. Use Markdown headings only for long answers.",
    "local": "Answer in two or three short sentences.",
}


# The passages' numbers are how an answer cites them: the sources it relied on are the
# numbers it cites (``agents.documents.order_sources``).
DOCUMENTS_INTRO = (
    "Passages from the user's documents; cite each passage you use by its number, as [1], "
    "and say which document and page it is from.\n"
)


def _context_block(state: RunState) -> str:
    sections: list[tuple[str, str]] = []
    if state.summary:
        sections.append(("conversation_summary", state.summary))
    if state.document_passages:
        # Numbered with file and page so the answer can say where a fact comes from.
        sections.append(
            (
                "document_passages",
                DOCUMENTS_INTRO
                + "\n\n".join(
                    f"[{n}] {p['title']}"
                    + (f", page {p['page']}" if p["page"] is not None else "")
                    + f":\n{p['text']}"
                    for n, p in enumerate(state.document_passages, start=1)
                ),
            )
        )
    if state.memory_items:
        sections.append(
            (
                "related_past_questions",
                "\n".join(f"Q: {m['query']}\nA: {m['response']}" for m in state.memory_items),
            )
        )
    if state.vision_notes:
        sections.append(("attached_images", state.vision_notes))
    if state.shopping_needs:
        sections.append(("shopper_needs", json.dumps(state.shopping_needs)))
    if state.product_cards:
        sections.append(
            (
                "products_found",
                "\n".join(
                    f"- {c.get('title')} | {c.get('price')} | {c.get('source')} | {c.get('url')}"
                    for c in state.product_cards
                ),
            )
        )
    elif state.products_note:
        sections.append(("products_found", state.products_note))
    if state.provider == "anthropic":
        return "\n".join(f"<{name}>\n{body}\n</{name}>" for name, body in sections)
    return "\n\n".join(f"## {name.replace('_', ' ').title()}\n{body}" for name, body in sections)


def build_request(state: RunState) -> ChatRequest:
    system = state.system_prompt_override or BASE_PROMPT
    # The house style asks for Markdown: not for an answer that must be JSON.
    style = "" if state.response_format else PROVIDER_STYLE.get(state.provider, "")
    context = _context_block(state)
    system = "\n\n".join(part for part in (system, style, context) if part)
    messages: list[ChatMessage] = []
    if state.client_messages is not None:
        # The client keeps its own messages: its turns go to the model as given.
        messages.extend(state.client_messages)
    else:
        for question, answer in state.history:
            messages.append(ChatMessage(role="user", content=question))
            messages.append(ChatMessage(role="assistant", content=answer))
    messages.append(ChatMessage(role="user", content=state.text))
    # A tool-calling loop under way: the model's calls and their results follow the question.
    messages.extend(state.tool_turns)
    return ChatRequest(
        model=state.model,
        messages=tuple(messages),
        system=system,
        temperature=state.temperature,
        max_tokens=state.max_tokens,
        web_search=state.web_search,
        response_format=state.response_format,
        tools=state.tools,
        tool_choice=state.tool_choice,
        parallel_tool_calls=state.parallel_tool_calls,
        sampling=state.sampling,
    )


async def run(state: RunState, ports: Ports) -> None:
    """Stream the answer. A cancel arrives as the task's cancellation, at any await.

    A strict json_schema answer is held back instead of streamed: it is validated first,
    and a vendor answer that does not validate is asked for once more (admission reserved
    both calls), then refused (``_check_structured_answer``)."""
    provider = get_chat_provider(state.provider)
    request = build_request(state)
    held = needs_validation(state.response_format)
    await _stream_answer(state, provider, request, held=held)
    if held and not state.tool_calls:
        assert state.response_format is not None
        if answer_errors(state.response, state.response_format):
            logger.info("strict structured answer did not validate: asking once more")
            await _stream_answer(state, provider, request, held=True)
            _check_structured_answer(state)
        # Validated: the client gets the whole answer as one chunk.
        state.streamed_chunks += 1
        event: dict[str, Any] = {"type": "chunk", "content": state.response}
        if state.logprobs:
            event["logprobs"] = state.logprobs
        await state.emit(event)


async def _stream_answer(
    state: RunState, provider: ChatProvider, request: ChatRequest, *, held: bool
) -> None:
    """One vendor call, streamed into ``state`` (text chunks emitted unless ``held``)."""
    started = time.perf_counter()
    parts: list[str] = []
    logprobs: list[dict[str, Any]] = []
    tool_calls = ToolCallAssembler()
    stream = provider.stream(request)
    try:
        async for chunk in stream:
            if (chunk.text or chunk.tool_calls) and state.time_to_first_token_ms is None:
                state.time_to_first_token_ms = (time.perf_counter() - started) * 1000
            if chunk.logprobs:
                logprobs.extend(chunk.logprobs)
            if chunk.text or chunk.logprobs:
                parts.append(chunk.text)
                if not held:
                    state.streamed_chunks += 1
                    event: dict[str, Any] = {"type": "chunk", "content": chunk.text}
                    if chunk.logprobs:  # asked for (Sampling.logprobs): beside their text
                        event["logprobs"] = list(chunk.logprobs)
                    await state.emit(event)
            for delta in chunk.tool_calls:
                # As the vendor streamed it (OpenAI's delta shape): the first piece of a
                # call names it, the later ones are fragments of its arguments.
                tool_calls.add(delta)
                state.streamed_chunks += 1
                await state.emit(
                    {
                        "type": "tool_call",
                        "index": delta.index,
                        "id": delta.id,
                        "name": delta.name,
                        "arguments": delta.arguments,
                    }
                )
            merge_citations(state.citations, chunk.citations)
            if chunk.usage is not None:
                state.add_usage(chunk.usage)
            if chunk.finish_reason is not None:
                state.finish_reason = chunk.finish_reason
    finally:
        # Kept even when the stream broke or was stopped: the client already saw these
        # (unless ``held``: then ``run`` decides what the client gets).
        state.response = "".join(parts)
        state.logprobs = logprobs
        state.tool_calls = tool_calls.calls()
        # Closing the generator closes the vendor's HTTP stream: generation (and billing)
        # stops. Shielded: a cancelled run must still close it.
        await asyncio.shield(stream.aclose())


def _check_structured_answer(state: RunState) -> None:
    """A strict json_schema answer must validate (vendors do not all constrain decoding to
    the schema). After the one retry, the run fails and the client gets the error instead
    of a silently wrong answer. Raises ApplicationError (502 ``structured_output_invalid``)."""
    assert state.response_format is not None
    problems = answer_errors(state.response, state.response_format)
    if problems:
        raise ApplicationError(
            "The model's answer does not match response_format.json_schema: "
            + "; ".join(problems[:3]),
            code="structured_output_invalid",
            status=502,
        )
